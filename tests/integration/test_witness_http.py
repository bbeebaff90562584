"""A witness against real gateways on 127.0.0.1: it cosigns their logs, hops can check k of n,
and a receipt edited in a hop's SQLite file is flagged, with its index, by the witness and by
``heliograph log verify`` alike."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nacl.signing
import pytest
from aiohttp.test_utils import TestServer

from gateway.forwarder import ForwarderConfig
from gateway.log_verifier import LogVerificationError, verify_log
from gateway.witness import Witness, create_witness_app, verify_cosignatures
from gateway.witness_store import AlarmKind, Health, WitnessKey, WitnessStore, parse_witness_config, read_witness_key
from node.witness_cli import register
from tests.support.net import Net, start_net

W_KEY = WitnessKey(name="oversight.example/w1", signer=nacl.signing.SigningKey(hashlib.sha256(b"integration witness").digest()))
W2_KEY = WitnessKey(name="oversight.example/w2", signer=nacl.signing.SigningKey(hashlib.sha256(b"integration witness 2").digest()))
GATEWAYS = ("gw-af", "gw-eu")


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = await start_net(tmp_path / "net", queue=ForwarderConfig(sweep_interval_s=3600.0))
    try:
        for i in range(3):  # receipts in both gateways' logs
            env = n.seal("int-org", [("all", ["summary", "details"], ["ke-police", "fr-police"])], seed=f"w{i}")
            await n.submit("int-org", [env])
            await n.drain()
        yield n
    finally:
        await n.close()


def witness_config(net: Net, tmp: Path, name: str, *, audit: str = "full") -> dict[str, object]:
    logs = [{"vkey": net.fed.roster.member(gw).log_vkey, "url": net.fed.roster.member(gw).endpoint} for gw in GATEWAYS]
    return {"witness": {"name": name, "key_file": "unused", "state_dir": f"state-{name.rsplit('/', 1)[1]}", "audit": audit, "logs": logs}}


async def open_witness(net: Net, tmp: Path, key: WitnessKey, *, audit: str = "full") -> Witness:
    return await Witness.open(parse_witness_config(witness_config(net, tmp, key.name, audit=audit), base=tmp), clock=net.clock, key=key)


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def test_two_witnesses_cosign_real_logs_and_a_hop_checks_two_of_two(net: Net, tmp_path: Path) -> None:
    witnesses = [await open_witness(net, tmp_path, W_KEY), await open_witness(net, tmp_path, W2_KEY, audit="new")]
    servers = [TestServer(create_witness_app(w), host="127.0.0.1") for w in witnesses]
    for server in servers:
        await server.start_server()
    try:
        for w in witnesses:
            await w.poll_once()
            assert {o: s.health for o, s in w.states.items()} == {"heliograph/gw-af": Health.OK, "heliograph/gw-eu": Health.OK}
        # A hop gathers the cosigned notes of its own checkpoint over HTTP and requires 2 of 2.
        vkey = net.fed.roster.member("gw-af").log_vkey
        notes = []
        for server in servers:
            status, note = await fetch(str(server.make_url("/v1/witness/cosignatures/heliograph/gw-af")))
            assert status == 200
            notes.append(note)
        from gateway.witness import merge_cosignatures

        merged = merge_cosignatures(notes)
        verify_cosignatures(merged, vkey, [W_KEY.vkey, W2_KEY.vkey], 2)
        served = (await fetch(net.fed.roster.member("gw-af").endpoint + "/v1/log/checkpoint"))[1]
        assert merged.startswith(served[: served.index("\n\n") + 2])
    finally:
        for server in servers:
            await server.close()
        for w in witnesses:
            w.close()


async def test_receipt_edited_on_disk_is_flagged_by_the_witness_and_by_log_verify(net: Net, tmp_path: Path) -> None:
    witness = await open_witness(net, tmp_path, W_KEY)
    await witness.poll_once()
    size = witness.states["heliograph/gw-af"].tree().size  # type: ignore[union-attr]
    assert size >= 3
    bad = size // 2
    with sqlite3.connect(tmp_path / "net" / "gw-af" / "hop.db") as conn:
        (data,) = conn.execute("SELECT data FROM log_leaves WHERE idx = ?", (bad,)).fetchone()
        conn.execute("UPDATE log_leaves SET data = ? WHERE idx = ?", (data[:-1] + bytes([data[-1] ^ 1]), bad))
    await witness.poll_once()
    (alarm,) = witness.states["heliograph/gw-af"].alarms
    assert (alarm.kind, alarm.index) == (AlarmKind.TAMPERED_LEAF, bad)
    assert alarm.message.startswith("hop heliograph/gw-af: ") and f"entry {bad} does not match" in alarm.message
    assert witness.states["heliograph/gw-eu"].health is Health.OK
    assert witness.in_alarm() == ["heliograph/gw-af"]
    with pytest.raises(LogVerificationError, match=f"entry {bad} does not match"):
        await verify_log(net.fed.roster.member("gw-af").endpoint, net.fed.roster.member("gw-af").log_vkey)
    witness.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heliograph")
    register(parser.add_subparsers(dest="command"))
    return parser


async def _cli(*args: str) -> tuple[int, str, str]:
    """Run the witness commands in a child process, with node.cli's error printing (until node.cli registers them)."""
    code = """import argparse, sys
from node.witness_cli import register
from protocol.errors import HeliographError
p = argparse.ArgumentParser(prog="heliograph")
register(p.add_subparsers())
a = p.parse_args(sys.argv[1:])
try:
    sys.exit(a.handler(a))
except HeliographError as exc:
    print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
    sys.exit(1)
"""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_keygen_run_once_status_and_clear(net: Net, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["witness", "keygen", "--name", "oversight.example/cli", "--out", str(tmp_path / "keys")])
    assert args.handler(args) == 0
    key = read_witness_key(tmp_path / "keys" / "witness.key")
    assert capsys.readouterr().out.strip().splitlines()[-1] == key.vkey == (tmp_path / "keys" / "witness.vkey").read_text().strip()

    doc = witness_config(net, tmp_path, key.name)["witness"]
    assert isinstance(doc, dict)
    lines = [f"{k} = {json.dumps(v)}" for k, v in doc.items() if k not in ("logs", "key_file")]
    logs = "".join(f'[[witness.logs]]\nvkey = "{e["vkey"]}"\nurl = "{e["url"]}"\n' for e in doc["logs"])
    config = tmp_path / "witness.toml"
    config.write_text("[witness]\n" + "\n".join(lines) + '\nkey_file = "keys/witness.key"\n' + logs)

    code, out, _ = await _cli("witness", "run", "--config", str(config), "--once")
    assert code == 0 and "no alarm" in out
    # A receipt edited in gw-eu's file: the cron-style round exits 1 and logs the alarm as JSON.
    store = WitnessStore(tmp_path / doc["state_dir"])  # type: ignore[operator]
    state = store.load("heliograph/gw-eu")
    with sqlite3.connect(tmp_path / "net" / "gw-eu" / "hop.db") as conn:
        conn.execute("UPDATE log_leaves SET data = ? WHERE idx = 0", (b"forged",))
    code, out, err = await _cli("witness", "run", "--config", str(config), "--once")
    assert code == 1 and "ALARM" in out and '"event": "witness_alarm"' in err and '"kind": "tampered_leaf"' in err and '"index": 0' in err
    assert store.load("heliograph/gw-eu").alarms and store.load("heliograph/gw-eu").checkpoint == state.checkpoint

    witness = await Witness.open(parse_witness_config({"witness": {**doc, "key_file": "keys/witness.key"}}, base=tmp_path), clock=net.clock)
    server = TestServer(create_witness_app(witness), host="127.0.0.1")
    await server.start_server()
    try:
        code, out, _ = await _cli("witness", "status", "--url", str(server.make_url("/")))
        assert code == 1 and "ALARM tampered_leaf" in out and "OK       heliograph/gw-af" in out
        code, out, _ = await _cli("witness", "status", "--url", str(server.make_url("/")), "--json")
        assert json.loads(out)["witness"] == "oversight.example/cli"
        code, out, _ = await _cli("witness", "clear", "--config", str(config), "--log", "heliograph/gw-eu")
        assert code == 0 and "next round" in out  # the running witness holds the state directory
    finally:
        await server.close()
        witness.close()
    assert store.load("heliograph/gw-eu").alarms  # not applied yet: nobody ran a round
    code, out, _ = await _cli("witness", "clear", "--config", str(config), "--log", "heliograph/gw-eu")
    assert code == 0 and out.strip() == "heliograph/gw-eu: alarms cleared"
    assert not store.load("heliograph/gw-eu").alarms
    code, _, err = await _cli("witness", "clear", "--config", str(config), "--log", "heliograph/nobody")
    assert code == 1 and "E_NOT_FOUND" in err
    code, _, err = await _cli("witness", "status", "--url", "http://127.0.0.1:9")
    assert code == 1 and "E_UNREACHABLE" in err
