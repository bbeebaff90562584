"""Online backups (`heliograph backup create|check`): taken from a live member, checked, restored, tampering caught."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from gateway.app import Hop, open_hop
from gateway.config import load_config
from gateway.keyfile import write_secret_keys
from node import backup
from node.cli import main
from node.config import load_node_config
from node.service import Node
from protocol.checkpoint import NoteVerifier, open_checkpoint
from protocol.errors import ConfigError
from tests.support.clock import FakeClock
from tests.support.federation import SeededRng
from tests.support.procs import wall_ms, write_federation

NOW = 1_800_000_000_000


async def _gateway(tmp: Path) -> tuple[Path, Hop]:
    write_federation(tmp, "backup", nodes=(("int-org", "gw-eu"),))
    config = tmp / "gw-eu.toml"
    hop = await open_hop(load_config(config), clock=FakeClock(wall_ms()), rng=SeededRng("backup"))
    return config, hop


def _db(directory: Path) -> Path:
    return directory / "hop.db"


def _refresh_manifest(directory: Path) -> None:
    """Re-record the files' hashes, as a careful forger would, so only the deeper checks can catch the edit."""
    manifest = json.loads((directory / "backup.json").read_text())
    for entry in manifest["files"]:
        path = directory / entry["name"]
        entry["bytes"], entry["sha256"] = path.stat().st_size, backup._sha256(path)
    (directory / "backup.json").write_text(json.dumps(manifest))


async def test_a_live_gateway_is_backed_up_checked_and_restored(tmp_path: Path) -> None:
    config, hop = await _gateway(tmp_path)
    try:
        for i in range(40):
            await hop.ctx.log.append(b"entry %d" % i)
        manifest = backup.create(config, tmp_path / "b", now_ms=NOW)  # while the hop is open and writing
        later = [await hop.ctx.log.append(b"after the backup %d" % i) for i in range(5)]
    finally:
        await hop.close()
    assert (manifest["member"], manifest["kind"], manifest["created_ms"]) == ("gw-eu", "gateway", NOW)
    assert [f["name"] for f in manifest["files"]] == ["hop.db"] and manifest["log"]["size"] == 40
    assert later == list(range(40, 45))
    assert (tmp_path / "b" / "hop.db").stat().st_mode & 0o077 == 0, "the copy holds ciphertext and receipts: owner only"
    assert backup.check(tmp_path / "b", roster_path=tmp_path / "roster.bin") == manifest
    assert not list((tmp_path / "b").glob(".*")), "no partial files left behind"

    data = load_config(config).data_dir
    for leftover in data.glob("hop.db*"):
        leftover.unlink()
    shutil.copy(_db(tmp_path / "b"), _db(data))
    restored = await open_hop(load_config(config), clock=FakeClock(wall_ms()), rng=SeededRng("restored"))
    try:
        assert await restored.ctx.log.size() == 40
        assert await restored.ctx.log.checkpoint() == manifest["log"]["checkpoint"]
        assert await restored.ctx.log.append(b"the restored hop goes on") == 40
    finally:
        await restored.close()


async def test_a_node_backup_holds_its_accounts_and_restores_them(tmp_path: Path) -> None:
    fed, _ports = write_federation(tmp_path, "backup", nodes=(("int-org", "gw-eu"),))
    write_secret_keys(tmp_path / "keys" / "int-org.key", fed.keys["int-org"])
    config = tmp_path / "int-org.toml"
    hop = 'id = "int-org"\nlisten = "127.0.0.1:1"\ndata_dir = "data/int-org"\nroster = "roster.bin"\nkey_file = "keys/int-org.key"'
    config.write_text(f'[hop]\n{hop}\n\n[node]\nkdf = "min"\n')

    async def open_node() -> Node:
        return await Node.open(load_node_config(config), clock=FakeClock(wall_ms()), rng=SeededRng("node"))

    node = await open_node()
    try:
        await node.accounts.add_user("duty-1", "officer", "correct horse battery staple", now_ms=NOW)
        manifest = backup.create(config, tmp_path / "b", now_ms=NOW)
    finally:
        await node.close()
    assert manifest["kind"] == "node" and [f["name"] for f in manifest["files"]] == ["hop.db", "accounts.db"]
    assert {"log", "hop", "node"} <= set(manifest["files"][0]["schema"]) and "accounts" in manifest["files"][1]["schema"]

    data = load_node_config(config).hop.data_dir
    shutil.rmtree(data)
    data.mkdir()
    for name in ("hop.db", "accounts.db"):
        shutil.copy(tmp_path / "b" / name, data / name)
    node = await open_node()
    try:
        principal = await node.accounts.authenticate_password("duty-1", "correct horse battery staple")
        assert principal.username == "duty-1"
    finally:
        await node.close()


async def test_tampering_and_incomplete_backups_are_refused_with_the_reason(tmp_path: Path) -> None:
    config, hop = await _gateway(tmp_path)
    try:
        for i in range(20):
            await hop.ctx.log.append(b"entry %d" % i)
        backup.create(config, tmp_path / "good", now_ms=NOW)
        with pytest.raises(ConfigError, match="not empty"):
            backup.create(config, tmp_path / "good", now_ms=NOW)
        backup.create(config, tmp_path / "good", force=True, now_ms=NOW)
    finally:
        await hop.close()

    def variant(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(tmp_path / "good", target)
        return target

    flipped = variant("flipped")
    raw = bytearray(_db(flipped).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    _db(flipped).write_bytes(bytes(raw))
    with pytest.raises(backup.BackupError, match="altered since the backup"):
        backup.check(flipped)

    def rewritten(name: str, sql: str, params: tuple[object, ...] = ()) -> Path:
        """A copy edited inside SQLite, its manifest hashes re-recorded: only the log checks can catch it."""
        target = variant(name)
        with sqlite3.connect(_db(target)) as conn:
            conn.execute(sql, params)
        _refresh_manifest(target)
        return target

    for name, sql, params, reason in (
        ("edited-leaf", "UPDATE log_leaves SET data = ? WHERE idx = 7", (b"rewritten history",), "do not reproduce the root"),
        ("edited-node", "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 2", (), "stored subtree hashes differ"),
        ("missing-leaf", "DELETE FROM log_leaves WHERE idx = 3", (), "leaf 3 is missing"),
    ):
        with pytest.raises(backup.BackupError, match=reason):
            backup.check(rewritten(name, sql, params))

    interrupted = variant("interrupted")
    (interrupted / "backup.json").unlink()
    with pytest.raises(backup.BackupError, match="interrupted"):
        backup.check(interrupted)

    # A roster from another federation: the same member id under a different log key.
    other = tmp_path / "other"
    other.mkdir()
    write_federation(other, "another federation", nodes=(("int-org", "gw-eu"),))
    with pytest.raises(backup.BackupError, match="does not verify under the log key"):
        backup.check(tmp_path / "good", roster_path=other / "roster.bin")

    manifest = backup.check(tmp_path / "good", roster_path=tmp_path / "roster.bin")
    vkey = manifest["log_vkey"]
    assert open_checkpoint(manifest["log"]["checkpoint"], NoteVerifier.from_vkey(vkey)).size == 20


async def test_the_cli_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, hop = await _gateway(tmp_path)
    try:
        await hop.ctx.log.append(b"one entry")
        assert main(["backup", "create", "--config", str(config), "--out", str(tmp_path / "b")]) == 0
    finally:
        await hop.close()
    out, err = capsys.readouterr()
    assert "backup written to" in out and "gateway gw-eu" in out and "log size 1" in out
    assert "secret keys are not in the backup" in err
    assert not any(p.name.endswith(".key") for p in (tmp_path / "b").iterdir())
    assert main(["backup", "check", str(tmp_path / "b"), "--roster", str(tmp_path / "roster.bin")]) == 0
    assert "is whole" in capsys.readouterr().out
    (tmp_path / "b" / "hop.db").write_bytes(b"not a database")
    assert main(["backup", "check", str(tmp_path / "b")]) == 1
    assert "error [E_BACKUP]" in capsys.readouterr().err
    assert main(["backup", "create", "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "c")]) == 1
    assert "error [E_CONFIG]" in capsys.readouterr().err


async def test_awkward_paths_and_a_bad_destination(tmp_path: Path) -> None:
    odd = tmp_path / "state #1 ?100% sure"
    odd.mkdir()
    config, hop = await _gateway(odd)  # data_dir and roster under a path SQLite URIs would misread unescaped
    try:
        await hop.ctx.log.append(b"one entry")
        manifest = backup.create(config, odd / "backup dir #2", now_ms=NOW)
        (tmp_path / "a-file").write_text("not a directory")
        with pytest.raises(ConfigError, match="is not a directory"):
            backup.create(config, tmp_path / "a-file", now_ms=NOW)
    finally:
        await hop.close()
    assert manifest["log"]["size"] == 1
    assert backup.check(odd / "backup dir #2", roster_path=odd / "roster.bin") == manifest
