"""gateway.db: the one-hop helper the sequencer relies on, and migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.db import StorageError, migrate, open_db, run_sync


async def test_run_sync_runs_on_the_connection_thread_and_propagates_errors(tmp_path: Path) -> None:
    conn = await open_db(tmp_path / "x.db")
    try:

        def work(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE t (v INTEGER)")
            db.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
            db.execute("COMMIT")
            return int(db.execute("SELECT sum(v) FROM t").fetchone()[0])

        assert await run_sync(conn, work) == 6
        with pytest.raises(sqlite3.OperationalError):
            await run_sync(conn, lambda db: db.execute("SELECT * FROM missing"))
        # The connection is still usable, by both paths.
        assert await conn.execute_fetchall("SELECT count(*) FROM t") == [(3,)]
    finally:
        await conn.close()


async def test_migrations_apply_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    conn = await open_db(tmp_path / "m.db")
    try:
        assert await migrate(conn, "c", ("CREATE TABLE a (x)",)) == 1
        assert await migrate(conn, "c", ("CREATE TABLE a (x)", "CREATE TABLE b (y)")) == 2
        with pytest.raises(StorageError, match="newer than this software"):
            await migrate(conn, "c", ("CREATE TABLE a (x)",))
    finally:
        await conn.close()
