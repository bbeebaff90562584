"""A virtual clock for tests: time moves only when the test says so.

``FakeClock`` implements ``gateway.clock.Clock``. Its wall clock starts at
``start_ms`` and its monotonic clock at 0; :meth:`FakeClock.advance` moves both
forward and resolves every pending :meth:`FakeClock.sleep` whose deadline has
been reached, in deadline order. Nothing ever really sleeps: a sleeper is an
``asyncio`` future that ``advance`` completes.

``advance`` moves time at once, so synchronous tests just call it. It returns
an :class:`Advanced` that async tests may await: awaiting it yields to the
event loop a few times so that the woken tasks get to run (and returns how
many sleepers were woken)::

    clock = FakeClock(T0)
    task = asyncio.create_task(sweeper.run())
    await clock.wait_for_sleepers(1)   # the sweeper is parked in sleep()
    await clock.advance(5_000)         # its deadline passes and it runs its next round
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000
SETTLE_ROUNDS = 10
"""How many times awaiting an :class:`Advanced` (or :meth:`FakeClock.settle`) yields to the loop."""


@dataclass(frozen=True, slots=True)
class Advanced:
    """The result of :meth:`FakeClock.advance`: time has already moved.

    Attributes:
        woken: How many sleepers the step woke (cancelled sleeps not counted).
    """

    woken: int

    def __await__(self) -> Generator[Any, None, int]:
        """Yield to the event loop so the woken tasks run; evaluate to ``woken``."""
        for _ in range(SETTLE_ROUNDS):
            yield from asyncio.sleep(0).__await__()
        return self.woken


class FakeClock:
    """A deterministic :class:`gateway.clock.Clock` driven by the test."""

    def __init__(self, start_ms: int) -> None:
        self._wall_offset_ms = start_ms
        self._elapsed_ns = 0
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    # -- the Clock protocol ----------------------------------------------------------------

    def now_ms(self) -> int:
        return self._wall_offset_ms + self._elapsed_ns // _NS_PER_MS

    def monotonic(self) -> float:
        return self._elapsed_ns / _NS_PER_S

    async def sleep(self, seconds: float) -> None:
        """Park until :meth:`advance` reaches ``seconds`` from now (yield once if ``seconds <= 0``)."""
        if seconds <= 0:
            await asyncio.sleep(0)  # yields to the loop; never waits
            return
        deadline = self._elapsed_ns + max(1, round(seconds * _NS_PER_S))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        await future

    # -- driving time ----------------------------------------------------------------------

    def advance(self, ms: int) -> Advanced:
        """Move both clocks forward by ``ms`` and wake the sleepers now due.

        Returns:
            What happened; ``await`` it in async tests to let the woken tasks run.

        Raises:
            ValueError: ``ms`` is negative (monotonic time never goes back; see :meth:`jump_wall`).
        """
        if ms < 0:
            raise ValueError("a FakeClock only moves forward; use jump_wall() for wall-clock steps")
        self._elapsed_ns += ms * _NS_PER_MS
        woken = 0
        while self._sleepers and self._sleepers[0][0] <= self._elapsed_ns:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
                woken += 1
        return Advanced(woken)

    def advance_to(self, now_ms: int) -> Advanced:
        """Advance until the wall clock reads ``now_ms``; see :meth:`advance`."""
        return self.advance(now_ms - self.now_ms())

    def jump_wall(self, ms: int) -> None:
        """Step the wall clock alone by ``ms`` (may be negative), as NTP would; sleepers are unaffected."""
        self._wall_offset_ms += ms

    @property
    def sleepers(self) -> int:
        """How many ``sleep()`` calls are parked (cancelled ones excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def next_deadline(self) -> float | None:
        """The monotonic time of the earliest parked sleep, or None."""
        pending = [deadline for deadline, _, future in self._sleepers if not future.done()]
        return min(pending) / _NS_PER_S if pending else None

    async def settle(self, rounds: int = SETTLE_ROUNDS) -> None:
        """Yield to the event loop ``rounds`` times so woken tasks get to run."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def wait_for_sleepers(self, count: int, *, max_rounds: int = 1000) -> None:
        """Yield to the loop until at least ``count`` sleeps are parked.

        Raises:
            AssertionError: Still fewer after ``max_rounds`` yields (the code under test never slept).
        """
        for _ in range(max_rounds):
            if self.sleepers >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"expected {count} parked sleep(s), found {self.sleepers}")
