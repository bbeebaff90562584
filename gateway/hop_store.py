"""The hop's durable state: accepted messages, per-destination outboxes, receipts.

It lives in the same SQLite file as the hop's audit log, and every write goes
through the log's sequencer (:meth:`gateway.log_store.LogStore.submit`), so an
envelope is stored, its outbox rows queued and its "accepted" receipt logged in
one transaction, and they share the sequencer's group commit. Reads use a
separate connection (WAL lets them run beside the writer).

Tables (migration 1 of component ``hop``):

* ``messages``: one row per (origin, message_id) ever accepted: the envelope
  (NULL once purged after expiry), routing fields, and our "accepted" receipt,
  returned byte for byte to a retrying sender (deduplication);
* ``outbox``: one row per copy to send (an envelope for a next hop, or a receipt
  travelling back toward the origin), with its state, attempts and schedule.
  The retry schedule lives here and in ``destinations``, never only in memory;
* ``destinations``: per next hop: consecutive failures, back-off deadline, last
  success and error, for ``GET /v1/destinations``;
* ``receipts``: every receipt this hop issued or relayed, by digest.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.db import open_db, run_sync
from protocol.header import PRIORITIES

MIGRATIONS = (
    """CREATE TABLE messages (
    origin TEXT NOT NULL, message_id BLOB NOT NULL, envelope BLOB, header_digest BLOB NOT NULL,
    priority INTEGER NOT NULL, expires INTEGER NOT NULL, received_at INTEGER NOT NULL, peer TEXT NOT NULL,
    receipt BLOB NOT NULL, PRIMARY KEY (origin, message_id)) WITHOUT ROWID;
CREATE INDEX messages_by_id ON messages (message_id);
CREATE INDEX messages_by_expiry ON messages (expires) WHERE envelope IS NOT NULL;
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, destination TEXT NOT NULL, lane INTEGER NOT NULL, kind TEXT NOT NULL,
    origin TEXT NOT NULL, message_id BLOB NOT NULL, recipients TEXT NOT NULL, payload BLOB, prev BLOB,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
    expires INTEGER NOT NULL, delayed_sent INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at INTEGER NOT NULL);
CREATE INDEX outbox_due ON outbox (state, destination, lane, id);
CREATE INDEX outbox_by_message ON outbox (origin, message_id);
CREATE TABLE destinations (
    destination TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0, backoff_until INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER, last_error TEXT, last_error_at INTEGER, last_attempt_at INTEGER);
CREATE TABLE receipts (digest BLOB PRIMARY KEY, message_id BLOB NOT NULL, receipt BLOB NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID""",
    # 2: the scheduler only ever looks at queued rows; partial indexes keep its
    # queries proportional to the backlog, not to everything ever sent.
    """DROP INDEX outbox_due;
CREATE INDEX outbox_queued ON outbox (destination, lane, kind, next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX outbox_queued_expiry ON outbox (expires) WHERE state = 'queued';
CREATE INDEX outbox_finished ON outbox (expires) WHERE state <> 'queued'""",
    # 3: the signed header outlives the purged ciphertext, so delivery evidence can be exported for years.
    """ALTER TABLE messages ADD COLUMN header BLOB;
ALTER TABLE messages ADD COLUMN header_sig BLOB""",
    # 4: a batch is the oldest due rows of one lane: walk them in id order and stop at the batch size,
    # instead of collecting (and joining the ciphertext of) every due row and sorting them.
    """CREATE INDEX outbox_queued_order ON outbox (destination, lane, kind, id) WHERE state = 'queued'""",
)

KIND_ENVELOPE = "envelope"
KIND_RECEIPT = "receipt"


class RowState(enum.StrEnum):
    """Lifecycle of an outbox row. Terminal: DONE, REJECTED, EXPIRED."""

    QUEUED = "queued"
    DONE = "done"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRow:
    """One copy waiting to go to ``destination``."""

    id: int
    destination: str
    lane: int
    kind: str
    origin: str
    message_id: bytes
    recipients: tuple[str, ...]
    payload: bytes | None
    prev: bytes | None
    attempts: int
    expires: int
    delayed_sent: bool
    created_at: int
    header_digest: bytes = b""
    envelope: bytes | None = field(default=None, repr=False)
    """The ciphertext for an envelope copy (None once purged, or for receipt rows)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationStatus:
    """What ``GET /v1/destinations`` shows for one next hop."""

    destination: str
    backlog: dict[str, int]
    failures: int
    backoff_until: int
    last_success_at: int | None
    last_error: str | None
    last_error_at: int | None
    last_attempt_at: int | None

    @property
    def state(self) -> str:
        if self.failures == 0:
            return "ok" if not any(self.backlog.values()) else "sending"
        return "backing-off"


class HopReader:
    """Read-only queries over the hop tables, on their own connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._db = conn

    @classmethod
    async def open(cls, path: Path | str) -> HopReader:
        return cls(await open_db(path))

    async def close(self) -> None:
        await self._db.close()

    async def accepted_receipt(self, origin: str, message_id: bytes) -> bytes | None:
        """The receipt this hop gave when it accepted (origin, message_id), if it did."""
        rows = list(await self._db.execute_fetchall("SELECT receipt FROM messages WHERE origin = ? AND message_id = ?", (origin, message_id)))
        return bytes(rows[0][0]) if rows else None

    async def accepted(self, origin: str, message_id: bytes) -> tuple[bytes, bytes] | None:
        """(header digest, our ``accepted`` receipt) of a message this hop accepted or sent."""
        rows = list(await self._db.execute_fetchall("SELECT header_digest, receipt FROM messages WHERE origin = ? AND message_id = ?", (origin, message_id)))
        return (bytes(rows[0][0]), bytes(rows[0][1])) if rows else None

    async def signed_header(self, origin: str, message_id: bytes) -> tuple[bytes, bytes] | None:
        """(header bytes, origin signature) of an accepted message; kept after the ciphertext is purged."""
        rows = list(
            await self._db.execute_fetchall("SELECT header, header_sig, envelope FROM messages WHERE origin = ? AND message_id = ?", (origin, message_id))
        )
        if not rows:
            return None
        header, sig, envelope = rows[0]
        if header is not None and sig is not None:
            return bytes(header), bytes(sig)
        if envelope is not None:  # accepted before migration 3
            from protocol.header import Envelope

            env = Envelope.from_bytes(bytes(envelope))
            return env.header_bytes, env.signature
        return None

    async def message(self, message_id: bytes) -> tuple[str, bytes | None, int] | None:
        """(origin, envelope or None if purged, expires) of an accepted message."""
        rows = list(await self._db.execute_fetchall("SELECT origin, envelope, expires FROM messages WHERE message_id = ? LIMIT 1", (message_id,)))
        if not rows:
            return None
        origin, envelope, expires = rows[0]
        return str(origin), bytes(envelope) if envelope is not None else None, int(expires)

    async def due_lanes(self, now: int, destinations: Sequence[str]) -> list[tuple[str, int, str]]:
        """(destination, lane, kind) with queued rows due now and no back-off in force, most urgent lane first.

        One index seek per destination with a queue and per (lane, kind) of the ones not backing
        off, all in one trip to the database thread: the cost does not grow with the backlog
        queued behind a destination that is down, nor with the size of the roster.
        """
        lanes = range(len(PRIORITIES))

        def probe(db: sqlite3.Connection) -> list[tuple[str, int, str]]:
            backing_off = {str(r[0]) for r in db.execute("SELECT destination FROM destinations WHERE backoff_until > ?", (now,))}
            queued = {str(r[0]) for r in db.execute(_QUEUED_DESTINATIONS)}
            found = []
            for dest in sorted((queued & set(destinations)) - backing_off):
                for kind in (KIND_ENVELOPE, KIND_RECEIPT):
                    for lane in lanes:
                        if db.execute(_DUE_PROBE, (dest, lane, kind, now, now)).fetchone() is not None:
                            found.append((dest, lane, kind))
            return found

        return await run_sync(self._db, probe)

    async def next_batch(self, destination: str, lane: int, kind: str, now: int, limit: int) -> list[OutboxRow]:
        """The oldest due rows of one lane and kind for ``destination``, never an expired one."""
        rows = await self._db.execute_fetchall(_NEXT_BATCH, (destination, lane, kind, now, now, limit))
        return [_row(r) for r in rows]

    async def stalled_rows(self, now: int, limit: int = 500) -> list[OutboxRow]:
        """Queued envelope copies not yet reported ``delayed`` whose destination is backing off."""
        rows = await self._db.execute_fetchall(
            _ROW_SELECT
            + " JOIN destinations d ON d.destination = o.destination"
            + " WHERE o.state = 'queued' AND o.kind = 'envelope' AND o.delayed_sent = 0 AND d.backoff_until > ? AND o.expires > ? ORDER BY o.id LIMIT ?",
            (now, now, limit),
        )
        return [_row(r) for r in rows]

    async def expired_rows(self, now: int, limit: int = 500) -> list[OutboxRow]:
        rows = await self._db.execute_fetchall(
            _ROW_SELECT + " WHERE o.state = 'queued' AND o.expires <= ? ORDER BY o.id LIMIT ?",
            (now, limit),
        )
        return [_row(r) for r in rows]

    async def trace(self, message_id: bytes) -> dict[str, Any] | None:
        """Everything this hop knows about one message, for ``GET /v1/messages/{id}`` (None: never seen here).

        Copies and queued receipts are listed until their rows are dropped after the message's
        expiry; stored receipts are kept for ever.
        """
        messages = await self._db.execute_fetchall(
            "SELECT origin, priority, expires, received_at, peer, envelope IS NULL FROM messages WHERE message_id = ?", (message_id,)
        )
        if not messages:
            return None
        origin, lane, expires, received_at, peer, purged = next(iter(messages))
        rows = await self._db.execute_fetchall(
            "SELECT kind, destination, recipients, state, attempts, next_attempt_at, last_error, delayed_sent, created_at FROM outbox"
            " WHERE origin = ? AND message_id = ? ORDER BY id",
            (origin, message_id),
        )
        copies = [
            {
                "destination": dest,
                "recipients": recipients.split(","),
                "state": state,
                "attempts": attempts,
                "next_attempt_at": next_at if state == RowState.QUEUED else None,
                "last_error": error,
                "delayed_sent": bool(delayed),
                "queued_at": created,
            }
            for kind, dest, recipients, state, attempts, next_at, error, delayed, created in rows
            if kind == KIND_ENVELOPE
        ]
        receipts_queued = sum(1 for r in rows if r[0] == KIND_RECEIPT and r[3] == RowState.QUEUED)
        stored = await self._db.execute_fetchall("SELECT receipt FROM receipts WHERE message_id = ? ORDER BY at, digest", (message_id,))
        return {
            "origin": str(origin),
            "priority": PRIORITIES[int(lane)],
            "expires": int(expires),
            "received_at": int(received_at),
            "from": str(peer),
            "ciphertext": "purged" if purged else "held",
            "copies": copies,
            "receipts_queued": receipts_queued,
            "receipts": [bytes(r[0]) for r in stored],
        }

    async def destinations(self) -> list[DestinationStatus]:
        """Backlog and health of every destination this hop has ever queued for."""
        backlog: dict[str, dict[str, int]] = {}

        for dest, lane, kind, count in await self._db.execute_fetchall(
            "SELECT destination, lane, kind, count(*) FROM outbox WHERE state = 'queued' GROUP BY destination, lane, kind"
        ):
            name = PRIORITIES[lane] if kind == KIND_ENVELOPE else "RECEIPTS"
            backlog.setdefault(str(dest), {}).setdefault(name, 0)
            backlog[str(dest)][name] += int(count)
        known = {str(r[0]): r for r in await self._db.execute_fetchall("SELECT * FROM destinations")}
        result = []
        for dest in sorted(set(backlog) | set(known)):
            row: Any = known.get(dest)
            result.append(
                DestinationStatus(
                    destination=dest,
                    backlog=backlog.get(dest, {}),
                    failures=int(row[1]) if row else 0,
                    backoff_until=int(row[2]) if row else 0,
                    last_success_at=row[3] if row else None,
                    last_error=row[4] if row else None,
                    last_error_at=row[5] if row else None,
                    last_attempt_at=row[6] if row else None,
                )
            )
        return result

    async def purgeable(self, now: int, limit: int = 500) -> list[tuple[str, bytes]]:
        """Expired messages that still hold ciphertext and have no queued envelope copies."""
        rows = await self._db.execute_fetchall(
            """SELECT m.origin, m.message_id FROM messages m WHERE m.envelope IS NOT NULL AND m.expires <= ?
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.origin = m.origin AND o.message_id = m.message_id
                               AND o.kind = 'envelope' AND o.state = 'queued') LIMIT ?""",
            (now, limit),
        )
        return [(str(o), bytes(m)) for o, m in rows]

    async def failure_counts(self) -> dict[str, int]:
        return {str(d): int(f) for d, f in await self._db.execute_fetchall("SELECT destination, failures FROM destinations WHERE failures > 0")}

    async def receipt_context(self, digests: Sequence[bytes], message_ids: Sequence[bytes]) -> tuple[set[bytes], dict[bytes, tuple[str, int]]]:
        """For a batch of arriving receipts, in one trip: which digests are stored already, and the
        (origin, expires) of each message id this hop accepted."""

        def look(db: sqlite3.Connection) -> tuple[set[bytes], dict[bytes, tuple[str, int]]]:
            seen = {d for d in set(digests) if db.execute("SELECT 1 FROM receipts WHERE digest = ?", (d,)).fetchone() is not None}
            known: dict[bytes, tuple[str, int]] = {}
            for mid in set(message_ids):
                row = db.execute("SELECT origin, expires FROM messages WHERE message_id = ? LIMIT 1", (mid,)).fetchone()
                if row is not None:
                    known[mid] = (str(row[0]), int(row[1]))
            return seen, known

        return await run_sync(self._db, look)

    async def has_receipt(self, digest: bytes) -> bool:
        return bool(await self._db.execute_fetchall("SELECT 1 FROM receipts WHERE digest = ?", (digest,)))

    async def receipts_for(self, message_id: bytes) -> list[bytes]:
        rows = await self._db.execute_fetchall("SELECT receipt FROM receipts WHERE message_id = ? ORDER BY at, digest", (message_id,))
        return [bytes(r[0]) for r in rows]


_QUEUED_DESTINATIONS = """WITH RECURSIVE d(dest) AS (
    SELECT min(destination) FROM outbox WHERE state = 'queued'
    UNION ALL
    SELECT (SELECT min(destination) FROM outbox WHERE state = 'queued' AND destination > d.dest) FROM d WHERE d.dest IS NOT NULL
) SELECT dest FROM d WHERE dest IS NOT NULL"""
"""The distinct destinations with queued rows, one index seek each (a skip scan), however long their queues are."""
_DUE_PROBE = (
    "SELECT 1 FROM outbox WHERE state = 'queued' AND destination = ? AND lane = ? AND kind = ? AND next_attempt_at <= ? AND expires > ? LIMIT 1"
)
"""Expired rows are never due: the expiry sweep ends them, they are never sent."""

_ROW_SELECT = (
    "SELECT o.id, o.destination, o.lane, o.kind, o.origin, o.message_id, o.recipients, o.payload, o.prev, o.attempts, o.expires,"
    " o.delayed_sent, o.created_at, m.header_digest, CASE WHEN o.kind = 'envelope' THEN m.envelope END"
    " FROM outbox o LEFT JOIN messages m ON m.origin = o.origin AND m.message_id = o.message_id"
)
"""Outbox rows with their message's header digest and (for envelope copies) ciphertext, in one read."""

_NEXT_BATCH = (
    _ROW_SELECT  # noqa: S608 - constant SQL; every value is a bound parameter
    + " JOIN (SELECT id FROM outbox INDEXED BY outbox_queued_order"
    + " WHERE state = 'queued' AND destination = ? AND lane = ? AND kind = ? AND next_attempt_at <= ? AND expires > ? ORDER BY id LIMIT ?)"
    + " AS pick ON pick.id = o.id ORDER BY o.id"
)
"""The oldest due, unexpired rows of one lane: picked in id order from the index (migration 4), stopping at the
limit; only the picked rows are joined with their ciphertext."""


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        id=int(r[0]),
        destination=str(r[1]),
        lane=int(r[2]),
        kind=str(r[3]),
        origin=str(r[4]),
        message_id=bytes(r[5]),
        recipients=tuple(x for x in str(r[6]).split(",") if x),
        payload=bytes(r[7]) if r[7] is not None else None,
        prev=bytes(r[8]) if r[8] is not None else None,
        attempts=int(r[9]),
        expires=int(r[10]),
        delayed_sent=bool(r[11]),
        created_at=int(r[12]),
        header_digest=bytes(r[13]) if r[13] is not None else b"",
        envelope=bytes(r[14]) if r[14] is not None else None,
    )


# SQL the hop passes to LogStore.submit; kept here beside the schema they write.
INSERT_MESSAGE = (
    "INSERT INTO messages (origin, message_id, envelope, header_digest, priority, expires, received_at, peer, receipt, header, header_sig)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (destination, lane, kind, origin, message_id, recipients, payload, prev, state, next_attempt_at, expires, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)"
)
INSERT_RECEIPT = "INSERT OR IGNORE INTO receipts (digest, message_id, receipt, at) VALUES (?, ?, ?, ?)"
FINISH_ROW = "UPDATE outbox SET state = ?, last_error = ? WHERE id = ? AND state = 'queued'"
RETRY_ROW = "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, delayed_sent = ?, last_error = ? WHERE id = ? AND state = 'queued'"
DEST_SUCCESS = (
    "INSERT INTO destinations (destination, failures, backoff_until, last_success_at, last_attempt_at) VALUES (?, 0, 0, ?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET failures = 0, backoff_until = 0, last_success_at = excluded.last_success_at,"
    " last_attempt_at = excluded.last_attempt_at"
)
DEST_FAILURE = (
    "INSERT INTO destinations (destination, failures, backoff_until, last_error, last_error_at, last_attempt_at) VALUES (?, 1, ?, ?, ?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET failures = failures + 1, backoff_until = excluded.backoff_until,"
    " last_error = excluded.last_error, last_error_at = excluded.last_error_at, last_attempt_at = excluded.last_attempt_at"
)
RETRY_NOW = "UPDATE outbox SET next_attempt_at = 0 WHERE destination = ? AND state = 'queued'"
DEST_RESET = "UPDATE destinations SET failures = 0, backoff_until = 0 WHERE destination = ? AND failures > 0"
DELETE_FINISHED = "DELETE FROM outbox WHERE state <> 'queued' AND expires <= ?"
"""Finished copies are kept until their message expires (for ``/v1/destinations`` forensics), then dropped;
the receipts and log entries they produced stay."""
MARK_DELAYED = "UPDATE outbox SET delayed_sent = 1 WHERE id = ?"
PURGE_MESSAGE = "UPDATE messages SET envelope = NULL WHERE origin = ? AND message_id = ?"
