"""A gateway process serving TLS ([tls]) and delivering over TLS to a node that only speaks TLS."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import trustme

from gateway.log_verifier import verify_log
from protocol.batch import BatchResults
from protocol.receipts import SignedReceipt
from protocol.roster import SignedRoster
from tests.support.net import StandInNode, loopback_server, seal_for, signed_batch
from tests.support.procs import GatewayProcess, wall_ms, write_federation

TLS_MEMBERS = ("gw-eu", "fr-police")


class WallClock:
    def now_ms(self) -> int:
        return wall_ms()


def _tls_files(tmp: Path, ca: trustme.CA) -> None:
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_pem.write_to_path(str(tmp / "tls.key"))
    (tmp / "tls.key").chmod(0o600)
    (tmp / "tls.crt").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))


async def test_a_gateway_serves_and_forwards_over_verified_tls(tmp_path: Path) -> None:
    fed, ports = write_federation(tmp_path, "tls", nodes=(("int-org", "gw-eu"), ("fr-police", "gw-eu")))
    fed.roster = replace(
        fed.roster,
        members=tuple(replace(m, endpoint=m.endpoint.replace("http://", "https://")) if m.id in TLS_MEMBERS else m for m in fed.roster.members),
    )
    (tmp_path / "roster.bin").write_bytes(SignedRoster.sign(fed.roster, fed.authority_keys[:2]).to_bytes())
    ca = trustme.CA()
    _tls_files(tmp_path, ca)
    with (tmp_path / "gw-eu.toml").open("a") as fh:
        fh.write('\n[tls]\ncert = "tls.crt"\nkey = "tls.key"\nca = "ca.pem"\n')

    node_leaf = ca.issue_cert("127.0.0.1")
    node_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    node_leaf.configure_cert(node_tls)
    recipient = StandInNode(keys=fed.keys["fr-police"], roster=fed.roster, clock=WallClock())  # type: ignore[arg-type]
    server = loopback_server(recipient.app(), ports["fr-police"])
    await server.start_server(ssl=node_tls)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    gw = GatewayProcess(tmp_path, "gw-eu")
    gw.start()
    url = fed.roster.member("gw-eu").endpoint
    try:
        assert url.startswith("https://")
        env = seal_for(fed, "int-org", ["fr-police"], {"summary": b"over TLS"}, now=wall_ms(), seed="tls-envelope")
        body, headers = signed_batch(fed, "int-org", "gw-eu", [env], now=wall_ms())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
            async with session.post(url + "/v1/envelopes", data=body, headers=headers) as resp:
                assert resp.status == 200
                (raw,) = BatchResults.from_bytes(await resp.read()).results
            assert SignedReceipt.from_bytes(raw).verify(fed.roster).event == "accepted"
            # The gateway verifies the node's certificate against [tls] ca and delivers over TLS.
            deadline = time.monotonic() + 30
            while env.message_id not in recipient.delivered and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert recipient.delivered.get(env.message_id) == [b"over TLS"]
            # Peers are verified: a client that does not trust the federation's CA cannot talk to it.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with aiohttp.ClientSession() as untrusting, untrusting.get(url + "/healthz"):
                    pass
            # And the listener speaks nothing but TLS.
            plain = url.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with session.get(plain + "/healthz", ssl=False) as answer:
                    await answer.read()
        report = await verify_log(url, fed.roster.member("gw-eu").log_vkey, tls=trusting)  # raises on any failed check
        assert report.checkpoint is not None and report.checkpoint.size >= 2
    finally:
        assert gw.stop() == 0
        await server.close()
