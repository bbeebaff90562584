"""The clock seam: SystemClock, the FakeClock tests drive, and the rule that nothing else reads time."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import gateway
from gateway.clock import Clock, SystemClock
from tests.support.clock import FakeClock
from tests.support.federation import T0

ROOT = Path(gateway.__file__).parent.parent


def test_both_clocks_satisfy_the_protocol() -> None:
    clocks: list[Clock] = [SystemClock(), FakeClock(T0)]
    assert all(isinstance(c, Clock) for c in clocks)


async def test_system_clock_reads_real_time() -> None:
    clock = SystemClock()
    assert clock.now_ms() > 1_600_000_000_000  # after 2020
    assert isinstance(clock.now_ms(), int)
    first = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= first


def test_fake_clock_starts_where_told_and_moves_only_when_advanced() -> None:
    clock = FakeClock(T0)
    assert (clock.now_ms(), clock.monotonic()) == (T0, 0.0)
    assert (clock.now_ms(), clock.monotonic()) == (T0, 0.0)
    assert clock.advance(1500).woken == 0
    assert (clock.now_ms(), clock.monotonic()) == (T0 + 1500, 1.5)
    assert clock.advance_to(T0 + 4000).woken == 0
    assert clock.now_ms() == T0 + 4000


def test_fake_clock_never_goes_back() -> None:
    clock = FakeClock(T0)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_wall_clock_jumps_leave_monotonic_time_alone() -> None:
    clock = FakeClock(T0)
    clock.advance(1000)
    clock.jump_wall(-60_000)
    assert (clock.now_ms(), clock.monotonic()) == (T0 - 59_000, 1.0)


async def test_sleep_wakes_exactly_at_its_deadline() -> None:
    clock = FakeClock(T0)
    task = asyncio.create_task(clock.sleep(2.0))
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline() == 2.0
    assert await clock.advance(1999) == 0
    assert not task.done()
    assert clock.advance(1).woken == 1
    assert not task.done()  # woken, but it has not run yet
    await clock.settle()
    assert task.done()
    assert clock.sleepers == 0
    assert clock.next_deadline() is None


async def test_sleepers_wake_in_deadline_order() -> None:
    clock = FakeClock(T0)
    woke: list[str] = []

    async def nap(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(nap(name, s)) for name, s in (("late", 3.0), ("early", 1.0), ("middle", 2.0), ("tie", 2.0))]
    await clock.wait_for_sleepers(4)
    assert clock.advance(10_000).woken == 4
    await asyncio.gather(*tasks)
    assert woke == ["early", "middle", "tie", "late"]


async def test_zero_and_negative_sleeps_return_without_advancing() -> None:
    clock = FakeClock(T0)
    await clock.sleep(0)
    await clock.sleep(-1)
    assert clock.sleepers == 0 and clock.monotonic() == 0.0


async def test_tiny_sleeps_still_need_time_to_pass() -> None:
    clock = FakeClock(T0)
    task = asyncio.create_task(clock.sleep(1e-12))
    await clock.wait_for_sleepers(1)
    assert clock.advance(0).woken == 0
    assert clock.advance(1).woken == 1
    await task


async def test_cancelled_sleep_is_not_woken_or_counted() -> None:
    clock = FakeClock(T0)
    task = asyncio.create_task(clock.sleep(1.0))
    await clock.wait_for_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    assert clock.next_deadline() is None
    assert clock.advance(5000).woken == 0


async def test_periodic_loop_runs_once_per_period() -> None:
    clock = FakeClock(T0)
    ticks: list[int] = []

    async def sweeper() -> None:
        while True:
            ticks.append(clock.now_ms())
            await clock.sleep(5)

    task = asyncio.create_task(sweeper())
    for _ in range(3):
        await clock.wait_for_sleepers(1)
        assert await clock.advance(5000) == 1
    await clock.wait_for_sleepers(1)
    task.cancel()
    assert ticks == [T0, T0 + 5000, T0 + 10_000, T0 + 15_000]


async def test_wait_for_sleepers_fails_when_nobody_sleeps() -> None:
    with pytest.raises(AssertionError, match="expected 1 parked"):
        await FakeClock(T0).wait_for_sleepers(1, max_rounds=3)


def _clock_reads(path: Path) -> list[str]:
    """Imports of ``time`` and ``datetime.now``-style calls in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] == "time"]
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found.append("from time import ...")
        elif isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today"} and ast.unparse(node.value).split(".")[-1] in {"datetime", "date"}:
            found.append(ast.unparse(node))
    return found


def test_only_gateway_clock_reads_the_system_clock() -> None:
    files = sorted((ROOT / "gateway").rglob("*.py")) + sorted((ROOT / "node").rglob("*.py"))
    offenders = {str(f.relative_to(ROOT)): reads for f in files if f.name != "clock.py" and (reads := _clock_reads(f))}
    assert offenders == {}
    assert _clock_reads(ROOT / "gateway" / "clock.py") == ["import time"]


def test_the_clock_read_check_catches_offenders(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom time import monotonic\nimport datetime\nx = datetime.datetime.now()\ny = datetime.date.today()\n", encoding="utf-8")
    assert _clock_reads(bad) == ["import time", "from time import ...", "datetime.datetime.now", "datetime.date.today"]
