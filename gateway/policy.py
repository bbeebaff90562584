"""Routing policy, per-origin rate limits and the request nonce cache.

Three gatekeepers a hop consults before it stores anything; none does I/O
except reading the injected :class:`~gateway.clock.Clock`.

**Policy** is built from small composable :class:`Check` predicates over a
:class:`RouteContext` (one copy of an envelope on its way to one next hop):
matchers (:class:`OriginIn`, :class:`AnyRecipientIn`, :class:`LabelIn`,
:class:`PriorityIn`, :class:`Anything`) and combinators (:class:`AllOf`,
:class:`AnyOf`, :class:`Not`). An empty ``AllOf``/``AnyOf`` or an empty matcher
is a :class:`~protocol.errors.ConfigError` at construction: an empty allow-set
is an error, never allow-all. A :class:`Policy` is a list of :class:`Rule`;
any matching deny rule refuses the copy whatever the allow rules say, and a
copy no allow rule matches is refused too (fail closed). The gateway config
writes it in TOML::

    [policy]
    max_ttl_ms = 604800000        # required: expires - now may not exceed this
    default = "deny"              # optional; "deny" is the only value allowed

    [[policy.rules]]
    name = "no-red-to-fr"         # optional; named in denials (else "policy.rules[0]")
    action = "deny"               # "allow" or "deny"
    labels = ["TLP:RED"]          # matchers, at least one per rule, each a
    recipients = ["fr-police"]    # non-empty list; ["*"] means any

    [[policy.rules]]
    action = "allow"
    origins = ["*"]

A rule matches when all its matchers match. ``recipients`` matches when **any**
of the copy's recipients is listed: a deny rule therefore refuses a copy that
carries even one listed recipient (the safe reading for deny), and an allow
rule accepts the whole copy if one recipient is listed, so restrict
recipients with deny rules rather than by leaving them out of an allow rule.

**Rate limits** are token buckets per origin on the monotonic clock, from
``[policy.rate_limits]``: ``default = {rate = 50.0, burst = 200}`` and optional
per-origin tables (``[policy.rate_limits.gw-eu]`` with ``rate`` and ``burst``;
a member literally called ``default`` cannot have an override). At most
``max_origins`` buckets are kept: the least recently used goes first, and one
that has refilled is indistinguishable from a fresh bucket, so evicting it
loses nothing (origins are roster members, far fewer than the bound).

**Nonce cache**: :func:`protocol.transport.verify_request` is pure, so replay
detection lives here. A nonce is remembered until ``ts + window_ms``; a request
older than that is refused as a possible replay, since the cache can no longer
vouch for it. When ``max_entries`` live nonces are held, expired ones are
dropped first; if none has expired, the new request is refused with
:class:`~protocol.errors.RateLimitedError` (retry after the oldest expires)
rather than forgetting a live nonce, which would reopen a replay window.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from gateway.clock import Clock
from protocol import fields
from protocol.errors import ConfigError, MalformedError, PolicyDeniedError, RateLimitedError, ReplayError, TtlTooLongError
from protocol.header import LABELS, PRIORITIES

WILDCARD = "*"
DEFAULT_RATE = 50.0
DEFAULT_BURST = 200
_MATCHERS = ("origins", "recipients", "labels", "priorities")
_EPSILON = 1e-9
"""Tokens lost to float rounding that still count as a whole token."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteContext:
    """What policy sees of one copy: the header's routing fields and the copy's recipients."""

    origin: str
    recipients: tuple[str, ...]
    label: str
    priority: str

    def __post_init__(self) -> None:
        fields.member_id("origin", self.origin)
        if type(self.recipients) is not tuple or not self.recipients:
            raise MalformedError("recipients: expected a non-empty tuple")
        fields.member_ids("recipients", self.recipients)
        fields.one_of("label", self.label, LABELS)
        fields.one_of("priority", self.priority, PRIORITIES)

    def describe(self) -> str:
        shown = ", ".join(self.recipients[:5]) + (f" and {len(self.recipients) - 5} more" if len(self.recipients) > 5 else "")
        return f"{self.label} {self.priority} from {self.origin} to {shown}"


class Check(Protocol):
    """A predicate over a copy; combine with :class:`AllOf`, :class:`AnyOf` and :class:`Not`."""

    def __call__(self, ctx: RouteContext, /) -> bool: ...


@dataclass(frozen=True, slots=True)
class Anything:
    """Matches every copy (the ``["*"]`` wildcard)."""

    def __call__(self, ctx: RouteContext) -> bool:
        return True


def _non_empty(kind: str, values: frozenset[str]) -> None:
    if type(values) is not frozenset or not values:
        raise ConfigError(f"{kind}() needs a non-empty frozenset; an empty allow-set is an error, not allow-all")


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginIn:
    """Matches copies whose header origin is one of ``members``."""

    members: frozenset[str]

    def __post_init__(self) -> None:
        _non_empty("OriginIn", self.members)

    def __call__(self, ctx: RouteContext) -> bool:
        return ctx.origin in self.members


@dataclass(frozen=True, slots=True, kw_only=True)
class AnyRecipientIn:
    """Matches copies with at least one recipient among ``members``."""

    members: frozenset[str]

    def __post_init__(self) -> None:
        _non_empty("AnyRecipientIn", self.members)

    def __call__(self, ctx: RouteContext) -> bool:
        return not self.members.isdisjoint(ctx.recipients)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelIn:
    """Matches copies whose TLP label is one of ``labels``."""

    labels: frozenset[str]

    def __post_init__(self) -> None:
        _non_empty("LabelIn", self.labels)
        if not self.labels <= set(LABELS):
            raise ConfigError(f"LabelIn(): {sorted(self.labels - set(LABELS))} are not TLP 2.0 labels")

    def __call__(self, ctx: RouteContext) -> bool:
        return ctx.label in self.labels


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorityIn:
    """Matches copies whose precedence is one of ``priorities``."""

    priorities: frozenset[str]

    def __post_init__(self) -> None:
        _non_empty("PriorityIn", self.priorities)
        if not self.priorities <= set(PRIORITIES):
            raise ConfigError(f"PriorityIn(): {sorted(self.priorities - set(PRIORITIES))} are not priorities")

    def __call__(self, ctx: RouteContext) -> bool:
        return ctx.priority in self.priorities


@dataclass(frozen=True, slots=True, kw_only=True)
class AllOf:
    """Matches when every check matches. Refuses to be built empty."""

    checks: tuple[Check, ...]

    def __post_init__(self) -> None:
        if not self.checks:
            raise ConfigError("AllOf() of no checks would match everything; an empty allow-set is an error, not allow-all")

    def __call__(self, ctx: RouteContext) -> bool:
        return all(check(ctx) for check in self.checks)


@dataclass(frozen=True, slots=True, kw_only=True)
class AnyOf:
    """Matches when at least one check matches. Refuses to be built empty."""

    checks: tuple[Check, ...]

    def __post_init__(self) -> None:
        if not self.checks:
            raise ConfigError("AnyOf() of no checks is an error, not a rule that never matches")

    def __call__(self, ctx: RouteContext) -> bool:
        return any(check(ctx) for check in self.checks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Not:
    """Matches when ``check`` does not."""

    check: Check

    def __call__(self, ctx: RouteContext) -> bool:
        return not self.check(ctx)


class Action(Enum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """Allow or deny the copies ``when`` matches; ``name`` is quoted in denials."""

    name: str
    action: Action
    when: Check


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Deny-wins, default-deny routing rules plus the maximum TTL."""

    max_ttl_ms: int
    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        if type(self.max_ttl_ms) is not int or self.max_ttl_ms < 1:
            raise ConfigError("policy.max_ttl_ms: expected a positive integer (milliseconds)")
        if not any(rule.action is Action.ALLOW for rule in self.rules):
            raise ConfigError("policy.rules: no allow rule, so every envelope would be refused; add at least one allow rule")

    def evaluate(self, ctx: RouteContext) -> None:
        """Accept the copy or raise; every deny rule is consulted before any allow counts.

        Raises:
            PolicyDeniedError: A deny rule matches (it is named), or no allow rule does.
        """
        allowed = False
        for rule in self.rules:
            if rule.when(ctx):
                if rule.action is Action.DENY:
                    raise PolicyDeniedError(f"rule {rule.name} denies {ctx.describe()}")
                allowed = True
        if not allowed:
            raise PolicyDeniedError(f"no allow rule matched {ctx.describe()}")

    def check_ttl(self, created: int, expires: int, now: int) -> None:
        """Refuse an envelope that would stay alive too long from this hop's point of view.

        The limit applies to ``expires - now`` (what this hop would have to hold),
        not to ``expires - created``; an already expired envelope is not this
        check's business.

        Raises:
            TtlTooLongError: ``expires - now > max_ttl_ms``.
        """
        remaining = expires - now
        if remaining > self.max_ttl_ms:
            raise TtlTooLongError(f"envelope created at {created} expires {remaining} ms from now; this hop's maximum TTL is {self.max_ttl_ms} ms")

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, where: str = "policy") -> Policy:
        """Build the policy from the parsed ``[policy]`` TOML table.

        Raises:
            ConfigError: Anything invalid; the message names the key path, e.g.
                ``policy.rules[2].labels[0]: "TLP:BLUE" is not a TLP 2.0 label``.
        """
        _keys(where, table, required=("max_ttl_ms",), optional=("default", "rules", "rate_limits"))
        if "default" in table and table["default"] != "deny":
            raise ConfigError(f'{where}.default: {_show(table["default"])} is not allowed; the only default is "deny" (fail closed)')
        max_ttl_ms = _positive_int(f"{where}.max_ttl_ms", table["max_ttl_ms"])
        raw_rules = table.get("rules", [])
        if not isinstance(raw_rules, list):
            raise ConfigError(f"{where}.rules: expected an array of tables ([[{where}.rules]])")
        rules: list[Rule] = []
        names: set[object] = set()
        for i, raw in enumerate(raw_rules):
            rules.append(_rule(f"{where}.rules[{i}]", raw))
            name = raw.get("name")
            if name is not None and name in names:
                raise ConfigError(f"{where}.rules[{i}].name: {_show(name)} names an earlier rule too")
            names.add(name)
        RateLimits.from_config(table, where=where)  # one pass reports every config error
        if not any(rule.action is Action.ALLOW for rule in rules):
            raise ConfigError(f"{where}.rules: no allow rule, so every envelope would be refused; add at least one allow rule")
        return cls(max_ttl_ms=max_ttl_ms, rules=tuple(rules))


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


def _rule(where: str, raw: Any) -> Rule:
    table = _keys(where, raw, required=("action",), optional=("name", *_MATCHERS))
    action = table["action"]
    if action not in ("allow", "deny"):
        raise ConfigError(f'{where}.action: expected "allow" or "deny", got {_show(action)}')
    name = table.get("name", "")
    if type(name) is not str or ("name" in table and not 1 <= len(name) <= 64) or not name.isprintable():
        raise ConfigError(f"{where}.name: expected text of 1..64 printable characters")
    checks = [_matcher(f"{where}.{key}", key, table[key]) for key in _MATCHERS if key in table]
    if not checks:
        raise ConfigError(f'{where}: a rule needs at least one of {", ".join(_MATCHERS)} (use ["*"] to match anything)')
    label = f'"{name}" ({where})' if name else where
    return Rule(name=label, action=Action(action), when=checks[0] if len(checks) == 1 else AllOf(checks=tuple(checks)))


def _matcher(where: str, key: str, value: Any) -> Check:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty array of strings")
    seen: set[str] = set()
    for i, item in enumerate(value):
        item_where = f"{where}[{i}]"
        if type(item) is not str:
            raise ConfigError(f"{item_where}: expected a string, got {_show(item)}")
        if item in seen:
            raise ConfigError(f"{item_where}: {_show(item)} is listed twice")
        seen.add(item)
        if item == WILDCARD:
            if len(value) != 1:
                raise ConfigError(f'{item_where}: "*" already matches anything and must be the only entry')
            return Anything()
        if key == "labels" and item not in LABELS:
            raise ConfigError(f"{item_where}: {_show(item)} is not a TLP 2.0 label (expected one of {', '.join(LABELS)})")
        if key == "priorities" and item not in PRIORITIES:
            raise ConfigError(f"{item_where}: {_show(item)} is not a priority (expected one of {', '.join(PRIORITIES)})")
        if key in ("origins", "recipients"):
            try:
                fields.member_id(item_where, item)
            except MalformedError:
                raise ConfigError(f"{item_where}: {_show(item)} is not a valid member id") from None
    members = frozenset(seen)
    if key == "origins":
        return OriginIn(members=members)
    if key == "recipients":
        return AnyRecipientIn(members=members)
    if key == "labels":
        return LabelIn(labels=members)
    return PriorityIn(priorities=members)


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
