"""The node's timed work: escalation steps and the sunset purge.

:class:`NodeScheduler` is a mixin of :class:`node.service.Node`; ``Node.open``
starts :meth:`NodeScheduler._schedule` as a task and ``Node.close`` cancels it.
The loop wakes at the earliest pending escalation step, or after ``[node]
tick_s`` at the latest, or when ``send_alert`` sets ``_wake`` because it
scheduled a step that may be earlier. Each round calls :meth:`run_due`, which
tests also call directly with a FakeClock.

* Escalation (``escalations`` table): a step is read and decided under
  ``_due_lock``, and the decision commits in one write, so it runs at most
  once, across restarts too. A step whose watched tier has an ``accepted`` ack
  is marked acked; one whose alert expired, was cancelled or was purged is
  closed; otherwise the held tier is sealed from the stored content and sent,
  and the fired step and the new alert row commit with its outbox row. (An ack
  or a cancel that arrives first decides the step in its own commit; see
  :mod:`node.service`.)
* Sunset: content is purged at ``expires`` + ``[node] retention`` and the WAL
  is truncated so the old pages leave the disk (see :mod:`node.store`).

The stored alert content (``alerts.content``) is a JSON map of section name to
base64 bytes; :func:`b64map` writes it at send time and :func:`unb64map`
reads it back here and in the officer API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import structlog

from gateway.app import Hop
from gateway.hop import originate
from gateway.log_store import Statement
from node.config import NodeConfig
from node.events import EventBus
from node.metrics import NodeMetrics
from node.store import (
    DECIDE_ESCALATION,
    INSERT_ALERT,
    SUNSET_ACKS,
    SUNSET_ALERTS,
    SUNSET_INBOX,
    AlertStatus,
    EscalationRow,
    EscalationState,
    NodeReader,
    refs_text,
)
from protocol.envelope import Tier, seal
from protocol.keys import Rng

log = structlog.get_logger("heliograph.node")


def b64map(sections: dict[str, bytes]) -> bytes:
    return json.dumps({k: base64.b64encode(v).decode() for k, v in sorted(sections.items())}, separators=(",", ":")).encode()


def unb64map(data: dict[str, str]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in data.items()}


class NodeScheduler:
    """Escalation and sunset for :class:`node.service.Node`, which provides the attributes below."""

    __slots__ = ()

    config: NodeConfig
    hop: Hop
    reader: NodeReader
    rng: Rng
    events: EventBus
    metrics: NodeMetrics
    _wake: asyncio.Event
    _due_lock: asyncio.Lock

    async def _schedule(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:  # keep the loop alive; the next round retries
                log.exception("node_schedule_failed")
            next_at = await self.reader.next_escalation_at()
            delay = self.config.tick_s
            if next_at is not None:
                delay = min(delay, max(0.0, (next_at - self.hop.ctx.clock.now_ms()) / 1000))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.01))

    async def run_due(self) -> None:
        """Decide every escalation step that is due, then purge what passed its sunset."""
        async with self._due_lock:
            now = self.hop.ctx.clock.now_ms()
            due = await self.reader.due_escalations(now)
            for step in due:
                await self._decide(step, now)
            await self.sunset(now)
            if due or self.metrics.escalations_stale(now):
                self.metrics.set_escalations(await self.reader.escalation_counts(), now)

    def _stopped(self, alert: bytes, step: EscalationRow, outcome: str) -> None:
        self.events.publish("escalation", {"message_id": alert.hex(), "tier": step.target, "outcome": outcome})

    async def _decide(self, step: EscalationRow, now: int) -> None:
        alert = await self.reader.alert(step.alert)
        if alert is None:
            return
        watcher = next(t for t in alert.tiers if t["name"] == step.watcher)
        if await self.reader.accepted_by(step.alert, tuple(watcher["recipients"])):
            await self.hop.ctx.log.write([(DECIDE_ESCALATION, (EscalationState.ACKED.value, None, now, step.id))])
            self._stopped(alert.message_id, step, "acked")
            return
        if alert.expires <= now:
            await self.hop.ctx.log.write([(DECIDE_ESCALATION, (EscalationState.EXPIRED.value, None, now, step.id))])
            self._stopped(alert.message_id, step, "expired")
            return
        if alert.content is None or alert.status == AlertStatus.CANCELLED:
            await self.hop.ctx.log.write([(DECIDE_ESCALATION, (EscalationState.CANCELLED.value, None, now, step.id))])
            self._stopped(alert.message_id, step, "cancelled")
            return
        target = next(t for t in alert.tiers if t["name"] == step.target)
        tier = Tier(name=target["name"], sections=tuple(target["sections"]), recipients=tuple(target["recipients"]))
        stored = unb64map(alert.content)
        ctx = self.hop.ctx
        envelope = seal(
            sender=ctx.keys,
            roster=ctx.roster,
            tiers=[tier],
            sections={s: stored[s] for s in tier.sections},
            priority=alert.priority,
            label=alert.label,
            now=now,
            expires=alert.expires,
            rng=self.rng,
            kind="alert",
            refs=(alert.message_id,),
            limits=ctx.limits,
        )
        tiers_json = json.dumps([{**target, "held": False, "escalated_from": step.watcher}])

        def rows(_receipt: bytes) -> list[Statement]:
            return [
                (DECIDE_ESCALATION, (EscalationState.FIRED.value, envelope.message_id, now, step.id)),
                (
                    INSERT_ALERT,
                    (
                        envelope.message_id,
                        "alert",
                        alert.message_id,
                        refs_text([alert.message_id]),
                        alert.officer,
                        now,
                        alert.expires,
                        alert.priority,
                        alert.label,
                        envelope.header_digest,
                        tiers_json,
                        None,
                    ),
                ),
            ]

        await originate(ctx, envelope, rows)
        self.events.publish("escalated", {"message_id": alert.message_id.hex(), "tier": step.target, "escalation_id": envelope.message_id.hex()})
        log.info("escalation_fired", message_id=alert.message_id.hex(), origin=ctx.me, tier=step.target)

    async def sunset(self, now: int) -> None:
        cutoff = now - self.config.retention_ms
        if not await self.reader.sunset_due(cutoff):
            return
        await self.hop.ctx.log.write([(SUNSET_ALERTS, (cutoff,)), (SUNSET_INBOX, (cutoff,)), (SUNSET_ACKS, ())])
        # Old page images of the purged rows may still sit in the WAL; fold it into the file and truncate it.
        await self.reader.truncate_wal()
        log.info("sunset_purged", cutoff=cutoff)
        self.events.publish("purged", {"cutoff": cutoff})
