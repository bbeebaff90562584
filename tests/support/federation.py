"""A deterministic in-memory federation for tests, vectors and benchmarks.

``SeededRng`` is a SHAKE-256 stream keyed by a seed, so every key, nonce and
message id a test draws is reproducible. ``build_federation`` makes a signed
roster with authorities, gateways and agency nodes from that stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import nacl.signing

from protocol.keys import MemberKeys
from protocol.roster import Authority, Member, Roster, RosterKey, SignedRoster

T0 = 1_780_000_000_000
"""A fixed "now" for tests (unix ms, 2026-05-28)."""
YEAR_MS = 365 * 24 * 3600 * 1000


class SeededRng:
    """Deterministic byte stream: SHAKE-256(seed) read sequentially."""

    def __init__(self, seed: bytes | str) -> None:
        self._seed = seed.encode() if isinstance(seed, str) else seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        self._counter += 1
        return hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big")).digest(n)


@dataclass
class Federation:
    roster: Roster
    signed: SignedRoster
    keys: dict[str, MemberKeys]
    authority_keys: list[nacl.signing.SigningKey]


def roster_member(
    keys: MemberKeys,
    kind: str,
    home: str | None,
    *,
    port: int = 0,
    not_before: int = T0 - YEAR_MS,
    not_after: int = T0 + YEAR_MS,
    revoked_at: int | None = None,
) -> Member:
    """Build the roster entry for ``keys`` with one signing and one encryption key."""
    return Member(
        id=keys.member_id,
        kind=kind,
        endpoint=f"http://127.0.0.1:{port or 8000}",
        log_vkey=keys.public.log_vkey,
        signing_keys=(RosterKey(public=keys.signing_public, not_before=not_before, not_after=not_after, revoked_at=revoked_at),),
        encryption_keys=(RosterKey(public=keys.encryption_public, not_before=not_before, not_after=not_after),),
        home_gateway=home,
        display_name=keys.member_id.upper(),
    )


def build_federation(
    seed: str = "heliograph-test",
    *,
    gateways: Sequence[str] = ("gw-af", "gw-eu"),
    nodes: Sequence[tuple[str, str]] = (("int-org", "gw-eu"), ("ke-fiu", "gw-af"), ("ke-police", "gw-af"), ("fr-police", "gw-eu")),
    n_authorities: int = 3,
    threshold: int = 2,
    version: int = 1,
    extra_members: Sequence[Member] = (),
    t0: int = T0,
) -> Federation:
    """Build a signed federation roster and every member's keys from ``seed``."""
    rng = SeededRng(seed)
    keys: dict[str, MemberKeys] = {}
    members = []
    for gw in gateways:
        keys[gw] = MemberKeys.generate(gw, rng)
        members.append(roster_member(keys[gw], "gateway", None, not_before=t0 - YEAR_MS, not_after=t0 + YEAR_MS))
    for node, home in nodes:
        keys[node] = MemberKeys.generate(node, rng)
        members.append(roster_member(keys[node], "node", home, not_before=t0 - YEAR_MS, not_after=t0 + YEAR_MS))
    members.extend(extra_members)
    authority_keys = [nacl.signing.SigningKey(rng(32)) for _ in range(n_authorities)]
    roster = Roster(
        federation="demo-federation",
        version=version,
        issued=t0 - 1000,
        expires=t0 + YEAR_MS,
        threshold=threshold,
        authorities=tuple(Authority(id=f"authority-{i}", public=bytes(k.verify_key)) for i, k in enumerate(authority_keys)),
        members=tuple(sorted(members, key=lambda m: m.id)),
    )
    signed = SignedRoster.sign(roster, authority_keys[:threshold])
    return Federation(roster=roster, signed=signed, keys=keys, authority_keys=authority_keys)
