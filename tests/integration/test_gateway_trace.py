"""Where is this alert? ``GET /v1/messages/{id}`` and ``heliograph gateway trace|status`` against real gateways."""

from __future__ import annotations

import asyncio
import json
from unittest.mock import ANY

import aiohttp
import pytest

from node.cli import main
from tests.support.agencies import Agencies, alert_body
from tests.support.net import HOUR, Net


async def _get(net: Net, gw: str, path: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(net.fed.roster.member(gw).endpoint + path) as resp:
        return resp.status, await resp.json()


async def test_a_message_is_traced_through_an_outage_to_delivery(quiet_net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    net = quiet_net
    police = net.nodes["ke-police"]
    police.refuse = True
    env = net.seal("int-org", [("a", ["summary", "details"], ["ke-police"])], seed="traced")
    await net.submit("int-org", [env])
    await net.drain()
    mid = env.message_id.hex()

    status, doc = await _get(net, "gw-af", f"/v1/messages/{mid}")
    assert status == 200 and (doc["origin"], doc["priority"], doc["from"], doc["ciphertext"]) == ("int-org", "FLASH", "gw-eu", "held")
    (copy,) = doc["copies"]  # type: ignore[misc]
    assert (copy["destination"], copy["recipients"], copy["state"]) == ("ke-police", ["ke-police"], "queued")
    assert copy["attempts"] >= 1 and copy["next_attempt_at"] > doc["now"] and "503" in copy["last_error"] and copy["delayed_sent"]
    events = [(r["hop"], r["event"]) for r in doc["receipts"]]  # type: ignore[attr-defined]
    assert ("gw-af", "accepted") in events and ("gw-af", "delayed") in events
    assert all(r["verified"] for r in doc["receipts"])  # type: ignore[attr-defined]

    url = net.fed.roster.member("gw-af").endpoint
    assert await asyncio.to_thread(main, ["gateway", "trace", mid, "--url", url]) == 0
    out = capsys.readouterr().out
    assert f"message {mid} from int-org (FLASH)" in out and "ke-police" in out and "queued" in out and "delayed" in out
    assert await asyncio.to_thread(main, ["gateway", "status", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "ke-police" in out and "backing-off" in out and "FLASH=1" in out
    assert await asyncio.to_thread(main, ["gateway", "trace", mid.upper(), "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {**doc, "now": ANY}
    assert await asyncio.to_thread(main, ["gateway", "status", "--url", url, "--json"]) == 0
    assert {d["destination"] for d in json.loads(capsys.readouterr().out)["destinations"]} >= {"ke-police"}
    assert await asyncio.to_thread(main, ["gateway", "status", "--url", "http://127.0.0.1:9"]) == 1
    assert "error [E_UNREACHABLE]" in capsys.readouterr().err

    police.refuse = False
    await net.clock.advance(HOUR // 6)
    await net.drain()
    status, doc = await _get(net, "gw-af", f"/v1/messages/{mid}")
    assert doc["copies"][0]["state"] == "done" and doc["copies"][0]["next_attempt_at"] is None  # type: ignore[index]
    assert ("gw-af", "delivered") in [(r["hop"], r["event"]) for r in doc["receipts"]]  # type: ignore[attr-defined]
    status, origin_side = await _get(net, "gw-eu", f"/v1/messages/{mid}")
    assert status == 200 and origin_side["from"] == "int-org" and origin_side["copies"][0]["destination"] == "gw-af"  # type: ignore[index]


async def test_unknown_and_malformed_ids_get_stable_codes(quiet_net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    net = quiet_net
    status, doc = await _get(net, "gw-eu", "/v1/messages/" + "ab" * 16)
    assert status == 404 and doc["error"]["code"] == "E_NOT_FOUND"  # type: ignore[index]
    for bad in ("xyz", "AB" * 16, "ab" * 17):
        status, doc = await _get(net, "gw-eu", f"/v1/messages/{bad}")
        assert status == 400 and doc["error"]["code"] == "E_BAD_REQUEST", bad  # type: ignore[index]
    url = net.fed.roster.member("gw-eu").endpoint
    assert await asyncio.to_thread(main, ["gateway", "trace", "ab" * 16, "--url", url]) == 1
    assert "error [E_NOT_FOUND]" in capsys.readouterr().err


async def test_on_a_node_the_trace_needs_an_officer(fed: Agencies) -> None:
    status, sent = await fed.call("int-org", "POST", "/v1/alerts", json=alert_body())
    assert status == 201
    await fed.settle()
    status, doc = await fed.call("int-org", "GET", f"/v1/messages/{sent['message_id']}", role="auditor")
    assert status == 200 and doc["origin"] == "int-org" and {c["destination"] for c in doc["copies"]} == {"gw-eu"}
    assert (await fed.call("int-org", "GET", f"/v1/messages/{sent['message_id']}", token="hgt_nope"))[0] == 401
