"""A small federation on 127.0.0.1 for integration tests: real gateways, stand-in nodes.

Gateways are the product (``gateway.app``); agency nodes are stand-ins kept in
tests (the node issue replaces them): each answers ``POST /v1/envelopes`` by
verifying, opening and recording the alert and returning a signed ``accepted``
receipt, and records what arrives on ``POST /v1/receipts``. Every clock is one
shared :class:`FakeClock`, so back-off and expiry are driven by the test.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import Hop, create_app, open_hop
from gateway.config import HopConfig, parse_config
from gateway.forwarder import ForwarderConfig
from gateway.ports import free_port
from protocol import envelope as env_mod
from protocol.batch import BatchItem, BatchResults, EnvelopeBatch, ReceiptAck, ReceiptBatch
from protocol.errors import HeliographError
from protocol.header import Envelope
from protocol.keys import MemberKeys
from protocol.receipts import Receipt, SignedReceipt
from protocol.roster import Roster
from protocol.transport import sign_request, verify_request
from tests.support.clock import FakeClock
from tests.support.federation import T0, Federation, SeededRng, build_federation

MSGPACK = "application/x-msgpack"
HOUR = 3_600_000

OPEN_POLICY: dict[str, Any] = {"max_ttl_ms": 7 * 24 * HOUR, "default": "deny", "rules": [{"action": "allow", "origins": ["*"]}]}


def _bind_loopback(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
    """aiohttp's socket factory, except that a failed bind closes its socket instead of leaking it."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def loopback_server(app: web.Application, port: int = 0) -> TestServer:
    """A real server for ``app`` on 127.0.0.1 (``port`` 0: the kernel chooses)."""
    return TestServer(app, host="127.0.0.1", port=port, socket_factory=_bind_loopback)


@dataclass
class StandInNode:
    """A recipient/origin node stand-in: records alerts and receipts it gets."""

    keys: MemberKeys
    roster: Roster
    clock: FakeClock
    delivered: dict[bytes, list[bytes]] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)
    receipt_bytes: list[bytes] = field(default_factory=list)
    refuse: bool = False
    reject_with: str | None = None
    """Answer every item with a signed ``rejected`` receipt carrying this code (e.g. E_RATE_LIMITED)."""
    max_batch: int | None = None
    """Refuse (413 E_TOO_LARGE) any envelope batch with more items than this, like a peer with a small ``max_batch``."""
    batch_sizes: list[int] = field(default_factory=list)
    server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/envelopes", self._envelopes)
        app.router.add_post("/v1/receipts", self._receipts)
        return app

    async def _auth(self, request: web.Request) -> bytes:
        body = await request.read()
        verify_request(
            request.headers.get("Authorization", ""),
            method="POST",
            path=request.rel_url.raw_path,
            query=request.rel_url.raw_query_string,
            body=body,
            me=self.keys.member_id,
            roster=self.roster,
            now=self.clock.now_ms(),
            max_skew_ms=300_000,
        )
        return body

    async def _envelopes(self, request: web.Request) -> web.Response:
        if self.refuse:
            return web.Response(status=503, text="stand-in is down")
        batch = EnvelopeBatch.from_bytes(await self._auth(request))
        self.batch_sizes.append(len(batch.items))
        if self.max_batch is not None and len(batch.items) > self.max_batch:
            return web.json_response({"error": {"code": "E_TOO_LARGE", "message": "batch too large"}}, status=413)
        results = []
        for item in batch.items:
            env = Envelope.from_bytes(item.envelope)
            if self.reject_with is not None:
                refusal = Receipt(
                    message_id=env.message_id,
                    header_digest=env.header_digest,
                    hop=self.keys.member_id,
                    hop_key=self.keys.signing_key_id,
                    event="rejected",
                    time=self.clock.now_ms(),
                    peer=self.roster.member(self.keys.member_id).home_gateway,
                    prev=item.prev,
                    reason=self.reject_with,
                )
                results.append(refusal.sign(self.keys).to_bytes())
                continue
            opened = env_mod.open(env, self.keys, self.roster, self.clock.now_ms())
            self.delivered.setdefault(env.message_id, []).append(opened.sections.get("summary", b""))
            receipt = Receipt(
                message_id=env.message_id,
                header_digest=env.header_digest,
                hop=self.keys.member_id,
                hop_key=self.keys.signing_key_id,
                event="accepted",
                time=self.clock.now_ms(),
                peer=request.headers.get("X-Peer") or self.roster.member(self.keys.member_id).home_gateway,
                prev=item.prev,
            )
            results.append(receipt.sign(self.keys).to_bytes())
        return web.Response(body=BatchResults(results=tuple(results)).to_bytes(), content_type=MSGPACK)

    async def _receipts(self, request: web.Request) -> web.Response:
        if self.refuse:
            return web.Response(status=503, text="stand-in is down")
        batch = ReceiptBatch.from_bytes(await self._auth(request))
        for raw in batch.receipts:
            self.receipts.append(SignedReceipt.from_bytes(raw).verify(self.roster))
            self.receipt_bytes.append(raw)
        return web.Response(body=ReceiptAck(stored=len(batch.receipts)).to_bytes(), content_type=MSGPACK)

    def events_for(self, message_id: bytes) -> list[tuple[str, str]]:
        return [(r.hop, r.event) for r in self.receipts if r.message_id == message_id]


@dataclass
class Net:
    fed: Federation
    clock: FakeClock
    gateways: dict[str, Hop]
    servers: dict[str, TestServer]
    nodes: dict[str, StandInNode]
    rng: SeededRng

    def seal(
        self, origin: str, tiers: Sequence[tuple[str, Sequence[str], Sequence[str]]], *, priority: str = "FLASH", ttl: int = HOUR, seed: str = "m"
    ) -> Envelope:
        now = self.clock.now_ms()
        return env_mod.seal(
            sender=self.fed.keys[origin],
            roster=self.fed.roster,
            tiers=[env_mod.Tier(name=n, sections=tuple(s), recipients=tuple(r)) for n, s, r in tiers],
            sections={"summary": f"alert {seed}".encode(), "details": b"details"},
            priority=priority,
            label="TLP:AMBER",
            now=now,
            expires=now + ttl,
            rng=SeededRng(f"{seed}-{now}"),
        )

    async def post(self, sender: str, dest: str, path: str, body: bytes, *, nonce: bytes | None = None, auth: str | None = None) -> tuple[int, bytes]:
        url = self.fed.roster.member(dest).endpoint + path
        header = auth or sign_request(
            self.fed.keys[sender], method="POST", path=path, query="", destination=dest, body=body, now=self.clock.now_ms(), nonce=nonce or self.rng(16)
        )
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers={"Authorization": header, "Content-Type": MSGPACK}) as resp:
            return resp.status, await resp.read()

    async def submit(self, origin: str, envelopes: Sequence[Envelope]) -> list[Receipt]:
        """Send envelopes from an origin node to its home gateway; return the verified results."""
        home = str(self.fed.roster.member(origin).home_gateway)
        batch = EnvelopeBatch(items=tuple(BatchItem(envelope=e.to_bytes(), recipients=e.header.recipients) for e in envelopes))
        status, body = await self.post(origin, home, "/v1/envelopes", batch.to_bytes())
        assert status == 200, body
        return [SignedReceipt.from_bytes(r).verify(self.fed.roster) for r in BatchResults.from_bytes(body).results]

    async def drain(self) -> None:
        for _ in range(6):
            for hop in self.gateways.values():
                await hop.forwarder.drain()

    async def close(self) -> None:
        for server in self.servers.values():
            await server.close()
        for hop in self.gateways.values():
            await hop.close()


async def start_net(tmp: Path, *, policy: dict[str, Any] | None = None, queue: ForwarderConfig | None = None, seed: str = "net") -> Net:
    """Start gw-af, gw-eu and four stand-in nodes on 127.0.0.1 with a shared FakeClock."""
    gateways = ("gw-af", "gw-eu")
    nodes = (("int-org", "gw-eu"), ("ke-fiu", "gw-af"), ("ke-police", "gw-af"), ("fr-police", "gw-eu"))
    ports = {name: free_port() for name in (*gateways, *(n for n, _ in nodes))}
    fed = build_federation(seed, gateways=gateways, nodes=nodes)
    from dataclasses import replace

    members = tuple(replace(m, endpoint=f"http://127.0.0.1:{ports[m.id]}") for m in fed.roster.members)
    fed.roster = replace(fed.roster, members=members)
    clock = FakeClock(T0)
    net = Net(fed=fed, clock=clock, gateways={}, servers={}, nodes={}, rng=SeededRng(seed + "-rng"))
    try:
        for gw in gateways:
            config: HopConfig = parse_config(
                {
                    "hop": {"id": gw, "listen": f"127.0.0.1:{ports[gw]}", "data_dir": str(tmp / gw), "roster": "unused", "key_file": "unused"},
                    "policy": policy or OPEN_POLICY,
                },
                base=tmp,
            )
            if queue is not None:
                config = replace(config, queue=queue)
            hop = net.gateways[gw] = await open_hop(config, clock=clock, rng=SeededRng(f"{gw}-rng"), keys=fed.keys[gw], roster=fed.roster)
            server = net.servers[gw] = loopback_server(create_app(hop, close_on_cleanup=False), ports[gw])
            await server.start_server()
        for node, _ in nodes:
            stand_in = StandInNode(keys=fed.keys[node], roster=fed.roster, clock=clock)
            server = stand_in.server = net.servers[node] = loopback_server(stand_in.app(), ports[node])
            net.nodes[node] = stand_in
            await server.start_server()
    except BaseException:
        await net.close()
        raise
    return net


def seal_for(fed: Federation, origin: str, recipients: Sequence[str], sections: dict[str, bytes], *, now: int, seed: str) -> Envelope:
    """One FLASH, TLP:AMBER envelope from ``origin``, a single tier opening every section, expiring in an hour."""
    tier, rng = env_mod.Tier(name="all", sections=tuple(sections), recipients=tuple(recipients)), SeededRng(seed)
    handling = {"priority": "FLASH", "label": "TLP:AMBER"}
    return env_mod.seal(sender=fed.keys[origin], roster=fed.roster, tiers=[tier], sections=sections, now=now, expires=now + HOUR, rng=rng, **handling)


def signed_batch(fed: Federation, sender: str, dest: str, envelopes: Sequence[Envelope], *, now: int) -> tuple[bytes, dict[str, str]]:
    """A ``POST /v1/envelopes`` body from ``sender`` to ``dest`` and its signed headers."""
    body = EnvelopeBatch(items=tuple(BatchItem(envelope=e.to_bytes(), recipients=e.header.recipients) for e in envelopes)).to_bytes()
    auth = sign_request(fed.keys[sender], method="POST", path="/v1/envelopes", query="", destination=dest, body=body, now=now, nonce=b"n" * 16)
    return body, {"Authorization": auth, "Content-Type": MSGPACK}


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


__all__ = ["HeliographError", "Net", "StandInNode", "free_port", "loopback_server", "seal_for", "signed_batch", "start_net"]
