"""The officer API's request validation and the alert content format (node/compose.py, node/cap.py)."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import cap
from node.compose import AckRequest, AlertRequest, ComposeLimits, check_references, parse_ack_request, parse_alert_request
from protocol import encoding
from protocol.envelope import Tier, open_envelope, seal
from protocol.errors import MalformedError, UnsupportedVersionError, ValidationError
from protocol.keys import MemberKeys
from tests.support.federation import T0, Federation, SeededRng, build_federation, roster_member

ME = "ke-police"
SECOND, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000
MAX_TTL = 2 * DAY
PHOTO = bytes(range(256)) * 4
REF = "00112233445566778899aabbccddeeff"


@pytest.fixture(scope="module")
def fed() -> Federation:
    """The seeded federation plus ``old-node``, a node whose keys expired before T0."""
    old = roster_member(MemberKeys.generate("old-node", SeededRng("old-node")), "node", "gw-eu", not_before=T0 - 2 * DAY, not_after=T0 - DAY)
    return build_federation(extra_members=(old,))


def body() -> dict[str, Any]:
    """A valid request using every feature; each test gets its own copy."""
    return {
        "category": "Security",
        "event": "Armed robbery suspects crossing border",
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Likely",
        "priority": "FLASH",
        "tlp": "TLP:AMBER",
        "expires": {"ttl": "2h"},
        "sections": {
            "headline": "Suspects heading north on A104",
            "summary": "Two suspects in a white van.",
            "details": "Plate KDA 123X.\n\tSeen at 11:40 near Namanga.",
            "instructions": "Stop and hold; notify ke-police.",
            "attachments": [{"name": "photo.jpg", "type": "image/jpeg", "data": base64.b64encode(PHOTO).decode()}],
        },
        "tiers": [
            {
                "name": "action",
                "recipients": ["fr-police"],
                "sections": ["summary", "details", "instructions", "attachments"],
                "ack_deadline": "15m",
                "escalate_if_unacked": {"tier": "escalation", "after": "10m"},
            },
            {"name": "inform", "recipients": ["ke-fiu"], "sections": ["summary"]},
            {"name": "escalation", "recipients": ["int-org"], "sections": ["summary", "details"], "ack_deadline": 1800},
        ],
    }


def parse(fed: Federation, b: Any, **kw: Any) -> AlertRequest:
    args: dict[str, Any] = {"roster": fed.roster, "me": ME, "now_ms": T0, "max_ttl_ms": MAX_TTL, **kw}
    return parse_alert_request(b, **args)


def errors_of(fed: Federation, b: Any, **kw: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        parse(fed, b, **kw)
    assert info.value.code == "E_VALIDATION" and info.value.http_status == 422
    return info.value.fields


# -- the happy path ---------------------------------------------------------------------------


def test_full_request_is_typed_and_absolute(fed: Federation) -> None:
    b = body()
    before = copy.deepcopy(b)
    req = parse(fed, b)
    assert b == before  # input untouched
    assert (req.kind, req.priority, req.label, req.category, req.urgency, req.severity, req.certainty) == (
        "alert", "FLASH", "TLP:AMBER", "Security", "Immediate", "Severe", "Likely",
    )  # fmt: skip
    assert req.created_ms == T0 and req.expires_ms == T0 + 2 * HOUR and req.refs == ()
    assert req.attachments == (cap.Attachment(name="photo.jpg", media_type="image/jpeg", data=PHOTO),)
    action, inform, escalation = req.tiers
    assert action.sections == ("attachments", "details", "info", "instructions", "summary")
    assert action.ack_deadline_ms == T0 + 15 * MINUTE and not action.held
    assert action.escalation is not None and (action.escalation.target, action.escalation.after_ms, action.escalation.due_ms) == (
        "escalation",
        10 * MINUTE,
        T0 + 10 * MINUTE,
    )
    assert inform.sections == ("info", "summary") and inform.ack_deadline_ms is None and inform.escalation is None
    assert escalation.held and escalation.ack_deadline_ms == T0 + 10 * MINUTE + 30 * MINUTE  # counted from the escalation
    assert [t.name for t in req.initial_tiers()] == ["action", "inform"]
    assert [t.name for t in req.held_tiers()] == ["escalation"]
    assert req.escalations() == (action.escalation,)


def test_update_with_absolute_times_and_headline_listed(fed: Federation) -> None:
    b = body()
    b |= {"kind": "update", "references": [REF], "tlp": "TLP:AMBER+STRICT", "expires": "2026-05-29T00:26:40+02:00"}
    b["tiers"][1]["sections"] = ["headline"]  # redundant but harmless: the headline is always visible
    b["tiers"][0]["ack_deadline"] = "2026-05-28T20:50:00.9999Z"
    req = parse(fed, b)
    assert req.kind == "update" and req.refs == (bytes.fromhex(REF),) and req.label == "TLP:AMBER+STRICT"
    assert req.expires_ms == T0 + 2 * HOUR  # T0 is 2026-05-28T20:26:40Z
    assert req.tiers[0].ack_deadline_ms == T0 + 23 * MINUTE + 20 * SECOND + 999
    assert req.tiers[1].sections == ("info",)


def test_cancel_may_carry_the_headline_alone(fed: Federation) -> None:
    b = body() | {"kind": "cancel", "references": [REF], "expires": {"ttl_seconds": 600}}
    b["sections"] = {"headline": "Cancelled: suspects arrested"}
    b["tiers"] = [{"name": "all", "recipients": ["fr-police", "ke-fiu"], "sections": []}]
    req = parse(fed, b)
    assert req.summary is None and req.attachments == () and req.expires_ms == T0 + 600 * SECOND
    assert req.initial_tiers()[0].sections == ("info",)
    assert cap.decode_sections(req.plaintext_sections(req.initial_tiers()))["headline"] == "Cancelled: suspects arrested"


def test_text_is_nfc_normalised(fed: Federation) -> None:
    b = body()
    b["sections"]["headline"] = "Cafe\u0301 fire"
    assert parse(fed, b).headline == "Caf\u00e9 fire"


# -- one rule, one path -----------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation assigning ``value`` at a dotted path with [i] indices; a value of ... deletes."""

    def apply(b: dict[str, Any]) -> None:
        keys: list[Any] = [int(p) if p.isdigit() else p for p in path.replace("[", ".").replace("]", "").split(".")]
        target: Any = b
        for k in keys[:-1]:
            target = target[k]
        if value is ...:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return apply


def _steps(*mutations: Mutation) -> Mutation:
    def apply(b: dict[str, Any]) -> None:
        for m in mutations:
            m(b)

    return apply


def _att(name: str = "a.bin", data: bytes = b"x", media_type: str = "application/octet-stream") -> dict[str, str]:
    return {"name": name, "type": media_type, "data": base64.b64encode(data).decode()}


VIOLATIONS: list[tuple[str, Mutation, str]] = [
    # top level
    ("foo", _set("foo", 1), "not a known field"),
    ("category", _set("category", ...), "required"),
    ("category", _set("category", "security"), 'Did you mean "Security"'),
    ("urgency", _set("urgency", "Now"), "one of"),
    ("severity", _set("severity", None), "one of"),
    ("certainty", _set("certainty", 3), "one of"),
    ("priority", _set("priority", "flash"), 'Did you mean "FLASH"'),
    ("tlp", _set("tlp", "amber"), 'Did you mean "TLP:AMBER"'),
    ("tlp", _set("tlp", "TLP:WHITE"), 'Did you mean "TLP:CLEAR"'),
    ("kind", _set("kind", "ack"), "one of alert, update, cancel"),
    ("event", _set("event", ""), "empty"),
    ("event", _set("event", "a\nb"), "single line"),
    ("event", _set("event", "x" * 201), "200 characters"),
    ("event", _set("event", ["x"]), "string"),
    # expires
    ("expires", _set("expires", "2026-11-26T12:00:00"), "time zone"),
    ("expires", _set("expires", "2026-02-30T12:00:00Z"), "calendar date"),
    ("expires", _set("expires", "2026-05-28T24:00:00Z"), "time of day"),
    ("expires", _set("expires", "2026-05-28T20:26:40Z"), "future"),
    ("expires", _set("expires", "2026-06-28T00:00:00Z"), "at most 2d"),
    ("expires", _set("expires", 7200), "RFC 3339"),
    ("expires", _set("expires", {"ttl": "2h", "ttl_seconds": 7200}), "exactly one"),
    ("expires", _set("expires", {}), "exactly one"),
    ("expires.ttl", _set("expires", {"ttl": 7200}), "duration"),
    ("expires.ttl", _set("expires", {"ttl": "2 hours"}), "duration"),
    ("expires.ttl", _set("expires", {"ttl": "3d"}), "at most 2d"),
    ("expires.ttl", _set("expires", {"ttl": "31d"}), "between 1s and 30d"),
    ("expires.ttl_seconds", _set("expires", {"ttl_seconds": "7200"}), "whole number"),
    ("expires.ttl_seconds", _set("expires", {"ttl_seconds": 0}), "between"),
    ("expires.when", _set("expires", {"ttl": "2h", "when": 1}), "not a known field"),
    # sections
    ("sections", _set("sections", "text"), "JSON object"),
    ("sections.headline", _set("sections.headline", ...), "required"),
    ("sections.headline", _set("sections.headline", "h" * 161), "160 characters"),
    ("sections.headline", _set("sections.headline", "   "), "blank"),
    ("sections.summary", _set("sections.summary", ...), "only a cancel"),
    ("sections.summary", _set("sections.summary", "x" * 2049), "2048 bytes"),
    ("sections.summary", _set("sections.summary", "\u00e9" * 1025), "2048 bytes"),
    ("sections.summary", _set("sections.summary", "bad \x1b[31m"), "U+001B"),
    ("sections.summary", _set("sections.summary", "line\r\nbreak"), "U+000D"),
    ("sections.summary", _set("sections.summary", "lone \ud800"), "surrogate"),
    ("sections.details", _set("sections.details", "x" * (64 * 1024 + 1)), "65536 bytes"),
    ("sections.instructions", _set("sections.instructions", "x" * (16 * 1024 + 1)), "16384 bytes"),
    ("sections.foo", _set("sections.foo", "x"), "not a known field"),
    ("sections.instructions", _set("tiers[0].sections", ["summary", "details", "attachments"]), "No tier lists"),
    # attachments
    ("sections.attachments", _set("sections.attachments", []), "at least 1"),
    ("sections.attachments", _set("sections.attachments", [_att(f"{i}.txt") for i in range(6)]), "at most 5"),
    ("sections.attachments", _set("sections.attachments", [_att(f"{i}.bin", bytes(200 * 1024)) for i in range(3)]), "512 KiB"),
    ("sections.attachments[0]", _set("sections.attachments[0]", "photo.jpg"), "JSON object"),
    ("sections.attachments[0].name", _set("sections.attachments[0].name", "../etc/passwd"), "plain file name"),
    ("sections.attachments[0].name", _set("sections.attachments[0].name", "C:evil"), "plain file name"),
    ("sections.attachments[0].name", _set("sections.attachments[0].name", ".."), "plain file name"),
    ("sections.attachments[0].name", _set("sections.attachments[0].name", "a\x00b"), "U+0000"),
    ("sections.attachments[0].type", _set("sections.attachments[0].type", "image"), "media type"),
    ("sections.attachments[0].type", _set("sections.attachments[0].type", "text/plain; charset=utf-8"), "media type"),
    ("sections.attachments[0].data", _set("sections.attachments[0].data", "abc"), "base64"),
    ("sections.attachments[0].data", _set("sections.attachments[0].data", "QUJD\nREVG"), "base64"),
    ("sections.attachments[0].data", _set("sections.attachments[0].data", "QR=="), "base64"),  # non-zero padding bits
    ("sections.attachments[0].data", _set("sections.attachments[0].data", ""), "empty"),
    ("sections.attachments[0].data", _set("sections.attachments[0].data", base64.b64encode(bytes(256 * 1024 + 1)).decode()), "256 KiB"),
    ("sections.attachments[0].data", _set("sections.attachments[0].data", ...), "required"),
    ("sections.attachments[0].data", _set("sections.attachments[0].data", "A" * 400_000), "256 KiB"),
    ("sections.attachments[0].data", _set("sections.attachments[0].data", 123), "string of base64"),
    ("sections.attachments[0].size", _set("sections.attachments[0].size", 3), "not a known field"),
    ("sections.attachments[1].name", _set("sections.attachments", [_att("a.txt"), _att("a.txt")]), "unique"),
    # tiers
    ("tiers", _set("tiers", []), "at least 1"),
    ("tiers", _set("tiers", [{"name": f"t{i}", "recipients": ["fr-police"], "sections": []} for i in range(9)]), "at most 8"),
    ("tiers", _set("tiers", {"action": {}}), "JSON array"),
    ("tiers[1]", _set("tiers[1]", "inform"), "JSON object"),
    ("tiers[1].name", _set("tiers[1].name", ...), "required"),
    ("tiers[1].name", _set("tiers[1].name", "Inform"), "short name"),
    ("tiers[1].name", _set("tiers[1].name", "x" * 33), "short name"),
    ("tiers[1].name", _set("tiers[1].name", "action"), "unique"),
    ("tiers[1].priority", _set("tiers[1].priority", "FLASH"), "not a known field"),
    ("tiers[1].recipients", _set("tiers[1].recipients", []), "at least 1"),
    ("tiers[1].recipients", _set("tiers[1].recipients", "ke-fiu"), "JSON array"),
    ("tiers[1].recipients[0]", _set("tiers[1].recipients[0]", "KE_FIU"), "member id"),
    ("tiers[1].recipients[0]", _set("tiers[1].recipients[0]", "us-fbi"), "not a member of federation demo-federation"),
    ("tiers[1].recipients[0]", _set("tiers[1].recipients[0]", "gw-eu"), "gateway"),
    ("tiers[1].recipients[0]", _set("tiers[1].recipients[0]", ME), "this node"),
    ("tiers[1].recipients[0]", _set("tiers[1].recipients[0]", "old-node"), "no encryption key valid now"),
    ("tiers[1].recipients[0]", _set("tiers[1].recipients[0]", "fr-police"), "already a recipient at tiers[0].recipients[0]"),
    ("tiers[1].recipients[1]", _set("tiers[1].recipients", ["ke-fiu", "ke-fiu"]), "already a recipient at tiers[1].recipients[0]"),
    ("tiers[1].sections", _set("tiers[1].sections", ...), "required"),
    ("tiers[1].sections", _set("tiers[1].sections", "summary"), "JSON array"),
    ("tiers[1].sections[0]", _set("tiers[1].sections[0]", "summery"), "one of headline"),
    ("tiers[1].sections[1]", _set("tiers[1].sections", ["summary", "summary"]), "twice"),
    ("tiers[1].sections[0]", _steps(_set("sections.instructions", ...), _set("tiers[1].sections", ["instructions"])), 'no "instructions" section'),
    # ack deadlines
    ("tiers[0].ack_deadline", _set("tiers[0].ack_deadline", "soon"), "duration"),
    ("tiers[0].ack_deadline", _set("tiers[0].ack_deadline", 0), "between 1s"),
    ("tiers[0].ack_deadline", _set("tiers[0].ack_deadline", True), "duration"),
    ("tiers[0].ack_deadline", _set("tiers[0].ack_deadline", "2h"), "before the alert expires"),
    ("tiers[0].ack_deadline", _set("tiers[0].ack_deadline", "2026-05-28T20:00:00Z"), "future"),
    ("tiers[0].ack_deadline", _set("tiers[0].ack_deadline", "2026-05-28T23:00:00Z"), "before the alert expires"),
    ("tiers[0].ack_deadline", _set("tiers[0].ack_deadline", "2026-05-28T25:00:00Z"), "time of day"),
    ("tiers[2].ack_deadline", _set("tiers[2].ack_deadline", "2026-05-28T20:30:00Z"), "sent by escalation"),
    ("tiers[2].ack_deadline", _set("tiers[2].ack_deadline", "110m"), "before the alert expires"),  # 10m + 110m = expiry
    # escalation
    ("tiers[0].escalate_if_unacked", _set("tiers[0].escalate_if_unacked", "escalation"), "JSON object"),
    ("tiers[0].escalate_if_unacked.tier", _set("tiers[0].escalate_if_unacked.tier", "nobody"), 'no tier "nobody"'),
    ("tiers[0].escalate_if_unacked.tier", _set("tiers[0].escalate_if_unacked.tier", "action"), "itself"),
    ("tiers[0].escalate_if_unacked.tier", _set("tiers[0].escalate_if_unacked.tier", ...), "required"),
    ("tiers[0].escalate_if_unacked.after", _set("tiers[0].escalate_if_unacked.after", ...), "required"),
    ("tiers[0].escalate_if_unacked.after", _set("tiers[0].escalate_if_unacked.after", "2h"), "expires"),
    ("tiers[0].escalate_if_unacked.after", _set("tiers[0].escalate_if_unacked.after", "-1m"), "duration"),
    ("tiers[0].escalate_if_unacked.when", _set("tiers[0].escalate_if_unacked.when", "now"), "not a known field"),
    ("tiers[1].escalate_if_unacked.tier", _set("tiers[1].escalate_if_unacked", {"tier": "escalation", "after": "5m"}), 'target of tier "action"'),
    ("tiers[1].escalate_if_unacked.tier", _set("tiers[1].escalate_if_unacked", {"tier": "action", "after": "5m"}), "chained"),
    # references
    ("references", _set("kind", "update"), "Is required for a update"),
    ("references", _steps(_set("kind", "cancel"), _set("references", [])), "at least 1"),
    ("references", _set("references", [REF[:-2] + f"{i:02x}" for i in range(9)]), "at most 8"),
    ("references", _set("references", REF), "JSON array"),
    ("references[0]", _set("references", [REF.upper()]), "lower-case hex"),
    ("references[0]", _set("references", [REF[:-1]]), "32 lower-case hex"),
    ("references[1]", _set("references", [REF, REF]), "twice"),
]


@pytest.mark.parametrize(("path", "mutate", "expect"), VIOLATIONS, ids=[f"{p}:{e}" for p, _, e in VIOLATIONS])
def test_each_rule_names_its_field(fed: Federation, path: str, mutate: Mutation, expect: str) -> None:
    b = body()
    mutate(b)
    fields = errors_of(fed, b)
    assert path in fields, fields
    assert expect.lower() in fields[path].lower(), fields[path]
    assert (fields[path][0].isupper() or fields[path][0] == '"') and fields[path].endswith((".", "?")), "a sentence"


def test_all_errors_are_collected(fed: Federation) -> None:
    b = body() | {"tlp": "amber", "foo": 1, "expires": "2020-01-01T00:00:00Z"}
    b["sections"]["details"] = "\x07"
    b["tiers"][1]["recipients"] = ["gw-eu", "fr-police", "nope", ME]
    fields = errors_of(fed, b)
    assert sorted(fields) == [
        "expires", "foo", "sections.details", "tiers[1].recipients[0]", "tiers[1].recipients[1]", "tiers[1].recipients[2]", "tiers[1].recipients[3]", "tlp",
    ]  # fmt: skip


@pytest.mark.parametrize("bad", [None, [], "alert", 3, 1.5, True])
def test_body_must_be_an_object(fed: Federation, bad: Any) -> None:
    assert errors_of(fed, bad) == {"$": f"Must be a JSON object, not {cap._json_type(bad)}."}


def test_a_broken_tier_does_not_hide_the_others(fed: Federation) -> None:
    b = body()
    del b["tiers"][2]["sections"]
    assert set(errors_of(fed, b)) == {"tiers[2].sections"}  # tier "escalation" still exists for tiers[0]; no "nobody sees" noise


def test_total_recipients_are_bounded(fed: Federation) -> None:
    assert "tiers" in errors_of(fed, body(), limits=ComposeLimits(max_recipients=2))


def test_errors_are_bounded_and_do_not_echo_input(fed: Federation) -> None:
    b = body() | {f"k{i}": i for i in range(1000)} | {"x" * 10_000: 1}
    b["sections"]["summary"] = "y" * 1_000_000
    fields = errors_of(fed, b, limits=ComposeLimits(max_errors=10))
    assert len(fields) == 10
    assert all(len(k) < 80 and len(v) < 300 for k, v in fields.items())
    weird = errors_of(fed, body() | {"a.b": 1, "x" * 100: 2})
    assert 'a.b"]' in "".join(weird) and '$["xxxx' in "".join(weird)


# -- nothing but ValidationError, whatever the JSON ---------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(JSON)
def test_arbitrary_json_only_raises_validation_error(fed: Federation, value: Any) -> None:
    with pytest.raises(ValidationError):
        parse(fed, value)
    with contextlib.suppress(ValidationError):
        parse_ack_request(value)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_body_parses_or_raises_validation_error(fed: Federation, data: st.DataObject) -> None:
    b = body()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(b)[1:]))
        target: Any = b
        for k in path[:-1]:
            target = target[k]
        if data.draw(st.booleans()) and isinstance(target, dict):
            del target[path[-1]]
        else:
            target[path[-1]] = data.draw(JSON)
        if not _paths(b)[1:]:
            break
    try:
        req = parse(fed, b)
    except ValidationError as exc:
        assert exc.fields and all(isinstance(k, str) and isinstance(v, str) for k, v in exc.fields.items())
    else:
        assert cap.decode_sections(req.plaintext_sections(req.initial_tiers() + req.held_tiers()))["headline"] == req.headline


# -- the section format -------------------------------------------------------------------------


def _expected_content(req: AlertRequest) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(req, k) for k in ("category", "certainty", "event", "headline", "severity", "urgency")}
    out |= {k: getattr(req, k) for k in cap.TEXT_SECTIONS if getattr(req, k) is not None}
    if req.attachments:
        out["attachments"] = [{"name": a.name, "type": a.media_type, "size": len(a.data), "data": base64.b64encode(a.data).decode()} for a in req.attachments]
    return out


def test_section_bytes_are_exact(fed: Federation) -> None:
    req = parse(fed, body())
    sections = req.plaintext_sections(req.initial_tiers())
    assert sorted(sections) == ["attachments", "details", "info", "instructions", "summary"]
    assert sections["summary"] == b"Two suspects in a white van."
    assert sections["info"] == encoding.encode(
        {"category": "Security", "certainty": "Likely", "event": req.event, "headline": req.headline, "severity": "Severe", "urgency": "Immediate", "v": 1}
    )
    assert sections["info"].startswith(bytes.fromhex("87a8") + b"category")
    assert sections["attachments"] == encoding.encode({"items": [{"data": PHOTO, "name": "photo.jpg", "type": "image/jpeg"}], "v": 1})
    assert sorted(req.plaintext_sections(req.held_tiers())) == ["details", "info", "summary"]
    cancel = parse(fed, body() | {"kind": "cancel", "references": [REF], "sections": {"headline": "Off"}, "tiers": [body()["tiers"][1] | {"sections": []}]})
    with pytest.raises(MalformedError):
        cancel.plaintext_sections([Tier(name="action", sections=("details", "info"), recipients=("fr-police",))])


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=60).filter(str.strip)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headline=text,
    summary=text,
    details=text,
    name=text.filter(lambda s: not set(s) & set("/\\:") and s == s.strip() and s not in (".", "..")),
    blob=st.binary(min_size=1, max_size=64),
)
def test_round_trip_through_decode_sections(fed: Federation, headline: str, summary: str, details: str, name: str, blob: bytes) -> None:
    b = body()
    b["sections"] |= {"headline": headline, "summary": summary, "details": details + "\n\t" + details}
    b["sections"]["attachments"] = [_att(name, blob, "application/pdf")]
    req = parse(fed, b)
    everything = req.plaintext_sections(req.initial_tiers() + req.held_tiers())
    assert cap.decode_sections(everything) == _expected_content(req)
    withheld = {k: v for k, v in everything.items() if k in ("info", "summary")}
    assert set(cap.decode_sections(withheld)) == {"category", "certainty", "event", "headline", "severity", "urgency", "summary"}


def test_sealed_alert_opens_and_decodes_per_tier(fed: Federation) -> None:
    req = parse(fed, body())
    tiers = req.initial_tiers()
    env = seal(
        sender=fed.keys[ME], roster=fed.roster, tiers=tiers, sections=req.plaintext_sections(tiers), priority=req.priority, label=req.label,
        now=req.created_ms, expires=req.expires_ms, rng=SeededRng("compose"), kind=req.kind, refs=req.refs,
    )  # fmt: skip
    full = cap.decode_sections(open_envelope(env.to_bytes(), fed.keys["fr-police"], fed.roster, T0).sections)
    assert full == _expected_content(req)
    opened = open_envelope(env.to_bytes(), fed.keys["ke-fiu"], fed.roster, T0)
    assert opened.withheld == ("attachments", "details", "instructions")
    assert cap.decode_sections(opened.sections) == {k: v for k, v in full.items() if k not in opened.withheld}


def test_largest_alert_fits_in_an_envelope(fed: Federation) -> None:
    b = body()
    b["sections"] |= {"headline": "\U0001f6a8" * 160, "summary": "\u00e9" * 1024, "details": "d" * 65536, "instructions": "i" * 16384}
    b["sections"]["attachments"] = [_att(f"{i}.bin", bytes(128 * 1024)) for i in range(4)]
    req = parse(fed, b)
    tiers = req.initial_tiers() + req.held_tiers()
    env = seal(sender=fed.keys[ME], roster=fed.roster, tiers=tiers, sections=req.plaintext_sections(tiers), priority="FLASH", label="TLP:RED",
               now=T0, expires=req.expires_ms, rng=SeededRng("big"))  # fmt: skip
    assert len(env.to_bytes()) < 1 << 20


def _enc(**m: Any) -> bytes:
    return encoding.encode(m)


INFO = {"category": "Fire", "certainty": "Observed", "event": "Fire", "headline": "Fire", "severity": "Minor", "urgency": "Past", "v": 1}
MALFORMED: list[tuple[str, dict[str, bytes]]] = [
    ("unknown section", {"annex": b"x"}),
    ("info not msgpack", {"info": b"\xc1"}),
    ("info non-canonical", {"info": json.dumps(INFO).encode()}),
    ("info missing field", {"info": _enc(**{k: v for k, v in INFO.items() if k != "event"})}),
    ("info extra field", {"info": _enc(**INFO, kind="alert")}),
    ("info bad enum", {"info": _enc(**INFO | {"category": "fire"})}),
    ("info multi-line headline", {"info": _enc(**INFO | {"headline": "a\nb"})}),
    ("info not NFC", {"info": _enc(**INFO | {"event": "Cafe\u0301"})}),
    ("text not UTF-8", {"summary": b"\xff"}),
    ("text control", {"details": b"\x1b[2J"}),
    ("text empty", {"instructions": b""}),
    ("attachments empty", {"attachments": _enc(items=[], v=1)}),
    ("attachments bad name", {"attachments": _enc(items=[{"data": b"x", "name": "a/b", "type": "text/plain"}], v=1)}),
    ("attachments upper type", {"attachments": _enc(items=[{"data": b"x", "name": "a", "type": "Text/Plain"}], v=1)}),
    ("attachments str data", {"attachments": _enc(items=[{"data": "eA==", "name": "a", "type": "text/plain"}], v=1)}),
    ("ack reason on accept", {"ack": _enc(disposition="accepted", reason="no", ref=bytes(16), v=1)}),
    ("ack no reason on reject", {"ack": _enc(disposition="rejected", ref=bytes(16), v=1)}),
    ("ack short ref", {"ack": _enc(disposition="received", ref=bytes(15), v=1)}),
]


@pytest.mark.parametrize("opened", [m for _, m in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_content_is_refused(opened: dict[str, bytes]) -> None:
    with pytest.raises(MalformedError):
        cap.decode_sections(opened)


def test_newer_content_version_is_unsupported() -> None:
    with pytest.raises(UnsupportedVersionError):
        cap.decode_sections({"info": _enc(**INFO | {"v": 2})})


def test_missing_sections_are_tolerated() -> None:
    assert cap.decode_sections({}) == {}
    assert cap.decode_sections({"summary": "Caf\u00e9".encode()}) == {"summary": "Caf\u00e9"}


# -- references ---------------------------------------------------------------------------------


def test_check_references(fed: Federation) -> None:
    other = "ff" * 16
    req = parse(fed, body() | {"kind": "cancel", "references": [REF, other]})
    check_references(req, {bytes.fromhex(REF): "active", bytes.fromhex(other): "expired"})
    with pytest.raises(ValidationError) as info:
        check_references(req, {bytes.fromhex(other): "cancelled"})
    assert set(info.value.fields) == {"references[0]", "references[1]"}
    assert "already cancelled" in info.value.fields["references[1]"]
    check_references(parse(fed, body() | {"references": [other]}), {bytes.fromhex(other): "cancelled"})  # an alert may cite it


# -- acknowledgements ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ack_body", "expected"),
    [
        ({"disposition": "received"}, AckRequest(disposition="received")),
        ({"disposition": "accepted", "comment": "Units\ndispatched."}, AckRequest(disposition="accepted", comment="Units\ndispatched.")),
        ({"disposition": "rejected", "reason": "Out of our jurisdiction."}, AckRequest(disposition="rejected", reason="Out of our jurisdiction.")),
    ],
)
def test_ack_round_trip(ack_body: dict[str, Any], expected: AckRequest) -> None:
    ack = parse_ack_request(ack_body)
    assert ack == expected
    sections = ack.plaintext_sections(bytes.fromhex(REF))
    assert list(sections) == ["ack"]
    assert cap.decode_sections(sections) == {"ack": ack_body | {"ref": REF}}
    assert cap.decode_ack(sections["ack"]) == ack_body | {"ref": REF}


def test_ack_section_bytes_are_exact() -> None:
    assert AckRequest(disposition="received").plaintext_sections(bytes(16))["ack"] == (
        bytes.fromhex("83ab")
        + b"disposition"
        + bytes.fromhex("a8")
        + b"received"
        + bytes.fromhex("a3")
        + b"ref"
        + bytes.fromhex("c410")
        + bytes(16)
        + bytes.fromhex("a17601")
    )
    with pytest.raises(MalformedError):
        AckRequest(disposition="received").plaintext_sections(b"short")


@pytest.mark.parametrize(
    ("ack_body", "path", "expect"),
    [
        ([], "$", "JSON object"),
        ({}, "disposition", "required"),
        ({"disposition": "Accepted"}, "disposition", 'Did you mean "accepted"'),
        ({"disposition": "rejected"}, "reason", "required when rejecting"),
        ({"disposition": "accepted", "reason": "x"}, "reason", "only for"),
        ({"disposition": "rejected", "reason": "x" * 501}, "reason", "500 characters"),
        ({"disposition": "rejected", "reason": ""}, "reason", "empty"),
        ({"disposition": "received", "comment": "x" * 2001}, "comment", "2000 characters"),
        ({"disposition": "received", "comment": None}, "comment", "string"),
        ({"disposition": "received", "by": "me"}, "by", "not a known field"),
    ],
)
def test_ack_errors(ack_body: Any, path: str, expect: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_ack_request(ack_body)
    assert expect.lower() in info.value.fields[path].lower()


# -- value parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ms"), [("90s", 90_000), ("15m", 900_000), ("2h", 7_200_000), ("1d", 86_400_000), (1, 1000), (2_592_000, 30 * DAY), ("30d", 30 * DAY)]
)
def test_durations(value: Any, ms: int) -> None:
    assert cap.parse_duration_ms(value) == ms
    assert cap.parse_duration_ms(cap.format_duration(ms)) == ms


def test_format_duration() -> None:
    assert [cap.format_duration(ms) for ms in (2 * DAY, 90 * SECOND, 1500)] == ["2d", "90s", "1500ms"]


@pytest.mark.parametrize("value", ["0s", "1.5h", "1h30m", "15", "015m", " 1m", "1M", 0, -5, 31 * 86400, True, 1.0, "9" * 5000 + "s"])
def test_bad_durations(value: Any) -> None:
    with pytest.raises(cap.FieldInvalid):
        cap.parse_duration_ms(value)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-05-28T20:26:40Z", T0),
        ("2026-05-28T22:26:40.5+02:00", T0 + 500),
        ("2026-05-28T19:26:40.123456789-01:00", T0 + 123),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ],
)
def test_timestamps(text: str, ms: int) -> None:
    assert cap.parse_timestamp_ms(text) == ms


@pytest.mark.parametrize(
    "text", ["2026-05-28", "2026-05-28T20:26:40", "2026-05-28t20:26:40z", "2026-05-28 20:26:40Z", "2025-02-29T00:00:00Z", "2026-05-28T20:26:60Z",
             "2026-05-28T20:26:40+24:00", "1969-12-31T23:59:59Z", "2026-05-28T20:26:40Z\n", "\uff12\uff10\uff12\uff16-05-28T20:26:40Z"],
)  # fmt: skip
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(cap.FieldInvalid):
        cap.parse_timestamp_ms(text)
