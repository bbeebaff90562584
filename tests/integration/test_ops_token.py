"""[ops] token_file: the operations endpoints demand the hop's bearer token; health checks stay open."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import create_app, open_hop
from gateway.config import load_config, parse_config
from node.cli import main
from protocol.errors import ConfigError
from tests.support.clock import FakeClock
from tests.support.federation import SeededRng
from tests.support.net import free_port, loopback_server
from tests.support.procs import wall_ms, write_federation

TOKEN = "0123456789abcdef" * 4


def _write_token(path: Path, text: str = TOKEN, mode: int = 0o600) -> None:
    path.write_text(text + "\n")
    path.chmod(mode)


async def test_operations_endpoints_need_the_token_and_health_checks_do_not(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_federation(tmp_path, "ops", nodes=(("int-org", "gw-eu"),))
    _write_token(tmp_path / "ops.token")
    with (tmp_path / "gw-eu.toml").open("a") as fh:
        fh.write('\n[ops]\ntoken_file = "ops.token"\n')
    hop = await open_hop(load_config(tmp_path / "gw-eu.toml"), clock=FakeClock(wall_ms()), rng=SeededRng("ops"))
    server = loopback_server(create_app(hop), free_port())
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
                async with session.get(url + path, headers=headers or {}) as resp:
                    return resp.status, await resp.text()

            for path in ("/metrics", "/v1/destinations", "/v1/messages/" + "ab" * 16):
                status, body = await get(path)
                assert status == 401 and "E_UNAUTHENTICATED" in body, path
                status, body = await get(path, {"Authorization": "Bearer " + TOKEN[:-1] + "x"})
                assert status == 401, path
            assert (await get("/metrics", {"Authorization": f"Bearer {TOKEN}"}))[0] == 200
            assert (await get("/v1/destinations", {"Authorization": f"Bearer {TOKEN}"}))[0] == 200
            assert (await get("/v1/messages/" + "ab" * 16, {"Authorization": f"Bearer {TOKEN}"}))[0] == 404
            assert (await get("/healthz"))[0] == 200 and (await get("/readyz"))[0] == 200
            assert (await get("/v1/log/checkpoint"))[0] == 200, "the log stays public: oversight reads it"
        assert await asyncio.to_thread(main, ["gateway", "status", "--url", url]) == 1
        assert "error [E_UNAUTHENTICATED]" in capsys.readouterr().err
        assert await asyncio.to_thread(main, ["gateway", "status", "--url", url, "--token", TOKEN]) == 0
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        (TOKEN, 0o644, "accessible by group or others"),
        ("short", 0o600, "at least 32 printable ASCII characters"),
        (TOKEN[:20] + " " + TOKEN[:20], 0o600, "no spaces"),
    ],
)
def test_bad_token_files_stop_the_start(tmp_path: Path, text: str, mode: int, message: str) -> None:
    _write_token(tmp_path / "ops.token", text, mode)
    doc = {
        "hop": {"id": "gw-eu", "data_dir": "d", "roster": "r", "key_file": "k"},
        "policy": {"max_ttl_ms": 1000, "rules": [{"action": "allow", "origins": ["*"]}]},
        "ops": {"token_file": "ops.token"},
    }
    with pytest.raises(ConfigError, match=message):
        parse_config(doc, base=tmp_path)
    doc["ops"] = {"token_file": "missing.token"}
    with pytest.raises(ConfigError, match=r"ops\.token_file: cannot read"):
        parse_config(doc, base=tmp_path)


async def test_on_a_node_officers_keep_the_v1_endpoints_and_the_token_guards_metrics(tmp_path: Path) -> None:
    from gateway.keyfile import write_secret_keys
    from node.app import create_node_app
    from node.config import load_node_config
    from node.service import Node

    fed, _ports = write_federation(tmp_path, "ops-node", nodes=(("int-org", "gw-eu"),))
    write_secret_keys(tmp_path / "keys" / "int-org.key", fed.keys["int-org"])
    _write_token(tmp_path / "ops.token")
    hop = 'id = "int-org"\nlisten = "127.0.0.1:1"\ndata_dir = "data/int-org"\nroster = "roster.bin"\nkey_file = "keys/int-org.key"'
    (tmp_path / "int-org.toml").write_text(f'[hop]\n{hop}\n\n[node]\nkdf = "min"\n\n[ops]\ntoken_file = "ops.token"\n')
    node = await Node.open(load_node_config(tmp_path / "int-org.toml"), clock=FakeClock(wall_ms()), rng=SeededRng("ops-node"))
    await node.accounts.add_user("auditor-1", "auditor", "correct horse battery staple", now_ms=wall_ms())
    officer = await node.accounts.create_token("auditor-1", "tests", now_ms=wall_ms())
    server = loopback_server(create_node_app(node), free_port())
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as session:
            for path, token, expected in (
                ("/metrics", None, 401),
                ("/metrics", TOKEN, 200),
                ("/v1/destinations", officer, 200),
                ("/v1/destinations", TOKEN, 401),  # the ops token is not an officer credential
            ):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with session.get(url + path, headers=headers) as resp:
                    assert resp.status == expected, (path, token)
    finally:
        await server.close()
