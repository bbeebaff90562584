"""Routing policy, rate limits and the nonce cache, driven by a FakeClock (nothing sleeps)."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.policy import (
    Action,
    AllOf,
    AnyOf,
    AnyRecipientIn,
    Anything,
    Check,
    LabelIn,
    NonceCache,
    Not,
    OriginIn,
    Policy,
    PriorityIn,
    RateLimit,
    RateLimiter,
    RateLimits,
    RouteContext,
    Rule,
)
from protocol.errors import ConfigError, MalformedError, PolicyDeniedError, RateLimitedError, ReplayError, TtlTooLongError
from tests.support.clock import FakeClock
from tests.support.federation import T0

HOUR = 3_600_000
EXAMPLE_CONFIG = Path(__file__).parents[2] / "configs" / "gateway.example.toml"


def ctx(origin: str = "int-org", recipients: tuple[str, ...] = ("ke-police",), label: str = "TLP:AMBER", priority: str = "FLASH") -> RouteContext:
    return RouteContext(origin=origin, recipients=recipients, label=label, priority=priority)


def base_table(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"max_ttl_ms": 24 * HOUR, "default": "deny", "rules": list(rules), **extra}


ALLOW_ALL = {"action": "allow", "origins": ["*"]}


# -- route context ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [{"origin": "Int Org"}, {"recipients": ()}, {"recipients": ["ke-police"]}, {"recipients": ("KE",)}, {"label": "TLP:WHITE"}, {"priority": "URGENT"}],
    ids=repr,
)
def test_route_context_validates_itself(bad: dict[str, Any]) -> None:
    with pytest.raises(MalformedError):
        ctx(**bad)


def test_route_context_description_is_short() -> None:
    assert ctx().describe() == "TLP:AMBER FLASH from int-org to ke-police"
    many = ctx(recipients=tuple(f"n{i}" for i in range(7)))
    assert many.describe().endswith("to n0, n1, n2, n3, n4 and 2 more")


# -- checks and combinators ---------------------------------------------------------------------


def test_matchers() -> None:
    c = ctx(recipients=("fr-police", "ke-police"))
    assert Anything()(c)
    assert OriginIn(members=frozenset({"int-org", "gw-eu"}))(c)
    assert not OriginIn(members=frozenset({"gw-eu"}))(c)
    assert AnyRecipientIn(members=frozenset({"ke-police", "ke-fiu"}))(c)
    assert not AnyRecipientIn(members=frozenset({"ke-fiu"}))(c)
    assert LabelIn(labels=frozenset({"TLP:AMBER", "TLP:RED"}))(c)
    assert not LabelIn(labels=frozenset({"TLP:RED"}))(c)
    assert PriorityIn(priorities=frozenset({"FLASH"}))(c)
    assert not PriorityIn(priorities=frozenset({"ROUTINE"}))(c)


def test_combinators() -> None:
    yes, no = Anything(), Not(check=Anything())
    c = ctx()
    assert not no(c)
    assert AllOf(checks=(yes, yes))(c) and not AllOf(checks=(yes, no))(c)
    assert AnyOf(checks=(no, yes))(c) and not AnyOf(checks=(no, no))(c)
    assert Not(check=AllOf(checks=(yes, no)))(c)


def test_plain_functions_are_checks() -> None:
    def flash_only(route: RouteContext) -> bool:
        return route.priority == "FLASH"

    check: Check = AllOf(checks=(flash_only, OriginIn(members=frozenset({"int-org"}))))
    assert check(ctx()) and not check(ctx(priority="ROUTINE"))


@pytest.mark.parametrize(
    "build",
    [
        lambda: AllOf(checks=()),
        lambda: AnyOf(checks=()),
        lambda: OriginIn(members=frozenset()),
        lambda: AnyRecipientIn(members=frozenset()),
        lambda: LabelIn(labels=frozenset()),
        lambda: PriorityIn(priorities=frozenset()),
        lambda: OriginIn(members={"gw-eu"}),  # type: ignore[arg-type]
        lambda: LabelIn(labels=frozenset({"TLP:BLUE"})),
        lambda: PriorityIn(priorities=frozenset({"URGENT"})),
    ],
    ids=["AllOf", "AnyOf", "OriginIn", "AnyRecipientIn", "LabelIn", "PriorityIn", "set-not-frozenset", "bad-label", "bad-priority"],
)
def test_empty_or_invalid_checks_are_config_errors(build: Any) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.code == "E_CONFIG" and info.value.http_status == 500


def test_empty_allof_says_why() -> None:
    with pytest.raises(ConfigError, match="an empty allow-set is an error, not allow-all"):
        AllOf(checks=())


# -- the policy object --------------------------------------------------------------------------


def rule(name: str, action: Action, when: Check) -> Rule:
    return Rule(name=name, action=action, when=when)


def test_deny_wins_over_an_earlier_allow() -> None:
    policy = Policy(
        max_ttl_ms=HOUR,
        rules=(rule("open", Action.ALLOW, Anything()), rule("no-red", Action.DENY, LabelIn(labels=frozenset({"TLP:RED"})))),
    )
    policy.evaluate(ctx(label="TLP:AMBER"))
    with pytest.raises(PolicyDeniedError, match="rule no-red denies TLP:RED") as info:
        policy.evaluate(ctx(label="TLP:RED"))
    assert info.value.code == "E_POLICY_DENIED"


def test_nothing_allowed_is_denied() -> None:
    policy = Policy(max_ttl_ms=HOUR, rules=(rule("eu", Action.ALLOW, OriginIn(members=frozenset({"gw-eu"}))),))
    with pytest.raises(PolicyDeniedError, match="no allow rule matched TLP:AMBER FLASH from int-org"):
        policy.evaluate(ctx())


@pytest.mark.parametrize("ttl", [0, -1, True, 1.5])
def test_policy_needs_a_positive_integer_ttl(ttl: Any) -> None:
    with pytest.raises(ConfigError, match="max_ttl_ms"):
        Policy(max_ttl_ms=ttl, rules=(rule("open", Action.ALLOW, Anything()),))


def test_policy_without_an_allow_rule_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no allow rule"):
        Policy(max_ttl_ms=HOUR, rules=(rule("closed", Action.DENY, Anything()),))
    with pytest.raises(ConfigError, match="no allow rule"):
        Policy(max_ttl_ms=HOUR, rules=())


def test_ttl_is_measured_from_now() -> None:
    policy = Policy(max_ttl_ms=HOUR, rules=(rule("open", Action.ALLOW, Anything()),))
    policy.check_ttl(T0 - 5 * HOUR, T0 + HOUR, T0)  # old message, but only an hour left here
    policy.check_ttl(T0, T0 + HOUR, T0)
    with pytest.raises(TtlTooLongError, match="expires 3600001 ms from now") as info:
        policy.check_ttl(T0, T0 + HOUR + 1, T0)
    assert (info.value.code, info.value.http_status) == ("E_TTL_TOO_LONG", 403)
    with pytest.raises(TtlTooLongError):
        policy.check_ttl(T0 + 1000, T0 + HOUR + 1000, T0)  # created in the future does not buy time


# -- the policy from TOML -----------------------------------------------------------------------

POLICY_TOML = """
[policy]
max_ttl_ms = 86400000
default = "deny"

[[policy.rules]]
action = "allow"
origins = ["*"]

[[policy.rules]]
name = "no-red-to-fr"
action = "deny"
labels = ["TLP:RED", "TLP:AMBER+STRICT"]
recipients = ["fr-police"]

[[policy.rules]]
action = "deny"
origins = ["ke-fiu"]
priorities = ["ROUTINE"]

[policy.rate_limits]
default = { rate = 50.0, burst = 200 }

[policy.rate_limits.gw-eu]
rate = 500
burst = 1000
"""


def test_policy_from_toml() -> None:
    table = tomllib.loads(POLICY_TOML)["policy"]
    policy = Policy.from_config(table)
    assert policy.max_ttl_ms == 24 * HOUR
    assert [r.name for r in policy.rules] == ["policy.rules[0]", '"no-red-to-fr" (policy.rules[1])', "policy.rules[2]"]
    policy.evaluate(ctx(label="TLP:RED", recipients=("ke-police",)))
    policy.evaluate(ctx(label="TLP:AMBER", recipients=("fr-police",)))
    policy.evaluate(ctx(origin="ke-fiu", priority="FLASH"))
    with pytest.raises(PolicyDeniedError, match=r'rule "no-red-to-fr" \(policy.rules\[1\]\) denies'):
        policy.evaluate(ctx(label="TLP:AMBER+STRICT", recipients=("fr-police", "int-org")))
    with pytest.raises(PolicyDeniedError, match=r"rule policy.rules\[2\] denies TLP:AMBER ROUTINE from ke-fiu"):
        policy.evaluate(ctx(origin="ke-fiu", priority="ROUTINE"))
    limits = RateLimits.from_config(table)
    assert limits.default == RateLimit(rate=50.0, burst=200)
    assert limits.overrides == (("gw-eu", RateLimit(rate=500, burst=1000)),)


def test_recipients_match_when_any_recipient_of_the_copy_is_listed() -> None:
    policy = Policy.from_config(base_table({"action": "allow", "recipients": ["int-org"]}, {"action": "deny", "recipients": ["fr-police"]}))
    policy.evaluate(ctx(recipients=("int-org", "ke-police")))  # one listed recipient allows the copy
    with pytest.raises(PolicyDeniedError):
        policy.evaluate(ctx(recipients=("fr-police", "int-org")))  # one listed recipient denies it
    with pytest.raises(PolicyDeniedError, match="no allow rule"):
        policy.evaluate(ctx(recipients=("ke-police",)))


@pytest.mark.parametrize("key", ["origins", "recipients", "labels", "priorities"])
def test_wildcard_matches_anything(key: str) -> None:
    policy = Policy.from_config(base_table({"action": "allow", key: ["*"]}))
    policy.evaluate(ctx())
    policy.evaluate(ctx(origin="gw-af", recipients=("a", "b"), label="TLP:CLEAR", priority="ROUTINE"))


def test_deny_precedence_does_not_depend_on_rule_order() -> None:
    deny = {"action": "deny", "origins": ["gw-af"]}
    for rules in ((ALLOW_ALL, deny), (deny, ALLOW_ALL)):
        policy = Policy.from_config(base_table(*rules))
        with pytest.raises(PolicyDeniedError):
            policy.evaluate(ctx(origin="gw-af"))
        policy.evaluate(ctx(origin="gw-eu"))


def test_default_may_be_omitted_and_the_table_is_not_mutated() -> None:
    table = base_table(ALLOW_ALL)
    del table["default"]
    snapshot = copy.deepcopy(table)
    Policy.from_config(table)
    assert table == snapshot


def test_example_config_policy_is_valid() -> None:
    table = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["policy"]
    Policy.from_config(table)
    RateLimits.from_config(table)


def test_error_paths_use_the_given_prefix() -> None:
    with pytest.raises(ConfigError, match=r"^gateway\.policy\.rules\[0\]\.action: required$"):
        Policy.from_config(base_table({"origins": ["*"]}), where="gateway.policy")


CONFIG_ERRORS: list[tuple[str, Any, str]] = [
    ("not a table", ["max_ttl_ms"], "policy: expected a table"),
    ("missing ttl", {"rules": [ALLOW_ALL]}, "policy.max_ttl_ms: required"),
    ("unknown key", base_table(ALLOW_ALL, max_tll_ms=1), "policy.max_tll_ms: unknown key (expected max_ttl_ms, default, rules, rate_limits)"),
    ("default allow", base_table(ALLOW_ALL, default="allow"), 'policy.default: "allow" is not allowed; the only default is "deny" (fail closed)'),
    ("ttl zero", base_table(ALLOW_ALL, max_ttl_ms=0), "policy.max_ttl_ms: expected a positive integer, got 0"),
    ("ttl text", base_table(ALLOW_ALL, max_ttl_ms="7d"), 'policy.max_ttl_ms: expected a positive integer, got "7d"'),
    ("ttl bool", base_table(ALLOW_ALL, max_ttl_ms=True), "policy.max_ttl_ms: expected a positive integer, got True"),
    ("rules table", {**base_table(), "rules": {"action": "allow"}}, "policy.rules: expected an array of tables ([[policy.rules]])"),
    ("no rules", {"max_ttl_ms": 1}, "policy.rules: no allow rule, so every envelope would be refused"),
    ("only deny", base_table({"action": "deny", "labels": ["TLP:RED"]}), "policy.rules: no allow rule"),
    (
        "rule not a table",
        base_table("allow"),  # type: ignore[arg-type]
        "policy.rules[0]: expected a table",
    ),
    ("no action", base_table({"origins": ["*"]}), "policy.rules[0].action: required"),
    ("bad action", base_table(ALLOW_ALL, {"action": "permit", "origins": ["*"]}), 'policy.rules[1].action: expected "allow" or "deny", got "permit"'),
    ("unknown rule key", base_table({"action": "allow", "label": ["TLP:RED"]}), "policy.rules[0].label: unknown key (expected action, name, origins"),
    ("no matcher", base_table({"action": "allow"}), 'policy.rules[0]: a rule needs at least one of origins, recipients, labels, priorities (use ["*"]'),
    ("empty name", base_table({**ALLOW_ALL, "name": ""}), "policy.rules[0].name: expected text of 1..64 printable characters"),
    ("name not text", base_table({**ALLOW_ALL, "name": 7}), "policy.rules[0].name: expected text"),
    ("name newline", base_table({**ALLOW_ALL, "name": "a\nb"}), "policy.rules[0].name: expected text"),
    ("long name", base_table({**ALLOW_ALL, "name": "x" * 65}), "policy.rules[0].name: expected text"),
    ("same name", base_table({**ALLOW_ALL, "name": "x"}, {**ALLOW_ALL, "name": "x"}), 'policy.rules[1].name: "x" names an earlier rule too'),
    ("matcher not a list", base_table({"action": "allow", "origins": "*"}), "policy.rules[0].origins: expected a non-empty array of strings"),
    ("empty matcher", base_table(ALLOW_ALL, {"action": "deny", "recipients": []}), "policy.rules[1].recipients: expected a non-empty array of strings"),
    ("item not text", base_table({"action": "allow", "origins": ["gw-eu", 3]}), "policy.rules[0].origins[1]: expected a string, got 3"),
    ("duplicate item", base_table({"action": "allow", "origins": ["gw-eu", "gw-eu"]}), 'policy.rules[0].origins[1]: "gw-eu" is listed twice'),
    ("wildcard first", base_table({"action": "allow", "origins": ["*", "gw-eu"]}), 'policy.rules[0].origins[0]: "*" already matches anything'),
    ("wildcard later", base_table({"action": "allow", "origins": ["gw-eu", "*"]}), 'policy.rules[0].origins[1]: "*" already matches anything'),
    (
        "bad label",
        base_table(ALLOW_ALL, ALLOW_ALL | {"name": "b"}, {"action": "deny", "labels": ["TLP:BLUE"]}),
        'policy.rules[2].labels[0]: "TLP:BLUE" is not a TLP 2.0 label (expected one of TLP:RED, TLP:AMBER+STRICT, TLP:AMBER, TLP:GREEN, TLP:CLEAR)',
    ),
    ("lower-case label", base_table({"action": "allow", "labels": ["tlp:red"]}), 'policy.rules[0].labels[0]: "tlp:red" is not a TLP 2.0 label'),
    ("bad priority", base_table({"action": "allow", "priorities": ["FLASH", "URGENT"]}), 'policy.rules[0].priorities[1]: "URGENT" is not a priority'),
    ("bad origin", base_table({"action": "allow", "origins": ["GW-EU"]}), 'policy.rules[0].origins[0]: "GW-EU" is not a valid member id'),
    ("bad recipient", base_table({"action": "allow", "recipients": ["fr police"]}), 'policy.rules[0].recipients[0]: "fr police" is not a valid member id'),
    ("rate limits not a table", base_table(ALLOW_ALL, rate_limits=50), "policy.rate_limits: expected a table"),
    (
        "rate limit key",
        base_table(ALLOW_ALL, rate_limits={"GW_EU": {"rate": 1, "burst": 1}}),
        'policy.rate_limits.GW_EU: "GW_EU" is neither default nor a valid member id',
    ),
    ("rate limit not a table", base_table(ALLOW_ALL, rate_limits={"default": 50}), "policy.rate_limits.default: expected a table"),
    ("missing burst", base_table(ALLOW_ALL, rate_limits={"default": {"rate": 5.0}}), "policy.rate_limits.default.burst: required"),
    ("unknown limit key", base_table(ALLOW_ALL, rate_limits={"gw-eu": {"rate": 5.0, "burst": 5, "per": "s"}}), "policy.rate_limits.gw-eu.per: unknown key"),
    ("zero rate", base_table(ALLOW_ALL, rate_limits={"default": {"rate": 0.0, "burst": 5}}), "policy.rate_limits.default.rate: expected a positive number"),
    (
        "infinite rate",
        base_table(ALLOW_ALL, rate_limits={"default": {"rate": float("inf"), "burst": 5}}),
        "policy.rate_limits.default.rate: expected a positive",
    ),
    (
        "text rate",
        base_table(ALLOW_ALL, rate_limits={"default": {"rate": "fast", "burst": 5}}),
        'policy.rate_limits.default.rate: expected a positive number of requests per second, got "fast"',
    ),
    ("zero burst", base_table(ALLOW_ALL, rate_limits={"gw-eu": {"rate": 1, "burst": 0}}), "policy.rate_limits.gw-eu.burst: expected a positive integer, got 0"),
    (
        "float burst",
        base_table(ALLOW_ALL, rate_limits={"gw-eu": {"rate": 1, "burst": 2.5}}),
        "policy.rate_limits.gw-eu.burst: expected a positive integer, got 2.5",
    ),
]


@pytest.mark.parametrize(("table", "message"), [(t, m) for _, t, m in CONFIG_ERRORS], ids=[n for n, _, _ in CONFIG_ERRORS])
def test_config_errors_name_the_key_path(table: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Policy.from_config(table)
    assert info.value.message.startswith(message), info.value.message
    assert info.value.code == "E_CONFIG"


def test_rate_limits_default_when_absent() -> None:
    assert RateLimits.from_config(base_table(ALLOW_ALL)) == RateLimits(default=RateLimit(rate=50.0, burst=200))


# -- rate limiter -------------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(2.0, 3, clock)
    for _ in range(3):
        limiter.check("gw-eu")
    with pytest.raises(RateLimitedError) as info:
        limiter.check("gw-eu")
    assert (info.value.code, info.value.http_status, info.value.retry_after_ms) == ("E_RATE_LIMITED", 429, 500)
    assert "gw-eu exceeded its rate limit of 2/s (burst 3)" in info.value.message
    clock.advance(250)
    with pytest.raises(RateLimitedError) as info:
        limiter.check("gw-eu")
    assert info.value.retry_after_ms == 250
    clock.advance(250)
    limiter.check("gw-eu")
    with pytest.raises(RateLimitedError):
        limiter.check("gw-eu")
    clock.advance(3_600_000)  # a long idle time refills to the burst, no further
    for _ in range(3):
        limiter.check("gw-eu")
    with pytest.raises(RateLimitedError):
        limiter.check("gw-eu")


def test_buckets_are_per_origin_with_overrides() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(1.0, 1, clock, overrides={"gw-af": RateLimit(rate=1.0, burst=3)})
    limiter.check("gw-eu")
    with pytest.raises(RateLimitedError):
        limiter.check("gw-eu")
    limiter.check("int-org")
    for _ in range(3):
        limiter.check("gw-af")
    with pytest.raises(RateLimitedError):
        limiter.check("gw-af")


def test_steady_traffic_at_exactly_the_rate_is_never_refused() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(50.0, 1, clock)
    for _ in range(1000):
        limiter.check("gw-eu")
        clock.advance(20)  # 1/50 s: float rounding must not cost a token


def test_rate_limiter_from_config() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter.from_config(tomllib.loads(POLICY_TOML)["policy"], clock)
    for _ in range(1000):
        limiter.check("gw-eu")
    for _ in range(200):
        limiter.check("gw-af")
    with pytest.raises(RateLimitedError):
        limiter.check("gw-af")
    with pytest.raises(RateLimitedError):
        limiter.check("gw-eu")


@pytest.mark.parametrize(("rate", "burst", "max_origins"), [(0.0, 1, 1), (1.0, 0, 1), (1.0, 1, 0), (float("nan"), 1, 1)])
def test_rate_limiter_refuses_bad_settings(rate: float, burst: int, max_origins: int) -> None:
    with pytest.raises(ConfigError):
        RateLimiter(rate, burst, FakeClock(T0), max_origins=max_origins)


def test_memory_is_bounded_and_refilled_buckets_go_first() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(1.0, 2, clock, max_origins=3)
    limiter.check("a")  # a: 1 token left
    limiter.check("b")
    limiter.check("c")
    clock.advance(1000)  # a, b and c have refilled to 2
    limiter.check("b")  # b is busy again and now the most recently used: order a, c, b
    limiter.check("d")  # full: a and c (refilled, least recently used first) go; b stops the sweep
    assert len(limiter) == 2
    for _ in range(2):
        limiter.check("a")  # a came back with a fresh (full) bucket
    limiter.check("b")  # b kept its state: one token left
    with pytest.raises(RateLimitedError):
        limiter.check("b")


def test_when_no_bucket_has_refilled_the_least_recently_used_goes() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(1.0, 1, clock, max_origins=2)
    limiter.check("a")
    limiter.check("b")
    limiter.check("c")  # a and b are empty; a is least recently used and is evicted
    assert len(limiter) == 2
    limiter.check("a")  # fresh bucket for a; b is now the least recently used and goes
    with pytest.raises(RateLimitedError):
        limiter.check("c")
    limiter.check("b")


def test_eviction_can_empty_the_whole_table() -> None:
    clock = FakeClock(T0)
    limiter = RateLimiter(1.0, 1, clock, max_origins=2)
    limiter.check("a")
    limiter.check("b")
    clock.advance(5000)
    limiter.check("c")
    assert len(limiter) == 1


# -- nonce cache --------------------------------------------------------------------------------

N1, N2 = b"\x01" * 16, b"\x02" * 16


def test_nonce_reuse_is_a_replay() -> None:
    clock = FakeClock(T0)
    cache = NonceCache(window_ms=1000, clock=clock)
    cache.check_and_remember("gw-eu", N1, T0)
    cache.check_and_remember("gw-eu", N2, T0)
    cache.check_and_remember("gw-af", N1, T0)  # nonces are per origin
    with pytest.raises(ReplayError, match="reuses nonce 0101") as info:
        cache.check_and_remember("gw-eu", N1, T0 + 5)
    assert (info.value.code, info.value.http_status) == ("E_REPLAY", 401)
    assert len(cache) == 3


def test_nonces_are_remembered_until_ts_plus_window() -> None:
    clock = FakeClock(T0)
    cache = NonceCache(window_ms=1000, clock=clock)
    cache.check_and_remember("gw-eu", N1, T0)
    clock.advance(1000)  # now == ts + window: a replay would still pass the skew check
    with pytest.raises(ReplayError, match="reuses"):
        cache.check_and_remember("gw-eu", N1, T0)
    clock.advance(1)  # now the original is forgotten, and its timestamp is too old to be accepted
    with pytest.raises(ReplayError, match="older than the 1000 ms replay window"):
        cache.check_and_remember("gw-eu", N1, T0)
    assert len(cache) == 0
    cache.check_and_remember("gw-eu", N1, T0 + 1001)


def test_future_timestamps_are_remembered_longer() -> None:
    clock = FakeClock(T0)
    cache = NonceCache(window_ms=1000, clock=clock)
    cache.check_and_remember("gw-eu", N1, T0 + 1000)
    clock.advance(1500)
    with pytest.raises(ReplayError, match="reuses"):
        cache.check_and_remember("gw-eu", N1, T0 + 1000)


def test_a_full_cache_drops_expired_nonces_first_then_refuses() -> None:
    clock = FakeClock(T0)
    cache = NonceCache(window_ms=1000, clock=clock, max_entries=2)
    cache.check_and_remember("gw-eu", N1, T0)
    clock.advance(500)
    cache.check_and_remember("gw-eu", N2, T0 + 500)
    with pytest.raises(RateLimitedError, match="replay cache is full") as info:
        cache.check_and_remember("gw-af", N1, T0 + 500)
    assert info.value.retry_after_ms == 501  # the oldest entry expires after T0 + 1000
    clock.advance(501)
    cache.check_and_remember("gw-af", N1, T0 + 1001)
    assert len(cache) == 2


@pytest.mark.parametrize(("window_ms", "max_entries"), [(0, 1), (1, 0), (1.5, 1)])
def test_nonce_cache_refuses_bad_settings(window_ms: Any, max_entries: int) -> None:
    with pytest.raises(ConfigError):
        NonceCache(window_ms=window_ms, clock=FakeClock(T0), max_entries=max_entries)
