"""The hop's audit log: an RFC 9162 Merkle tree in SQLite with signed C2SP checkpoints.

Layout (migration 1):

* ``log_leaves(idx, data)``: the exact leaf bytes (signed receipts);
* ``log_nodes(level, idx, hash)``: every *perfect* subtree hash, level 0 being
  the leaf hashes. These never change once written, so an append costs
  O(log n) writes (amortised two) and any proof at any past tree size costs
  O(log n) reads. The tree is never rebuilt at start-up;
* ``log_head``: the single row with the current size and signed checkpoint;
* ``log_checkpoints``: every checkpoint ever signed, one per batch.

A single sequencer task per process batches appends. Each batch runs in one
``BEGIN IMMEDIATE`` transaction that re-reads the head, so a second process
appending to the same file waits for the lock and then builds on the first
one's tree: the log can never fork. The head update is additionally guarded by
a compare-and-swap on the previous size. Every checkpoint extends the previous
one (the new tree is computed from the old tree's right edge), so a consistency
proof exists between any two checkpoints the log signs. ``append`` returns only
after its batch has committed, with the leaf's index.

This module holds the schema and the write side (:class:`LogStore`'s sequencer).
The read side (sizes, checkpoints, entries and proofs, on a separate reader
connection) is :class:`gateway.log_reader.LogReader`, which :class:`LogStore`
extends; ``MAX_ENTRIES_PER_CALL`` is re-exported from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import nacl.signing
import structlog

from gateway.db import StorageError, migrate, open_db, run_sync
from gateway.log_reader import MAX_ENTRIES_PER_CALL, LogReader, _lookup_function, _lookup_sync
from protocol.checkpoint import Checkpoint, sign_checkpoint
from protocol.merkle import CompactRange, leaf_hash, range_subtrees

log = structlog.get_logger("heliograph.log")

MIGRATIONS = (
    """CREATE TABLE log_leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE log_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE log_head (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, checkpoint TEXT NOT NULL);
CREATE TABLE log_checkpoints (size INTEGER PRIMARY KEY, checkpoint TEXT NOT NULL)""",
)

LeafBuilder = Callable[[int], bytes]
Statement = tuple[str, Sequence[Any]]
EffectBuilder = Callable[[int | None, bytes | None], Sequence[Statement]]
"""Given the leaf's index and bytes (None for a write without a leaf), the SQL to run in the same transaction."""


def fixed(statements: Sequence[Statement]) -> EffectBuilder:
    """An effect builder for statements known in advance (a plain batched write)."""
    return lambda _index, _leaf: statements


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """Sequencer limits: a batch closes at ``batch_max`` leaves or ``batch_wait_s``."""

    batch_max: int = 1000
    batch_wait_s: float = 0.0
    synchronous: str = "FULL"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_max <= 100_000 or not 0.0 <= self.batch_wait_s <= 0.2:
            raise StorageError("log batch_max must be 1..100000 and batch_wait_s 0..0.2")


@dataclass(frozen=True, slots=True)
class _ManyLeaves:
    """Several plain leaves submitted as one unit (see :meth:`LogStore.append_many`)."""

    leaves: tuple[bytes, ...]

    def __call__(self, index: int) -> bytes:  # pragma: no cover - never called; the sequencer unpacks it
        raise NotImplementedError


@dataclass(slots=True)
class _Pending:
    build: LeafBuilder | None
    effects: EffectBuilder | None = None
    done: asyncio.Future[tuple[int | None, bytes | None]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _group(statements: Sequence[Statement]) -> list[tuple[str, list[Sequence[Any]]]]:
    """Merge runs of the same SQL into one ``executemany`` (one thread hop per run)."""
    grouped: list[tuple[str, list[Sequence[Any]]]] = []
    for sql, params in statements:
        if grouped and grouped[-1][0] == sql:
            grouped[-1][1].append(params)
        else:
            grouped.append((sql, [params]))
    return grouped


class LogStore(LogReader):
    """An append-only, verifiable log in one SQLite file. Create with :meth:`open`."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, origin: str, signer: nacl.signing.SigningKey, config: LogConfig) -> None:
        super().__init__(reader)
        self._writer = writer
        self.origin = origin
        self._signer = signer
        self._config = config
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._edge: CompactRange | None = None

    @classmethod
    async def open(cls, path: Path | str, *, origin: str, signer: nacl.signing.SigningKey, config: LogConfig | None = None) -> LogStore:
        """Open (creating if needed) the log at ``path`` and start its sequencer.

        Raises:
            StorageError: The database cannot be opened or migrated.
        """
        config = config or LogConfig()
        writer = await open_db(path, synchronous=config.synchronous)
        try:
            await migrate(writer, "log", MIGRATIONS)
            reader = await open_db(path, synchronous=config.synchronous)
        except BaseException:
            await writer.close()
            raise
        store = cls(writer, reader, origin, signer, config)
        try:
            await store._init_head()
        except BaseException:
            await writer.close()
            await reader.close()
            raise
        store._task = asyncio.create_task(store._sequence(), name="log-sequencer")
        return store

    async def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Apply another store's migrations to this file, on the single writer connection.

        Raises:
            StorageError: A migration fails.
        """
        await migrate(self._writer, component, migrations)

    async def _init_head(self) -> None:
        await self._writer.execute("BEGIN IMMEDIATE")
        try:
            rows = await self._writer.execute_fetchall("SELECT size FROM log_head WHERE id = 1")
            if not rows:
                note = self._sign(0, CompactRange().root())
                await self._writer.execute("INSERT INTO log_head (id, size, checkpoint) VALUES (1, 0, ?)", (note,))
                await self._writer.execute("INSERT INTO log_checkpoints (size, checkpoint) VALUES (0, ?)", (note,))
            await self._writer.execute("COMMIT")
        except BaseException:
            await self._writer.execute("ROLLBACK")
            raise

    def _sign(self, size: int, root: bytes) -> str:
        return sign_checkpoint(Checkpoint(origin=self.origin, size=size, root=root), self.origin, self._signer).to_text()

    async def append(self, leaf: bytes) -> int:
        """Append ``leaf`` and return its index once it is durably committed.

        Raises:
            StorageError: The batch could not be committed (nothing was appended).
        """
        index, _ = await self.append_built(lambda _index: leaf)
        return index

    async def append_many(self, leaves: Sequence[bytes]) -> list[int]:
        """Append several leaves as one unit of work (one future, consecutive indices).

        Raises:
            StorageError: The batch could not be committed (nothing was appended).
        """
        if not leaves:
            return []
        if not all(isinstance(leaf, bytes) for leaf in leaves):
            raise StorageError("a log leaf must be bytes")
        first, _ = await self.submit(_ManyLeaves(tuple(leaves)))
        assert first is not None
        return list(range(first, first + len(leaves)))

    async def append_built(self, build: LeafBuilder) -> tuple[int, bytes]:
        """Append the leaf ``build(index)`` returns, for leaves that carry their own index.

        ``build`` runs inside the sequencer's transaction; if it raises, that
        leaf is skipped (its index goes to the next leaf) and the error is
        re-raised here.

        Raises:
            StorageError: The log is closed or the batch could not be committed.
        """
        index, data = await self.submit(build)
        assert index is not None and data is not None
        return index, data

    async def write(self, statements: Sequence[Statement]) -> None:
        """Run ``statements`` (our own SQL on the hop's other tables) in the next batch transaction, without a leaf.

        Raises:
            StorageError: The log is closed or the batch could not be committed.
        """
        await self.submit(None, fixed(statements))

    async def submit(self, build: LeafBuilder | None, effects: EffectBuilder | None = None) -> tuple[int | None, bytes | None]:
        """Run one unit of work in the sequencer's next batch transaction.

        With ``build``, a leaf is appended as in :meth:`append_built`. Then
        ``effects(index, leaf)`` returns SQL statements executed in the same
        transaction, so other tables of the same database (the hop's queues)
        change atomically with the log and share its group commit. Without
        ``build`` this is a plain batched write. Statements are our own code:
        if one fails the whole batch fails and every caller gets the error.

        Raises:
            StorageError: The log is closed or the batch could not be committed.
        """
        if self._closed:
            raise StorageError("the log is closed")
        pending = _Pending(build=build, effects=effects)
        await self._queue.put(pending)
        return await pending.done

    async def _sequence(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            if self._config.batch_wait_s:
                await asyncio.sleep(self._config.batch_wait_s)
            while len(batch) < self._config.batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                await self._commit_batch(batch)
            except Exception as exc:
                error = exc if isinstance(exc, StorageError) else StorageError(f"log append failed: {exc}")
                log.error("log_batch_failed", error=str(exc), batch=len(batch))
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(error)

    async def _commit_batch(self, batch: Sequence[_Pending]) -> None:
        db = self._writer
        cached = self._edge

        def begin(conn: sqlite3.Connection) -> tuple[int, dict[tuple[int, int], bytes] | None]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                size = int(conn.execute("SELECT size FROM log_head WHERE id = 1").fetchone()[0])
                if cached is not None and cached.size == size:
                    return size, None  # nobody else appended since our last batch
                return size, _lookup_sync(conn, range_subtrees(0, size) if size else [])
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            size, found = await run_sync(db, begin)
        except BaseException:
            self._edge = None
            raise
        try:
            if found is None:
                assert cached is not None
                edge = cached.copy()
            else:
                edge = CompactRange.from_subtrees(size, _lookup_function(found))
            leaves: list[tuple[int, bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            results: list[tuple[_Pending, int | None, bytes | None]] = []
            failures: list[tuple[_Pending, BaseException]] = []
            statements: list[Statement] = []
            for item in batch:
                index: int | None = None
                data: bytes | None = None
                try:
                    if isinstance(item.build, _ManyLeaves):
                        index = size + len(leaves)
                        for offset, leaf in enumerate(item.build.leaves):
                            leaves.append((index + offset, leaf))
                            nodes.extend(edge.append(leaf_hash(leaf)))
                        results.append((item, index, None))
                        continue
                    if item.build is not None:
                        index = size + len(leaves)
                        data = item.build(index)
                        if not isinstance(data, bytes):
                            raise StorageError("a log leaf must be bytes")
                    extra = item.effects(index, data) if item.effects is not None else ()
                except Exception as exc:
                    failures.append((item, exc))
                    continue
                if index is not None and data is not None:
                    leaves.append((index, data))
                    nodes.extend(edge.append(leaf_hash(data)))
                statements.extend(extra)
                results.append((item, index, data))
            note = self._sign(size + len(leaves), edge.root()) if leaves else None
        except BaseException:
            self._edge = None
            await run_sync(db, lambda conn: conn.execute("ROLLBACK"))
            raise

        def write(conn: sqlite3.Connection) -> None:
            try:
                if leaves:
                    new_size = size + len(leaves)
                    conn.executemany("INSERT INTO log_leaves (idx, data) VALUES (?, ?)", leaves)
                    conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
                    cursor = conn.execute("UPDATE log_head SET size = ?, checkpoint = ? WHERE id = 1 AND size = ?", (new_size, note, size))
                    if cursor.rowcount != 1:
                        raise StorageError("log head moved during a locked append (another writer without the lock?)")
                    conn.execute("INSERT INTO log_checkpoints (size, checkpoint) VALUES (?, ?)", (new_size, note))
                for sql, rows in _group(statements):
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise

        try:
            await run_sync(db, write)
        except BaseException:
            self._edge = None
            raise
        self._edge = edge
        for item, index, data in results:
            if not item.done.done():
                item.done.set_result((index, data))
        for item, error in failures:
            if not item.done.done():
                item.done.set_exception(error)

    async def close(self) -> None:
        """Stop the sequencer after the batches already queued, then close the files."""
        if self._closed:
            return
        self._closed = True
        await self._queue.put(None)
        if self._task is not None:
            await self._task
        await self._writer.close()
        await self._reader.close()


__all__ = [
    "MAX_ENTRIES_PER_CALL",
    "MIGRATIONS",
    "EffectBuilder",
    "LeafBuilder",
    "LogConfig",
    "LogStore",
    "Statement",
    "fixed",
]
