"""The read side of the audit log: tree size, checkpoints, entries and RFC 9162 proofs.

:class:`LogReader` answers the questions asked of a committed tree (what
:mod:`gateway.log_api` serves) through the store's separate ``reader`` connection.
Proofs at any past tree size are built from the perfect subtree hashes in ``log_nodes``,
which never change once written, so each costs O(log n) reads. Requests out of range
are a :class:`~protocol.errors.BadRequestError`.

:class:`gateway.log_store.LogStore` extends this class with the sequencer (the write side)
and owns the schema. The node lookups here, :func:`_lookup_sync` and
:func:`_lookup_function`, also serve the sequencer when it rebuilds the tree's right edge
after another process appended.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from gateway.db import StorageError, run_sync
from protocol.errors import BadRequestError
from protocol.merkle import consistency_ranges, inclusion_ranges, range_hash, range_subtrees

MAX_ENTRIES_PER_CALL = 1000


class LogReader:
    """Read-only queries on a log's committed tree, through one SQLite ``reader`` connection."""

    def __init__(self, reader: aiosqlite.Connection) -> None:
        self._reader = reader

    async def _lookup(self, wanted: Sequence[tuple[int, int]]) -> Callable[[int, int], bytes]:
        found = await run_sync(self._reader, lambda conn: _lookup_sync(conn, wanted))
        return _lookup_function(found)

    async def size(self) -> int:
        """The size of the latest committed tree."""
        return int(await self._head("size"))

    async def checkpoint(self) -> str:
        """The latest signed checkpoint, as C2SP note text."""
        return str(await self._head("checkpoint"))

    async def _head(self, column: str) -> Any:
        (row,) = await self._reader.execute_fetchall(f"SELECT {column} FROM log_head WHERE id = 1")  # noqa: S608 - our own column names
        return row[0]

    async def checkpoints(self) -> list[tuple[int, str]]:
        """Every checkpoint this log has signed, oldest first."""
        return [(int(s), str(c)) for s, c in await self._reader.execute_fetchall("SELECT size, checkpoint FROM log_checkpoints ORDER BY size")]

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Leaves [start, end) of the committed tree, at most 1000.

        Raises:
            BadRequestError: Bad range, more than 1000 entries, or past the tree size.
        """
        size = await self.size()
        if not 0 <= start < end or end - start > MAX_ENTRIES_PER_CALL:
            raise BadRequestError(f"need 0 <= start < end and at most {MAX_ENTRIES_PER_CALL} entries per call")
        if end > size:
            raise BadRequestError(f"end {end} is past the tree size {size}")
        rows = await self._reader.execute_fetchall("SELECT data FROM log_leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        return [bytes(r[0]) for r in rows]

    async def _proof(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        wanted = [st for s, e in ranges for st in range_subtrees(s, e)]
        lookup = await self._lookup(wanted)
        return [range_hash(s, e, lookup) for s, e in ranges]

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof for leaf ``index`` in the tree of ``size``.

        Raises:
            BadRequestError: ``index`` or ``size`` out of range.
        """
        current = await self.size()
        if not 0 <= index < size <= current:
            raise BadRequestError(f"need 0 <= index < size <= {current}")
        return await self._proof(inclusion_ranges(index, size))

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof between tree sizes ``first`` and ``second``.

        Raises:
            BadRequestError: Sizes out of range.
        """
        current = await self.size()
        if not 0 <= first <= second <= current:
            raise BadRequestError(f"need 0 <= first <= second <= {current}")
        return await self._proof(consistency_ranges(first, second))


def _lookup_sync(conn: sqlite3.Connection, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Fetch the stored subtree hashes ``wanted`` (pairs of level and index)."""
    found: dict[tuple[int, int], bytes] = {}
    unique = sorted(set(wanted))
    for chunk_start in range(0, len(unique), 400):
        chunk = unique[chunk_start : chunk_start + 400]
        placeholders = ",".join("(?, ?)" for _ in chunk)
        params = [v for pair in chunk for v in pair]
        # Join from the VALUES list so SQLite searches the primary key for each pair
        # (a plain "(level, idx) IN (VALUES ...)" scans the whole table on SQLite 3.40).
        rows = conn.execute(
            f"SELECT n.level, n.idx, n.hash FROM (VALUES {placeholders}) AS w CROSS JOIN log_nodes AS n ON n.level = w.column1 AND n.idx = w.column2",  # noqa: S608 - placeholders only
            params,
        ).fetchall()
        found.update({(level, idx): bytes(h) for level, idx, h in rows})
    return found


def _lookup_function(found: dict[tuple[int, int], bytes]) -> Callable[[int, int], bytes]:
    def lookup(level: int, idx: int) -> bytes:
        try:
            return found[(level, idx)]
        except KeyError:
            raise StorageError(f"log node ({level}, {idx}) is missing: the database is damaged") from None

    return lookup
