"""The witness: an oversight body's monitor that cosigns each hop's log only while it stays honest.

``heliograph witness run --config FILE`` (docs/WITNESS.md) polls every watched log's read API
(docs/PROTOCOL.md 14) each ``poll_interval_s`` and, per log, at most one check in flight:

1. fetch ``/v1/log/checkpoint`` and open it with the log's vkey from the roster (13.8);
2. compare it with the last checkpoint it verified (:func:`judge`): a smaller tree is a
   ``rollback``, the same size with another root a ``fork`` (split view), a larger tree needs
   a consistency proof (13.5) that verifies, else ``inconsistent``;
3. audit the entries (``audit`` in the config): ``new`` downloads each entry once and folds it
   into a compact range kept in the state, ``full`` runs :func:`gateway.log_verifier.verify_log`
   (every entry and sampled inclusion proofs) every round. A served entry that does not match
   the signed tree is ``tampered_leaf`` with its index;
4. only then cosign it (``cosignature/v1``, 13.9) with a timestamp from the injected clock, and
   persist the note and the cosignature atomically (:mod:`gateway.witness_store`).

Alarms are logged at error level as ``witness_alarm`` with the origin, sizes and index, kept in
the state with the signed notes that prove them, and shown by the HTTP API. A log in alarm is
never cosigned again until an operator clears it (``heliograph witness clear``). A hop that does
not answer, or answers something unparsable, proves nothing: that is a ``witness_warning``
(``unreachable``, ``bad_response``) and the witness tries again next round.

The HTTP API (:func:`create_witness_app`) serves ``GET /v1/witness/cosignatures/{origin}`` (the
latest cosigned note, so hops and verifiers can gather k of n witnesses and check them with
:func:`verify_cosignatures`), ``/v1/witness/status``, ``/v1/witness/key``, ``/healthz`` and
``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp
import nacl.utils
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.clock import Clock
from gateway.http import error_middleware
from gateway.log_verifier import LogVerificationError, verify_log
from gateway.roster_watch import RosterWatcher
from gateway.witness_store import (
    Alarm,
    AlarmKind,
    AuditMode,
    Health,
    LogState,
    LogTarget,
    Notice,
    WarningKind,
    WitnessConfig,
    WitnessKey,
    WitnessStateError,
    WitnessStore,
    load_witness_config,
    read_witness_key,
    targets_for,
)
from protocol import fields
from protocol.checkpoint import Checkpoint, CosignatureVerifier, NoteSignature, NoteVerifier, SignedNote, cosign, open_checkpoint, verify_cosignature
from protocol.errors import BadSignatureError, CheckpointError, ConfigError, HeliographError, MalformedError, NotFoundError, ProofError
from protocol.merkle import CompactRange, leaf_hash, verify_consistency

log = structlog.get_logger("heliograph.witness")

PAGE = 1000
MAX_BODY_BYTES = 64 << 20


class WitnessAlarmError(HeliographError):
    """The witness will not vouch for a log it has caught misbehaving."""

    code = "E_WITNESS_ALARM"
    http_status = 409
    default_hint = "An oversight operator must investigate, then run `heliograph witness clear`."


# -- for hops and verifiers: k of n witnesses ------------------------------------------------


def verify_cosignatures(note_text: str, log_vkey: str, witness_vkeys: Iterable[str], k: int, *, not_before: int | None = None) -> None:
    """Check a checkpoint is signed by its log and cosigned by at least ``k`` distinct trusted witnesses.

    Args:
        note_text: The checkpoint note with the log's signature and the witnesses' lines.
        log_vkey: The log's vkey, from the roster.
        witness_vkeys: The trusted witnesses' cosigner vkeys (duplicate keys count once).
        k: How many of them must have cosigned, 1 to the number of distinct witnesses.
        not_before: If given (unix seconds), cosignatures older than this do not count.

    Raises:
        MalformedError: A bad note, vkey or ``k`` (TooLargeError: over the note limits).
        CheckpointError: Not signed by the log, another log's checkpoint, or fewer than ``k``
            valid cosignatures (a line that does not verify is not counted).
        BadSignatureError: The log's signature line does not verify.
    """
    note = SignedNote.from_text(note_text)
    checkpoint = open_checkpoint(note_text, NoteVerifier.from_vkey(log_vkey))
    witnesses = {v.public: v for v in map(CosignatureVerifier.from_vkey, witness_vkeys)}
    if type(k) is not int or not 1 <= k <= len(witnesses):
        raise MalformedError(f"k must be 1..{len(witnesses)} (the number of distinct witnesses), got {k!r}")
    valid = 0
    for witness in witnesses.values():
        try:
            timestamp = verify_cosignature(note, witness)
        except (CheckpointError, BadSignatureError):
            continue
        valid += not_before is None or timestamp >= not_before
    if valid < k:
        raise CheckpointError(
            f"checkpoint {checkpoint.origin} size {checkpoint.size} has {valid} valid cosignature(s) from trusted witnesses, needs {k}",
            hint="Fetch fresh cosignatures from more witnesses (GET /v1/witness/cosignatures/ORIGIN).",
        )


def merge_cosignatures(notes: Sequence[str]) -> str:
    """Combine notes of one checkpoint (e.g. one per witness) into one note with every signature line.

    Raises:
        MalformedError: No notes, or notes of different checkpoint texts (TooLargeError: over 100 lines).
    """
    if not notes:
        raise MalformedError("nothing to merge")
    parsed = [SignedNote.from_text(n) for n in notes]
    if any(p.text != parsed[0].text for p in parsed):
        raise MalformedError("cosigned notes are for different checkpoints")
    lines: dict[tuple[str, bytes], NoteSignature] = {}
    for note in parsed:
        for line in note.signatures:
            lines.setdefault((line.name, line.key_hash), line)  # the first line of each key wins
    return SignedNote(text=parsed[0].text, signatures=tuple(lines.values())).to_text()


# -- the witness's judgement -------------------------------------------------------------------


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


class _Alarm(Exception):
    def __init__(
        self, kind: AlarmKind, message: str, *, old: int | None = None, new: int | None = None, index: int | None = None, evidence: Sequence[str | None] = ()
    ) -> None:
        super().__init__(message)
        self.kind, self.message, self.old, self.new, self.index = kind, message, old, new, index
        self.evidence = tuple(e for e in evidence if e is not None)


class _Warn(Exception):
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


def _from_verifier(exc: LogVerificationError, origin: str, note: str) -> _Alarm | _Warn:
    for pattern, kind in _VERIFY_KINDS:
        match = pattern.search(exc.message)
        if match is not None:
            found = {k: int(v) for k, v in match.groupdict().items() if v is not None}
            index = getattr(exc, "index", None)  # a structured index, should the verifier grow one
            return _Alarm(kind, f"hop {origin}: {exc.message}", old=found.get("old"), new=found.get("new"), index=found.get("index", index), evidence=(note,))
    return _Warn(WarningKind.BAD_RESPONSE, exc.message)


# -- I/O ----------------------------------------------------------------------------------------


async def _get(session: aiohttp.ClientSession, target: LogTarget, path: str, limit: int, **params: int) -> str:
    try:
        async with session.get(target.url.rstrip("/") + path, params={k: str(v) for k, v in params.items()}) as resp:
            body = await resp.content.read(limit + 1)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _Warn(WarningKind.UNREACHABLE, f"GET {path}: {type(exc).__name__}: {exc}") from None
    if len(body) > limit:
        raise _Warn(WarningKind.BAD_RESPONSE, f"GET {path}: answer over {limit} bytes")
    if status != 200:
        raise _Warn(WarningKind.UNREACHABLE, f"GET {path} {params} answered {status}: {body[:200].decode('utf-8', errors='replace')}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise _Warn(WarningKind.BAD_RESPONSE, f"GET {path} {params}: not UTF-8") from None


async def _get_list(session: aiohttp.ClientSession, target: LogTarget, path: str, key: str, **params: int) -> list[bytes]:
    text = await _get(session, target, path, MAX_BODY_BYTES, **params)
    try:
        doc = json.loads(text)
        items = doc[key]
        if not isinstance(items, list):
            raise TypeError(key)
        return [fields.unb64(f"{path} item", item) for item in items]
    except (ValueError, KeyError, TypeError, MalformedError):
        raise _Warn(WarningKind.BAD_RESPONSE, f"GET {path} {params} returned a malformed body") from None


class WitnessMetrics:
    """Prometheus gauges and counters per log, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.size = Gauge("heliograph_witness_log_size", "Tree size of the last checkpoint verified", ["origin"], registry=self.registry)
        self.alarm = Gauge("heliograph_witness_log_alarm", "1 while the log is in alarm", ["origin"], registry=self.registry)
        self.alarms = Counter("heliograph_witness_alarms", "Alarms raised", ["origin", "kind"], registry=self.registry)
        self.warnings = Counter("heliograph_witness_warnings", "Rounds that proved nothing", ["origin", "kind"], registry=self.registry)
        self.cosigned = Counter("heliograph_witness_cosignatures", "Checkpoints cosigned", ["origin"], registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Witness:
    """Polls its logs, keeps their state, and cosigns what verifies. One instance per state directory."""

    def __init__(
        self,
        config: WitnessConfig,
        *,
        key: WitnessKey,
        clock: Clock,
        store: WitnessStore,
        rng: Callable[[int], bytes] = nacl.utils.random,
        roster: RosterWatcher | None = None,
    ) -> None:
        """Use :meth:`open` to read the key, the roster and the states from the config's files."""
        if key.name != config.name:
            raise ConfigError(f"witness.name is {config.name!r} but witness.key_file holds the key of {key.name!r}")
        self.config, self.key, self.clock, self.store, self.rng, self.roster = config, key, clock, store, rng, roster
        self.metrics = WitnessMetrics()
        self.targets = targets_for(config, roster.roster if roster else None)
        self.states = {origin: store.load(origin) for origin in self.targets}
        for state in self.states.values():
            self._gauges(state)

    @classmethod
    async def open(cls, config: WitnessConfig, *, clock: Clock, rng: Callable[[int], bytes] = nacl.utils.random, key: WitnessKey | None = None) -> Witness:
        """Lock the state directory, read the key and the roster, and load every log's state.

        Raises:
            ConfigError: Another witness holds the state directory, or the key has another name.
            KeyFileError, WitnessStateError, HeliographError: A key, roster or state file that does not allow a safe start.
        """
        store = WitnessStore(config.state_dir)
        if not store.try_lock():
            raise ConfigError(f"witness.state_dir: {config.state_dir} is in use by another witness process")
        try:
            key = key or read_witness_key(config.key_file)
            roster = await RosterWatcher.open(config.roster_path, now_ms=clock.now_ms()) if config.roster_path else None
            witness = cls(config, key=key, clock=clock, store=store, rng=rng, roster=roster)
            for origin in witness.targets:
                witness._apply_clear(origin)
        except BaseException:
            store.unlock()
            raise
        return witness

    def close(self) -> None:
        self.store.unlock()

    # -- rounds -------------------------------------------------------------------------------

    async def poll_once(self) -> None:
        """Check every log once, concurrently (at most one check per log in flight)."""
        if self.roster is not None and await self.roster.check(self.clock.now_ms()) is not None:
            self.targets = targets_for(self.config, self.roster.roster)
            for origin in self.targets.keys() - self.states.keys():
                self.states[origin] = self.store.load(origin)
        timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._check_isolated(target, session) for target in list(self.targets.values())))

    async def _check_isolated(self, target: LogTarget, session: aiohttp.ClientSession) -> None:
        """One log's check; a bug tripped by one hop's answers must not stop the others being watched."""
        try:
            await self.check_log(target, session)
        except WitnessStateError:
            raise
        except Exception:
            log.exception("witness_check_failed", origin=target.origin, url=target.url)

    async def run(self) -> None:
        """Poll every ``poll_interval_s`` until cancelled."""
        while True:
            await self.poll_once()
            await self.clock.sleep(self.config.poll_interval_s)

    async def check_log(self, target: LogTarget, session: aiohttp.ClientSession) -> LogState:
        """Verify one log, cosign or raise the alarm, and persist its new state.

        Raises:
            WitnessStateError: The state cannot be saved (the witness must not go on without memory).
        """
        origin = target.origin
        state = self._apply_clear(origin)
        if state.alarms:
            log.error(
                "witness_log_in_alarm", origin=origin, alarms=[a.kind.value for a in state.alarms], hint="run `heliograph witness clear` after investigating"
            )
            return state
        now = self.clock.now_ms()
        try:
            new_state = await self._advance(target, state, session)
            self.metrics.cosigned.labels(origin).inc()
        except _Alarm as a:
            alarm = Alarm(kind=a.kind, time=now, message=a.message, old_size=a.old, new_size=a.new, index=a.index, evidence=a.evidence)
            new_state = state.with_alarm(alarm)
            self.metrics.alarms.labels(origin, a.kind.value).inc()
            log.error("witness_alarm", kind=a.kind.value, origin=origin, url=target.url, old_size=a.old, new_size=a.new, index=a.index, message=a.message)
        except _Warn as w:
            new_state = replace(state, warning=Notice(kind=w.kind, time=now, message=w.message))
            self.metrics.warnings.labels(origin, w.kind.value).inc()
            log.warning("witness_warning", kind=w.kind.value, origin=origin, url=target.url, message=w.message)
        await asyncio.to_thread(self.store.save, new_state)
        self.states[origin] = new_state
        self._gauges(new_state)
        return new_state

    async def _advance(self, target: LogTarget, state: LogState, session: aiohttp.ClientSession) -> LogState:
        verifier = NoteVerifier.from_vkey(target.vkey)
        note = await _get(session, target, "/v1/log/checkpoint", 1 << 20)
        try:
            cp = open_checkpoint(note, verifier)
        except (BadSignatureError, CheckpointError) as exc:
            raise _Alarm(AlarmKind.BAD_SIGNATURE, f"log {target.origin}: checkpoint refused: {exc.message}", evidence=(note,)) from None
        except MalformedError as exc:
            raise _Warn(WarningKind.BAD_RESPONSE, f"checkpoint is not a signed checkpoint: {exc.message}") from None
        last = state.tree()
        verdict = judge(last, cp)
        if last is not None and verdict is Verdict.ROLLBACK:
            msg = f"log {target.origin} rolled back from size {last.size} to {cp.size}: first missing index {cp.size}"
            raise _Alarm(AlarmKind.ROLLBACK, msg, old=last.size, new=cp.size, index=cp.size, evidence=(state.checkpoint, note))
        if last is not None and verdict is Verdict.FORK:
            msg = f"log {target.origin} split view: two signed checkpoints of size {cp.size} with roots {last.root.hex()} and {cp.root.hex()}"
            raise _Alarm(AlarmKind.FORK, msg, old=last.size, new=cp.size, evidence=(state.checkpoint, note))
        if last is not None and verdict is Verdict.GROWN:
            proof = await _get_list(session, target, "/v1/log/proof/consistency", "path", first=last.size, second=cp.size)
            try:
                verify_consistency(last.size, cp.size, last.root, cp.root, proof)
            except ProofError:
                msg = f"log {target.origin}: consistency proof {last.size} -> {cp.size} does not verify"
                raise _Alarm(AlarmKind.INCONSISTENT, msg, old=last.size, new=cp.size, evidence=(state.checkpoint, note)) from None
        audited = state.audited()
        if self.config.audit is AuditMode.NEW:
            audited = await self._audit_new(session, target, audited, cp, note)
        elif self.config.audit is AuditMode.FULL:
            note, cp = await self._audit_full(target, note)
        now = self.clock.now_ms()
        cosigned = cosign(SignedNote.from_text(note), self.key.name, self.key.signer, now // 1000)
        if cp != last:  # an unchanged log is re-cosigned every round, quietly
            log.info("witness_cosigned", origin=target.origin, size=cp.size, old_size=last.size if last else None)
        return replace(
            state, checkpoint=note, cosigned=cosigned.to_text(), audited_size=audited.size, audited_hashes=audited.hashes, last_checked=now, warning=None
        )

    async def _audit_new(self, session: aiohttp.ClientSession, target: LogTarget, audited: CompactRange, cp: Checkpoint, note: str) -> CompactRange:
        """Download the entries not audited yet, fold them in, and name the first that breaks the signed root."""
        if audited.size > cp.size:  # pragma: no cover - a smaller tree is a rollback alarm before this
            audited = CompactRange()
        hashes: list[bytes] = []
        for start in range(audited.size, cp.size, PAGE):
            end = min(start + PAGE, cp.size)
            entries = await _get_list(session, target, "/v1/log/entries", "entries", start=start, end=end)
            hashes += [leaf_hash(e) for e in entries[: end - start]]
            if len(entries) < end - start:
                missing = start + len(entries)
                raise _Alarm(AlarmKind.TAMPERED_LEAF, f"hop {target.origin} index {missing}: entry missing", new=cp.size, index=missing, evidence=(note,))
        grown = _extend(audited, hashes, cp.size)
        if grown.root() == cp.root:
            return grown
        low, high = audited.size, cp.size  # prefix `low` matches the signed tree, prefix `high` does not
        while high - low > 1:
            mid = (low + high) // 2
            proof = await _get_list(session, target, "/v1/log/proof/consistency", "path", first=mid, second=cp.size)
            try:
                verify_consistency(mid, cp.size, _extend(audited, hashes, mid).root(), cp.root, proof)
                low = mid
            except ProofError:
                high = mid
        raise _Alarm(AlarmKind.TAMPERED_LEAF, f"hop {target.origin} index {low}: leaf hash mismatch", new=cp.size, index=low, evidence=(note,))

    async def _audit_full(self, target: LogTarget, note: str) -> tuple[str, Checkpoint]:
        """Run ``heliograph log verify`` from ``note``; return the (possibly newer) checkpoint it verified."""
        scratch = self.store.scratch(target.origin)
        scratch.write_text(note, encoding="utf-8")  # verify_log demands consistency from it, then replaces it
        try:
            report = await verify_log(target.url, target.vkey, state=scratch, proofs=str(self.config.audit_proofs), rng=self.rng)
            verified = scratch.read_text(encoding="utf-8")
        except LogVerificationError as exc:
            raise _from_verifier(exc, target.origin, note) from None
        except (BadSignatureError, CheckpointError) as exc:
            raise _Alarm(AlarmKind.BAD_SIGNATURE, f"log {target.origin}: checkpoint refused: {exc.message}") from None
        except MalformedError as exc:
            raise _Warn(WarningKind.BAD_RESPONSE, exc.message) from None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise _Warn(WarningKind.UNREACHABLE, f"audit: {type(exc).__name__}: {exc}") from None
        finally:
            scratch.unlink(missing_ok=True)
        assert report.checkpoint is not None
        return verified, report.checkpoint

    def _apply_clear(self, origin: str) -> LogState:
        state, reset = self.store.apply_clear(self.states.get(origin) or self.store.load(origin))
        if reset is not None:
            log.warning("witness_alarm_cleared", origin=origin, reset=reset)
        self.states[origin] = state
        self._gauges(state)
        return state

    def _gauges(self, state: LogState) -> None:
        tree = state.tree()
        self.metrics.size.labels(state.origin).set(tree.size if tree else 0)
        self.metrics.alarm.labels(state.origin).set(1 if state.alarms else 0)

    # -- what the API shows -------------------------------------------------------------------

    def cosigned_note(self, origin: str) -> str:
        """The latest cosigned checkpoint of ``origin``.

        Raises:
            NotFoundError: Not a watched log, or nothing cosigned yet.
            WitnessAlarmError: The log is in alarm.
        """
        state = self.states.get(origin)
        if state is None or origin not in self.targets:
            raise NotFoundError(f"this witness does not watch {origin!r}")
        if state.alarms:
            last = state.alarms[-1]
            raise WitnessAlarmError(f"log {origin} is in alarm ({last.kind.value}): {last.message}")
        if state.cosigned is None:
            raise NotFoundError(f"log {origin} has not been verified yet")
        return state.cosigned

    def in_alarm(self) -> list[str]:
        return sorted(o for o, s in self.states.items() if s.alarms and o in self.targets)

    def status(self) -> dict[str, Any]:
        logs = []
        for origin, target in sorted(self.targets.items()):
            state = self.states[origin]
            tree = state.tree()
            logs.append(
                {
                    "origin": origin,
                    "url": target.url,
                    "state": state.health.value,
                    "size": tree.size if tree else None,
                    "root": tree.root.hex() if tree else None,
                    "last_checked": state.last_checked,
                    "warning": state.warning.to_json() if state.warning else None,
                    "alarms": [a.to_json() for a in state.alarms],
                }
            )
        return {"witness": self.key.name, "vkey": self.key.vkey, "now": self.clock.now_ms(), "logs": logs}


def _extend(base: CompactRange, hashes: Sequence[bytes], size: int) -> CompactRange:
    grown = base.copy()
    for h in hashes[: size - base.size]:
        grown.append(h)
    return grown


# -- HTTP ---------------------------------------------------------------------------------------

WITNESS: web.AppKey[Witness] = web.AppKey("witness", Witness)


async def get_cosignatures(request: web.Request) -> web.Response:
    note = request.app[WITNESS].cosigned_note(request.match_info["origin"])
    return web.Response(text=note, content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-store"})


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[WITNESS].status())


async def get_key(request: web.Request) -> web.Response:
    return web.Response(text=request.app[WITNESS].key.vkey + "\n", content_type="text/plain", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    witness = request.app[WITNESS]
    return web.json_response({"status": "ok", "witness": witness.key.name, "alarms": witness.in_alarm()})


async def metrics(request: web.Request) -> web.Response:
    body, ctype = request.app[WITNESS].metrics.render()
    return web.Response(body=body, headers={"Content-Type": ctype})


def create_witness_app(witness: Witness) -> web.Application:
    """The witness's read-only aiohttp application (the caller runs it and the poll loop)."""
    app = web.Application(middlewares=[error_middleware])
    app[WITNESS] = witness
    app.router.add_get("/v1/witness/cosignatures/{origin:.+}", get_cosignatures)
    app.router.add_get("/v1/witness/status", get_status)
    app.router.add_get("/v1/witness/key", get_key)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_witness(config_path: Path, *, clock: Clock, once: bool = False, ready_file: Path | None = None) -> int:
    """Run the witness at ``config_path``: one round with ``once``, else serve and poll until SIGTERM/SIGINT.

    Returns:
        The exit status: 1 if ``once`` and any log is in alarm, else 0.

    Raises:
        HeliographError: The config, key, roster or state files do not allow a safe start.
    """
    config = load_witness_config(config_path)
    witness = await Witness.open(config, clock=clock)
    try:
        if once:
            await witness.poll_once()
            return 1 if witness.in_alarm() else 0
        runner = web.AppRunner(create_witness_app(witness), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, config.host, config.port).start()
        log.info("witness_started", witness=config.name, listen=f"{config.host}:{config.port}", logs=len(witness.targets))
        if ready_file is not None:
            ready_file.write_text(f"{config.host}:{config.port}\n", encoding="utf-8")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        poller = asyncio.create_task(witness.run())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({poller, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (poller, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # re-raises what ended the poll loop (e.g. a state file it could not write)
        await runner.cleanup()
        log.info("witness_stopped", witness=config.name)
        return 0
    finally:
        witness.close()


__all__ = [
    "Health",
    "Verdict",
    "Witness",
    "WitnessAlarmError",
    "create_witness_app",
    "judge",
    "merge_cosignatures",
    "serve_witness",
    "verify_cosignatures",
]
