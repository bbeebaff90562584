"""The log read API on a real aiohttp server on 127.0.0.1, and the oversight verifier against it."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.http import error_middleware
from gateway.log_api import setup_log_routes
from gateway.log_store import LogStore
from gateway.log_verifier import LogVerificationError, verify_log
from protocol.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.support.logs import VKEY, open_store, parse


async def _serve(store: LogStore) -> TestServer:
    app = web.Application(middlewares=[error_middleware])
    setup_log_routes(app, store, VKEY)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[LogStore, TestServer, Path]]:
    path = tmp_path / "log.db"
    store = await open_store(path)
    for i in range(37):
        await store.append(f"receipt number {i}".encode() * 3)
    server = await _serve(store)
    try:
        yield store, server, path
    finally:
        await server.close()
        await store.close()


async def _get(server: TestServer, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(str(server.make_url(path))) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_read_api_contract(served: tuple[LogStore, TestServer, Path]) -> None:
    store, server, _ = served
    status, ctype, note = await _get(server, "/v1/log/checkpoint")
    assert status == 200 and ctype == "text/plain; charset=utf-8"
    cp = parse(note)
    assert cp.size == 37
    status, ctype, key = await _get(server, "/v1/log/key")
    assert status == 200 and ctype.startswith("text/plain") and key.strip() == VKEY
    async with aiohttp.ClientSession() as session:
        async with session.get(str(server.make_url("/v1/log/entries")), params={"start": "0", "end": "37"}) as resp:
            entries = [base64.b64decode(e) for e in (await resp.json())["entries"]]
        assert entries[5] == b"receipt number 5" * 3
        async with session.get(str(server.make_url("/v1/log/proof/inclusion")), params={"index": "5", "size": "37"}) as resp:
            body = await resp.json()
        assert body["index"] == 5 and body["size"] == 37
        verify_inclusion(5, 37, leaf_hash(entries[5]), [base64.b64decode(p) for p in body["path"]], cp.root)
        async with session.get(str(server.make_url("/v1/log/proof/consistency")), params={"first": "10", "second": "37"}) as resp:
            body = await resp.json()
        assert body["first"] == 10 and body["second"] == 37
        path = [base64.b64decode(p) for p in body["path"]]
        assert path == await store.consistency_proof(10, 37)
        async with session.get(str(server.make_url("/v1/log/proof/consistency")), params={"first": "37", "second": "37"}) as resp:
            assert (await resp.json())["path"] == []


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/log/entries?start=0&end=38", "E_BAD_REQUEST"),
        ("/v1/log/entries?start=0&end=1001", "E_BAD_REQUEST"),
        ("/v1/log/entries?start=-1&end=3", "E_BAD_REQUEST"),
        ("/v1/log/entries?start=01&end=3", "E_BAD_REQUEST"),
        ("/v1/log/entries?start=x&end=3", "E_BAD_REQUEST"),
        ("/v1/log/entries?end=3", "E_BAD_REQUEST"),
        ("/v1/log/proof/inclusion?index=37&size=37", "E_BAD_REQUEST"),
        ("/v1/log/proof/inclusion?index=0&size=0", "E_BAD_REQUEST"),
        ("/v1/log/proof/inclusion?index=0&size=99999999999999999999", "E_BAD_REQUEST"),
        ("/v1/log/proof/consistency?first=5&second=38", "E_BAD_REQUEST"),
        ("/v1/log/nope", "E_NOT_FOUND"),
    ],
)
async def test_bad_requests_get_400_with_a_code(served: tuple[LogStore, TestServer, Path], path: str, code: str) -> None:
    _, server, _ = served
    status, ctype, text = await _get(server, path)
    assert status in (400, 404) and ctype.startswith("application/json")
    assert f'"code": "{code}"' in text


async def test_verifier_passes_and_keeps_state(served: tuple[LogStore, TestServer, Path], tmp_path: Path) -> None:
    store, server, _ = served
    state = tmp_path / "state"
    report = await verify_log(str(server.make_url("/")), VKEY, state=state)
    assert any("every leaf" in line for line in report.lines)
    old = parse(state.read_text())
    for i in range(20):
        await store.append(f"more {i}".encode())
    report = await verify_log(str(server.make_url("/")), VKEY, state=state)
    assert any(f"consistency proof {old.size} -> 57 OK" in line for line in report.lines)
    report = await verify_log(str(server.make_url("/")), VKEY, state=state, proofs="5")
    assert any("same size" in line for line in report.lines) and any("sampled" in line for line in report.lines)


async def test_verifier_refuses_the_wrong_key(served: tuple[LogStore, TestServer, Path]) -> None:
    from protocol.keys import format_vkey

    _, server, _ = served
    other = format_vkey("heliograph/gw-test", b"\x22" * 32)
    with pytest.raises(Exception) as info:
        await verify_log(str(server.make_url("/")), other)
    assert getattr(info.value, "code", "").startswith("E_")


def _tamper(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ("UPDATE log_leaves SET data = ? WHERE idx = 23", (b"forged receipt",), "entry 23 does not match"),
        ("UPDATE log_nodes SET hash = ? WHERE level = 0 AND idx = 11", (b"\x00" * 32,), "index 11"),
        ("UPDATE log_nodes SET hash = ? WHERE level = 2 AND idx = 4", (b"\x00" * 32,), "index 16"),
        ("DELETE FROM log_leaves WHERE idx >= 30", (), "entry 30 is missing"),
    ],
)
async def test_tampering_is_detected_and_names_the_first_bad_index(
    served: tuple[LogStore, TestServer, Path], sql: str, params: tuple[object, ...], expected: str
) -> None:
    _, server, path = served
    await verify_log(str(server.make_url("/")), VKEY)
    _tamper(path, sql, params)
    with pytest.raises(LogVerificationError, match=expected):
        await verify_log(str(server.make_url("/")), VKEY)


async def test_truncated_and_resigned_log_is_caught_by_state(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = await open_store(path)
    for i in range(12):
        await store.append(bytes([i]) * 8)
    server = await _serve(store)
    state = tmp_path / "state"
    try:
        await verify_log(str(server.make_url("/")), VKEY, state=state)
    finally:
        await server.close()
        await store.close()
    # The operator rewinds to 8 leaves and signs a fresh, smaller checkpoint.
    rewound = tmp_path / "rewound.db"
    store = await open_store(rewound)
    for i in range(8):
        await store.append(bytes([i]) * 8)
    server = await _serve(store)
    try:
        with pytest.raises(LogVerificationError, match="shrank from 12 to 8 entries: first missing index 8"):
            await verify_log(str(server.make_url("/")), VKEY, state=state)
        for i in range(8, 12):
            await store.append(b"different history" + bytes([i]))
        with pytest.raises(LogVerificationError, match="fork"):
            await verify_log(str(server.make_url("/")), VKEY, state=state)
        await store.append(b"one more")
        with pytest.raises(LogVerificationError, match="consistency proof 12 -> 13 fails"):
            await verify_log(str(server.make_url("/")), VKEY, state=state)
    finally:
        await server.close()
        await store.close()


async def test_cli_log_verify_against_a_real_server(served: tuple[LogStore, TestServer, Path], tmp_path: Path) -> None:
    _, server, path = served
    url = str(server.make_url("/"))

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "node.cli",
            "log",
            "verify",
            url,
            "--vkey",
            VKEY,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, _ = await run("--state", str(tmp_path / "st"))
    assert code == 0 and "log verified" in out and "signature OK" in out
    _tamper(path, "UPDATE log_leaves SET data = ? WHERE idx = 3", (b"forged",))
    code, out, err = await run()
    assert code == 1 and "E_LOG_VERIFY" in err and "entry 3 does not match" in err
    code, _, err = await run("--proofs", "bogus")
    assert code == 2
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "log", "verify", "http://127.0.0.1:9", "--vkey", VKEY, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err_bytes = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1 and b"E_UNREACHABLE" in err_bytes


async def test_consistency_between_every_published_checkpoint(served: tuple[LogStore, TestServer, Path]) -> None:
    store, _, _ = served
    notes = [parse(n) for _, n in await store.checkpoints()]
    latest = notes[-1]
    for old in notes:
        verify_consistency(old.size, latest.size, old.root, latest.root, await store.consistency_proof(old.size, latest.size))
