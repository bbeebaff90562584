"""Durability: SIGKILL a real gateway process while 1,000 envelopes stream through it.

Every envelope the gateway answered "accepted" must reach the recipient
application exactly once (the application dedupes by message id; the wire is
at-least-once), and the gateway's log must verify, before and after the crash.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from gateway.log_verifier import verify_log
from protocol import envelope as env_mod
from protocol.batch import BatchItem, BatchResults, EnvelopeBatch
from protocol.receipts import SignedReceipt
from protocol.transport import sign_request
from tests.support.federation import SeededRng
from tests.support.net import StandInNode, loopback_server
from tests.support.procs import GatewayProcess, wall_ms, write_federation

TOTAL = 1000
BATCH = 10


class WallClock:
    def now_ms(self) -> int:
        return wall_ms()


async def _send(session: aiohttp.ClientSession, fed: object, url: str, body: bytes, rng: SeededRng) -> list[bytes] | None:
    keys = fed.keys["int-org"]  # type: ignore[attr-defined]
    auth = sign_request(keys, method="POST", path="/v1/envelopes", query="", destination="gw-eu", body=body, now=wall_ms(), nonce=rng(16))
    try:
        async with session.post(url + "/v1/envelopes", data=body, headers={"Authorization": auth, "Content-Type": "application/x-msgpack"}) as resp:
            if resp.status != 200:
                return None
            return list(BatchResults.from_bytes(await resp.read()).results)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None


async def test_sigkill_while_streaming_loses_nothing_accepted(tmp_path: Path) -> None:
    fed, ports = write_federation(tmp_path, "crash", nodes=(("int-org", "gw-eu"), ("fr-police", "gw-eu")))
    recipient = StandInNode(keys=fed.keys["fr-police"], roster=fed.roster, clock=WallClock())  # type: ignore[arg-type]
    server = loopback_server(recipient.app(), ports["fr-police"])
    await server.start_server()
    gw = GatewayProcess(tmp_path, "gw-eu")
    gw.start()
    url = f"http://127.0.0.1:{ports['gw-eu']}"
    rng = SeededRng("crash-client")
    now = wall_ms()
    envelopes = [
        env_mod.seal(
            sender=fed.keys["int-org"],
            roster=fed.roster,
            tiers=[env_mod.Tier(name="all", sections=("summary",), recipients=("fr-police",))],
            sections={"summary": f"alert {i}".encode()},
            priority="IMMEDIATE",
            label="TLP:GREEN",
            now=now,
            expires=now + 3_600_000,
            rng=SeededRng(f"e{i}"),
        )
        for i in range(TOTAL)
    ]
    accepted: set[bytes] = set()
    killed = restarted = False
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            i = 0
            deadline = time.monotonic() + 120
            while i < TOTAL and time.monotonic() < deadline:
                chunk = envelopes[i : i + BATCH]
                body = EnvelopeBatch(items=tuple(BatchItem(envelope=e.to_bytes(), recipients=("fr-police",)) for e in chunk)).to_bytes()
                if not killed and i >= 400:
                    # Fire a batch and kill the gateway while it is being handled.
                    pending = asyncio.create_task(_send(session, fed, url, body, rng))
                    await asyncio.sleep(0.005)
                    gw.kill()
                    killed = True
                    results = await pending
                else:
                    results = await _send(session, fed, url, body, rng)
                if results is None:
                    if killed and not restarted:
                        gw.start()
                        restarted = True
                    await asyncio.sleep(0.1)
                    continue  # retry the same batch: dedup makes it safe
                for raw in results:
                    receipt = SignedReceipt.from_bytes(raw).verify(fed.roster)
                    assert receipt.event == "accepted", receipt
                    accepted.add(receipt.message_id)
                i += BATCH
            assert i >= TOTAL, "the stream did not finish in time"
            assert killed and restarted
        # Wait (bounded) for the gateway to deliver everything it accepted.
        deadline = time.monotonic() + 60
        while not accepted <= set(recipient.delivered) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(accepted) == TOTAL
        missing = accepted - set(recipient.delivered)
        assert not missing, f"{len(missing)} accepted envelopes never delivered"
        # At-least-once on the wire, exactly once for the application (dedup by message id).
        assert set(recipient.delivered) == accepted
        report = await verify_log(url, fed.roster.member("gw-eu").log_vkey)
        assert any("recomputed root matches" in line for line in report.lines)
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            assert gw.stop() == 0, gw.log.read_text()[-3000:]
        await server.close()
