"""The outbox's batch query: the oldest due, unexpired rows of one lane, in order, whatever the backlog."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.db import migrate, open_db
from gateway.hop_store import _NEXT_BATCH, INSERT_MESSAGE, INSERT_OUTBOX, MIGRATIONS, HopReader

NOW = 1_800_000_000_000


async def test_next_batch_is_the_oldest_due_unexpired_rows_in_id_order(tmp_path: Path) -> None:
    path = tmp_path / "hop.db"
    conn = await open_db(path)
    await migrate(conn, "hop", MIGRATIONS)
    rows = []
    for i in range(300):
        mid = i.to_bytes(16, "big")
        await conn.execute(INSERT_MESSAGE, ("int-org", mid, b"ciphertext %d" % i, b"\0" * 32, 0, NOW + 3_600_000, NOW, "int-org", b"r", b"h", b"s"))
        due = NOW + 60_000 if i % 3 == 0 else NOW  # every third copy is waiting for its retry
        expires = NOW - 1 if i % 7 == 0 else NOW + 3_600_000  # every seventh has expired
        rows.append((i, due, expires))
        await conn.execute(INSERT_OUTBOX, ("ke-police", 0, "envelope", "int-org", mid, "ke-police", None, None, due, expires, NOW))
    await conn.execute(INSERT_OUTBOX, ("ke-police", 1, "envelope", "int-org", (0).to_bytes(16, "big"), "ke-police", None, None, NOW, NOW + 1, NOW))
    await conn.commit()
    await conn.close()
    reader = await HopReader.open(path)
    try:
        batch = await reader.next_batch("ke-police", 0, "envelope", NOW, 50)
    finally:
        await reader.close()
    expected = [i for i, due, expires in rows if due <= NOW and expires > NOW][:50]
    assert [int.from_bytes(r.message_id, "big") for r in batch] == expected
    assert [r.envelope for r in batch] == [b"ciphertext %d" % i for i in expected]
    with sqlite3.connect(path) as raw:
        plan = " ".join(str(step[3]) for step in raw.execute("EXPLAIN QUERY PLAN " + _NEXT_BATCH, ("d", 0, "envelope", NOW, NOW, 50)))
    assert "outbox_queued_order" in plan, "rows are picked in id order from the index, not all collected and sorted"
