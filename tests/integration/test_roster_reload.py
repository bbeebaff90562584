"""A running gateway adopts a verified next roster version from its file, without a restart, and refuses a forged one."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from gateway.app import open_hop
from gateway.config import load_config
from gateway.roster_watch import write_file_atomic
from protocol.roster import SignedRoster
from tests.support.clock import FakeClock
from tests.support.federation import SeededRng
from tests.support.procs import wall_ms, write_federation


async def test_gateway_adopts_v2_and_refuses_a_forged_v3(tmp_path: Path) -> None:
    fed, _ports = write_federation(tmp_path, "reload", nodes=(("int-org", "gw-eu"),))
    config = load_config(tmp_path / "gw-eu.toml")
    clock = FakeClock(wall_ms())
    hop = await open_hop(config, clock=clock, rng=SeededRng("reload"))
    try:
        assert hop.ctx.roster.version == 1
        members = tuple(replace(m, display_name="Interpol (renamed)") if m.id == "int-org" else m for m in fed.roster.members)
        v2 = replace(fed.roster, version=2, issued=fed.roster.issued + 1, members=members)
        write_file_atomic(config.roster_path, SignedRoster.sign(v2, fed.authority_keys[:2]).to_bytes())
        for _ in range(100):
            await clock.advance(250)
            await asyncio.sleep(0.01)  # the watcher reads the file in a worker thread
            if hop.ctx.roster.version == 2:
                break
        assert hop.ctx.roster.version == 2 and hop.ctx.roster.member("int-org").display_name == "Interpol (renamed)"
        forged = replace(v2, version=3, issued=v2.issued + 1)
        write_file_atomic(config.roster_path, SignedRoster.sign(forged, fed.authority_keys[2:]).to_bytes())  # one signature, threshold 2
        for _ in range(20):
            await clock.advance(250)
            await asyncio.sleep(0.01)
        assert hop.ctx.roster.version == 2
    finally:
        await hop.close()
