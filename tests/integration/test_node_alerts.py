"""Real nodes and gateways on 127.0.0.1: tiered alerts, escalation, acks, updates and cancels, sunset, roles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.agencies import Agencies, alert_body

MINUTE = 60_000


async def send(a: Agencies, **overrides: object) -> str:
    status, body = await a.call("int-org", "POST", "/v1/alerts", json=alert_body(**overrides))
    assert status == 201, body
    await a.settle()
    return str(body["message_id"])


async def inbox_ids(a: Agencies, node: str) -> list[str]:
    status, body = await a.call(node, "GET", "/v1/inbox")
    assert status == 200, body
    return [i["message_id"] for i in body["inbox"]]


async def test_tiers_see_their_sections_and_escalation_fires_without_an_ack(fed: Agencies) -> None:
    mid = await send(fed)
    status, item = await fed.call("fr-police", "GET", f"/v1/inbox/{mid}")
    assert status == 200 and item["tier"] == "action"
    assert item["content"]["details"] == "Plate FR-123-AB; armed." and item["sections_withheld"] == []
    status, item = await fed.call("ke-fiu", "GET", f"/v1/inbox/{mid}")
    assert item["content"]["summary"] == "Three suspects in a grey van." and "details" not in item["content"]
    assert sorted(item["sections_withheld"]) == ["details", "instructions"]
    assert await inbox_ids(fed, "ke-police") == [], "the escalation tier is never sent ahead of time"

    await fed.advance(9 * MINUTE)
    assert await inbox_ids(fed, "ke-police") == []
    await fed.advance(2 * MINUTE)
    (escalated,) = await inbox_ids(fed, "ke-police")
    status, item = await fed.call("ke-police", "GET", f"/v1/inbox/{escalated}")
    assert item["refs"] == [mid] and item["content"]["details"] == "Plate FR-123-AB; armed."

    status, board = await fed.call("int-org", "GET", f"/v1/alerts/{mid}")
    assert status == 200 and board["unverified_receipts"] == []
    states = {r["member"]: r["state"] for r in board["recipients"]}
    assert states == {"fr-police": "delivered", "ke-fiu": "delivered", "ke-police": "delivered"}
    (action,) = [t for t in board["tiers"] if t["name"] == "action"]
    assert action["escalation"]["state"] == "fired"
    hops = [(e["hop"], e["event"]) for r in board["recipients"] if r["member"] == "ke-fiu" for e in r["timeline"]]
    assert ("gw-eu", "relayed") in hops and ("gw-af", "delivered") in hops and ("ke-fiu", "accepted") in hops

    # Exactly once, even when the scheduler runs again much later.
    await fed.advance(30 * MINUTE)
    assert len(await inbox_ids(fed, "ke-police")) == 1


async def test_an_accepted_ack_stops_the_escalation_and_shows_at_the_origin(fed: Agencies) -> None:
    mid = await send(fed)
    status, body = await fed.call("fr-police", "POST", f"/v1/inbox/{mid}/ack", json={"disposition": "accepted", "comment": "units on the way"})
    assert status == 202, body
    await fed.settle()
    await fed.advance(20 * MINUTE)
    assert await inbox_ids(fed, "ke-police") == []
    status, board = await fed.call("int-org", "GET", f"/v1/alerts/{mid}")
    (fr,) = [r for r in board["recipients"] if r["member"] == "fr-police"]
    assert fr["state"] == "acknowledged"
    assert fr["ack"]["disposition"] == "accepted" and fr["ack"]["comment"] == "units on the way" and fr["ack"]["receipt_verified"]
    (action,) = [t for t in board["tiers"] if t["name"] == "action"]
    assert action["escalation"]["state"] == "acked" and action["acks"]["accepted"] == 1
    # Acking twice with the same disposition is refused with a stable code.
    status, body = await fed.call("fr-police", "POST", f"/v1/inbox/{mid}/ack", json={"disposition": "accepted"})
    assert status == 409 and body["error"]["code"] == "E_CONFLICT"


async def test_a_cancel_stops_escalation_and_updates_link_to_the_original(fed: Agencies) -> None:
    mid = await send(fed)
    plain_tiers = [
        {"name": "action", "recipients": ["fr-police"], "sections": ["summary", "details", "instructions"]},
        {"name": "inform", "recipients": ["ke-fiu"], "sections": ["summary"]},
    ]
    update = alert_body(kind="update", references=[mid], tiers=plain_tiers)
    status, body = await fed.call("int-org", "POST", "/v1/alerts", json=update)
    assert status == 201, body
    cancel = alert_body(kind="cancel", references=[mid], tiers=plain_tiers)
    status, body = await fed.call("int-org", "POST", "/v1/alerts", json=cancel)
    assert status == 201, body
    await fed.settle()
    await fed.advance(20 * MINUTE)
    assert await inbox_ids(fed, "ke-police") == [], "the cancel stopped the pending escalation"
    status, board = await fed.call("int-org", "GET", f"/v1/alerts/{mid}")
    assert board["status"] == "cancelled" and {r["kind"] for r in board["referenced_by"]} == {"update", "cancel"}
    status, item = await fed.call("fr-police", "GET", f"/v1/inbox/{mid}")
    assert {s["kind"] for s in item["superseded_by"]} == {"update", "cancel"}
    # Invalid references: unknown, and a cancel of an already cancelled alert.
    status, body = await fed.call("int-org", "POST", "/v1/alerts", json=alert_body(kind="update", references=["00" * 16], tiers=plain_tiers))
    assert status == 422 and body["error"]["code"] == "E_VALIDATION" and "references[0]" in body["error"]["fields"]
    status, body = await fed.call("int-org", "POST", "/v1/alerts", json=alert_body(kind="cancel", references=[mid], tiers=plain_tiers))
    assert status == 422 and "references[0]" in body["error"]["fields"]


async def test_duplicates_are_absorbed_and_an_officer_sees_an_alert_once(fed: Agencies) -> None:
    mid = await send(fed)
    node = fed.nodes["int-org"]
    await node.hop.ctx.log.submit(None, lambda _i, _d: [("UPDATE outbox SET state = 'queued', next_attempt_at = 0 WHERE kind = 'envelope'", ())])
    await fed.settle()
    assert (await inbox_ids(fed, "fr-police")).count(mid) == 1


async def test_sunset_purges_content_from_disk_and_keeps_the_timeline(fed: Agencies, tmp_path: Path) -> None:
    mid = await send(fed, sections={"headline": "Sunset check", "summary": "UNIQUE-PLAINTEXT-MARKER-42", "details": "d", "instructions": "i"})
    await fed.advance(7 * 60 * MINUTE + MINUTE)  # 6 h TTL + 1 h retention
    for node in ("fr-police", "int-org"):
        status, _ = await fed.call(node, "GET", "/v1/inbox")
        assert status == 200
    for name in ("fr-police", "ke-fiu", "int-org"):
        data = b"".join(p.read_bytes() for p in (tmp_path / name).glob("hop.db*"))
        assert b"UNIQUE-PLAINTEXT-MARKER-42" not in data, name
    status, item = await fed.call("fr-police", "GET", f"/v1/inbox/{mid}")
    assert item["purged"] and item["content"] is None
    status, board = await fed.call("int-org", "GET", f"/v1/alerts/{mid}")
    assert board["purged"] and {r["state"] for r in board["recipients"]} >= {"delivered"}
    assert all(r["timeline"] for r in board["recipients"] if r["state"] == "delivered")
    conn = sqlite3.connect(tmp_path / "fr-police" / "hop.db")
    try:
        assert conn.execute("SELECT envelope FROM messages WHERE message_id = ?", (bytes.fromhex(mid),)).fetchone() == (None,)
    finally:
        conn.close()


async def test_roles_and_bad_credentials(fed: Agencies) -> None:
    status, body = await fed.call("int-org", "POST", "/v1/alerts", role="auditor", json=alert_body())
    assert status == 403 and body["error"]["code"] == "E_FORBIDDEN"
    status, body = await fed.call("int-org", "GET", "/v1/alerts", role="auditor")
    assert status == 200
    status, body = await fed.call("int-org", "GET", "/v1/inbox", token="hgt_" + "A" * 43)
    assert status == 401 and body["error"]["code"] == "E_UNAUTHENTICATED"
    status, body = await fed.call("int-org", "GET", "/v1/audit", role="officer")
    assert status == 403
    status, body = await fed.call("int-org", "GET", "/v1/audit", role="auditor")
    assert status == 200


async def test_field_errors_reach_the_officer(fed: Agencies) -> None:
    bad = alert_body(priority="URGENT", tiers=[{"name": "action", "recipients": ["nobody-here"], "sections": ["summary"]}])
    status, body = await fed.call("int-org", "POST", "/v1/alerts", json=bad)
    assert status == 422 and body["error"]["code"] == "E_VALIDATION"
    assert set(body["error"]["fields"]) >= {"priority", "tiers[0].recipients[0]"}


async def test_escalation_survives_a_restart_of_the_origin_and_fires_once(fed: Agencies, tmp_path: Path) -> None:
    from tests.support.agencies import start_node

    mid = await send(fed)
    port = int(fed.url("int-org").rsplit(":", 1)[1])
    await fed.servers.pop("int-org").close()
    await fed.nodes.pop("int-org").close()
    await fed.clock.advance(11 * MINUTE)  # the deadline passes while the origin is down
    await fed.settle()
    assert await inbox_ids(fed, "ke-police") == []
    tokens = dict(fed.tokens)
    node = await start_node(fed, tmp_path, "int-org", port, users=False)
    fed.tokens = tokens
    await fed.settle()
    assert len(await inbox_ids(fed, "ke-police")) == 1
    await node.run_due()
    await fed.advance(30 * MINUTE)
    assert len(await inbox_ids(fed, "ke-police")) == 1, "fired exactly once"
    status, board = await fed.call("int-org", "GET", f"/v1/alerts/{mid}")
    assert status == 200 and {r["member"]: r["state"] for r in board["recipients"]}["ke-police"] == "delivered"


async def test_a_node_rejects_what_it_cannot_open_and_keeps_nothing(fed: Agencies) -> None:
    """An envelope whose stanza for us is corrupt gets a signed E_DECRYPT rejection, not an inbox row."""
    from protocol.batch import BatchResults
    from protocol.receipts import SignedReceipt
    from tests.support.net import seal_for, signed_batch

    now = fed.clock.now_ms()
    good = seal_for(fed.fed, "int-org", ["fr-police"], {"info": b"not the content format"}, now=now, seed="undecodable")
    body, headers = signed_batch(fed.fed, "gw-eu", "fr-police", [good], now=now)
    assert fed.session is not None
    async with fed.session.post(fed.url("fr-police") + "/v1/envelopes", data=body, headers=headers) as resp:
        assert resp.status == 200
        (raw,) = BatchResults.from_bytes(await resp.read()).results
    receipt = SignedReceipt.from_bytes(raw).verify(fed.fed.roster)
    assert receipt.event == "rejected" and receipt.reason == "E_MALFORMED"
    assert await inbox_ids(fed, "fr-police") == []


async def test_events_stream_new_inbox_items_receipts_and_acks(fed: Agencies) -> None:
    import asyncio
    import json

    assert fed.session is not None
    headers = {"Authorization": f"Bearer {fed.tokens[('fr-police', 'officer')]}"}
    seen: list[tuple[str, dict[str, object]]] = []
    async with fed.session.get(fed.url("fr-police") + "/v1/events", headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        assert (await resp.content.readline()).startswith(b": connected")
        mid = await send(fed)

        async def read_until_inbox() -> None:
            kind = None
            while True:
                line = (await resp.content.readline()).decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind is not None:
                    seen.append((kind, json.loads(line.removeprefix("data: "))))
                    if kind == "inbox":
                        return

        await asyncio.wait_for(read_until_inbox(), timeout=5)
    assert ("inbox", {"kind": "alert", "message_id": mid, "origin": "int-org", "priority": "FLASH"}) in seen
    assert all("summary" not in json.dumps(data) and "Plate" not in json.dumps(data) for _k, data in seen), "no plaintext in events"
    status, _ = await fed.call("fr-police", "GET", "/v1/events", token="hgt_" + "B" * 43)
    assert status == 401
