"""A running gateway adopts a verified next roster version from its file, without a restart, and refuses a forged one."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

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
        assert "heliograph_roster_version 1.0" in hop.ctx.metrics.render()[0].decode()
        members = tuple(replace(m, display_name="Interpol (renamed)") if m.id == "int-org" else m for m in fed.roster.members)
        v2 = replace(fed.roster, version=2, issued=fed.roster.issued + 1, members=members)
        write_file_atomic(config.roster_path, SignedRoster.sign(v2, fed.authority_keys[:2]).to_bytes())
        for _ in range(100):
            await clock.advance(250)
            await asyncio.sleep(0.01)  # the watcher reads the file in a worker thread
            if hop.ctx.roster.version == 2:
                break
        assert hop.ctx.roster.version == 2 and hop.ctx.roster.member("int-org").display_name == "Interpol (renamed)"
        from prometheus_client.parser import text_string_to_metric_families

        samples = {s.name: s.value for f in text_string_to_metric_families(hop.ctx.metrics.render()[0].decode()) for s in f.samples}
        assert samples["heliograph_roster_version"] == 2, "the metrics follow the adopted roster at once"
        assert samples["heliograph_roster_expires_timestamp_seconds"] == pytest.approx(v2.expires / 1000)
        forged = replace(v2, version=3, issued=v2.issued + 1)
        write_file_atomic(config.roster_path, SignedRoster.sign(forged, fed.authority_keys[2:]).to_bytes())  # one signature, threshold 2
        for _ in range(20):
            await clock.advance(250)
            await asyncio.sleep(0.01)
        assert hop.ctx.roster.version == 2
    finally:
        await hop.close()
