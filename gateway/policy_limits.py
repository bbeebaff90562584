"""Per-origin rate limits and the request nonce cache: the gatekeepers that count requests.

Both read only the injected :class:`~gateway.clock.Clock` and keep bounded state in memory.
:class:`RateLimiter` holds a token bucket per origin on the monotonic clock, configured by
``[policy.rate_limits]`` (:class:`RateLimits`), and drops least recently used buckets past
``max_origins``. :class:`NonceCache` does the replay detection that the pure
:func:`protocol.transport.verify_request` cannot: it remembers each verified request's nonce
until ``ts + window_ms`` and, when full of live nonces, refuses new requests rather than
forget one. The bounds and why they are safe are explained in :mod:`gateway.policy`, which
re-exports every public name defined here.

The small readers for the ``[policy]`` TOML table (:func:`_keys`, :func:`_positive_int`,
:func:`_show`) live here too: :meth:`gateway.policy.Policy.from_config` uses them and also
validates ``rate_limits`` through :class:`RateLimits`, so this module sits below
:mod:`gateway.policy` and must not import it.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock
from protocol import fields
from protocol.errors import ConfigError, MalformedError, RateLimitedError, ReplayError

DEFAULT_RATE = 50.0
DEFAULT_BURST = 200
_EPSILON = 1e-9
"""Tokens lost to float rounding that still count as a whole token."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """A token bucket's refill rate (per second) and capacity."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if type(self.rate) not in (int, float) or not math.isfinite(self.rate) or self.rate <= 0:
            raise ConfigError(f"rate: expected a positive number of requests per second, got {_show(self.rate)}")
        if type(self.burst) is not int or self.burst < 1:
            raise ConfigError(f"burst: expected a positive integer, got {_show(self.burst)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimits:
    """The default limit and per-origin overrides from ``[policy.rate_limits]``."""

    default: RateLimit = RateLimit(rate=DEFAULT_RATE, burst=DEFAULT_BURST)
    overrides: tuple[tuple[str, RateLimit], ...] = ()

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, where: str = "policy") -> RateLimits:
        """Read ``rate_limits`` from the ``[policy]`` table (absent: the defaults).

        Raises:
            ConfigError: Anything invalid, naming the key path.
        """
        where = f"{where}.rate_limits"
        raw = table.get("rate_limits", {})
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a table")
        default = RateLimits().default
        overrides = []
        for key, value in raw.items():
            try:
                member = key if key == "default" else fields.member_id(where, key)
            except MalformedError:
                raise ConfigError(f"{where}.{key}: {_show(key)} is neither default nor a valid member id") from None
            limit_table = _keys(f"{where}.{key}", value, required=("rate", "burst"))
            try:
                limit = RateLimit(rate=limit_table["rate"], burst=limit_table["burst"])
            except ConfigError as exc:
                raise ConfigError(f"{where}.{key}.{exc.message}") from None
            if member == "default":
                default = limit
            else:
                overrides.append((member, limit))
        return cls(default=default, overrides=tuple(sorted(overrides, key=lambda pair: pair[0])))


class _Bucket:
    __slots__ = ("limit", "tokens", "updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = now

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.limit.burst), self.tokens + max(0.0, now - self.updated) * self.limit.rate)
        self.updated = now


class RateLimiter:
    """Per-origin token buckets on the injected clock's monotonic time."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock, *, overrides: Mapping[str, RateLimit] | None = None, max_origins: int = 10_000) -> None:
        """Start with every bucket full.

        Raises:
            ConfigError: A non-positive rate, burst or ``max_origins``.
        """
        self._default = RateLimit(rate=rate_per_s, burst=burst)
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._max_origins = _positive_int("max_origins", max_origins)
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @classmethod
    def from_config(cls, table: Mapping[str, Any], clock: Clock, *, where: str = "policy", max_origins: int = 10_000) -> RateLimiter:
        """Build from the ``[policy]`` table's ``rate_limits``.

        Raises:
            ConfigError: Anything invalid, naming the key path.
        """
        limits = RateLimits.from_config(table, where=where)
        return cls(limits.default.rate, limits.default.burst, clock, overrides=dict(limits.overrides), max_origins=max_origins)

    def check(self, origin: str) -> None:
        """Take one token from ``origin``'s bucket.

        Raises:
            RateLimitedError: The bucket is empty; ``retry_after_ms`` says when one token is back.
        """
        now = self._clock.monotonic()
        bucket = self._buckets.get(origin)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[origin] = _Bucket(self._overrides.get(origin, self._default), now)
        else:
            self._buckets.move_to_end(origin)
            bucket.refill(now)
        if bucket.tokens < 1.0 - _EPSILON:
            wait_ms = math.ceil((1.0 - bucket.tokens) / bucket.limit.rate * 1000)
            raise RateLimitedError(f"{origin} exceeded its rate limit of {bucket.limit.rate:g}/s (burst {bucket.limit.burst})", retry_after_ms=wait_ms)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def _make_room(self, now: float) -> None:
        """Evict refilled buckets from the least recently used end, or else the least recently used one."""
        if len(self._buckets) < self._max_origins:
            return
        evicted = False
        while self._buckets:
            origin, bucket = next(iter(self._buckets.items()))
            bucket.refill(now)
            if bucket.tokens < bucket.limit.burst:
                break
            del self._buckets[origin]
            evicted = True
        if not evicted:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class NonceCache:
    """Remembers each (origin, nonce) until ``ts + window_ms`` to refuse replayed requests."""

    def __init__(self, *, window_ms: int, clock: Clock, max_entries: int = 200_000) -> None:
        """Set the window (use the request skew limit) and the memory bound.

        Raises:
            ConfigError: A non-positive window or bound.
        """
        self._window_ms = _positive_int("window_ms", window_ms)
        self._max_entries = _positive_int("max_entries", max_entries)
        self._clock = clock
        self._expiry: dict[tuple[str, bytes], int] = {}
        self._heap: list[tuple[int, str, bytes]] = []

    def check_and_remember(self, origin: str, nonce: bytes, ts: int) -> None:
        """Record a verified request's nonce, refusing one seen before.

        Call only after :func:`protocol.transport.verify_request` accepted the
        request, so that unauthenticated traffic cannot fill the cache.

        Raises:
            ReplayError: The nonce was seen within the window, or ``ts`` is
                already older than the window.
            RateLimitedError: The cache is full of live nonces.
        """
        now = self._clock.now_ms()
        self._purge(now)
        expires = ts + self._window_ms
        if expires < now:
            raise ReplayError(f"request from {origin} at {ts} is older than the {self._window_ms} ms replay window")
        key = (origin, nonce)
        if key in self._expiry:
            raise ReplayError(f"request from {origin} reuses nonce {nonce.hex()}")
        if len(self._expiry) >= self._max_entries:
            raise RateLimitedError(f"replay cache is full ({self._max_entries} live nonces); retry shortly", retry_after_ms=self._heap[0][0] - now + 1)
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, origin, nonce))

    def _purge(self, now: int) -> None:
        # Each live key has exactly one heap entry: keys are only re-added after being popped here.
        while self._heap and self._heap[0][0] < now:
            _, origin, nonce = heapq.heappop(self._heap)
            del self._expiry[(origin, nonce)]

    def __len__(self) -> int:
        return len(self._expiry)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _keys(where: str, table: Any, *, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    for key in required:
        if key not in table:
            raise ConfigError(f"{where}.{key}: required")
    for key in table:
        if key not in required and key not in optional:
            raise ConfigError(f"{where}.{key}: unknown key (expected {', '.join(required + optional)})")
    return table


def _positive_int(where: str, value: Any) -> int:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {_show(value)}")
    return value
