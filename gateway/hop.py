"""Accepting envelopes and receipts at a hop: verify, apply policy, dedupe, store, sign.

The design (docs/adr/0003-gateway-hop.md) in short:

* ``accept_batch`` answers ``POST /v1/envelopes``: every item gets exactly one
  signed receipt, ``accepted`` or ``rejected`` with a stable reason code, and
  one bad item never fails the others;
* an item is accepted only once the envelope, its outbox rows (one per next
  hop, recipients split by next hop) and the ``accepted`` receipt are
  committed in one transaction with the receipt's log leaf (the log's
  sequencer batches these commits);
* a retry of an accepted (origin, message id) gets the original receipt back,
  byte for byte, until the message's ciphertext is purged after expiry;
* every receipt this hop issues or receives for a message is queued back toward
  the message's origin (its home gateway, then the origin node itself).

What the hop can read is the header only; it never decrypts anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from gateway.clock import Clock
from gateway.hop_store import INSERT_MESSAGE, INSERT_OUTBOX, INSERT_RECEIPT, KIND_ENVELOPE, KIND_RECEIPT, HopReader
from gateway.log_store import LogStore, Statement
from gateway.metrics import HopMetrics
from gateway.policy import Policy, RateLimiter, RouteContext
from protocol.batch import BatchItem, BatchResults, EnvelopeBatch, ReceiptAck, ReceiptBatch
from protocol.envelope import verify_header
from protocol.errors import HeliographError, MalformedError, PolicyDeniedError
from protocol.header import PRIORITIES, Envelope, Header
from protocol.keys import MemberKeys
from protocol.limits import Limits
from protocol.receipts import Receipt, SignedReceipt
from protocol.roster import KIND_GATEWAY, KIND_NODE, Roster

log = structlog.get_logger("heliograph.hop")

NO_MESSAGE_ID = bytes(16)


@dataclass(slots=True)
class HopContext:
    """Everything a hop's request handlers and forwarder share."""

    keys: MemberKeys
    roster: Roster
    log: LogStore
    reader: HopReader
    clock: Clock
    policy: Policy
    rate_limiter: RateLimiter
    metrics: HopMetrics
    limits: Limits
    max_batch: int = 100
    on_queued: Callable[[], None] = field(default=lambda: None)
    inflight: dict[tuple[str, bytes], asyncio.Future[bytes]] = field(default_factory=dict)
    """Acceptances in progress, so a duplicate arriving meanwhile waits for the first one's receipt."""
    local_delivery: LocalDelivery | None = None
    """On a node: opens an envelope addressed to it and returns the rows to commit with its acceptance."""
    on_receipts: Callable[[Sequence[bytes]], None] = field(default=lambda _r: None)
    """Called after receipts arriving on ``POST /v1/receipts`` were committed (a node streams them)."""
    client_ssl: ssl.SSLContext | None = None
    """TLS trust for calls to peers' ``https://`` endpoints (``[tls] ca``); None: the system's trust store."""

    @property
    def me(self) -> str:
        return self.keys.member_id


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a node does with an envelope it accepts: rows in the same commit, then a callback."""

    statements: Sequence[Statement]
    after_commit: Callable[[], None] = lambda: None


LocalDelivery = Callable[[Envelope, Header, int], Delivery]
"""``(envelope, verified header, now) -> Delivery``; raises a HeliographError (e.g. E_DECRYPT) to reject the envelope.
The header is what ``verify_header`` returned for the envelope a moment before."""


def next_hop(roster: Roster, me: str, recipient: str) -> str:
    """Where a copy for ``recipient`` goes from hop ``me``.

    A gateway delivers to the nodes it is home to and relays everything else to
    the recipient's home gateway; a node sends everything to its home gateway.
    """
    member = roster.member(recipient)
    here = roster.member(me)
    if here.kind == KIND_NODE:
        assert here.home_gateway is not None
        return here.home_gateway
    return recipient if member.home_gateway == me else str(member.home_gateway)


def toward_origin(roster: Roster, me: str, origin: str) -> str | None:
    """The next hop for receipts travelling back to ``origin`` (None: we are the origin)."""
    if origin == me:
        return None
    home = roster.member(origin).home_gateway
    return origin if home == me or home is None else home


def sign_receipt(ctx: HopContext, **fields: object) -> Callable[[int], bytes]:
    def build(index: int) -> bytes:
        receipt = Receipt(hop=ctx.me, hop_key=ctx.keys.signing_key_id, time=ctx.clock.now_ms(), log_index=index, **fields)  # type: ignore[arg-type]
        return receipt.sign(ctx.keys).to_bytes()

    return build


def receipt_rows(ctx: HopContext, receipt: bytes, *, origin: str, message_id: bytes, lane: int, expires: int) -> list[Statement]:
    """Store ``receipt`` and queue it toward ``origin``."""
    now = ctx.clock.now_ms()
    digest = hashlib.sha256(receipt).digest()
    rows: list[Statement] = [(INSERT_RECEIPT, (digest, message_id, receipt, now))]
    dest = toward_origin(ctx.roster, ctx.me, origin)
    if dest is not None:
        # Receipts outlive the message: keep trying for a day past its expiry.
        rows.append((INSERT_OUTBOX, (dest, lane, KIND_RECEIPT, origin, message_id, "", receipt, None, now, expires + 86_400_000, now)))
    return rows


async def accept_batch(ctx: HopContext, peer: str, body: bytes) -> bytes:
    """Handle one ``POST /v1/envelopes`` body from authenticated ``peer``.

    Raises:
        MalformedError: The batch itself cannot be parsed (no item is looked at).
    """
    batch = EnvelopeBatch.from_bytes(body, max_items=ctx.max_batch, limits=ctx.limits)
    started = ctx.clock.monotonic()
    # Concurrently, so that the whole batch shares one sequencer commit.
    results = await asyncio.gather(*(_accept_item(ctx, peer, item) for item in batch.items))
    ctx.metrics.accept_latency.observe(ctx.clock.monotonic() - started)
    ctx.on_queued()
    return BatchResults(results=tuple(results)).to_bytes()


async def _accept_item(ctx: HopContext, peer: str, item: BatchItem) -> bytes:
    header: Header | None = None
    digest = hashlib.sha256(item.envelope).digest()
    try:
        envelope = Envelope.from_bytes(item.envelope, limits=ctx.limits)
        header, digest = envelope.header, envelope.header_digest
        key = (header.origin, header.message_id)
        running = ctx.inflight.get(key)
        if running is not None:
            ctx.metrics.duplicates.inc()
            return await asyncio.shield(running)
        previous = await ctx.reader.accepted_receipt(header.origin, header.message_id)
        if previous is not None:
            ctx.metrics.duplicates.inc()
            return previous
        now = ctx.clock.now_ms()
        verified = verify_header(envelope, ctx.roster, now, limits=ctx.limits)
        _check_route(ctx, peer, header, item.recipients)
        ctx.policy.check_ttl(header.created, header.expires, now)
        ctx.policy.evaluate(RouteContext(origin=header.origin, recipients=item.recipients, label=header.label, priority=header.priority))
        ctx.rate_limiter.check(header.origin)
        delivery = ctx.local_delivery(envelope, verified, now) if ctx.local_delivery is not None else None
    except HeliographError as exc:
        return await _reject(ctx, peer, item, header=header, digest=digest, exc=exc)
    if key in ctx.inflight:  # another request started storing it while we verified
        return await asyncio.shield(ctx.inflight[key])
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    ctx.inflight[key] = future
    try:
        receipt = await _store(ctx, peer, item, envelope, delivery.statements if delivery else ())
        future.set_result(receipt)
        if delivery is not None:
            delivery.after_commit()
        return receipt
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
        raise
    finally:
        del ctx.inflight[key]


def _check_route(ctx: HopContext, peer: str, header: Header, recipients: Sequence[str]) -> None:
    if not set(recipients) <= set(header.recipients):
        raise MalformedError("item recipients must be recipients of the envelope")
    me = ctx.roster.member(ctx.me)
    sender = ctx.roster.member(peer)
    if me.kind == KIND_NODE:
        if tuple(recipients) != (ctx.me,):
            raise PolicyDeniedError(f"node {ctx.me} only accepts copies addressed to itself")
        if peer != me.home_gateway:
            raise PolicyDeniedError(f"node {ctx.me} only accepts copies from its home gateway {me.home_gateway}")
        return
    if peer == header.origin:
        if sender.home_gateway != ctx.me:
            raise PolicyDeniedError(f"{peer} must submit through its home gateway {sender.home_gateway}")
        return
    if sender.kind != KIND_GATEWAY:
        raise PolicyDeniedError(f"{peer} may only submit its own messages")
    stray = [r for r in recipients if ctx.roster.member(r).home_gateway != ctx.me]
    if stray:
        raise PolicyDeniedError(f"recipients {stray} are not homed at {ctx.me}; relay them to their home gateway")


async def _reject(ctx: HopContext, peer: str, item: BatchItem, *, header: Header | None, digest: bytes, exc: HeliographError) -> bytes:
    """Sign and log a rejection; for an unparseable envelope the message id is all zeros
    and the digest is SHA-256 of the item's envelope bytes."""
    ctx.metrics.rejected.labels(code=exc.code).inc()
    log.info("envelope_rejected", peer=peer, code=exc.code, message_id=header.message_id.hex() if header else None)
    message_id = header.message_id if header else NO_MESSAGE_ID
    build = sign_receipt(ctx, message_id=message_id, header_digest=digest, event="rejected", peer=peer, prev=item.prev, reason=exc.code)
    _, data = await ctx.log.submit(build)
    assert data is not None
    return data


async def _store(ctx: HopContext, peer: str, item: BatchItem, envelope: Envelope, extra: Sequence[Statement] = ()) -> bytes:
    header = envelope.header
    lane = PRIORITIES.index(header.priority)
    by_hop: dict[str, list[str]] = {}
    for r in item.recipients:
        by_hop.setdefault(next_hop(ctx.roster, ctx.me, r), []).append(r)
    build = sign_receipt(ctx, message_id=header.message_id, header_digest=envelope.header_digest, event="accepted", peer=peer, prev=item.prev)

    def effects(index: int | None, receipt: bytes | None) -> list[Statement]:
        assert receipt is not None
        now = ctx.clock.now_ms()
        own = hashlib.sha256(receipt).digest()
        rows: list[Statement] = [
            (
                INSERT_MESSAGE,
                (
                    header.origin,
                    header.message_id,
                    envelope.to_bytes(),
                    envelope.header_digest,
                    lane,
                    header.expires,
                    now,
                    peer,
                    receipt,
                    envelope.header_bytes,
                    envelope.signature,
                ),
            )
        ]
        if ctx.roster.member(ctx.me).kind == KIND_GATEWAY:
            for dest, recipients in sorted(by_hop.items()):
                rows.append(
                    (INSERT_OUTBOX, (dest, lane, KIND_ENVELOPE, header.origin, header.message_id, ",".join(recipients), None, own, now, header.expires, now))
                )
        rows.extend(receipt_rows(ctx, receipt, origin=header.origin, message_id=header.message_id, lane=lane, expires=header.expires))
        rows.extend(extra)
        return rows

    _, data = await ctx.log.submit(build, effects)
    assert data is not None
    ctx.metrics.accepted.inc()
    log.info("envelope_accepted", message_id=header.message_id.hex(), origin=header.origin, peer=peer, next_hops=sorted(by_hop))
    return data


async def accept_receipts(ctx: HopContext, peer: str, body: bytes) -> bytes:
    """Handle ``POST /v1/receipts``: verify each, store it and pass it on toward the origin.

    Receipts that do not verify, or name a message this hop never carried, are
    dropped (and counted); they are never forwarded.

    Raises:
        MalformedError: The body cannot be parsed.
    """
    batch = ReceiptBatch.from_bytes(body)
    stored = 0
    statements: list[Statement] = []
    valid: list[tuple[bytes, bytes, Receipt]] = []
    for raw in batch.receipts:
        try:
            valid.append((raw, hashlib.sha256(raw).digest(), SignedReceipt.from_bytes(raw, limits=ctx.limits).verify(ctx.roster)))
        except HeliographError as exc:
            log.warning("receipt_refused", peer=peer, code=exc.code)
    seen, known = await ctx.reader.receipt_context([d for _r, d, _x in valid], [x.message_id for _r, _d, x in valid])
    for raw, digest, receipt in valid:
        if digest in seen:
            stored += 1  # a retry: already stored and queued
            continue
        if receipt.message_id not in known:
            log.warning("receipt_for_unknown_message", peer=peer, message_id=receipt.message_id.hex())
            continue
        seen.add(digest)  # the same receipt twice in one batch is stored once
        origin, expires = known[receipt.message_id]
        statements.extend(receipt_rows(ctx, raw, origin=origin, message_id=receipt.message_id, lane=0, expires=expires))
        stored += 1
    ctx.metrics.receipts_in.inc(stored)
    if statements:
        await ctx.log.write(statements)
        ctx.on_queued()
        ctx.on_receipts([params[2] for sql, params in statements if sql == INSERT_RECEIPT])
    return ReceiptAck(stored=stored).to_bytes()


async def originate(ctx: HopContext, envelope: Envelope, extra: Callable[[bytes], Sequence[Statement]] = lambda _r: ()) -> bytes:
    """Queue a message this node created toward its home gateway, in one commit.

    The node's own ``accepted`` receipt (no ``peer``) starts the message's
    receipt chain; ``extra(receipt)`` adds the node's own rows (its alert
    records) to the same transaction. Returns the receipt.

    Raises:
        StorageError: Nothing was committed.
    """
    header = envelope.header
    lane = PRIORITIES.index(header.priority)
    dest = next_hop(ctx.roster, ctx.me, header.recipients[0])
    build = sign_receipt(ctx, message_id=header.message_id, header_digest=envelope.header_digest, event="accepted")

    def effects(_index: int | None, receipt: bytes | None) -> list[Statement]:
        assert receipt is not None
        now = ctx.clock.now_ms()
        own = hashlib.sha256(receipt).digest()
        wire = envelope.to_bytes()
        return [
            (
                INSERT_MESSAGE,
                (
                    *(header.origin, header.message_id, wire, envelope.header_digest, lane, header.expires, now, ctx.me, receipt),
                    envelope.header_bytes,
                    envelope.signature,
                ),
            ),
            (INSERT_OUTBOX, (dest, lane, KIND_ENVELOPE, header.origin, header.message_id, ",".join(header.recipients), None, own, now, header.expires, now)),
            *receipt_rows(ctx, receipt, origin=header.origin, message_id=header.message_id, lane=lane, expires=header.expires),
            *extra(receipt),
        ]

    _, data = await ctx.log.submit(build, effects)
    assert data is not None
    ctx.metrics.accepted.inc()
    log.info("message_originated", message_id=header.message_id.hex(), origin=header.origin, destination=dest, kind=header.kind)
    ctx.on_queued()
    return data
