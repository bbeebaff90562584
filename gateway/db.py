"""SQLite plumbing shared by every store: open in WAL mode, apply numbered migrations.

Each store (the audit log today; queues and inboxes later) owns a *component*
name and a list of numbered SQL migrations. They are applied at start-up, each
in its own ``BEGIN IMMEDIATE`` transaction together with the bump of the
component's version in ``schema_migrations``, so a crash mid-upgrade leaves the
database at the previous version, never half-migrated. Backups are just the
database file (use ``sqlite3 .backup`` or copy it while the hop is stopped).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import aiosqlite

from protocol.errors import HeliographError

SYNCHRONOUS_MODES = ("FULL", "NORMAL")
T = TypeVar("T")


class StorageError(HeliographError):
    """The store cannot be opened, migrated or written."""

    code = "E_STORAGE"
    http_status = 503
    default_hint = "Check the data directory's permissions and free space."


def read_only_uri(path: Path | str) -> str:
    """An SQLite URI opening ``path`` read-only; any character in the path (``?``, ``#``, ``%``, spaces) is escaped."""
    return Path(path).resolve().as_uri() + "?mode=ro"


async def open_db(path: Path | str, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000, read_only: bool = False) -> aiosqlite.Connection:
    """Open ``path`` in WAL mode with explicit transactions (autocommit off in SQLite terms).

    Raises:
        StorageError: The file cannot be opened or is not a database.
    """
    if synchronous not in SYNCHRONOUS_MODES:
        raise StorageError(f"synchronous must be one of {SYNCHRONOUS_MODES}")
    try:
        if read_only:
            conn = await aiosqlite.connect(read_only_uri(path), uri=True, isolation_level=None)
        else:
            conn = await aiosqlite.connect(str(path), isolation_level=None)
    except Exception as exc:  # sqlite3.Error, OSError: both mean "cannot use this file"
        raise StorageError(f"cannot open database {path}: {exc}") from None
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not read_only:
            await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Purged content (expired ciphertext, sunset alerts) is overwritten on disk, not just unlinked.
        await conn.execute("PRAGMA secure_delete = ON")
    except Exception as exc:
        await conn.close()
        raise StorageError(f"cannot open database {path}: {exc}") from None
    return conn


async def migrate(conn: aiosqlite.Connection, component: str, migrations: Sequence[str]) -> int:
    """Apply the not-yet-applied ``migrations`` of ``component``; return its version.

    Raises:
        StorageError: A migration fails, or the database is newer than this code.
    """
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    rows = list(await conn.execute_fetchall("SELECT version FROM schema_migrations WHERE component = ?", (component,)))
    current = rows[0][0] if rows else 0
    if current > len(migrations):
        raise StorageError(f"database {component} schema v{current} is newer than this software (v{len(migrations)})", hint="Upgrade Heliograph.")
    for number in range(current + 1, len(migrations) + 1):
        try:
            await conn.execute("BEGIN IMMEDIATE")
            for statement in migrations[number - 1].split(";\n"):
                if statement.strip():
                    await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?, ?) ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, number),
            )
            await conn.execute("COMMIT")
        except Exception as exc:
            await conn.execute("ROLLBACK")
            raise StorageError(f"migration {component} #{number} failed: {exc}") from None
    return len(migrations)


async def run_sync(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(connection)`` on ``conn``'s own worker thread, as one unit.

    aiosqlite hops threads once per statement; a sequencer batch runs tens of
    statements, so doing them in one hop removes most of its overhead. This uses
    aiosqlite's queue-a-function primitive (``_execute``), the same one behind
    every public method; pyproject pins aiosqlite below the next major version
    and tests/gateway/test_db.py checks the primitive is still there.
    """
    result: T = await conn._execute(lambda: fn(conn._conn))  # type: ignore[no-untyped-call]
    return result
