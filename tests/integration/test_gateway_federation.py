"""Two real gateways on 127.0.0.1 with stand-in nodes: routing, fan-out, receipts, outage, expiry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.forwarder import ForwarderConfig
from protocol.merkle import leaf_hash, verify_inclusion
from protocol.receipts import SignedReceipt
from tests.support.logs import parse as _unused  # noqa: F401 - keeps the helper importable
from tests.support.net import HOUR, Net, start_net

ALL = ("ke-police", "ke-fiu", "fr-police")


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = await start_net(tmp_path, queue=ForwarderConfig(sweep_interval_s=3600.0, backoff_base_ms=2_000, backoff_cap_ms=180_000))
    try:
        yield n
    finally:
        await n.close()


async def test_routing_fan_out_and_receipts_back_to_the_origin(net: Net) -> None:
    env = net.seal("int-org", [("action", ["summary", "details"], ["ke-police"]), ("inform", ["summary"], ["fr-police", "ke-fiu"])])
    (first,) = await net.submit("int-org", [env])
    assert first.event == "accepted" and first.hop == "gw-eu" and first.log_index is not None
    await net.drain()
    for node in ALL:
        assert list(net.nodes[node].delivered) == [env.message_id], node
    # gw-eu delivered fr-police itself and sent ONE copy to gw-af for both Kenyan recipients.
    gw_af = net.gateways["gw-af"].ctx
    rows = await gw_af.reader._db.execute_fetchall("SELECT peer FROM messages WHERE message_id = ?", (env.message_id,))
    assert [r[0] for r in rows] == ["gw-eu"]
    events = set(net.nodes["int-org"].events_for(env.message_id))
    assert {("gw-eu", "accepted"), ("gw-eu", "relayed"), ("gw-eu", "delivered"), ("gw-af", "accepted"), ("gw-af", "delivered")} <= events
    assert {("ke-police", "accepted"), ("ke-fiu", "accepted"), ("fr-police", "accepted")} <= events
    # Every receipt a gateway issued is in its log, provably.
    for name, hop in net.gateways.items():
        cp = parse_cp(await hop.ctx.log.checkpoint(), hop)
        for raw in net.nodes["int-org"].receipt_bytes:
            r = SignedReceipt.from_bytes(raw).receipt
            if r.hop == name and r.log_index is not None:
                proof = await hop.ctx.log.inclusion_proof(r.log_index, cp.size)
                verify_inclusion(r.log_index, cp.size, leaf_hash(raw), proof, cp.root)


def parse_cp(note: str, hop: object) -> object:
    from protocol.checkpoint import NoteVerifier, open_checkpoint

    ctx = hop.ctx  # type: ignore[attr-defined]
    return open_checkpoint(note, NoteVerifier.from_vkey(ctx.roster.member(ctx.me).log_vkey))


async def test_retries_get_the_original_receipt_byte_for_byte(net: Net) -> None:
    env = net.seal("ke-police", [("all", ["summary", "details"], ["int-org"])])
    from protocol.batch import BatchItem, BatchResults, EnvelopeBatch

    body = EnvelopeBatch(items=(BatchItem(envelope=env.to_bytes(), recipients=("int-org",)),)).to_bytes()
    answers = [await net.post("ke-police", "gw-af", "/v1/envelopes", body) for _ in range(3)]
    assert all(status == 200 for status, _ in answers)
    results = {BatchResults.from_bytes(b).results[0] for _, b in answers}
    assert len(results) == 1
    await net.drain()
    assert len(net.nodes["int-org"].delivered[env.message_id]) == 1


async def test_outage_backoff_priority_order_and_expiry(net: Net) -> None:
    police = net.nodes["ke-police"]
    police.refuse = True
    routine = net.seal("int-org", [("a", ["summary", "details"], ["ke-police"])], priority="ROUTINE", seed="routine")
    flash = net.seal("int-org", [("a", ["summary", "details"], ["ke-police"])], priority="FLASH", seed="flash")
    short = net.seal("int-org", [("a", ["summary", "details"], ["ke-police"])], priority="IMMEDIATE", ttl=60_000, seed="short")
    await net.submit("int-org", [routine])
    await net.submit("int-org", [flash, short])
    await net.drain()
    assert police.delivered == {}
    events = net.nodes["int-org"].events_for(flash.message_id)
    assert ("gw-af", "delayed") in events
    assert events.count(("gw-af", "delayed")) == 1, "one delayed receipt per copy, not one per sweep"
    delayed = next(r for r in net.nodes["int-org"].receipts if r.event == "delayed" and r.message_id == flash.message_id)
    assert delayed.retry_until == flash.header.expires
    async with aiohttp.ClientSession() as session, session.get(net.fed.roster.member("gw-af").endpoint + "/v1/destinations") as resp:
        status = await resp.json()
    dest = next(d for d in status["destinations"] if d["destination"] == "ke-police")
    assert dest["state"] == "backing-off" and dest["failures"] >= 1 and dest["next_retry_at"] > net.clock.now_ms()
    assert dest["backlog"] == {"FLASH": 1, "IMMEDIATE": 1, "ROUTINE": 1} and "503" in dest["last_error"]
    # Back-off holds: nothing is retried before next_retry_at, even when swept.
    failures = dest["failures"]
    await net.drain()
    async with aiohttp.ClientSession() as session, session.get(net.fed.roster.member("gw-af").endpoint + "/v1/destinations") as resp:
        assert next(d for d in (await resp.json())["destinations"] if d["destination"] == "ke-police")["failures"] == failures
    # The short message expires while queued: an "expired" receipt, never delivered, ciphertext purged.
    await net.clock.advance(61_000)
    await net.drain()
    await net.drain()
    assert net.nodes["int-org"].events_for(flash.message_id).count(("gw-af", "delayed")) == 1
    assert ("gw-af", "expired") in net.nodes["int-org"].events_for(short.message_id)
    rows = await net.gateways["gw-af"].ctx.reader._db.execute_fetchall("SELECT envelope FROM messages WHERE message_id = ?", (short.message_id,))
    assert rows[0][0] is None
    # The node comes back; everything left is delivered, FLASH before ROUTINE.
    police.refuse = False
    await net.clock.advance(HOUR // 6)
    await net.drain()
    assert list(police.delivered) == [flash.message_id, routine.message_id]
    assert short.message_id not in police.delivered


async def test_a_copy_that_expired_between_sweeps_is_never_sent(net: Net) -> None:
    """Sends and housekeeping run side by side: the send path itself skips expired copies."""
    police = net.nodes["ke-police"]
    police.refuse = True
    short = net.seal("int-org", [("a", ["summary", "details"], ["ke-police"])], priority="FLASH", ttl=60_000, seed="brief")
    await net.submit("int-org", [short])
    await net.drain()
    assert police.delivered == {}
    police.refuse = False
    await net.clock.advance(HOUR // 6)  # past the expiry and past any back-off
    gw = net.gateways["gw-af"]
    now = net.clock.now_ms()
    assert await gw.ctx.reader.due_lanes(now, ["ke-police"]) == []
    assert await gw.ctx.reader.next_batch("ke-police", 0, "envelope", now, 50) == []
    await gw.forwarder.dispatch(now)  # a wake-up before the expiry sweep has run: nothing to send
    await asyncio.gather(*list(gw.forwarder._tasks))
    assert police.delivered == {} and police.batch_sizes == []
    await net.drain()  # the sweep ends the copy
    events = net.nodes["int-org"].events_for(short.message_id)
    assert ("gw-af", "expired") in events and ("gw-af", "delivered") not in events and police.delivered == {}


async def test_peer_contact_resets_backoff(net: Net) -> None:
    fiu = net.nodes["ke-fiu"]
    fiu.refuse = True
    env = net.seal("int-org", [("a", ["summary", "details"], ["ke-fiu"])])
    await net.submit("int-org", [env])
    await net.drain()
    assert fiu.delivered == {}
    fiu.refuse = False
    # ke-fiu talks to its gateway (it sends an alert of its own): its queue flushes at once.
    await net.submit("ke-fiu", [net.seal("ke-fiu", [("a", ["summary", "details"], ["int-org"])], seed="hello")])
    await net.drain()
    assert list(fiu.delivered) == [env.message_id]


async def test_metrics_health_and_destinations(net: Net) -> None:
    await net.submit("int-org", [net.seal("int-org", [("a", ["summary", "details"], ["fr-police"])])])
    await net.drain()
    base = net.fed.roster.member("gw-eu").endpoint
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/healthz") as resp:
            assert resp.status == 200
        async with session.get(base + "/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["ready"] is True
        async with session.get(base + "/metrics") as resp:
            text = await resp.text()
        assert "heliograph_envelopes_accepted_total 1.0" in text and "heliograph_envelopes_delivered_total 1.0" in text
        async with session.get(base + "/v1/destinations") as resp:
            body = await resp.json()
    assert any(d["destination"] == "fr-police" and d["state"] == "ok" and d["last_success_at"] for d in body["destinations"])
    json.dumps(body)


async def test_a_peer_taking_smaller_batches_gets_them_without_delay(net: Net) -> None:
    """The receiver's max_batch is smaller than ours: halve and resend at once, no back-off, nothing delayed."""
    net.nodes["fr-police"].max_batch = 3
    envs = [net.seal("int-org", [("all", ["summary", "details"], ["fr-police"])], seed=f"small-{i}") for i in range(10)]
    await net.submit("int-org", envs)
    await net.drain()
    stand_in = net.nodes["fr-police"]
    assert sorted(stand_in.delivered) == sorted(e.message_id for e in envs)
    assert all(len(v) == 1 for v in stand_in.delivered.values()), "each copy delivered exactly once"
    sizes = stand_in.batch_sizes  # the first send may see only part of the 10 if they were committed in two batches
    refused = [i for i, n in enumerate(sizes) if n > 3]
    assert refused, "the first request was too big"
    assert all(sizes[i + 1] <= sizes[i] // 2 for i in refused), f"halved after each refusal: {sizes}"
    assert sum(n for n in sizes if n <= 3) == 10, "every copy went exactly once in an accepted request"
    events = {event for _hop, event in (e for m in envs for e in net.nodes["int-org"].events_for(m.message_id))}
    assert "delayed" not in events and "delivered" in events
    (status,) = [d for d in await net.gateways["gw-eu"].ctx.reader.destinations() if d.destination == "fr-police"]
    assert status.failures == 0


async def test_a_copy_the_peer_refuses_on_its_own_is_rejected_not_retried_forever(net: Net) -> None:
    net.nodes["fr-police"].max_batch = 0
    env = net.seal("int-org", [("all", ["summary", "details"], ["fr-police"])], seed="poison")
    await net.submit("int-org", [env])
    await net.drain()
    assert net.nodes["fr-police"].delivered == {}
    rejected = [r for r in net.nodes["int-org"].receipts if r.message_id == env.message_id and r.event == "rejected"]
    assert [(r.hop, r.peer, r.reason) for r in rejected] == [("gw-eu", "fr-police", "E_TOO_LARGE")]
    rows = await net.gateways["gw-eu"].ctx.reader._db.execute_fetchall("SELECT state FROM outbox WHERE kind = 'envelope' AND destination = 'fr-police'")
    assert [r[0] for r in rows] == ["rejected"]


async def test_queue_depth_gauge_returns_to_zero_when_a_lane_drains(net: Net) -> None:
    from prometheus_client import generate_latest

    net.nodes["fr-police"].refuse = True
    env = net.seal("int-org", [("all", ["summary", "details"], ["fr-police"])], seed="depth")
    await net.submit("int-org", [env])
    await net.drain()
    line = 'heliograph_queue_depth{destination="fr-police",lane="FLASH"}'
    metrics = net.gateways["gw-eu"].ctx.metrics
    assert f"{line} 1.0" in generate_latest(metrics.registry).decode()
    net.nodes["fr-police"].refuse = False
    net.clock.advance(HOUR // 2)  # past any back-off
    await net.drain()
    assert f"{line} 0.0" in generate_latest(metrics.registry).decode()


async def test_a_rate_limited_copy_is_retried_not_lost(net: Net) -> None:
    """A next hop that answers E_RATE_LIMITED is shedding load: the copy is delayed and retried, never ended."""
    stand_in = net.nodes["fr-police"]
    stand_in.reject_with = "E_RATE_LIMITED"
    env = net.seal("int-org", [("all", ["summary", "details"], ["fr-police"])], seed="throttled")
    await net.submit("int-org", [env])
    await net.drain()
    events = net.nodes["int-org"].events_for(env.message_id)
    assert ("gw-eu", "delayed") in events and ("gw-eu", "rejected") not in events
    assert stand_in.delivered == {}
    # The peer answered, so the destination itself is healthy (its success is applied after the
    # row's failure in the same commit); only the deferred copy waits for its own retry time.
    status = {d.destination: d for d in await net.gateways["gw-eu"].ctx.reader.destinations()}["fr-police"]
    assert (status.failures, status.backoff_until, status.backlog) == (0, 0, {"FLASH": 1})
    assert status.last_success_at is not None and "E_RATE_LIMITED" in (status.last_error or "")
    stand_in.reject_with = None
    net.clock.advance(HOUR // 4)  # past the back-off
    await net.drain()
    assert list(stand_in.delivered) == [env.message_id]
    assert ("gw-eu", "delivered") in net.nodes["int-org"].events_for(env.message_id)
