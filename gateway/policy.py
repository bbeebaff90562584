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

Rate limits and the nonce cache are :mod:`gateway.policy_limits`, together with the
small ``[policy]`` table readers both halves share; this module holds the routing
policy and re-exports the rest, so callers import everything from ``gateway.policy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from gateway.policy_limits import DEFAULT_BURST, DEFAULT_RATE, NonceCache, RateLimit, RateLimiter, RateLimits, _keys, _positive_int, _show
from protocol import fields
from protocol.errors import ConfigError, MalformedError, PolicyDeniedError, TtlTooLongError
from protocol.header import LABELS, PRIORITIES

WILDCARD = "*"
_MATCHERS = ("origins", "recipients", "labels", "priorities")


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


__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_RATE",
    "WILDCARD",
    "Action",
    "AllOf",
    "AnyOf",
    "AnyRecipientIn",
    "Anything",
    "Check",
    "LabelIn",
    "NonceCache",
    "Not",
    "OriginIn",
    "Policy",
    "PriorityIn",
    "RateLimit",
    "RateLimiter",
    "RateLimits",
    "RouteContext",
    "Rule",
]
