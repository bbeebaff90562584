"""The forwarder's housekeeping: expiry, late-copy receipts and queue-depth gauges.

:class:`ForwarderUpkeep` is mixed into :class:`gateway.forwarder.Forwarder`,
which runs :meth:`~ForwarderUpkeep.maintain` on its sweep timer in a task of its
own, beside the sends, so that an urgent copy never waits behind housekeeping:

* a copy whose message expired while queued ends ``expired``, with a signed
  receipt toward the origin, and is never sent (the send path only picks rows
  that have not expired). A row of a lane with a batch in flight is left to that
  batch's outcome, or to the next sweep, so no copy gets both ``delivered`` and
  ``expired``. The expired copies of one sweep share one group commit;
* ciphertext of expired messages is purged, and finished rows are dropped once
  their message has expired (receipts and log entries stay);
* copies queued behind a destination that is backing off get their ``delayed``
  receipt at once, not only after their own first attempt fails;
* the queue-depth gauges follow the outbox, and fall back to 0 when a lane drains.
"""

from __future__ import annotations

import asyncio

import structlog

from gateway.hop import HopContext, receipt_rows, sign_receipt
from gateway.hop_store import DELETE_FINISHED, FINISH_ROW, KIND_ENVELOPE, MARK_DELAYED, PURGE_MESSAGE, OutboxRow, RowState
from gateway.log_store import Statement

log = structlog.get_logger("heliograph.forwarder")


class ForwarderUpkeep:
    """Housekeeping methods of the forwarder (module docstring); the state is the forwarder's."""

    ctx: HopContext
    _busy: set[tuple[str, int, str]]
    _delayed_ids: set[int]
    _depth_labels: set[tuple[str, str]]

    async def maintain(self, now: int) -> None:
        """Housekeeping on the sweep timer: expiry, purge, late-copy receipts, queue-depth gauges."""
        await self._expire(now)
        # Copies queued behind a destination that is backing off are reported late at once,
        # not only after the next attempt fails.
        stalled = await self.ctx.reader.stalled_rows(now)
        await asyncio.gather(*(self._delayed(row.destination, row) for row in stalled))
        await self._update_depth()

    async def _update_depth(self) -> None:
        seen: set[tuple[str, str]] = set()
        for status in await self.ctx.reader.destinations():
            for lane, count in status.backlog.items():
                self.ctx.metrics.queue_depth.labels(destination=status.destination, lane=lane).set(count)
                seen.add((status.destination, lane))
        for key in self._depth_labels - seen:  # a drained lane reads 0, not its last backlog
            self.ctx.metrics.queue_depth.labels(destination=key[0], lane=key[1]).set(0)
        self._depth_labels = seen | self._depth_labels

    async def _delayed(self, dest: str, row: OutboxRow) -> None:
        ctx = self.ctx
        # A failing send and the stalled-row sweep can both see the same row before either
        # commits; the in-memory set (one forwarder per process) makes the receipt once-only.
        if row.id in self._delayed_ids:
            return
        if len(self._delayed_ids) > 100_000:  # the database flag covers committed rows; keep memory bounded
            self._delayed_ids.clear()
        self._delayed_ids.add(row.id)
        build = sign_receipt(
            ctx, message_id=row.message_id, header_digest=row.header_digest, event="delayed", peer=dest, prev=row.prev, retry_until=row.expires
        )
        await ctx.log.submit(
            build,
            lambda _i, ours: [
                (MARK_DELAYED, (row.id,)),
                *row_receipt(ctx, ours or b"", row),
            ],
        )

    async def _expire(self, now: int) -> None:
        # A row of a lane with a batch in flight may be in that batch: its outcome decides it, or the next sweep does.
        rows = [r for r in await self.ctx.reader.expired_rows(now) if (r.destination, r.lane, r.kind) not in self._busy]
        await asyncio.gather(*(self._expire_row(row) for row in rows))  # one group commit
        purge = await self.ctx.reader.purgeable(now)
        await self.ctx.log.write([*((PURGE_MESSAGE, p) for p in purge), (DELETE_FINISHED, (now,))])

    async def _expire_row(self, row: OutboxRow) -> None:
        ctx = self.ctx
        if row.kind != KIND_ENVELOPE:
            await ctx.log.write([(FINISH_ROW, (RowState.EXPIRED.value, "expired", row.id))])
            return
        build = sign_receipt(ctx, message_id=row.message_id, header_digest=row.header_digest, event="expired", peer=row.destination, prev=row.prev)
        finish: Statement = (FINISH_ROW, (RowState.EXPIRED.value, "expired", row.id))
        await ctx.log.submit(build, lambda _i, ours: [finish, *row_receipt(ctx, ours or b"", row)])
        ctx.metrics.expired.inc()
        log.info("copy_expired", message_id=row.message_id.hex(), origin=row.origin, destination=row.destination)


def row_receipt(ctx: HopContext, receipt: bytes, row: OutboxRow) -> list[Statement]:
    """Store ``receipt`` about ``row``'s copy and queue it toward the message's origin."""
    return receipt_rows(ctx, receipt, origin=row.origin, message_id=row.message_id, lane=row.lane, expires=row.expires)
