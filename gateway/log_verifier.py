"""The oversight body's log verifier: trusts nothing the server says without proof.

``verify_log(url, vkey, state)`` does, in order:

1. fetch the checkpoint and verify its signature under ``vkey`` (taken from the
   roster), and check its origin is the vkey's name;
2. with saved state (an earlier checkpoint), refuse a smaller tree or a
   different root at the same size, and demand and verify a consistency proof
   from the old checkpoint to the new one;
3. download every entry, recompute every leaf hash and the root, and compare
   with the checkpoint. On a mismatch it bisects with consistency proofs
   (each verified against the signed root) to name the first bad index;
4. audit the server's stored tree: ask for inclusion proofs (all of them for
   small logs, a sample for big ones), verify each against the signed root and
   compare each element with the locally computed subtree, naming the first
   leaf of the first subtree the server has wrong;
5. save the new checkpoint as the state, atomically.

Every failure raises :class:`LogVerificationError` naming the check and index.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from protocol.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from protocol.errors import HeliographError
from protocol.merkle import EMPTY_ROOT, consistency_ranges, inclusion_ranges, leaf_hash, node_hash, range_hash, verify_consistency, verify_inclusion

PAGE = 1000
FULL_AUDIT_MAX = 4096
SAMPLE = 256


class LogVerificationError(HeliographError):
    """The log failed a check; the message names which and where."""

    code = "E_LOG_VERIFY"
    http_status = 422


@dataclass(slots=True)
class Report:
    """What the verifier checked, for printing."""

    lines: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)


class LocalTree:
    """Every level of the tree, recomputed from downloaded leaves (32 bytes per node)."""

    def __init__(self, leaf_hashes: bytearray) -> None:
        self.levels = [leaf_hashes]
        while len(self.levels[-1]) > 32:
            below = self.levels[-1]
            count = len(below) // 64
            above = bytearray()
            for i in range(count):
                above += node_hash(bytes(below[64 * i : 64 * i + 32]), bytes(below[64 * i + 32 : 64 * i + 64]))
            if not count:
                break
            self.levels.append(above)

    @property
    def size(self) -> int:
        return len(self.levels[0]) // 32

    def subtree(self, level: int, index: int) -> bytes:
        return bytes(self.levels[level][32 * index : 32 * index + 32])

    def root(self, size: int) -> bytes:
        return range_hash(0, size, self.subtree) if size else EMPTY_ROOT


class _Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base.rstrip("/")

    async def get(self, path: str, **params: int) -> Any:
        async with self.session.get(self.base + path, params={k: str(v) for k, v in params.items()}) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise LogVerificationError(f"GET {path} {params} answered {resp.status}: {text[:200]}")
            return text if path.endswith(("/checkpoint", "/key")) else _json(path, text)

    async def proof(self, path: str, key: str, **params: int) -> list[bytes]:
        doc = await self.get(path, **params)
        if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
            raise LogVerificationError(f"GET {path} returned a malformed body")
        return [_unb64(path, item) for item in doc[key]]


def _json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise LogVerificationError(f"GET {path} did not return JSON") from None


def _unb64(where: str, item: object) -> bytes:
    try:
        if not isinstance(item, str):
            raise ValueError
        return base64.b64decode(item, validate=True)
    except (ValueError, binascii.Error):
        raise LogVerificationError(f"{where}: not base64") from None


async def verify_log(
    url: str, vkey: str, *, state: Path | None = None, proofs: str = "auto", rng: Callable[[int], bytes] = os.urandom, tls: ssl.SSLContext | None = None
) -> Report:
    """Run every check against the log at ``url``; see the module docstring.

    Args:
        url: Base URL of the hop (``http://host:port``).
        vkey: The log's C2SP verifier key, from the roster.
        state: File holding the last verified checkpoint; created or updated on success.
        proofs: ``auto`` (all when small, a sample when big), ``all``, or a number to sample.
        rng: Randomness for the sample.
        tls: Trust for an ``https://`` URL (a federation's private CA); None: the system's trust store.

    Returns:
        The report of what was checked.

    Raises:
        LogVerificationError: Any failed check, naming it.
        HeliographError: A malformed or wrongly signed checkpoint.
    """
    verifier = NoteVerifier.from_vkey(vkey)
    report = Report()
    connector = aiohttp.TCPConnector(ssl=tls or True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300), connector=connector) as session:
        client = _Client(session, url)
        note = await client.get("/v1/log/checkpoint")
        cp = open_checkpoint(note, verifier)
        report.checkpoint = cp
        report.add(f"checkpoint: origin {cp.origin}, size {cp.size}, root {cp.root.hex()} — signature OK")
        if state is not None and state.exists():
            await _check_against_state(client, cp, open_checkpoint(state.read_text(encoding="utf-8"), verifier), report)
        tree = await _download(client, cp, report)
        await _audit_proofs(client, cp, tree, proofs=proofs, rng=rng, report=report)
    if state is not None:
        tmp = state.with_name(state.name + ".tmp")
        tmp.write_text(note, encoding="utf-8")
        os.replace(tmp, state)
        report.add(f"state saved to {state}")
    return report


async def _check_against_state(client: _Client, cp: Checkpoint, old: Checkpoint, report: Report) -> None:
    if cp.size < old.size:
        raise LogVerificationError(f"the log shrank from {old.size} to {cp.size} entries: first missing index {cp.size}")
    if cp.size == old.size:
        if cp.root != old.root:
            raise LogVerificationError(f"fork: size {cp.size} has root {cp.root.hex()} but was {old.root.hex()}")
        report.add(f"consistent with saved checkpoint (same size {old.size})")
        return
    path = await client.proof("/v1/log/proof/consistency", "path", first=old.size, second=cp.size)
    try:
        verify_consistency(old.size, cp.size, old.root, cp.root, path)
    except HeliographError as exc:
        raise LogVerificationError(f"consistency proof {old.size} -> {cp.size} fails: {exc.message}") from None
    report.add(f"consistency proof {old.size} -> {cp.size} OK ({len(path)} hashes)")


async def _download(client: _Client, cp: Checkpoint, report: Report) -> LocalTree:
    hashes = bytearray()
    for start in range(0, cp.size, PAGE):
        end = min(start + PAGE, cp.size)
        doc = await client.get("/v1/log/entries", start=start, end=end)
        entries = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise LogVerificationError(f"entries [{start}, {end}) returned a malformed body")
        for offset, item in enumerate(entries[: end - start]):
            hashes += leaf_hash(_unb64(f"entry {start + offset}", item))
        if len(entries) != end - start:
            raise LogVerificationError(f"entry {start + min(len(entries), end - start)} is missing (got {len(entries)} of {end - start} in [{start}, {end}))")
    tree = LocalTree(hashes)
    if tree.root(cp.size) != cp.root:
        bad = await _first_bad_index(client, cp, tree)
        raise LogVerificationError(f"entry {bad} does not match the signed tree (recomputed root differs from checkpoint root)")
    report.add(f"downloaded {cp.size} entries; recomputed root matches the checkpoint")
    return tree


async def _first_bad_index(client: _Client, cp: Checkpoint, tree: LocalTree) -> int:
    """Smallest k whose local prefix root is not consistent with the signed root, minus one."""
    low, high = 0, cp.size  # prefix `low` is consistent, prefix `high` is not
    while high - low > 1:
        mid = (low + high) // 2
        path = await client.proof("/v1/log/proof/consistency", "path", first=mid, second=cp.size)
        try:
            verify_consistency(mid, cp.size, tree.root(mid), cp.root, path)
            low = mid
        except HeliographError:
            high = mid
    return low


def _check_inclusion(cp: Checkpoint, tree: LocalTree, index: int, path: list[bytes]) -> None:
    ranges = inclusion_ranges(index, cp.size)
    expected = [range_hash(s, e, tree.subtree) for s, e in ranges]
    if path != expected:
        for (start, end), got, want in zip(ranges, path, expected, strict=False):
            if got != want:
                raise LogVerificationError(f"index {start}: the server's stored hash for leaves [{start}, {end}) is wrong (inclusion proof of {index})")
        raise LogVerificationError(f"index {index}: inclusion proof has {len(path)} hashes, expected {len(expected)}")
    try:
        verify_inclusion(index, cp.size, tree.subtree(0, index), path, cp.root)
    except HeliographError as exc:  # pragma: no cover - equal to the locally computed proof, so it verifies
        raise LogVerificationError(f"index {index}: inclusion proof fails: {exc.message}") from None


async def _audit_proofs(client: _Client, cp: Checkpoint, tree: LocalTree, *, proofs: str, rng: Callable[[int], bytes], report: Report) -> None:
    if cp.size == 0:
        return
    if proofs == "all" or (proofs == "auto" and cp.size <= FULL_AUDIT_MAX):
        indices = list(range(cp.size))
    else:
        count = SAMPLE if proofs == "auto" else int(proofs)
        picks = {0, cp.size - 1}
        while len(picks) < min(count, cp.size):
            picks.add(int.from_bytes(rng(8), "big") % cp.size)
        indices = sorted(picks)
    for chunk in range(0, len(indices), 32):
        batch = indices[chunk : chunk + 32]
        paths = await asyncio.gather(*(client.proof("/v1/log/proof/inclusion", "path", index=i, size=cp.size) for i in batch))
        for index, path in zip(batch, paths, strict=True):
            _check_inclusion(cp, tree, index, path)
    what = "every leaf" if len(indices) == cp.size else f"{len(indices)} sampled leaves"
    report.add(f"inclusion proofs for {what} match the recomputed tree and verify against the checkpoint")
    # Consistency from a few earlier sizes exercises the stored left-edge nodes too.
    for first in sorted({1, cp.size // 2, cp.size - 1} - {0}):
        path = await client.proof("/v1/log/proof/consistency", "path", first=first, second=cp.size)
        expected = [range_hash(s, e, tree.subtree) for s, e in consistency_ranges(first, cp.size)]
        if path != expected:
            raise LogVerificationError(f"consistency proof {first} -> {cp.size} differs from the recomputed tree")
    report.add("consistency proofs from earlier sizes match the recomputed tree")
