"""The SQLite Merkle log: appends, batching, proofs at any size, restarts, two writers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.db import StorageError
from gateway.log_store import LogConfig
from protocol.errors import BadRequestError
from protocol.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.support.logs import open_store, parse


async def test_appends_are_sequential_and_provable(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "log.db")
    try:
        assert parse(await store.checkpoint()).size == 0
        indices = [await store.append(f"leaf {i}".encode()) for i in range(5)]
        assert indices == [0, 1, 2, 3, 4]
        burst = await asyncio.gather(*(store.append(f"burst {i}".encode()) for i in range(200)))
        assert sorted(burst) == list(range(5, 205))
        cp = parse(await store.checkpoint())
        assert cp.size == 205 == await store.size()
        entries = await store.entries(0, 200) + await store.entries(200, 205)
        assert entries[0] == b"leaf 0" and len(entries) == 205
        for index in (0, 1, 100, 204):
            verify_inclusion(index, cp.size, leaf_hash(entries[index]), await store.inclusion_proof(index, cp.size), cp.root)
        checkpoints = [parse(note) for _, note in await store.checkpoints()]
        assert len(checkpoints) < 205, "the burst must have been batched into fewer checkpoints"
        for old in checkpoints:
            verify_consistency(old.size, cp.size, old.root, cp.root, await store.consistency_proof(old.size, cp.size))
            if old.size:
                verify_inclusion(old.size - 1, old.size, leaf_hash(entries[old.size - 1]), await store.inclusion_proof(old.size - 1, old.size), old.root)
    finally:
        await store.close()


async def test_restart_keeps_the_tree_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = await open_store(path)
    for i in range(10):
        await store.append(bytes([i]) * 30)
    before = parse(await store.checkpoint())
    await store.close()
    store = await open_store(path)
    try:
        assert parse(await store.checkpoint()) == before
        assert await store.append(b"after restart") == 10
        after = parse(await store.checkpoint())
        verify_consistency(before.size, after.size, before.root, after.root, await store.consistency_proof(before.size, after.size))
    finally:
        await store.close()


async def test_leaf_builder_sees_its_index_and_failures_skip_no_index(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "log.db", batch_wait_s=0.05)
    try:

        def bad(_index: int) -> bytes:
            raise ValueError("builder failed")

        good = [store.append_built(lambda i: f"my index is {i}".encode()) for _ in range(3)]
        results = await asyncio.gather(good[0], store.append_built(bad), good[1], good[2], return_exceptions=True)
        assert isinstance(results[1], ValueError)
        ok = [r for r in results if isinstance(r, tuple)]
        assert [index for index, _ in ok] == [0, 1, 2]
        assert all(data == f"my index is {index}".encode() for index, data in ok)
        with pytest.raises(StorageError, match="must be bytes"):
            await store.append_built(lambda i: "text")  # type: ignore[arg-type,return-value]
    finally:
        await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.append(b"late")


async def test_bad_read_requests(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "log.db")
    try:
        for i in range(3):
            await store.append(bytes([i]))
        for start, end in ((0, 4), (2, 2), (3, 1), (0, 1001)):
            with pytest.raises(BadRequestError):
                await store.entries(start, end)
        with pytest.raises(BadRequestError):
            await store.inclusion_proof(3, 3)
        with pytest.raises(BadRequestError):
            await store.inclusion_proof(0, 4)
        with pytest.raises(BadRequestError):
            await store.consistency_proof(2, 1)
        with pytest.raises(BadRequestError):
            await store.consistency_proof(1, 4)
        assert await store.consistency_proof(0, 3) == []
    finally:
        await store.close()


async def test_two_writers_on_one_file_never_fork(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    a = await open_store(path)
    b = await open_store(path)
    try:
        results = await asyncio.gather(*(s.append(f"{name}-{i}".encode()) for i in range(60) for name, s in (("a", a), ("b", b))))
        assert sorted(results) == list(range(120))
        cp = parse(await a.checkpoint())
        assert cp.size == 120 and parse(await b.checkpoint()) == cp
        checkpoints = [parse(n) for _, n in await a.checkpoints()]
        for old in checkpoints:
            verify_consistency(old.size, cp.size, old.root, cp.root, await a.consistency_proof(old.size, cp.size))
        entries = await a.entries(0, 120)
        assert sorted(entries) == sorted(f"{n}-{i}".encode() for i in range(60) for n in "ab")
    finally:
        await a.close()
        await b.close()


async def test_config_and_damaged_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        LogConfig(batch_wait_s=1.0)
    with pytest.raises(StorageError):
        await open_store(tmp_path / "x.db", synchronous="OFF")
    path = tmp_path / "log.db"
    store = await open_store(path)
    for i in range(4):
        await store.append(bytes([i]))
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM log_nodes WHERE level >= 1")
    store = await open_store(path)
    try:
        with pytest.raises(StorageError, match="missing"):
            await store.append(b"x")
        with pytest.raises(StorageError, match="damaged"):
            await store.inclusion_proof(0, 4)
    finally:
        await store.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(StorageError):
        await open_store(garbage)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    await (await open_store(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_migrations SET version = 99 WHERE component = 'log'")
    with pytest.raises(StorageError, match="newer"):
        await open_store(path)


async def test_effects_commit_atomically_with_the_leaf(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = await open_store(path)
    try:
        await store.submit(None, lambda i, d: [("CREATE TABLE side (idx INTEGER, note TEXT)", ())])

        def effects(index: int | None, data: bytes | None) -> list[tuple[str, tuple[object, ...]]]:
            return [("INSERT INTO side (idx, note) VALUES (?, ?)", (index, "a")), ("INSERT INTO side (idx, note) VALUES (?, ?)", (index, "b"))]

        results = await asyncio.gather(*(store.submit(lambda i: b"leaf %d" % i, effects) for _ in range(5)))
        assert sorted(r[0] for r in results) == [0, 1, 2, 3, 4]  # type: ignore[type-var]

        def broken(index: int | None, data: bytes | None) -> list[tuple[str, tuple[object, ...]]]:
            return [("INSERT INTO no_such_table VALUES (?)", (1,))]

        with pytest.raises(StorageError):
            await store.submit(lambda i: b"doomed", broken)
        assert await store.size() == 5, "a failed batch appends nothing"
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM side").fetchone()[0] == 10


async def test_append_many_gives_consecutive_indices_and_mixes_with_single_appends(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "log.db", batch_wait_s=0.02)
    try:
        many, single, more = await asyncio.gather(store.append_many([b"a", b"b", b"c"]), store.append(b"d"), store.append_many([b"e", b"f"]))
        indices = [*many, single, *more]
        assert sorted(indices) == list(range(6))
        assert many == list(range(many[0], many[0] + 3)) and more == list(range(more[0], more[0] + 2))
        entries = await store.entries(0, 6)
        assert [entries[i] for i in many] == [b"a", b"b", b"c"] and entries[single] == b"d"
        cp = parse(await store.checkpoint())
        for i in range(6):
            verify_inclusion(i, 6, leaf_hash(entries[i]), await store.inclusion_proof(i, 6), cp.root)
        assert await store.append_many([]) == []
        with pytest.raises(StorageError):
            await store.append_many(["text"])  # type: ignore[list-item]
    finally:
        await store.close()
