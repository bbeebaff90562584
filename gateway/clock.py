"""The one door to the system clock for every server component.

Everything in ``gateway/`` and ``node/`` that needs the time, measures a
duration or waits takes a :class:`Clock` from its constructor, so tests drive
time with ``tests.support.clock.FakeClock`` instead of sleeping or patching
globals (the lesson of TUF's ``datetime.now()`` and freezegun). This is the only
module there allowed to read the system clock: ruff's banned-api rule (TID251)
refuses ``time.time``, ``time.monotonic`` and friends everywhere else.

Two kinds of time, never mixed:

* ``now_ms()`` is wall-clock unix milliseconds, the protocol's time: request
  and envelope timestamps, expiry, key validity. It can jump (NTP).
* ``monotonic()`` and ``sleep()`` measure durations: rate limits, backoff
  timers, latency. They never jump backwards.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Where a component reads the time and waits."""

    def now_ms(self) -> int:
        """Return the wall-clock time in unix milliseconds."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards (arbitrary origin)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the monotonic clock (at once if ``seconds <= 0``)."""
        ...


class SystemClock:
    """The real clock: :func:`time.time_ns`, :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def now_ms(self) -> int:
        """Return the wall-clock time in unix milliseconds."""
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait with :func:`asyncio.sleep`."""
        await asyncio.sleep(seconds)
