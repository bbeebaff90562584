"""The officer API (JSON over HTTP) on the node's aiohttp app.

Routes (all under the officer auth middleware of node/officer_auth.py):

* ``POST /v1/alerts`` (alert.send; update/cancel also need the right on every
  referenced alert) -> ``201 {"message_id"}`` once committed;
* ``GET /v1/alerts``, ``GET /v1/alerts/{id}`` (alert.read): delivery status built
  only from receipts that verify against the roster (see :func:`delivery_status`);
* ``GET /v1/inbox``, ``GET /v1/inbox/{id}`` (inbox.read): what this agency's tier
  opened, withheld sections listed, updates and cancels linked;
* ``POST /v1/inbox/{id}/ack`` (inbox.ack) -> ``202 {"ack_message_id"}``;
* ``GET /v1/events`` (alert.read): server-sent events (ids and metadata only);
* ``GET /v1/federation`` (federation.read): members, home gateways, reachability;
* ``GET /v1/audit`` (log.read): officer actions and their log indices.

Handlers stay thin: validate (node/compose.py), authorize, call the Node, encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any

from aiohttp import web

from node.compose import parse_ack_request, parse_alert_request
from node.officer_auth import Action, authorize, require
from node.service import Node
from node.store import SentAlert
from protocol.errors import BadRequestError, HeliographError, NotFoundError
from protocol.receipts import SignedReceipt
from protocol.roster import KIND_NODE

NODE: web.AppKey[Node] = web.AppKey("node", Node)
HEARTBEAT_S = 15.0
VERDICT_CACHE = 200_000


def _message_id(request: web.Request) -> bytes:
    raw = request.match_info["id"]
    if len(raw) != 32 or not all(c in "0123456789abcdef" for c in raw):
        raise BadRequestError("a message id is 32 lower-case hex digits")
    return bytes.fromhex(raw)


async def get_evidence(request: web.Request) -> web.Response:
    """The delivery-evidence bundle of a sent alert (docs/PROTOCOL.md 22), for offline verification."""
    import aiohttp

    from node.evidence import export_bundle

    node = request.app[NODE]
    authorize(request, Action.ALERT_READ)
    message_id = _message_id(request)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        bundle = await export_bundle(
            node,
            message_id,
            session,
            witnesses=node.config.evidence_witnesses,
            require_k=node.config.evidence_require,
            rosters=(node.hop.config.roster_path.read_bytes(),) if node.hop.config.roster_path.is_file() else (),
        )
    headers = {"Content-Disposition": f'attachment; filename="{message_id.hex()}.hgev"', "Cache-Control": "no-store"}
    return web.Response(body=bundle, content_type="application/octet-stream", headers=headers)


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise BadRequestError("Content-Type must be application/json")
    try:
        return await request.json()
    except ValueError:
        raise BadRequestError("the body is not valid JSON") from None


async def post_alert(request: web.Request) -> web.Response:
    node = request.app[NODE]
    principal = authorize(request, Action.ALERT_SEND)
    body = await _json_body(request)
    alert = parse_alert_request(body, roster=node.hop.ctx.roster, me=node.me, now_ms=node.clock.now_ms(), max_ttl_ms=node.config.max_ttl_ms)
    if alert.kind in ("update", "cancel"):
        action = Action.ALERT_UPDATE if alert.kind == "update" else Action.ALERT_CANCEL
        for ref in alert.refs:
            earlier = await node.reader.alert(ref)
            require(principal, action, owner=earlier.officer if earlier else None)
    message_id = await node.send_alert(principal, alert)
    return web.json_response({"message_id": message_id.hex()}, status=201)


async def list_alerts(request: web.Request) -> web.Response:
    node = request.app[NODE]
    authorize(request, Action.ALERT_READ)
    alerts = await node.reader.alerts()
    return web.json_response({"alerts": [await delivery_status(node, a, brief=True) for a in alerts if a.kind != "ack"]})


async def get_alert(request: web.Request) -> web.Response:
    node = request.app[NODE]
    authorize(request, Action.ALERT_READ)
    alert = await node.reader.alert(_message_id(request))
    if alert is None or alert.kind == "ack":
        raise NotFoundError("no such alert from this agency")
    return web.json_response(await delivery_status(node, alert))


def _path(node: Node, recipient: str) -> tuple[str, ...]:
    roster = node.hop.ctx.roster
    hops = [node.me, str(roster.member(node.me).home_gateway)]
    home = roster.member(recipient).home_gateway
    if home is not None and home not in hops:
        hops.append(str(home))
    hops.append(recipient)
    return tuple(hops)


async def _receipts(node: Node, message_id: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    verified, unverified = [], []
    roster = node.hop.ctx.roster
    for raw in await node.hop.ctx.reader.receipts_for(message_id):
        digest = hashlib.sha256(raw).hexdigest()
        # Receipts never change; a verdict holds for as long as the roster version it was reached under.
        key = (digest, roster.version)
        verdict = node.verdicts.get(key)
        if verdict is None:
            try:
                verdict = SignedReceipt.from_bytes(raw, limits=node.hop.ctx.limits).verify(roster)
            except HeliographError as exc:
                verdict = exc.code
            if len(node.verdicts) >= VERDICT_CACHE:
                node.verdicts.clear()
            node.verdicts[key] = verdict
        if isinstance(verdict, str):
            unverified.append({"digest": digest, "error": verdict})
            continue
        r = verdict
        entry = {"hop": r.hop, "event": r.event, "time": r.time, "peer": r.peer, "digest": digest, "log_index": r.log_index, "verified": True}
        if r.retry_until is not None:
            entry["retry_until"] = r.retry_until
        if r.reason is not None:
            entry["reason"] = r.reason
        verified.append(entry)
    verified.sort(key=lambda e: (e["time"], e["hop"]))
    return verified, unverified


_RANK = {"queued": 0, "accepted": 1, "relayed": 2, "delivered": 4, "acknowledged": 5}


def _recipient_state(recipient: str, timeline: list[dict[str, Any]]) -> str:
    """Where a copy stands: the furthest hand-over reached, ``delayed`` while the latest news is a delay."""
    state, delayed = "queued", False
    for e in timeline:  # oldest first
        event = e["event"]
        if event in ("rejected", "expired"):
            return str(event)
        if event == "delayed":
            delayed = True
            continue
        if e["hop"] == recipient and event == "accepted":
            event = "delivered"
        if event == "acknowledged" and e["hop"] != recipient:
            continue
        if event in _RANK:
            delayed = delayed and _RANK[event] < _RANK["relayed"]
            if _RANK[event] >= _RANK[state]:
                state = event
    return "delayed" if delayed and _RANK[state] < _RANK["delivered"] else state


async def delivery_status(node: Node, alert: SentAlert, *, brief: bool = False) -> dict[str, Any]:
    """The alert's status: per recipient the verified hop-by-hop timeline, per tier the ack state.

    A receipt that does not verify is listed under ``unverified_receipts`` and
    never counted.
    """
    receipts, unverified = await _receipts(node, alert.message_id)
    escalations = await node.reader.escalations(alert.message_id)
    fired = {e.target: e.message_id for e in escalations if e.message_id is not None}
    acks = {a.member: a for a in await node.reader.acks(alert.message_id) if a.direction == "in"}
    tiers_out, recipients_out = [], []
    for tier in alert.tiers:
        message_id = fired.get(tier["name"]) if tier["held"] else alert.message_id
        tier_receipts, tier_unverified = (receipts, []) if message_id == alert.message_id else (await _receipts(node, message_id) if message_id else ([], []))
        unverified += tier_unverified
        states = []
        for member in tier["recipients"]:
            path = _path(node, member)
            timeline = [e for e in tier_receipts if e["hop"] in path and (e["peer"] is None or e["peer"] in path)]
            ack_receipts = [e for e in receipts if e["event"] == "acknowledged" and e["hop"] == member]
            timeline += [e for e in ack_receipts if e not in timeline]
            state = "held" if tier["held"] and message_id is None else _recipient_state(member, timeline)
            ack = acks.get(member)
            entry: dict[str, Any] = {"member": member, "tier": tier["name"], "state": state, "message_id": message_id.hex() if message_id else None}
            entry["ack"] = (
                {"disposition": ack.disposition, "at": ack.at, "reason": ack.reason, "comment": ack.comment, "receipt_verified": bool(ack_receipts)}
                if ack
                else None
            )
            if not brief:
                entry["timeline"] = timeline
            states.append(entry)
        recipients_out += states
        step = next((e for e in escalations if e.watcher == tier["name"]), None)
        tiers_out.append(
            {
                "name": tier["name"],
                "recipients": tier["recipients"],
                "sections": tier["sections"],
                "held": tier["held"],
                "ack_deadline": tier.get("ack_deadline"),
                "acks": {d: sum(1 for s in states if s["ack"] and s["ack"]["disposition"] == d) for d in ("received", "accepted", "rejected")},
                "escalation": {"target": step.target, "due_at": step.due_at, "state": step.state, "decided_at": step.decided_at} if step else None,
            }
        )
    body: dict[str, Any] = {
        "message_id": alert.message_id.hex(),
        "kind": alert.kind,
        "status": alert.status,
        "officer": alert.officer,
        "priority": alert.priority,
        "tlp": alert.label,
        "created": alert.created,
        "expires": alert.expires,
        "refs": [r.hex() for r in alert.refs],
        "purged": alert.purged,
        "headline": _headline(alert),
        "tiers": tiers_out,
        "recipients": recipients_out,
        "unverified_receipts": unverified,
    }
    if not brief:
        body["referenced_by"] = [{"message_id": m.hex(), "kind": k, "created": c} for m, k, c in await node.reader.referencing(alert.message_id)]
    return body


def _headline(alert: SentAlert) -> str | None:
    if alert.content is None:
        return None
    from node import cap
    from node.scheduler import unb64map

    sections = unb64map(alert.content)
    return str(cap.decode_sections({cap.INFO: sections[cap.INFO]}).get("headline")) if cap.INFO in sections else None


def _inbox_json(item: Any, *, full: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": item.message_id.hex(),
        "origin": item.origin,
        "kind": item.kind,
        "priority": item.priority,
        "tlp": item.label,
        "created": item.created,
        "expires": item.expires,
        "received_at": item.received_at,
        "tier": item.tier,
        "sections_visible": [s for s in item.visible if s != "info"],
        "sections_withheld": list(item.withheld),
        "refs": [r.hex() for r in item.refs],
        "purged": item.purged,
        "headline": (item.content or {}).get("headline"),
        "event": (item.content or {}).get("event"),
    }
    if full:
        body["content"] = item.content
    return body


async def list_inbox(request: web.Request) -> web.Response:
    node = request.app[NODE]
    authorize(request, Action.INBOX_READ)
    items = [i for i in await node.reader.inbox() if i.kind != "ack"]
    references = await node.reader.inbox_references()
    out = []
    for item in items:
        entry = _inbox_json(item, full=False)
        entry["superseded_by"] = [{"message_id": m.hex(), "kind": k} for m, k, _c in references.get(item.message_id, [])]
        acks = await node.reader.acks(item.message_id)
        entry["acks"] = [{"disposition": a.disposition, "officer": a.officer, "at": a.at} for a in acks if a.direction == "out"]
        out.append(entry)
    return web.json_response({"inbox": out})


async def get_inbox_item(request: web.Request) -> web.Response:
    node = request.app[NODE]
    authorize(request, Action.INBOX_READ)
    item = await node.reader.inbox_item(_message_id(request))
    if item is None:
        raise NotFoundError("no such inbox item")
    body = _inbox_json(item, full=True)
    body["superseded_by"] = [{"message_id": m.hex(), "kind": k, "created": c} for m, k, c in await node.reader.inbox_referencing(item.message_id)]
    body["acks"] = [{"disposition": a.disposition, "officer": a.officer, "at": a.at} for a in await node.reader.acks(item.message_id) if a.direction == "out"]
    return web.json_response(body)


async def post_ack(request: web.Request) -> web.Response:
    node = request.app[NODE]
    principal = authorize(request, Action.INBOX_ACK)
    message_id = _message_id(request)
    ack = parse_ack_request(await _json_body(request))
    ack_id = await node.acknowledge(principal, message_id, ack)
    return web.json_response({"ack_message_id": ack_id.hex()}, status=202)


async def events(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    authorize(request, Action.ALERT_READ)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    queue = node.events.subscribe()
    try:
        await response.write(b": connected\n\n")
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if item is None:
                break
            event_id, kind, data = item
            await response.write(f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass
    finally:
        node.events.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def federation(request: web.Request) -> web.Response:
    node = request.app[NODE]
    authorize(request, Action.FEDERATION_READ)
    roster = node.hop.ctx.roster
    health = {d.destination: d for d in await node.hop.ctx.reader.destinations()}
    members = []
    for m in roster.members:
        d = health.get(m.id)
        members.append(
            {
                "id": m.id,
                "kind": m.kind,
                "display_name": m.display_name,
                "home_gateway": m.home_gateway,
                "is_me": m.id == node.me,
                "reachability": (d.state if d else "unknown") if m.id != node.me else "self",
                "last_success_at": d.last_success_at if d else None,
                "last_error": d.last_error if d else None,
            }
        )
    recipients = [m["id"] for m in members if m["kind"] == KIND_NODE and m["id"] != node.me]
    body = {"me": node.me, "now": node.clock.now_ms(), "roster_version": roster.version, "members": members, "recipients": recipients}
    return web.json_response(body)


async def audit(request: web.Request) -> web.Response:
    node = request.app[NODE]
    authorize(request, Action.LOG_READ)
    return web.json_response({"actions": await node.reader.actions()})


def add_officer_routes(app: web.Application, node: Node) -> None:
    app[NODE] = node
    app.router.add_post("/v1/alerts", post_alert)
    app.router.add_get("/v1/alerts", list_alerts)
    app.router.add_get("/v1/alerts/{id}", get_alert)
    app.router.add_get("/v1/alerts/{id}/evidence", get_evidence)
    app.router.add_get("/v1/inbox", list_inbox)
    app.router.add_get("/v1/inbox/{id}", get_inbox_item)
    app.router.add_post("/v1/inbox/{id}/ack", post_ack)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/v1/federation", federation)
    app.router.add_get("/v1/audit", audit)
