"""Store-and-forward: one durable outbox per destination, drained by priority lane.

Lessons from Synapse's federation sender and from SMTP queues, applied:

* one queue per destination, several lanes (FLASH, IMMEDIATE, PRIORITY,
  ROUTINE, and receipts), at most one batch in flight per destination and lane,
  the most urgent lane first;
* the retry schedule lives in SQLite (``outbox.next_attempt_at``,
  ``destinations.backoff_until``), so a restart resumes exactly where it was;
* back-off is exponential with jitter, from ``backoff_base_ms`` (seconds) to
  ``backoff_cap_ms`` (minutes: these are alerts, not chat); the first failure
  of a copy issues a ``delayed`` receipt with a retry-until time;
* any authenticated request from a peer that was failing resets its back-off
  and flushes its queue at once, and a periodic sweep wakes due destinations
  without waiting for new traffic;
* a copy whose message expires while queued ends with an ``expired`` receipt and
  is never sent; its ciphertext is then purged (receipts and log entries stay).
  That housekeeping is :mod:`gateway.forwarder_upkeep`, run on the sweep timer
  beside the sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass

import aiohttp
import structlog

from gateway.forwarder_upkeep import ForwarderUpkeep, row_receipt
from gateway.hop import HopContext, sign_receipt
from gateway.hop_store import (
    DEST_FAILURE,
    DEST_RESET,
    DEST_SUCCESS,
    FINISH_ROW,
    KIND_ENVELOPE,
    RETRY_NOW,
    RETRY_ROW,
    OutboxRow,
    RowState,
)
from gateway.log_store import Statement
from protocol.batch import MAX_BATCH_ITEMS, BatchItem, BatchResults, EnvelopeBatch, ReceiptAck, ReceiptBatch
from protocol.errors import HeliographError
from protocol.keys import Rng
from protocol.receipts import SignedReceipt
from protocol.roster import KIND_NODE
from protocol.transport import sign_request

log = structlog.get_logger("heliograph.forwarder")

MSGPACK = "application/x-msgpack"
TRANSIENT_REFUSALS = frozenset({"E_RATE_LIMITED"})
"""Item-level refusals that say "not now": the copy is retried with back-off instead of ending ``rejected``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwarderConfig:
    """Queue limits and timers (see configs/gateway.example.toml)."""

    batch_max: int = 50
    sweep_interval_s: float = 1.0
    backoff_base_ms: int = 2_000
    backoff_cap_ms: int = 180_000
    receipt_batch_max: int = MAX_BATCH_ITEMS
    request_timeout_s: float = 10.0


class SendFailure(Exception):
    """A whole batch could not be delivered: ``status`` and ``code`` are the peer's HTTP status and error code, if any."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def batch_refused(self) -> bool:
        """The peer refused the request itself as too big or malformed: resending it unchanged cannot succeed."""
        return self.status in (400, 413)


class Forwarder(ForwarderUpkeep):
    """Drains the outbox. ``start()`` it once; ``wake()`` it when rows were queued."""

    def __init__(self, ctx: HopContext, config: ForwarderConfig, rng: Rng) -> None:
        self.ctx = ctx
        self.config = config
        self._rng = rng
        self._wake = asyncio.Event()
        self._busy: set[tuple[str, int, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: dict[str, int] = {}
        self._delayed_ids: set[int] = set()
        self._session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._stopping = False
        self._depth_labels: set[tuple[str, str]] = set()
        self._batch_limit: dict[tuple[str, str], int] = {}

    async def start(self) -> None:
        self._failures = await self.ctx.reader.failure_counts()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_s), connector=aiohttp.TCPConnector(ssl=self.ctx.client_ssl or True)
        )
        self._loop_task = asyncio.create_task(self._run(), name="forwarder")

    async def stop(self) -> None:
        """Stop scheduling, let in-flight batches finish (they are idempotent anyway)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._maintenance is not None:
            await self._maintenance
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        self._wake.set()

    async def peer_seen(self, peer: str) -> None:
        """An authenticated request from ``peer``: if it was failing, retry it now."""
        if self._failures.get(peer):
            self._failures[peer] = 0
            await self.ctx.log.write([(DEST_RESET, (peer,)), (RETRY_NOW, (peer,))])
            log.info("peer_back", destination=peer)
            self.wake()

    async def _run(self) -> None:
        next_maintenance = 0
        while not self._stopping:
            # Clear before scanning: a wake() that arrives during the scan must not be lost.
            self._wake.clear()
            try:
                now = self.ctx.clock.now_ms()
                if now >= next_maintenance and (self._maintenance is None or self._maintenance.done()):
                    # Housekeeping runs beside the sends, so a FLASH copy never waits behind it.
                    self._maintenance = asyncio.create_task(self._maintain_logged(now), name="forwarder-maintenance")
                    next_maintenance = now + int(self.config.sweep_interval_s * 1000)
                await self.dispatch(now)
            except Exception:  # keep the loop alive; the next round retries
                log.exception("sweep_failed")
            # stop() sets the wake event too, so this returns at once when stopping.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.sweep_interval_s)

    async def _maintain_logged(self, now: int) -> None:
        try:
            await self.maintain(now)
        except Exception:  # the next sweep retries
            log.exception("sweep_failed")

    async def sweep(self) -> None:
        """One full round: housekeeping, then a send for every due (destination, lane)."""
        now = self.ctx.clock.now_ms()
        await self.maintain(now)
        await self.dispatch(now)

    async def dispatch(self, now: int) -> None:
        """Start a send for each destination's most urgent due envelope lane, and for its receipts.

        Cheap enough to run on every wake-up: it reads only queued rows (partial index).
        """
        started: set[tuple[str, str]] = set()
        peers = [m.id for m in self.ctx.roster.members if m.id != self.ctx.me]
        for dest, lane, kind in await self.ctx.reader.due_lanes(now, peers):
            if (dest, kind) in started or self._stopping:
                continue
            started.add((dest, kind))  # lanes come most urgent first; later lanes wait their turn
            key = (dest, lane, kind)
            if any(busy[0] == dest and busy[2] == kind for busy in self._busy):
                continue  # one batch in flight per destination and kind; precedence picks the next
            self._busy.add(key)
            task = asyncio.create_task(self._send(dest, lane, kind))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self, rounds: int = 50) -> None:
        """Sweep until nothing is in flight (tests and shutdown use this)."""
        for _ in range(rounds):
            await self.sweep()
            if not self._tasks:
                return
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _send(self, dest: str, lane: int, kind: str) -> None:
        try:
            now = self.ctx.clock.now_ms()
            limit = self._batch_limit.get((dest, kind), self.config.batch_max if kind == KIND_ENVELOPE else self.config.receipt_batch_max)
            rows = await self.ctx.reader.next_batch(dest, lane, kind, now, limit)
            if not rows:
                return
            try:
                if kind == KIND_ENVELOPE:
                    await self._send_envelopes(dest, rows)
                else:
                    await self._send_receipts(dest, rows)
            except SendFailure as exc:
                if exc.batch_refused and len(rows) > 1:
                    # The peer takes smaller requests than we send (count or bytes): halve and go again.
                    self._batch_limit[(dest, kind)] = max(1, len(rows) // 2)
                    log.warning("batch_refused_shrinking", destination=dest, kind=kind, size=len(rows), code=exc.code)
                elif exc.batch_refused:
                    await self._poison(dest, rows[0], exc.code or "E_MALFORMED")
                else:
                    await self._failed(dest, rows, str(exc))
        except Exception:
            log.exception("send_crashed", destination=dest)
        finally:
            self._busy.discard((dest, lane, kind))
            self.wake()

    async def _post(self, dest: str, path: str, body: bytes) -> bytes:
        assert self._session is not None
        member = self.ctx.roster.member(dest)
        auth = sign_request(self.ctx.keys, method="POST", path=path, query="", destination=dest, body=body, now=self.ctx.clock.now_ms(), nonce=self._rng(16))
        try:
            async with self._session.post(member.endpoint.rstrip("/") + path, data=body, headers={"Authorization": auth, "Content-Type": MSGPACK}) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise SendFailure(f"HTTP {resp.status}: {data[:200].decode('utf-8', 'replace')}", status=resp.status, code=_error_code(data))
                return data
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SendFailure(f"{type(exc).__name__}: {exc}") from None

    async def _send_envelopes(self, dest: str, rows: list[OutboxRow]) -> None:
        items, live = [], []
        for row in rows:
            if row.envelope is None:
                continue  # purged: the expiry sweep finishes the row
            items.append(BatchItem(envelope=row.envelope, recipients=row.recipients, prev=row.prev))
            live.append(row)
        if not items:
            return
        answer = await self._post(dest, "/v1/envelopes", EnvelopeBatch(items=tuple(items)).to_bytes())
        try:
            results = BatchResults.from_bytes(answer).results
        except HeliographError as exc:
            raise SendFailure(f"malformed answer: {exc.code}") from None
        if len(results) != len(live):
            raise SendFailure(f"answer has {len(results)} results for {len(live)} items")
        now = self.ctx.clock.now_ms()
        # The peer answered: its success shares the outcomes' group commit instead of waiting for one
        # of its own. gather starts its tasks in order and each outcome queues its log work before it
        # first suspends, so DEST_SUCCESS is still applied after any per-row failure, as a later write.
        await asyncio.gather(
            *(self._outcome(dest, row, raw) for row, raw in zip(live, results, strict=True)), self.ctx.log.write([(DEST_SUCCESS, (dest, now, now))])
        )
        self._failures[dest] = 0

    async def _outcome(self, dest: str, row: OutboxRow, raw: bytes) -> None:
        ctx = self.ctx
        try:
            theirs = SignedReceipt.from_bytes(raw, limits=ctx.limits).verify(ctx.roster)
            if theirs.hop != dest or theirs.message_id != row.message_id or theirs.event not in ("accepted", "rejected"):
                raise SendFailure("receipt does not match the copy sent")
        except (HeliographError, SendFailure) as exc:
            log.warning("bad_receipt_from_peer", destination=dest, error=str(exc))
            await self._failed(dest, [row], "peer returned an invalid receipt")
            return
        if theirs.event == "rejected" and theirs.reason in TRANSIENT_REFUSALS:
            # The peer is shedding load, not refusing the message: keep the copy and retry after a back-off.
            log.info("copy_deferred_by_peer", message_id=row.message_id.hex(), origin=row.origin, destination=dest, reason=theirs.reason)
            await self._failed(dest, [row], f"peer refused for now: {theirs.reason}")
            return
        accepted = theirs.event == "accepted"
        if accepted:
            event = "delivered" if ctx.roster.member(dest).kind == KIND_NODE else "relayed"
            extra: dict[str, object] = {}
            (ctx.metrics.delivered if event == "delivered" else ctx.metrics.relayed).inc()
            ctx.metrics.hop_latency.observe(max(0, ctx.clock.now_ms() - row.created_at) / 1000)
        else:
            event, extra = "rejected", {"reason": theirs.reason}
        build = sign_receipt(
            ctx, message_id=row.message_id, header_digest=theirs.header_digest, event=event, peer=dest, prev=hashlib.sha256(raw).digest(), **extra
        )
        state = RowState.DONE if accepted else RowState.REJECTED

        def effects(_index: int | None, ours: bytes | None) -> list[Statement]:
            assert ours is not None
            rows: list[Statement] = [(FINISH_ROW, (state.value, None if accepted else theirs.reason, row.id))]
            rows += row_receipt(ctx, raw, row)
            rows += row_receipt(ctx, ours, row)
            return rows

        await ctx.log.submit(build, effects)
        log.info("copy_" + event, message_id=row.message_id.hex(), origin=row.origin, destination=dest)

    async def _send_receipts(self, dest: str, rows: list[OutboxRow]) -> None:
        body = ReceiptBatch(receipts=tuple(r.payload or b"" for r in rows)).to_bytes()
        answer = await self._post(dest, "/v1/receipts", body)
        try:
            ReceiptAck.from_bytes(answer)
        except HeliographError as exc:
            raise SendFailure(f"malformed answer: {exc.code}") from None
        now = self.ctx.clock.now_ms()
        self._failures[dest] = 0
        await self.ctx.log.write([(FINISH_ROW, (RowState.DONE.value, None, r.id)) for r in rows] + [(DEST_SUCCESS, (dest, now, now))])

    async def _poison(self, dest: str, row: OutboxRow, code: str) -> None:
        """A single copy the peer refuses at the request level (e.g. too big for it): reject it, do not retry forever."""
        ctx = self.ctx
        ctx.metrics.rejected.labels(code=code).inc()
        log.warning("copy_refused_by_peer", message_id=row.message_id.hex(), origin=row.origin, destination=dest, code=code)
        if row.kind != KIND_ENVELOPE:
            await ctx.log.write([(FINISH_ROW, (RowState.REJECTED.value, code, row.id))])
            return
        build = sign_receipt(ctx, message_id=row.message_id, header_digest=row.header_digest, event="rejected", peer=dest, prev=row.prev, reason=code)
        await ctx.log.submit(
            build,
            lambda _i, ours: [
                (FINISH_ROW, (RowState.REJECTED.value, code, row.id)),
                *row_receipt(ctx, ours or b"", row),
            ],
        )

    def _backoff_ms(self, failures: int) -> int:
        base = min(self.config.backoff_cap_ms, self.config.backoff_base_ms * (2 ** min(failures - 1, 30)))
        jitter = int.from_bytes(self._rng(2), "big") / 65535  # full jitter over the upper half
        return int(base * (0.5 + 0.5 * jitter))

    async def _failed(self, dest: str, rows: list[OutboxRow], error: str) -> None:
        ctx = self.ctx
        failures = self._failures.get(dest, 0) + 1
        self._failures[dest] = failures
        now = ctx.clock.now_ms()
        until = now + self._backoff_ms(failures)
        ctx.metrics.send_failures.labels(destination=dest).inc()
        log.warning("send_failed", destination=dest, error=error, failures=failures, retry_at=until)
        statements: list[Statement] = [(DEST_FAILURE, (dest, until, error[:500], now, now))]
        for row in rows:
            statements.append((RETRY_ROW, (until, int(row.delayed_sent), error[:500], row.id)))
        await ctx.log.write(statements)
        first = [r for r in rows if r.kind == KIND_ENVELOPE and not r.delayed_sent]
        await asyncio.gather(*(self._delayed(dest, row) for row in first))


def _error_code(body: bytes) -> str | None:
    """The stable code in a peer's JSON error body, if it has one."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) and code.isascii() and len(code) <= 64 else None
