"""The agency node: a hop (gateway machinery reused) plus the people-facing half.

A node is a hop like a gateway (``gateway.app.open_hop``: peer authentication,
the durable outbox toward its home gateway, the audit log, receipts), with:

* ``local_delivery``: an envelope addressed to this node is opened *before* it
  is accepted; if it cannot be opened it is rejected with ``E_DECRYPT`` (or the
  code ``open`` raised). The inbox row, or for an ``ack`` the ack record and the
  cancellation of pending escalation steps, commit in the same transaction as
  the node's ``accepted`` receipt. A duplicate gets the first receipt and never
  a second inbox row;
* ``send_alert``: seal the tiers that go now, store the alert, its escalation
  schedule and its outbox row in one commit, and answer only after it;
* escalation, on a durable schedule (``escalations`` table): a held tier is
  sealed and sent when its deadline passes and no recipient of the watched tier
  has sent an ``accepted`` ack. An ack or a cancel decides the step in the
  commit that records it, so the step runs at most once, across restarts too.
  The scheduler loop and the step decisions are in :mod:`node.scheduler`;
* acks: ``POST /v1/inbox/{id}/ack`` sends an ``ack`` message to the origin (so
  it travels and produces receipts like any message) and signs an
  ``acknowledged`` receipt for the alert that travels back as a receipt;
* sunset: content is purged at ``expires`` + retention (see node/store.py and
  :mod:`node.scheduler`);
* every officer action is a leaf of the node's log (docs/PROTOCOL.md 21).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.app import Hop, open_hop
from gateway.clock import Clock
from gateway.hop import Delivery, originate, receipt_rows, sign_receipt
from gateway.log_store import Statement
from node import cap
from node.accounts import AccountStore, Principal
from node.compose import AckRequest, AlertRequest, check_references
from node.config import NodeConfig
from node.events import EventBus
from node.metrics import NodeMetrics
from node.scheduler import NodeScheduler, b64map
from node.store import (
    ACK_ESCALATIONS,
    CANCEL_ESCALATIONS,
    INSERT_ACK,
    INSERT_ACTION,
    INSERT_ALERT,
    INSERT_ESCALATION,
    INSERT_INBOX,
    MIGRATIONS,
    SET_ALERT_STATUS,
    AlertStatus,
    EscalationState,
    NodeReader,
    refs_text,
)
from protocol import encoding
from protocol.envelope import Tier, open_verified, seal
from protocol.errors import ConflictError, MalformedError, NotFoundError
from protocol.header import PRIORITIES, Envelope, Header
from protocol.keys import Rng
from protocol.receipts import Receipt

log = structlog.get_logger("heliograph.node")


ACTION_RECORD_VERSION = 1


def action_record(*, node: str, officer: str, role: str, action: str, target: str, time: int) -> bytes:
    """The log leaf for one officer action (docs/PROTOCOL.md 21): canonical msgpack, no plaintext."""
    return encoding.encode(
        {"v": ACTION_RECORD_VERSION, "type": "officer-action", "node": node, "officer": officer, "role": role, "action": action, "target": target, "time": time}
    )


@dataclass(slots=True)
class Node(NodeScheduler):
    """A running agency node. Create with :meth:`open`; ``close`` it."""

    config: NodeConfig
    hop: Hop
    reader: NodeReader
    accounts: AccountStore
    rng: Rng
    events: EventBus
    metrics: NodeMetrics
    """On the hop's ``/metrics`` registry, counting ``events``."""
    verdicts: dict[tuple[str, int], Receipt | str] = field(default_factory=dict)
    """Receipt verification results by (receipt digest, roster version): the receipt, or the error code."""
    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _due_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One decision at a time: an escalation step is read and decided under it, so it runs once."""

    @classmethod
    async def open(cls, config: NodeConfig, *, clock: Clock, rng: Rng, **hop_kwargs: Any) -> Node:
        """Open the hop, the node tables and the account store, and start the scheduler.

        Raises:
            ConfigError, StorageError, HeliographError: Anything that prevents a safe start.
        """
        hop = await open_hop(config.hop, clock=clock, rng=rng, migrations=[("node", MIGRATIONS)], **hop_kwargs)
        try:
            reader = await NodeReader.open(config.hop.db_path)
            accounts = await AccountStore.open(config.accounts_path, rng=rng, **config.kdf)
        except BaseException:
            await hop.close()
            raise
        events = EventBus()
        metrics = NodeMetrics(hop.ctx.metrics.registry, events)
        node = cls(config=config, hop=hop, reader=reader, accounts=accounts, rng=rng, events=events, metrics=metrics)
        hop.ctx.local_delivery = node._deliver
        hop.ctx.on_receipts = node._receipts_arrived
        node._task = asyncio.create_task(node._schedule(), name="node-scheduler")
        return node

    @property
    def me(self) -> str:
        return self.hop.ctx.me

    @property
    def clock(self) -> Clock:
        return self.hop.ctx.clock

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.events.close()
        await self.hop.close()
        await self.reader.close()
        await self.accounts.close()

    # -- officer actions ------------------------------------------------------------------

    async def record(self, principal: Principal, action: str, target: str) -> int:
        """Append an officer action to the log (before the action runs, so attempts are on record)."""
        now = self.clock.now_ms()
        leaf = action_record(node=self.me, officer=principal.username, role=str(principal.role), action=action, target=target, time=now)
        index, _ = await self.hop.ctx.log.submit(
            lambda _i: leaf, lambda i, _d: [(INSERT_ACTION, (i, now, principal.username, str(principal.role), action, target))]
        )
        assert index is not None
        return index

    async def send_alert(self, principal: Principal, request: AlertRequest) -> bytes:
        """Seal, store and queue an alert; return its message id once committed.

        Raises:
            ValidationError: References that are not earlier messages of this agency.
            HeliographError: Sealing or storage failed (nothing was stored).
        """
        check_references(request, await self.reader.statuses(request.refs))
        ctx = self.hop.ctx
        initial = request.initial_tiers()
        envelope = seal(
            sender=ctx.keys,
            roster=ctx.roster,
            tiers=initial,
            sections=request.plaintext_sections(initial),
            priority=request.priority,
            label=request.label,
            now=request.created_ms,
            expires=request.expires_ms,
            rng=self.rng,
            kind=request.kind,
            refs=tuple(sorted(request.refs)),
            limits=ctx.limits,
        )
        mid = envelope.message_id
        await self.record(principal, f"alert.{request.kind}", mid.hex())
        everything = request.plaintext_sections([t.envelope_tier() for t in request.tiers])
        tiers = [
            {
                "name": t.name,
                "recipients": list(t.recipients),
                "sections": list(t.sections),
                "ack_deadline": t.ack_deadline_ms,
                "held": t.held,
                "escalate_if_unacked": {"tier": t.escalation.target, "after_ms": t.escalation.after_ms, "due": t.escalation.due_ms} if t.escalation else None,
            }
            for t in request.tiers
        ]
        now = self.clock.now_ms()

        def rows(_receipt: bytes) -> list[Statement]:
            out: list[Statement] = [
                (
                    INSERT_ALERT,
                    (
                        mid,
                        request.kind,
                        None,
                        refs_text(request.refs),
                        principal.username,
                        request.created_ms,
                        request.expires_ms,
                        request.priority,
                        request.label,
                        envelope.header_digest,
                        json.dumps(tiers),
                        b64map(everything),
                    ),
                )
            ]
            out += [(INSERT_ESCALATION, (mid, e.watcher, e.target, e.due_ms)) for e in request.escalations()]
            status = AlertStatus.CANCELLED if request.kind == "cancel" else AlertStatus.UPDATED
            for ref in request.refs if request.kind in ("update", "cancel") else ():
                out.append((SET_ALERT_STATUS, (status.value, ref)))
                if request.kind == "cancel":
                    out.append((CANCEL_ESCALATIONS, (EscalationState.CANCELLED.value, now, ref)))
            return out

        await originate(ctx, envelope, rows)
        if request.escalations():
            self._wake.set()  # the scheduler sleeps until the earliest pending step; this one may be earlier
        self.events.publish("sent", {"message_id": mid.hex(), "kind": request.kind, "priority": request.priority})
        log.info("alert_sent", message_id=mid.hex(), origin=self.me, officer=principal.username, kind=request.kind, priority=request.priority)
        return mid

    async def acknowledge(self, principal: Principal, message_id: bytes, request: AckRequest) -> bytes:
        """Send an ack for an inbox item to its origin; return the ack message id.

        Raises:
            NotFoundError: No such inbox item.
            ConflictError: The item is itself an ack, or was already acknowledged with this disposition.
        """
        item = await self.reader.inbox_item(message_id)
        if item is None:
            raise NotFoundError("no such inbox item")
        if item.kind == "ack":
            raise ConflictError("an ack cannot be acknowledged")
        mine = [a for a in await self.reader.acks(message_id) if a.direction == "out"]
        if any(a.disposition == request.disposition for a in mine):
            raise ConflictError(f"already acknowledged as {request.disposition}")
        ctx = self.hop.ctx
        now = self.clock.now_ms()
        expires = max(item.expires, now + 3_600_000)
        envelope = seal(
            sender=ctx.keys,
            roster=ctx.roster,
            tiers=[Tier(name="ack", sections=(cap.ACK,), recipients=(item.origin,))],
            sections=request.plaintext_sections(message_id),
            priority=item.priority,
            label=item.label,
            now=now,
            expires=expires,
            rng=self.rng,
            kind="ack",
            refs=(message_id,),
            limits=ctx.limits,
        )
        await self.record(principal, f"inbox.ack.{request.disposition}", message_id.hex())
        ack_row = (
            INSERT_ACK,
            (envelope.message_id, message_id, "out", item.origin, principal.username, request.disposition, request.reason, request.comment, now),
        )
        await originate(ctx, envelope, lambda _r: [ack_row])
        # The signed "acknowledged" receipt for the alert itself travels back like any receipt.
        header_digest, accepted = await self._accepted(item.origin, message_id)
        lane = PRIORITIES.index(item.priority)
        # Chained to our own "accepted" receipt for the alert (PROTOCOL.md 21.3).
        build = sign_receipt(ctx, message_id=message_id, header_digest=header_digest, event="acknowledged", peer=item.origin, prev=accepted)
        await ctx.log.submit(build, lambda _i, raw: receipt_rows(ctx, raw or b"", origin=item.origin, message_id=message_id, lane=lane, expires=item.expires))
        ctx.on_queued()
        self.events.publish("ack", {"message_id": message_id.hex(), "direction": "out", "disposition": request.disposition})
        return envelope.message_id

    async def _accepted(self, origin: str, message_id: bytes) -> tuple[bytes, bytes | None]:
        """The header digest of a message we accepted, and the digest of our ``accepted`` receipt for it."""
        found = await self.hop.ctx.reader.accepted(origin, message_id)
        if found is None:
            raise NotFoundError("no accepted message with that id")
        return found[0], hashlib.sha256(found[1]).digest()

    # -- arriving traffic -----------------------------------------------------------------

    def _deliver(self, envelope: Envelope, header: Header, now: int) -> Delivery:
        """Open an envelope addressed to us; the rows commit with our acceptance (see module docstring)."""
        ctx = self.hop.ctx
        opened = open_verified(envelope, header, ctx.keys, ctx.roster, limits=ctx.limits)
        header = opened.header
        mid = header.message_id
        if header.kind == "ack":
            return self._deliver_ack(envelope, opened.sections, now)
        content = cap.decode_sections(opened.sections)
        visible = sorted(opened.sections)
        row = (
            INSERT_INBOX,
            (
                mid,
                header.origin,
                header.kind,
                refs_text(header.refs),
                header.priority,
                header.label,
                header.created,
                header.expires,
                now,
                opened.tier,
                ",".join(visible),
                ",".join(sorted(opened.withheld)),
                json.dumps(content).encode(),
            ),
        )

        def announce() -> None:
            self.events.publish("inbox", {"message_id": mid.hex(), "origin": header.origin, "kind": header.kind, "priority": header.priority})
            log.info("alert_received", message_id=mid.hex(), origin=header.origin, kind=header.kind, tier=opened.tier)

        return Delivery([row], announce)

    def _deliver_ack(self, envelope: Envelope, sections: dict[str, bytes] | Any, now: int) -> Delivery:
        header = envelope.header
        if cap.ACK not in sections:
            raise MalformedError("an ack message must carry the ack section")
        ack = cap.decode_ack(sections[cap.ACK])
        ref = bytes.fromhex(ack["ref"])
        if header.refs != (ref,):
            raise MalformedError("an ack must reference exactly the message it acknowledges")
        sender = header.origin
        statements: list[Statement] = [
            (INSERT_ACK, (header.message_id, ref, "in", sender, None, ack["disposition"], ack.get("reason"), ack.get("comment"), now)),
        ]
        if ack["disposition"] == "accepted":
            statements.append((ACK_ESCALATIONS, (now, ref, now, ref, sender)))

        def announce() -> None:
            self.events.publish("ack", {"message_id": ref.hex(), "direction": "in", "member": sender, "disposition": ack["disposition"]})
            log.info("ack_received", message_id=ref.hex(), origin=sender, disposition=ack["disposition"])

        return Delivery(statements, announce)

    def _receipts_arrived(self, receipts: Any) -> None:
        for raw in receipts:
            self.events.publish("receipt", {"digest": hashlib.sha256(raw).hexdigest()})
