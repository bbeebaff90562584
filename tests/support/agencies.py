"""Real nodes and gateways in one process on 127.0.0.1, sharing a FakeClock (integration tests of issue 5).

``start_agencies`` starts gw-eu and gw-af and four real agency nodes
(int-org and fr-police at gw-eu, ke-police and ke-fiu at gw-af), each with an
officer, a supervisor and an auditor account and an API token per account, and
returns an :class:`Agencies` with an HTTP helper per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from gateway.app import Hop, create_app, open_hop
from gateway.config import parse_config
from node.app import create_node_app
from node.config import parse_node_config
from node.service import Node
from tests.support.clock import FakeClock
from tests.support.federation import T0, Federation, SeededRng, build_federation
from tests.support.net import OPEN_POLICY, free_port, loopback_server

GATEWAYS = ("gw-af", "gw-eu")
NODES = (("int-org", "gw-eu"), ("fr-police", "gw-eu"), ("ke-police", "gw-af"), ("ke-fiu", "gw-af"))
ROLES = ("officer", "supervisor", "auditor")
PASSWORD = "correct horse battery staple"


@dataclass
class Agencies:
    fed: Federation
    clock: FakeClock
    gateways: dict[str, Hop]
    nodes: dict[str, Node]
    servers: dict[str, TestServer]
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    """(node, role) -> API token."""
    session: aiohttp.ClientSession | None = None

    def url(self, member: str) -> str:
        return self.fed.roster.member(member).endpoint

    async def call(self, node: str, method: str, path: str, *, role: str = "officer", json: Any = None, token: str | None = None) -> tuple[int, Any]:
        assert self.session is not None
        headers = {"Authorization": f"Bearer {token or self.tokens[(node, role)]}"}
        async with self.session.request(method, self.url(node) + path, json=json, headers=headers) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    async def settle(self, rounds: int = 8) -> None:
        """Forward until quiet: every hop's forwarder drains, every node decides what is due."""
        for _ in range(rounds):
            for hop in (*self.gateways.values(), *(n.hop for n in self.nodes.values())):
                await hop.forwarder.drain()
            for node in self.nodes.values():
                await node.run_due()

    async def advance(self, ms: int) -> None:
        await self.clock.advance(ms)
        await self.settle()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        for server in self.servers.values():
            await server.close()
        for node in self.nodes.values():
            await node.close()
        for hop in self.gateways.values():
            await hop.close()


async def start_node(a: Agencies, tmp: Path, member: str, port: int, *, users: bool = True) -> Node:
    doc = {
        "hop": {"id": member, "listen": f"127.0.0.1:{port}", "data_dir": str(tmp / member), "roster": "unused", "key_file": "unused"},
        "node": {"kdf": "min", "tick_s": 60, "retention": "1h"},
        "queue": {"sweep_interval_s": 3600.0},
    }
    config = parse_node_config(doc, base=tmp)
    node = await Node.open(config, clock=a.clock, rng=SeededRng(f"{member}-rng"), keys=a.fed.keys[member], roster=a.fed.roster)
    server = a.servers[member] = loopback_server(create_node_app(node, close_on_cleanup=False), port)
    a.nodes[member] = node
    await server.start_server()
    for role in ROLES if users else ():
        username = f"{role}-{member}"
        await node.accounts.add_user(username, role, PASSWORD, now_ms=a.clock.now_ms())
        a.tokens[(member, role)] = await node.accounts.create_token(username, "tests", now_ms=a.clock.now_ms())
    return node


async def start_agencies(tmp: Path, *, seed: str = "agencies") -> Agencies:
    ports = {name: free_port() for name in (*GATEWAYS, *(n for n, _ in NODES))}
    fed = build_federation(seed, gateways=GATEWAYS, nodes=NODES)
    fed.roster = replace(fed.roster, members=tuple(replace(m, endpoint=f"http://127.0.0.1:{ports[m.id]}") for m in fed.roster.members))
    a = Agencies(fed=fed, clock=FakeClock(T0), gateways={}, nodes={}, servers={})
    try:
        for gw in GATEWAYS:
            config = parse_config(
                {
                    "hop": {"id": gw, "listen": f"127.0.0.1:{ports[gw]}", "data_dir": str(tmp / gw), "roster": "unused", "key_file": "unused"},
                    "queue": {"sweep_interval_s": 3600.0},
                    "policy": OPEN_POLICY,
                },
                base=tmp,
            )
            hop = a.gateways[gw] = await open_hop(config, clock=a.clock, rng=SeededRng(f"{gw}-rng"), keys=fed.keys[gw], roster=fed.roster)
            server = a.servers[gw] = loopback_server(create_app(hop, close_on_cleanup=False), ports[gw])
            await server.start_server()
        for member, _home in NODES:
            await start_node(a, tmp, member, ports[member])
        a.session = aiohttp.ClientSession()
    except BaseException:
        await a.close()
        raise
    return a


def alert_body(**overrides: Any) -> dict[str, Any]:
    """A tiered FLASH alert from int-org: action (fr-police, all), inform (ke-fiu, summary), escalation (ke-police)."""
    body: dict[str, Any] = {
        "category": "Security",
        "event": "Armed robbery suspects crossing border",
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Likely",
        "priority": "FLASH",
        "tlp": "TLP:AMBER",
        "expires": {"ttl": "6h"},
        "sections": {
            "headline": "Suspects heading north on the A1",
            "summary": "Three suspects in a grey van.",
            "details": "Plate FR-123-AB; armed.",
            "instructions": "Stop and hold; call the duty desk.",
        },
        "tiers": [
            {
                "name": "action",
                "recipients": ["fr-police"],
                "sections": ["summary", "details", "instructions"],
                "ack_deadline": "15m",
                "escalate_if_unacked": {"tier": "escalation", "after": "10m"},
            },
            {"name": "inform", "recipients": ["ke-fiu"], "sections": ["summary"]},
            {"name": "escalation", "recipients": ["ke-police"], "sections": ["summary", "details"]},
        ],
    }
    body.update(overrides)
    return body


__all__ = ["PASSWORD", "T0", "Agencies", "alert_body", "start_agencies"]
