"""The witness's poll loop: one :class:`Witness` per state directory, checking and cosigning each log.

:mod:`gateway.witness` describes what a round does (docs/WITNESS.md); this module runs it.
Each round, :meth:`Witness.poll_once` checks every watched log concurrently, at most one check
per log in flight, using the stateless checks of :mod:`gateway.witness_checks`. A log that
verifies is cosigned with the injected clock's time; an alarm or a warning is recorded instead.
Every outcome is persisted through :class:`gateway.witness_store.WitnessStore` before the next
round, and counted in :class:`WitnessMetrics`. The HTTP API in :mod:`gateway.witness` reads
what :class:`Witness` shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import nacl.utils
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.clock import Clock
from gateway.log_verifier import LogVerificationError, verify_log
from gateway.roster_watch import RosterWatcher
from gateway.witness_checks import LogAlarm, LogWarning, Verdict, classify_verifier_error, extend_range, fetch_list, fetch_text, judge
from gateway.witness_config import AuditMode, LogTarget, WitnessConfig, targets_for
from gateway.witness_key import WitnessKey, read_witness_key
from gateway.witness_store import Alarm, AlarmKind, LogState, Notice, WarningKind, WitnessStateError, WitnessStore
from protocol.checkpoint import Checkpoint, NoteVerifier, SignedNote, cosign, open_checkpoint
from protocol.errors import BadSignatureError, CheckpointError, ConfigError, HeliographError, MalformedError, NotFoundError, ProofError
from protocol.merkle import CompactRange, leaf_hash, verify_consistency

log = structlog.get_logger("heliograph.witness")

PAGE = 1000


class WitnessAlarmError(HeliographError):
    """The witness will not vouch for a log it has caught misbehaving."""

    code = "E_WITNESS_ALARM"
    http_status = 409
    default_hint = "An oversight operator must investigate, then run `heliograph witness clear`."


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
        connector = aiohttp.TCPConnector(ssl=self.config.tls.client or True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
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
        except LogAlarm as a:
            alarm = Alarm(kind=a.kind, time=now, message=a.message, old_size=a.old, new_size=a.new, index=a.index, evidence=a.evidence)
            new_state = state.with_alarm(alarm)
            self.metrics.alarms.labels(origin, a.kind.value).inc()
            log.error("witness_alarm", kind=a.kind.value, origin=origin, url=target.url, old_size=a.old, new_size=a.new, index=a.index, message=a.message)
        except LogWarning as w:
            new_state = replace(state, warning=Notice(kind=w.kind, time=now, message=w.message))
            self.metrics.warnings.labels(origin, w.kind.value).inc()
            log.warning("witness_warning", kind=w.kind.value, origin=origin, url=target.url, message=w.message)
        await asyncio.to_thread(self.store.save, new_state)
        self.states[origin] = new_state
        self._gauges(new_state)
        return new_state

    async def _advance(self, target: LogTarget, state: LogState, session: aiohttp.ClientSession) -> LogState:
        verifier = NoteVerifier.from_vkey(target.vkey)
        note = await fetch_text(session, target, "/v1/log/checkpoint", 1 << 20)
        try:
            cp = open_checkpoint(note, verifier)
        except (BadSignatureError, CheckpointError) as exc:
            raise LogAlarm(AlarmKind.BAD_SIGNATURE, f"log {target.origin}: checkpoint refused: {exc.message}", evidence=(note,)) from None
        except MalformedError as exc:
            raise LogWarning(WarningKind.BAD_RESPONSE, f"checkpoint is not a signed checkpoint: {exc.message}") from None
        last = state.tree()
        verdict = judge(last, cp)
        if last is not None and verdict is Verdict.ROLLBACK:
            msg = f"log {target.origin} rolled back from size {last.size} to {cp.size}: first missing index {cp.size}"
            raise LogAlarm(AlarmKind.ROLLBACK, msg, old=last.size, new=cp.size, index=cp.size, evidence=(state.checkpoint, note))
        if last is not None and verdict is Verdict.FORK:
            msg = f"log {target.origin} split view: two signed checkpoints of size {cp.size} with roots {last.root.hex()} and {cp.root.hex()}"
            raise LogAlarm(AlarmKind.FORK, msg, old=last.size, new=cp.size, evidence=(state.checkpoint, note))
        if last is not None and verdict is Verdict.GROWN:
            proof = await fetch_list(session, target, "/v1/log/proof/consistency", "path", first=last.size, second=cp.size)
            try:
                verify_consistency(last.size, cp.size, last.root, cp.root, proof)
            except ProofError:
                msg = f"log {target.origin}: consistency proof {last.size} -> {cp.size} does not verify"
                raise LogAlarm(AlarmKind.INCONSISTENT, msg, old=last.size, new=cp.size, evidence=(state.checkpoint, note)) from None
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
            entries = await fetch_list(session, target, "/v1/log/entries", "entries", start=start, end=end)
            hashes += [leaf_hash(e) for e in entries[: end - start]]
            if len(entries) < end - start:
                missing = start + len(entries)
                raise LogAlarm(AlarmKind.TAMPERED_LEAF, f"hop {target.origin} index {missing}: entry missing", new=cp.size, index=missing, evidence=(note,))
        grown = extend_range(audited, hashes, cp.size)
        if grown.root() == cp.root:
            return grown
        low, high = audited.size, cp.size  # prefix `low` matches the signed tree, prefix `high` does not
        while high - low > 1:
            mid = (low + high) // 2
            proof = await fetch_list(session, target, "/v1/log/proof/consistency", "path", first=mid, second=cp.size)
            try:
                verify_consistency(mid, cp.size, extend_range(audited, hashes, mid).root(), cp.root, proof)
                low = mid
            except ProofError:
                high = mid
        raise LogAlarm(AlarmKind.TAMPERED_LEAF, f"hop {target.origin} index {low}: leaf hash mismatch", new=cp.size, index=low, evidence=(note,))

    async def _audit_full(self, target: LogTarget, note: str) -> tuple[str, Checkpoint]:
        """Run ``heliograph log verify`` from ``note``; return the (possibly newer) checkpoint it verified."""
        scratch = self.store.scratch(target.origin)
        scratch.write_text(note, encoding="utf-8")  # verify_log demands consistency from it, then replaces it
        try:
            report = await verify_log(target.url, target.vkey, state=scratch, proofs=str(self.config.audit_proofs), rng=self.rng)
            verified = scratch.read_text(encoding="utf-8")
        except LogVerificationError as exc:
            raise classify_verifier_error(exc, target.origin, note) from None
        except (BadSignatureError, CheckpointError) as exc:
            raise LogAlarm(AlarmKind.BAD_SIGNATURE, f"log {target.origin}: checkpoint refused: {exc.message}") from None
        except MalformedError as exc:
            raise LogWarning(WarningKind.BAD_RESPONSE, exc.message) from None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise LogWarning(WarningKind.UNREACHABLE, f"audit: {type(exc).__name__}: {exc}") from None
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
