"""The witness's judgement of one log: what a new checkpoint means, and how a round fails.

:class:`gateway.witness_monitor.Witness` runs one check per log per round. This module holds
the pieces of that check that keep no state: :func:`judge` compares a fetched checkpoint with
the last one verified; a check that proves misbehaviour raises :class:`LogAlarm` (stored as an
:class:`gateway.witness_store.Alarm`, which stops cosigning) and one that proves nothing raises
:class:`LogWarning` (retried next round); :func:`classify_verifier_error` sorts the audit's
:class:`gateway.log_verifier.LogVerificationError` into the two; :func:`fetch_text` and
:func:`fetch_list` read the log API (docs/PROTOCOL.md 14) and turn every failure into a warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from enum import Enum

import aiohttp

from gateway.log_verifier import LogVerificationError
from gateway.witness_config import LogTarget
from gateway.witness_store import AlarmKind, WarningKind
from protocol import fields
from protocol.checkpoint import Checkpoint
from protocol.errors import MalformedError
from protocol.merkle import CompactRange

MAX_BODY_BYTES = 64 << 20


class Verdict(Enum):
    FIRST = "first"
    UNCHANGED = "unchanged"
    GROWN = "grown"
    FORK = "fork"
    ROLLBACK = "rollback"


def judge(last: Checkpoint | None, new: Checkpoint) -> Verdict:
    """Compare a newly fetched checkpoint with the last one verified; ``GROWN`` still needs a consistency proof."""
    if last is None:
        return Verdict.FIRST
    if new.size < last.size:
        return Verdict.ROLLBACK
    if new.size == last.size:
        return Verdict.UNCHANGED if new.root == last.root else Verdict.FORK
    return Verdict.GROWN


class LogAlarm(Exception):
    """A check proved the log misbehaved: the round ends in an alarm, with the signed notes that prove it."""

    def __init__(
        self, kind: AlarmKind, message: str, *, old: int | None = None, new: int | None = None, index: int | None = None, evidence: Sequence[str | None] = ()
    ) -> None:
        super().__init__(message)
        self.kind, self.message, self.old, self.new, self.index = kind, message, old, new, index
        self.evidence = tuple(e for e in evidence if e is not None)


class LogWarning(Exception):
    """A check proved nothing (no answer, or an unparsable one): the round ends in a warning and is retried."""

    def __init__(self, kind: WarningKind, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


# LogVerificationError messages (docs/PROTOCOL.md 15.1) by the check that failed; named groups
# old, new and index pick out the sizes and the index. Anything else (a non-200 answer, a body
# that is not JSON or base64) proves nothing and is a warning.
_VERIFY_KINDS = (
    (re.compile(r"the log shrank from (?P<old>\d+) to (?P<new>\d+) entries: first missing index (?P<index>\d+)"), AlarmKind.ROLLBACK),
    (re.compile(r"^fork: size (?P<new>\d+)"), AlarmKind.FORK),
    (re.compile(r"^consistency proof (?P<old>\d+) -> (?P<new>\d+) fails"), AlarmKind.INCONSISTENT),
    (re.compile(r"^(?:entry|index) (?P<index>\d+)(?: is missing| does not match|: the server's stored hash|: inclusion proof)"), AlarmKind.TAMPERED_LEAF),
    (re.compile(r"^consistency proof \d+ -> (?P<new>\d+) differs"), AlarmKind.TAMPERED_LEAF),
)


def classify_verifier_error(exc: LogVerificationError, origin: str, note: str) -> LogAlarm | LogWarning:
    """The alarm a failed audit proves, or a warning when its message matches no known check."""
    for pattern, kind in _VERIFY_KINDS:
        match = pattern.search(exc.message)
        if match is not None:
            found = {k: int(v) for k, v in match.groupdict().items() if v is not None}
            index = getattr(exc, "index", None)  # a structured index, should the verifier grow one
            return LogAlarm(kind, f"hop {origin}: {exc.message}", old=found.get("old"), new=found.get("new"), index=found.get("index", index), evidence=(note,))
    return LogWarning(WarningKind.BAD_RESPONSE, exc.message)


async def fetch_text(session: aiohttp.ClientSession, target: LogTarget, path: str, limit: int, **params: int) -> str:
    """GET ``path`` from the log's hop as text of at most ``limit`` bytes; any failure is a :class:`LogWarning`."""
    try:
        async with session.get(target.url.rstrip("/") + path, params={k: str(v) for k, v in params.items()}) as resp:
            body = await resp.content.read(limit + 1)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise LogWarning(WarningKind.UNREACHABLE, f"GET {path}: {type(exc).__name__}: {exc}") from None
    if len(body) > limit:
        raise LogWarning(WarningKind.BAD_RESPONSE, f"GET {path}: answer over {limit} bytes")
    if status != 200:
        raise LogWarning(WarningKind.UNREACHABLE, f"GET {path} {params} answered {status}: {body[:200].decode('utf-8', errors='replace')}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise LogWarning(WarningKind.BAD_RESPONSE, f"GET {path} {params}: not UTF-8") from None


async def fetch_list(session: aiohttp.ClientSession, target: LogTarget, path: str, key: str, **params: int) -> list[bytes]:
    """GET ``path`` and decode the base64 array under ``key``; a malformed body is a :class:`LogWarning`."""
    text = await fetch_text(session, target, path, MAX_BODY_BYTES, **params)
    try:
        doc = json.loads(text)
        items = doc[key]
        if not isinstance(items, list):
            raise TypeError(key)
        return [fields.unb64(f"{path} item", item) for item in items]
    except (ValueError, KeyError, TypeError, MalformedError):
        raise LogWarning(WarningKind.BAD_RESPONSE, f"GET {path} {params} returned a malformed body") from None


def extend_range(base: CompactRange, hashes: Sequence[bytes], size: int) -> CompactRange:
    """A copy of ``base`` grown by ``hashes`` up to ``size`` leaves."""
    grown = base.copy()
    for h in hashes[: size - base.size]:
        grown.append(h)
    return grown
