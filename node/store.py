"""The agency node's own tables: alerts it sent, its inbox, acknowledgements, escalations, officer actions.

They live in the hop's SQLite file (``hop.db``) next to the hop tables, and
every write goes through the audit log's sequencer (``LogStore.submit``), so an
alert is stored, its escalation steps scheduled and its envelope queued in one
commit, and an ack that arrives cancels the pending steps in the same commit
that accepts it. Reads use their own connection.

What is plaintext here, and when it goes:

* ``alerts.content`` (what the officer composed, kept so an escalation tier can
  be sealed later) and ``inbox.content`` (what this agency's tier could open)
  are set to NULL at sunset (``expires`` + ``[node] retention``). Every
  connection runs with ``secure_delete`` and the node truncates the WAL after a
  purge, so the bytes are gone from disk, not just unlinked;
* headers, tiers (member ids and section names), receipts, acks and officer
  action records stay: the delivery timeline of a purged alert is complete.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.db import open_db

MIGRATIONS = (
    """CREATE TABLE alerts (
    message_id BLOB PRIMARY KEY, kind TEXT NOT NULL, parent BLOB, refs TEXT NOT NULL, officer TEXT NOT NULL,
    created INTEGER NOT NULL, expires INTEGER NOT NULL, priority TEXT NOT NULL, label TEXT NOT NULL,
    header_digest BLOB NOT NULL, tiers TEXT NOT NULL, content BLOB, status TEXT NOT NULL, purged INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX alerts_by_created ON alerts (created);
CREATE INDEX alerts_by_sunset ON alerts (expires) WHERE purged = 0;
CREATE TABLE escalations (
    id INTEGER PRIMARY KEY, alert BLOB NOT NULL, watcher TEXT NOT NULL, target TEXT NOT NULL, due_at INTEGER NOT NULL,
    state TEXT NOT NULL, message_id BLOB, decided_at INTEGER);
CREATE INDEX escalations_due ON escalations (due_at) WHERE state = 'pending';
CREATE INDEX escalations_by_alert ON escalations (alert);
CREATE TABLE inbox (
    message_id BLOB PRIMARY KEY, origin TEXT NOT NULL, kind TEXT NOT NULL, refs TEXT NOT NULL, priority TEXT NOT NULL,
    label TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL, received_at INTEGER NOT NULL, tier TEXT NOT NULL,
    visible TEXT NOT NULL, withheld TEXT NOT NULL, content BLOB, purged INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX inbox_by_sunset ON inbox (expires) WHERE purged = 0;
CREATE TABLE acks (
    message_id BLOB PRIMARY KEY, ref BLOB NOT NULL, direction TEXT NOT NULL, member TEXT NOT NULL, officer TEXT,
    disposition TEXT NOT NULL, reason TEXT, comment TEXT, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX acks_by_ref ON acks (ref);
CREATE TABLE officer_actions (
    log_index INTEGER PRIMARY KEY, at INTEGER NOT NULL, officer TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL)""",
)


class AlertStatus(enum.StrEnum):
    ACTIVE = "active"
    UPDATED = "updated"
    CANCELLED = "cancelled"


class EscalationState(enum.StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    ACKED = "acked"
    """The watched tier accepted before the deadline: never sent."""
    CANCELLED = "cancelled"
    """The alert was cancelled before the deadline."""
    EXPIRED = "expired"
    """The alert expired before the step could run (e.g. the node was down past its expiry)."""


INSERT_ALERT = (
    "INSERT INTO alerts (message_id, kind, parent, refs, officer, created, expires, priority, label, header_digest, tiers, content, status)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active')"
)
SET_ALERT_STATUS = "UPDATE alerts SET status = ? WHERE message_id = ? AND status <> 'cancelled'"
INSERT_ESCALATION = "INSERT INTO escalations (alert, watcher, target, due_at, state) VALUES (?, ?, ?, ?, 'pending')"
DECIDE_ESCALATION = "UPDATE escalations SET state = ?, message_id = ?, decided_at = ? WHERE id = ? AND state = 'pending'"
CANCEL_ESCALATIONS = "UPDATE escalations SET state = ?, decided_at = ? WHERE alert = ? AND state = 'pending'"
ACK_ESCALATIONS = (
    "UPDATE escalations SET state = 'acked', decided_at = ? WHERE alert = ? AND state = 'pending' AND due_at > ? AND watcher IN"
    " (SELECT json_extract(t.value, '$.name') FROM alerts AS a, json_each(a.tiers) AS t, json_each(json_extract(t.value, '$.recipients')) AS r"
    "  WHERE a.message_id = ? AND r.value = ?)"
)
"""An accepted ack from ``member`` decides the pending steps watching a tier ``member`` is in: (now, alert, now, alert, member)."""
INSERT_INBOX = (
    "INSERT OR IGNORE INTO inbox (message_id, origin, kind, refs, priority, label, created, expires, received_at, tier, visible, withheld, content)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_ACK = (
    "INSERT OR IGNORE INTO acks (message_id, ref, direction, member, officer, disposition, reason, comment, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_ACTION = "INSERT INTO officer_actions (log_index, at, officer, role, action, target) VALUES (?, ?, ?, ?, ?, ?)"
SUNSET_ALERTS = "UPDATE alerts SET content = NULL, purged = 1 WHERE purged = 0 AND expires <= ?"
SUNSET_INBOX = "UPDATE inbox SET content = NULL, purged = 1 WHERE purged = 0 AND expires <= ?"
SUNSET_ACKS = (
    "UPDATE acks SET comment = NULL WHERE comment IS NOT NULL"
    " AND ref IN (SELECT message_id FROM inbox WHERE purged = 1 UNION SELECT message_id FROM alerts WHERE purged = 1)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SentAlert:
    message_id: bytes
    kind: str
    parent: bytes | None
    refs: tuple[bytes, ...]
    officer: str
    created: int
    expires: int
    priority: str
    label: str
    header_digest: bytes
    tiers: list[dict[str, Any]]
    content: dict[str, Any] | None
    status: str
    purged: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxItem:
    message_id: bytes
    origin: str
    kind: str
    refs: tuple[bytes, ...]
    priority: str
    label: str
    created: int
    expires: int
    received_at: int
    tier: str
    visible: tuple[str, ...]
    withheld: tuple[str, ...]
    content: dict[str, Any] | None
    purged: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AckRecord:
    message_id: bytes
    ref: bytes
    direction: str
    member: str
    officer: str | None
    disposition: str
    reason: str | None
    comment: str | None
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationRow:
    id: int
    alert: bytes
    watcher: str
    target: str
    due_at: int
    state: str
    message_id: bytes | None
    decided_at: int | None


def refs_text(refs: tuple[bytes, ...] | list[bytes]) -> str:
    return ",".join(r.hex() for r in refs)


def _refs(text: str) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(x) for x in text.split(",") if x)


def _json(data: Any) -> Any:
    return json.loads(data) if data is not None else None


class NodeReader:
    """Read-only queries over the node tables, on their own connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._db = conn

    @classmethod
    async def open(cls, path: Path | str) -> NodeReader:
        return cls(await open_db(path))

    async def close(self) -> None:
        await self._db.close()

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return list(await self._db.execute_fetchall(sql, params))

    async def alert(self, message_id: bytes) -> SentAlert | None:
        rows = await self._rows("SELECT * FROM alerts WHERE message_id = ?", (message_id,))
        return _alert(rows[0]) if rows else None

    async def alerts(self, *, limit: int = 200, top_level: bool = True) -> list[SentAlert]:
        where = "WHERE kind <> 'ack' AND parent IS NULL" if top_level else "WHERE kind <> 'ack'"
        return [_alert(r) for r in await self._rows(f"SELECT * FROM alerts {where} ORDER BY created DESC LIMIT ?", (limit,))]  # noqa: S608 - constant

    async def children(self, parent: bytes) -> list[SentAlert]:
        """Escalation messages sent for ``parent``."""
        return [_alert(r) for r in await self._rows("SELECT * FROM alerts WHERE parent = ? ORDER BY created", (parent,))]

    async def referencing(self, message_id: bytes) -> list[tuple[bytes, str, int]]:
        """(id, kind, created) of sent updates and cancels that reference ``message_id``."""
        like = f"%{message_id.hex()}%"
        rows = await self._rows("SELECT message_id, kind, created FROM alerts WHERE refs LIKE ? ORDER BY created", (like,))
        return [(bytes(m), str(k), int(c)) for m, k, c in rows]

    async def statuses(self, ids: tuple[bytes, ...]) -> dict[bytes, str]:
        """Status of each id that is a message this agency sent (absent: not ours)."""
        out: dict[bytes, str] = {}
        for mid in ids:
            rows = await self._rows("SELECT status FROM alerts WHERE message_id = ? AND kind <> 'ack'", (mid,))
            if rows:
                out[mid] = str(rows[0][0])
        return out

    async def escalations(self, alert: bytes) -> list[EscalationRow]:
        return [_escalation(r) for r in await self._rows("SELECT * FROM escalations WHERE alert = ? ORDER BY id", (alert,))]

    async def due_escalations(self, now: int) -> list[EscalationRow]:
        return [_escalation(r) for r in await self._rows("SELECT * FROM escalations WHERE state = 'pending' AND due_at <= ? ORDER BY due_at", (now,))]

    async def escalation_counts(self) -> dict[str, int]:
        """Escalation steps by state, every state present (0 when none)."""
        counts = {str(state): int(n) for state, n in await self._rows("SELECT state, count(*) FROM escalations GROUP BY state")}
        return {state.value: counts.get(state.value, 0) for state in EscalationState}

    async def next_escalation_at(self) -> int | None:
        rows = await self._rows("SELECT min(due_at) FROM escalations WHERE state = 'pending'")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def inbox_item(self, message_id: bytes) -> InboxItem | None:
        rows = await self._rows("SELECT * FROM inbox WHERE message_id = ?", (message_id,))
        return _inbox(rows[0]) if rows else None

    async def inbox(self, *, limit: int = 500) -> list[InboxItem]:
        """Most urgent first (precedence), then newest."""
        sql = (
            "SELECT * FROM inbox ORDER BY CASE priority WHEN 'FLASH' THEN 0 WHEN 'IMMEDIATE' THEN 1 WHEN 'PRIORITY' THEN 2 ELSE 3 END,"
            " received_at DESC LIMIT ?"
        )
        return [_inbox(r) for r in await self._rows(sql, (limit,))]

    async def inbox_references(self) -> dict[bytes, list[tuple[bytes, str, int]]]:
        """For every inbox item, the later items (updates, cancels, escalations) that reference it, in one pass."""
        out: dict[bytes, list[tuple[bytes, str, int]]] = {}
        for mid, kind, created, refs in await self._rows("SELECT message_id, kind, created, refs FROM inbox WHERE refs <> '' ORDER BY created"):
            for ref in _refs(str(refs)):
                out.setdefault(ref, []).append((bytes(mid), str(kind), int(created)))
        return out

    async def inbox_referencing(self, message_id: bytes) -> list[tuple[bytes, str, int]]:
        like = f"%{message_id.hex()}%"
        rows = await self._rows("SELECT message_id, kind, created FROM inbox WHERE refs LIKE ? ORDER BY created", (like,))
        return [(bytes(m), str(k), int(c)) for m, k, c in rows]

    async def acks(self, ref: bytes) -> list[AckRecord]:
        rows = await self._rows("SELECT * FROM acks WHERE ref = ? ORDER BY at", (ref,))
        return [
            AckRecord(
                message_id=bytes(r[0]),
                ref=bytes(r[1]),
                direction=str(r[2]),
                member=str(r[3]),
                officer=r[4],
                disposition=str(r[5]),
                reason=r[6],
                comment=r[7],
                at=int(r[8]),
            )
            for r in rows
        ]

    async def accepted_by(self, ref: bytes, members: tuple[str, ...]) -> bool:
        """Whether any of ``members`` sent an ``accepted`` ack for ``ref``."""
        marks = ",".join("?" for _ in members)
        rows = await self._rows(
            f"SELECT 1 FROM acks WHERE ref = ? AND direction = 'in' AND disposition = 'accepted' AND member IN ({marks}) LIMIT 1",  # noqa: S608 - placeholders
            (ref, *members),
        )
        return bool(rows)

    async def sunset_due(self, cutoff: int) -> int:
        """How many sent alerts and inbox items still hold content although they expired before ``cutoff``."""
        rows = await self._rows(
            "SELECT (SELECT count(*) FROM alerts WHERE purged = 0 AND expires <= ?) + (SELECT count(*) FROM inbox WHERE purged = 0 AND expires <= ?)",
            (cutoff, cutoff),
        )
        return int(rows[0][0])

    async def truncate_wal(self) -> None:
        """Fold the WAL into the database file and truncate it, so old page images of purged rows leave the disk."""
        await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def actions(self, *, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self._rows("SELECT log_index, at, officer, role, action, target FROM officer_actions ORDER BY log_index DESC LIMIT ?", (limit,))
        return [{"log_index": r[0], "at": r[1], "officer": r[2], "role": r[3], "action": r[4], "target": r[5]} for r in rows]


def _alert(r: Any) -> SentAlert:
    return SentAlert(
        message_id=bytes(r[0]),
        kind=str(r[1]),
        parent=bytes(r[2]) if r[2] is not None else None,
        refs=_refs(str(r[3])),
        officer=str(r[4]),
        created=int(r[5]),
        expires=int(r[6]),
        priority=str(r[7]),
        label=str(r[8]),
        header_digest=bytes(r[9]),
        tiers=json.loads(r[10]),
        content=_json(r[11]),
        status=str(r[12]),
        purged=bool(r[13]),
    )


def _inbox(r: Any) -> InboxItem:
    return InboxItem(
        message_id=bytes(r[0]),
        origin=str(r[1]),
        kind=str(r[2]),
        refs=_refs(str(r[3])),
        priority=str(r[4]),
        label=str(r[5]),
        created=int(r[6]),
        expires=int(r[7]),
        received_at=int(r[8]),
        tier=str(r[9]),
        visible=tuple(x for x in str(r[10]).split(",") if x),
        withheld=tuple(x for x in str(r[11]).split(",") if x),
        content=_json(r[12]),
        purged=bool(r[13]),
    )


def _escalation(r: Any) -> EscalationRow:
    return EscalationRow(
        id=int(r[0]),
        alert=bytes(r[1]),
        watcher=str(r[2]),
        target=str(r[3]),
        due_at=int(r[4]),
        state=str(r[5]),
        message_id=bytes(r[6]) if r[6] is not None else None,
        decided_at=int(r[7]) if r[7] is not None else None,
    )
