"""Partition: a gateway process is stopped for 20 s while alerts queue behind it.

The sending gateway reports every copy ``delayed`` to the origin, delivers
everything after the restart in priority order (FLASH before IMMEDIATE before
ROUTINE), and a copy whose expiry passed during the outage ends ``expired`` and
is never delivered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from gateway.log_verifier import verify_log
from protocol import envelope as env_mod
from protocol.batch import BatchItem, BatchResults, EnvelopeBatch
from protocol.header import Envelope
from protocol.receipts import SignedReceipt
from protocol.transport import sign_request
from tests.support.federation import SeededRng
from tests.support.net import StandInNode, loopback_server
from tests.support.procs import GatewayProcess, wall_ms, write_federation

OUTAGE_S = 20.0


class WallClock:
    def now_ms(self) -> int:
        return wall_ms()


def seal(fed: object, name: str, priority: str, ttl_ms: int) -> Envelope:
    now = wall_ms()
    return env_mod.seal(
        sender=fed.keys["int-org"],  # type: ignore[attr-defined]
        roster=fed.roster,  # type: ignore[attr-defined]
        tiers=[env_mod.Tier(name="all", sections=("summary",), recipients=("ke-police",))],
        sections={"summary": name.encode()},
        priority=priority,
        label="TLP:AMBER",
        now=now,
        expires=now + ttl_ms,
        rng=SeededRng(name),
    )


async def test_a_stopped_gateway_delays_then_delivers_in_priority_order(tmp_path: Path) -> None:
    fed, ports = write_federation(tmp_path, "partition", nodes=(("int-org", "gw-eu"), ("ke-police", "gw-af")), gateways=("gw-eu", "gw-af"))
    origin = StandInNode(keys=fed.keys["int-org"], roster=fed.roster, clock=WallClock())  # type: ignore[arg-type]
    recipient = StandInNode(keys=fed.keys["ke-police"], roster=fed.roster, clock=WallClock())  # type: ignore[arg-type]
    servers = [loopback_server(origin.app(), ports["int-org"]), loopback_server(recipient.app(), ports["ke-police"])]
    for server in servers:
        await server.start_server()
    eu, af = GatewayProcess(tmp_path, "gw-eu"), GatewayProcess(tmp_path, "gw-af")
    eu.start()
    af.start()
    try:
        assert af.stop() == 0  # the partition begins
        stopped_at = time.monotonic()
        envelopes = [seal(fed, f"routine-{i}", "ROUTINE", 3_600_000) for i in range(3)]
        envelopes += [seal(fed, f"flash-{i}", "FLASH", 3_600_000) for i in range(3)]
        envelopes += [seal(fed, f"immediate-{i}", "IMMEDIATE", 3_600_000) for i in range(2)]
        doomed = seal(fed, "short-lived", "FLASH", 5_000)
        body = EnvelopeBatch(items=tuple(BatchItem(envelope=e.to_bytes(), recipients=("ke-police",)) for e in [*envelopes, doomed])).to_bytes()
        auth = sign_request(fed.keys["int-org"], method="POST", path="/v1/envelopes", query="", destination="gw-eu", body=body, now=wall_ms(), nonce=b"p" * 16)
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{ports['gw-eu']}"
            async with session.post(url + "/v1/envelopes", data=body, headers={"Authorization": auth, "Content-Type": "application/x-msgpack"}) as resp:
                assert resp.status == 200
                results = [SignedReceipt.from_bytes(r).verify(fed.roster) for r in BatchResults.from_bytes(await resp.read()).results]
            assert {r.event for r in results} == {"accepted"}
            # While the partition lasts every copy is reported delayed, and /v1/destinations shows the back-off.
            ids = {e.message_id for e in [*envelopes, doomed]}
            deadline = time.monotonic() + 15
            while {r.message_id for r in origin.receipts if r.event == "delayed" and r.hop == "gw-eu"} != ids and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert {r.message_id for r in origin.receipts if r.event == "delayed" and r.hop == "gw-eu"} == ids
            async with session.get(url + "/v1/destinations") as resp:
                (dest,) = [d for d in (await resp.json())["destinations"] if d["destination"] == "gw-af"]
            assert dest["state"] == "backing-off" and dest["failures"] >= 1 and dest["last_error"]
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
            af.start()  # the partition ends
            deadline = time.monotonic() + 30
            wanted = {e.message_id for e in envelopes}
            while not wanted <= set(recipient.delivered) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert set(recipient.delivered) == wanted, "everything but the expired copy is delivered, once"
            order = [recipient.delivered[m][0].decode() for m in recipient.delivered]
            ranks = ["flash" if o.startswith("flash") else "immediate" if o.startswith("immediate") else "routine" for o in order]
            assert ranks == sorted(ranks, key=["flash", "immediate", "routine"].index), f"arrival order {order}"
            assert doomed.message_id not in recipient.delivered
            deadline = time.monotonic() + 10
            while not any(r.message_id == doomed.message_id and r.event == "expired" for r in origin.receipts) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            (expired,) = [r for r in origin.receipts if r.message_id == doomed.message_id and r.event == "expired"]
            assert expired.hop == "gw-eu" and expired.peer == "gw-af"
            for gw in ("gw-eu", "gw-af"):
                await verify_log(f"http://127.0.0.1:{ports[gw]}", fed.roster.member(gw).log_vkey)
    finally:
        for proc in (eu, af):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()
        for server in servers:
            await server.close()
