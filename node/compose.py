"""Officer API requests: validate ``POST /v1/alerts`` and ``POST /v1/inbox/{id}/ack`` bodies.

A handler decodes the JSON body (refusing duplicate keys) and calls
:func:`parse_alert_request` or :func:`parse_ack_request`. Both are pure: the
roster, the node's own id, ``now_ms`` and the limits are parameters, and
nothing reads a clock, a store or a random source. They either return a frozen,
fully typed request or raise :class:`~protocol.errors.ValidationError` (HTTP 422)
whose ``fields`` maps *every* offending JSON path (``tiers[1].recipients[0]``,
``sections.details``, ``expires.ttl``; ``$`` is the body itself) to a sentence.
Nothing else escapes, whatever JSON value comes in.

Rules beyond the field-by-field ones (the module docstring of :mod:`node.cap`
gives the text rules and the sealed section format):

* ``headline`` is always required and visible to every tier (it travels in the
  ``info`` section); ``summary`` is required for ``alert`` and ``update``, and
  a ``cancel`` may carry the headline alone. A section no tier lists is refused.
* A tier with ``escalate_if_unacked: {tier: T, after: D}`` holds tier ``T``
  back: ``T`` is not sealed at send time, and the node sends it at
  ``now + D`` if the watching tier has no accepted ack by then. ``T`` must be
  another tier of the request, the target of no other escalation, and without an
  ``escalate_if_unacked`` of its own (so no chains or cycles); ``now + D`` must be
  before ``expires``.
* ``ack_deadline`` (a duration or an RFC 3339 time) is made absolute: a
  duration counts from sending, which for a held tier is its escalation time.
  It must fall after that time and before ``expires``.
* ``references``: update and cancel need 1..8, an alert may give 0..8. This
  module checks only their form; the node looks them up (async, in its store)
  and passes what it found to :func:`check_references`.

The request types are in :mod:`node.officer_requests` and the tier rules
are checked in :mod:`node.compose_tiers`; the request types are re-exported
here, so ``from node.compose import ...`` keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node import cap
from node.cap import ATTACHMENTS, Attachment
from node.compose_tiers import parse_tiers, resolve_tiers
from node.field_errors import MISSING, FieldErrors
from node.field_rules import check_base64_data, check_file_name, check_media_type, check_message_id, format_duration, parse_duration_ms, parse_timestamp_ms
from node.officer_requests import DEFAULT_COMPOSE_LIMITS, REQUEST_SECTIONS, AckRequest, AlertRequest, AlertTier, ComposeLimits, Escalation
from protocol.errors import ValidationError
from protocol.header import LABELS, PRIORITIES
from protocol.roster import Roster

__all__ = [
    "CLOSED_STATUS",
    "COMPOSE_KINDS",
    "DEFAULT_COMPOSE_LIMITS",
    "REQUEST_SECTIONS",
    "AckRequest",
    "AlertRequest",
    "AlertTier",
    "ComposeLimits",
    "Escalation",
    "check_references",
    "parse_ack_request",
    "parse_alert_request",
]

COMPOSE_KINDS = ("alert", "update", "cancel")
CLOSED_STATUS = "cancelled"
"""The message status (from the node's store) that an update or cancel may not refer to."""


# -- POST /v1/alerts --------------------------------------------------------------------------

_ALERT_REQUIRED = ("category", "event", "urgency", "severity", "certainty", "priority", "tlp", "expires", "sections", "tiers")


@dataclass(slots=True)
class _Content:
    headline: str | None
    texts: dict[str, str | None]
    attachments: tuple[Attachment, ...]
    present: frozenset[str]


def parse_alert_request(body: Any, *, roster: Roster, me: str, now_ms: int, max_ttl_ms: int, limits: ComposeLimits = DEFAULT_COMPOSE_LIMITS) -> AlertRequest:
    """Validate a ``POST /v1/alerts`` body (already JSON-decoded) and make every time absolute.

    Args:
        body: The decoded JSON value; not modified.
        roster: The roster in force; recipients must be agency nodes in it with
            an encryption key valid at ``now_ms``.
        me: This node's member id; it cannot be a recipient.
        now_ms: The send time, unix ms; durations count from it.
        max_ttl_ms: The longest allowed time from ``now_ms`` to ``expires``.
        limits: Sizes and counts.

    Returns:
        The typed request.

    Raises:
        ValidationError: One entry per invalid field, all of them at once.
    """
    errs = FieldErrors(limits.max_errors)
    top = errs.obj("$", body, _ALERT_REQUIRED, ("kind", "references"))
    if top is None:
        raise ValidationError(errs.fields)
    get = top.get
    kind = errs.enum("kind", get("kind", "alert"), COMPOSE_KINDS)
    scalars: dict[str, Any] = {
        "kind": kind,
        "priority": errs.enum("priority", get("priority", MISSING), PRIORITIES),
        "label": errs.enum("tlp", get("tlp", MISSING), LABELS),
        "category": errs.enum("category", get("category", MISSING), cap.CATEGORIES),
        "urgency": errs.enum("urgency", get("urgency", MISSING), cap.URGENCIES),
        "severity": errs.enum("severity", get("severity", MISSING), cap.SEVERITIES),
        "certainty": errs.enum("certainty", get("certainty", MISSING), cap.CERTAINTIES),
        "event": errs.text("event", get("event", MISSING), single_line=True, max_chars=limits.max_event_chars),
    }
    expires_ms = _expires(errs, get("expires", MISSING), now_ms, max_ttl_ms, limits)
    content = _sections(errs, get("sections", MISSING), kind, limits)
    present = None if content is None else content.present
    drafts = parse_tiers(errs, get("tiers", MISSING), roster=roster, me=me, now_ms=now_ms, limits=limits, present=present)
    refs = _references(errs, get("references", MISSING), kind, limits)
    tiers = resolve_tiers(errs, drafts, now_ms, expires_ms) if drafts is not None else ()
    errs.raise_if_any()
    assert content is not None and content.headline is not None and expires_ms is not None  # no error: every field was set
    texts = content.texts
    return AlertRequest(
        **scalars,
        headline=content.headline,
        summary=texts.get("summary"),
        details=texts.get("details"),
        instructions=texts.get("instructions"),
        attachments=content.attachments,
        tiers=tiers,
        refs=refs,
        created_ms=now_ms,
        expires_ms=expires_ms,
    )


def _expires(errs: FieldErrors, value: Any, now_ms: int, max_ttl_ms: int, limits: ComposeLimits) -> int | None:
    path, durations = "expires", {"min_ms": limits.min_duration_ms, "max_ms": limits.max_duration_ms}
    at: int | None
    if value is MISSING:
        return None
    if type(value) is str:
        at = errs.check(path, parse_timestamp_ms, value)
        if at is not None and at <= now_ms:
            errs.add(path, "Must be in the future.")
            return None
    elif type(value) is dict:
        errs.obj(path, value, (), ("ttl", "ttl_seconds"))
        given = [k for k in ("ttl", "ttl_seconds") if k in value]
        if len(given) != 1:
            errs.add(path, 'Must hold exactly one of "ttl" and "ttl_seconds".')
            return None
        path = f"expires.{given[0]}"
        ttl = value[given[0]]
        if (given[0] == "ttl") != (type(ttl) is str):
            errs.add(path, 'Must be a duration such as "2h".' if given[0] == "ttl" else "Must be a whole number of seconds.")
            return None
        ttl_ms = errs.check(path, parse_duration_ms, ttl, **durations)
        at = None if ttl_ms is None else now_ms + ttl_ms
    else:
        errs.add(path, 'Must be an RFC 3339 time such as "2026-11-26T12:00:00Z", or {"ttl": "2h"}, or {"ttl_seconds": 7200}.')
        return None
    if at is not None and at - now_ms > max_ttl_ms:
        errs.add(path, f"Must be at most {format_duration(max_ttl_ms)} from now.")
        return None
    return at


def _sections(errs: FieldErrors, value: Any, kind: str | None, limits: ComposeLimits) -> _Content | None:
    obj = errs.obj("sections", value, ("headline",), REQUEST_SECTIONS[1:])
    if obj is None:
        return None
    headline = errs.text("sections.headline", obj.get("headline", MISSING), single_line=True, max_chars=limits.max_headline_chars)
    max_bytes = {"summary": limits.max_summary_bytes, "details": limits.max_details_bytes, "instructions": limits.max_instructions_bytes}
    texts = {sid: errs.text(f"sections.{sid}", obj[sid], single_line=False, max_bytes=cap_) for sid, cap_ in max_bytes.items() if sid in obj}
    if kind in ("alert", "update") and "summary" not in obj:
        errs.add("sections.summary", f"Is required for an {kind}; only a cancel may carry the headline alone.")
    attachments = _attachments(errs, obj.get(ATTACHMENTS, MISSING), limits)
    return _Content(headline=headline, texts=texts, attachments=attachments, present=frozenset(obj) & frozenset(REQUEST_SECTIONS))


def _attachments(errs: FieldErrors, value: Any, limits: ComposeLimits) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(errs.array("sections.attachments", value, min_items=1, max_items=limits.max_attachments, what="attachments") or ()):
        path = f"sections.attachments[{i}]"
        a = errs.obj(path, item, ("name", "type", "data"))
        if a is None:
            continue
        name = errs.check(f"{path}.name", check_file_name, a["name"]) if "name" in a else None
        media_type = errs.check(f"{path}.type", check_media_type, a["type"]) if "type" in a else None
        data = errs.check(f"{path}.data", check_base64_data, a["data"], limits.max_attachment_bytes) if "data" in a else None
        if name is not None and name in first_index:
            errs.add(f"{path}.name", f"Is the same as the name of sections.attachments[{first_index[name]}]; names must be unique.")
        elif name is not None:
            first_index[name] = i
        if name is not None and media_type is not None and data is not None:
            out.append(Attachment(name=name, media_type=media_type, data=data))
    total = sum(len(a.data) for a in out)
    if total > limits.max_attachments_total_bytes:
        errs.add("sections.attachments", f"Must total at most {limits.max_attachments_total_bytes // 1024} KiB; these total {-(-total // 1024)} KiB.")
    return tuple(out)


def _references(errs: FieldErrors, value: Any, kind: str | None, limits: ComposeLimits) -> tuple[bytes, ...]:
    needed = kind in ("update", "cancel")
    if value is MISSING:
        if needed:
            errs.add("references", f"Is required for a {kind}: name the message(s) it {'updates' if kind == 'update' else 'cancels'}.")
        return ()
    refs: list[bytes] = []
    for i, item in enumerate(errs.array("references", value, min_items=1 if needed else 0, max_items=limits.max_refs, what="message ids") or ()):
        ref = errs.check(f"references[{i}]", check_message_id, item)
        if ref is not None and ref in refs:
            errs.add(f"references[{i}]", "Is listed twice.")
        elif ref is not None:
            refs.append(ref)
    return tuple(refs)


def check_references(request: AlertRequest, statuses: Mapping[bytes, str]) -> None:
    """Check the request's references against what the node's store knows.

    Args:
        request: A parsed request.
        statuses: For each referenced id that is an earlier message *sent by
            this agency*, its status in the node's store; ids it does not hold
            are absent.

    Raises:
        ValidationError: A reference is unknown, or an update or cancel names a
            message that is already cancelled; keyed ``references[i]``.
    """
    errs = FieldErrors(DEFAULT_COMPOSE_LIMITS.max_errors)
    for i, ref in enumerate(request.refs):
        status = statuses.get(ref)
        if status is None:
            errs.add(f"references[{i}]", "Is not a message sent earlier by this agency.")
        elif status == CLOSED_STATUS and request.kind != "alert":
            errs.add(
                f"references[{i}]", f"Names a message that is already cancelled; it cannot be {'updated' if request.kind == 'update' else 'cancelled'} again."
            )
    errs.raise_if_any()


# -- POST /v1/inbox/{id}/ack ------------------------------------------------------------------


def parse_ack_request(body: Any, *, limits: ComposeLimits = DEFAULT_COMPOSE_LIMITS) -> AckRequest:
    """Validate a ``POST /v1/inbox/{id}/ack`` body (already JSON-decoded).

    ``reason`` is required for, and only for, ``"rejected"``; ``comment`` is optional.

    Raises:
        ValidationError: One entry per invalid field.
    """
    errs = FieldErrors(limits.max_errors)
    obj = errs.obj("$", body, ("disposition",), ("reason", "comment"))
    if obj is None:
        raise ValidationError(errs.fields)
    disposition = errs.enum("disposition", obj.get("disposition", MISSING), cap.DISPOSITIONS)
    reason = errs.text("reason", obj.get("reason", MISSING), single_line=False, max_chars=limits.max_reason_chars)
    if disposition == "rejected" and "reason" not in obj:
        errs.add("reason", "Is required when rejecting; say why.")
    elif disposition not in (None, "rejected") and "reason" in obj:
        errs.add("reason", 'Is only for "rejected"; use "comment" instead.')
    comment = errs.text("comment", obj.get("comment", MISSING), single_line=False, max_chars=limits.max_comment_chars)
    errs.raise_if_any()
    assert disposition is not None
    return AckRequest(disposition=disposition, reason=reason, comment=comment)
