"""Crash safety: SIGKILL a real appending process; nothing acknowledged is lost, nothing forks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from protocol.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.support.logs import open_store, parse

ROOT = Path(__file__).resolve().parents[2]


def _run_and_kill(db: Path, count: int, kill_after_acks: int) -> dict[int, bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.log_appender", str(db), str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acked: dict[int, bytes] = {}
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    try:
        while len(acked) < kill_after_acks and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            _, index, data = line.split()
            acked[int(index)] = bytes.fromhex(data)
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    for line in rest.splitlines():  # acks already written before the kill still count
        _, index, data = line.split()
        acked[int(index)] = bytes.fromhex(data)
    assert proc.returncode == -signal.SIGKILL, err
    return acked


async def test_sigkill_during_appends_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    acked = _run_and_kill(db, count=5000, kill_after_acks=300)
    assert len(acked) >= 300
    store = await open_store(db)
    try:
        before = [parse(note) for _, note in await store.checkpoints()]
        head = parse(await store.checkpoint())
        assert head.size >= max(acked) + 1
        entries: list[bytes] = []
        for start in range(0, head.size, 1000):
            entries += await store.entries(start, min(start + 1000, head.size))
        for index, data in acked.items():
            assert entries[index] == data
            if index % 37 == 0:
                verify_inclusion(index, head.size, leaf_hash(data), await store.inclusion_proof(index, head.size), head.root)
        # Restarted, the log keeps growing consistently with everything signed before the crash.
        for i in range(10):
            await store.append(f"after crash {i}".encode())
        after = parse(await store.checkpoint())
        for old in before:
            verify_consistency(old.size, after.size, old.root, after.root, await store.consistency_proof(old.size, after.size))
    finally:
        await store.close()
    # A second crash on the same file, then a full verification again.
    more = _run_and_kill(db, count=2000, kill_after_acks=100)
    store = await open_store(db)
    try:
        head = parse(await store.checkpoint())
        for index, data in more.items():
            assert (await store.entries(index, index + 1))[0] == data
        verify_consistency(after.size, head.size, after.root, head.root, await store.consistency_proof(after.size, head.size))
    finally:
        await store.close()
