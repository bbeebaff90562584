"""A full disk: the hop refuses new work with 503 E_STORAGE, writes nothing partial, loses nothing accepted."""

from __future__ import annotations

from gateway.db import run_sync
from protocol import encoding
from protocol.batch import BatchItem, EnvelopeBatch
from tests.support.agencies import Agencies, alert_body
from tests.support.net import HOUR, Net


async def _cap(net: Net, gw: str, extra_pages: int | None) -> None:
    """Emulate a full disk: SQLite may grow the file by at most ``extra_pages`` pages (None: lift the cap)."""

    def cap(conn: object) -> None:
        pages = 2_147_483_646 if extra_pages is None else conn.execute("PRAGMA page_count").fetchone()[0] + extra_pages  # type: ignore[attr-defined]
        conn.execute(f"PRAGMA max_page_count = {int(pages)}")  # type: ignore[attr-defined]

    await run_sync(net.gateways[gw].ctx.log._writer, cap)


async def _state(net: Net, gw: str) -> tuple[int, int, int]:
    reader = net.gateways[gw].ctx.reader._db
    messages = (await reader.execute_fetchall("SELECT count(*) FROM messages"))[0][0]
    outbox = (await reader.execute_fetchall("SELECT count(*) FROM outbox"))[0][0]
    return await net.gateways[gw].ctx.log.size(), int(messages), int(outbox)


async def test_a_full_disk_refuses_new_alerts_cleanly_and_recovers(quiet_net: Net) -> None:
    net = quiet_net
    police = net.nodes["ke-police"]
    police.refuse = True  # the first alert stays queued at the gateways: accepted, not yet delivered
    before = net.seal("int-org", [("a", ["summary", "details"], ["ke-police"])], seed="before")
    assert [r.event for r in await net.submit("int-org", [before])] == ["accepted"]
    await net.drain()  # settle: the copy waits at gw-af behind a back-off
    await _cap(net, "gw-eu", 0)  # the disk is full now
    snapshot = await _state(net, "gw-eu")
    batch = [net.seal("int-org", [("a", ["summary", "details"], ["ke-police"])], seed=f"during-{i}") for i in range(20)]
    body = EnvelopeBatch(items=tuple(BatchItem(envelope=e.to_bytes(), recipients=e.header.recipients) for e in batch)).to_bytes()
    status, answer = await net.post("int-org", "gw-eu", "/v1/envelopes", body)
    assert status == 503, answer
    assert b'"E_STORAGE"' in answer and b"Traceback" not in answer
    assert await _state(net, "gw-eu") == snapshot, "nothing of the refused batch was written"
    # Space again, the node back: the alert accepted before the disk filled is delivered exactly
    # once, and the refused batch is simply sent again.
    await _cap(net, "gw-eu", None)
    police.refuse = False
    await net.clock.advance(HOUR // 6)
    results = await net.submit("int-org", batch)
    assert {r.event for r in results} == {"accepted"}
    await net.drain()
    assert set(police.delivered) == {before.message_id, *(e.message_id for e in batch)}
    assert all(len(copies) == 1 for copies in police.delivered.values())


async def test_an_officer_sending_on_a_full_disk_gets_a_clear_503_and_no_half_alert(fed: Agencies) -> None:
    node = fed.nodes["int-org"]
    status, listed = await fed.call("int-org", "GET", "/v1/alerts")
    assert status == 200
    size = await node.hop.ctx.log.size()

    def cap(conn: object) -> None:
        conn.execute("PRAGMA max_page_count = 1")  # type: ignore[attr-defined]  # below the current size: nothing may grow

    await run_sync(node.hop.ctx.log._writer, cap)
    body = alert_body()
    body["sections"]["details"] = "x" * 60_000  # needs new pages
    status, answer = await fed.call("int-org", "POST", "/v1/alerts", json=body)
    assert status == 503 and answer["error"]["code"] == "E_STORAGE", answer
    assert await fed.call("int-org", "GET", "/v1/alerts") == (200, listed), "no half-sent alert shows up"
    # The only trace is the attempt itself: officer actions are logged before they run (PROTOCOL.md 21.4).
    assert await node.hop.ctx.log.size() == size + 1
    (leaf,) = await node.hop.ctx.log.entries(size, size + 1)
    record = encoding.decode(leaf)
    assert (record["type"], record["action"], record["officer"]) == ("officer-action", "alert.alert", "officer-int-org")
