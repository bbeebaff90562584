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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from node import cap
from node.cap import ACK, ATTACHMENTS, INFO, MISSING, Attachment, FieldErrors, FieldInvalid
from protocol.envelope import Tier
from protocol.errors import MalformedError, UnknownKeyError, UnknownMemberError, ValidationError
from protocol.fields import MEMBER_ID_MAX, MEMBER_ID_RE
from protocol.header import LABELS, PRIORITIES
from protocol.roster import KIND_NODE, Roster

COMPOSE_KINDS = ("alert", "update", "cancel")
REQUEST_SECTIONS = ("headline", "summary", "details", "instructions", "attachments")
CLOSED_STATUS = "cancelled"
"""The message status (from the node's store) that an update or cancel may not refer to."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ComposeLimits:
    """Every size and count bound of the officer API, in one place."""

    max_event_chars: int = 200
    max_headline_chars: int = 160
    max_summary_bytes: int = 2 * 1024
    max_details_bytes: int = 64 * 1024
    max_instructions_bytes: int = 16 * 1024
    max_attachments: int = cap.MAX_ATTACHMENTS
    max_attachment_bytes: int = 256 * 1024
    max_attachments_total_bytes: int = 512 * 1024
    """With the text limits and 512 stanzas this keeps an alert inside the 1 MiB envelope."""
    max_tiers: int = 8
    max_recipients: int = 512
    max_refs: int = 8
    min_duration_ms: int = 1000
    max_duration_ms: int = 30 * 86_400_000
    max_reason_chars: int = 500
    max_comment_chars: int = 2000
    max_errors: int = 100
    """Stop collecting after this many, so a hostile body cannot make the error huge."""


DEFAULT_COMPOSE_LIMITS = ComposeLimits()


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalation:
    """Tier ``target`` is sent at ``due_ms`` unless tier ``watcher`` has an accepted ack by then."""

    watcher: str
    target: str
    after_ms: int
    due_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertTier:
    """One validated tier: ``sections`` are the sealed section ids, sorted, always with ``info``."""

    name: str
    recipients: tuple[str, ...]
    sections: tuple[str, ...]
    ack_deadline_ms: int | None
    escalation: Escalation | None
    held: bool
    """True if the tier is an escalation target: not sealed at send time."""

    def envelope_tier(self) -> Tier:
        return Tier(name=self.name, sections=self.sections, recipients=self.recipients)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRequest:
    """A valid ``POST /v1/alerts`` body, with every time absolute (unix ms). Build it with :func:`parse_alert_request`."""

    kind: str
    priority: str
    label: str
    category: str
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    summary: str | None
    details: str | None
    instructions: str | None
    attachments: tuple[Attachment, ...]
    tiers: tuple[AlertTier, ...]
    refs: tuple[bytes, ...]
    """In request order; the header sorts them."""
    created_ms: int
    expires_ms: int

    def initial_tiers(self) -> tuple[Tier, ...]:
        """The tiers to seal now: every tier that is not held back for escalation."""
        return tuple(t.envelope_tier() for t in self.tiers if not t.held)

    def held_tiers(self) -> tuple[Tier, ...]:
        """The tiers sent only if an escalation fires."""
        return tuple(t.envelope_tier() for t in self.tiers if t.held)

    def escalations(self) -> tuple[Escalation, ...]:
        return tuple(t.escalation for t in self.tiers if t.escalation is not None)

    def plaintext_sections(self, tiers: Iterable[Tier]) -> dict[str, bytes]:
        """Section id -> plaintext to seal, for exactly the sections ``tiers`` list.

        Raises:
            MalformedError: A tier lists a section this request does not have.
        """
        texts = {"summary": self.summary, "details": self.details, "instructions": self.instructions}
        out: dict[str, bytes] = {}
        for sid in sorted({s for t in tiers for s in t.sections}):
            if sid == INFO:
                info = {"category": self.category, "certainty": self.certainty, "event": self.event, "severity": self.severity, "urgency": self.urgency}
                out[sid] = cap.encode_info(headline=self.headline, **info)
            elif sid == ATTACHMENTS and self.attachments:
                out[sid] = cap.encode_attachments(self.attachments)
            elif (text := texts.get(sid)) is not None:
                out[sid] = text.encode("utf-8")
            else:
                raise MalformedError(f"this alert has no section {sid!r}")
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AckRequest:
    """A valid ``POST /v1/inbox/{id}/ack`` body."""

    disposition: str
    reason: str | None = None
    comment: str | None = None

    def plaintext_sections(self, ref: bytes) -> dict[str, bytes]:
        """The sections of the ``ack`` message answering message ``ref``: ``{"ack": ...}``.

        Raises:
            MalformedError: ``ref`` is not a 16-byte message id.
        """
        return {ACK: cap.encode_ack(ref=ref, disposition=self.disposition, reason=self.reason, comment=self.comment)}


# -- POST /v1/alerts --------------------------------------------------------------------------

_ALERT_REQUIRED = ("category", "event", "urgency", "severity", "certainty", "priority", "tlp", "expires", "sections", "tiers")
_TIER_REQUIRED = ("name", "recipients", "sections")


@dataclass(slots=True)
class _Content:
    headline: str | None
    texts: dict[str, str | None]
    attachments: tuple[Attachment, ...]
    present: frozenset[str]


@dataclass(slots=True)
class _TierDraft:
    path: str
    name: str | None
    recipients: list[str]
    listed: list[str]
    deadline: tuple[str, int] | None
    """("after", duration ms) or ("at", unix ms)."""
    escalate: tuple[str | None, int | None] | None
    """(target tier, after ms) as given, either possibly invalid."""


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
    drafts = _tiers(errs, get("tiers", MISSING), roster=roster, me=me, now_ms=now_ms, limits=limits, content=content)
    refs = _references(errs, get("references", MISSING), kind, limits)
    tiers = _resolve_tiers(errs, drafts, now_ms, expires_ms) if drafts is not None else ()
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
        at = errs.check(path, cap.parse_timestamp_ms, value)
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
        ttl_ms = errs.check(path, cap.parse_duration_ms, ttl, **durations)
        at = None if ttl_ms is None else now_ms + ttl_ms
    else:
        errs.add(path, 'Must be an RFC 3339 time such as "2026-11-26T12:00:00Z", or {"ttl": "2h"}, or {"ttl_seconds": 7200}.')
        return None
    if at is not None and at - now_ms > max_ttl_ms:
        errs.add(path, f"Must be at most {cap.format_duration(max_ttl_ms)} from now.")
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
        name = errs.check(f"{path}.name", cap.check_file_name, a["name"]) if "name" in a else None
        media_type = errs.check(f"{path}.type", cap.check_media_type, a["type"]) if "type" in a else None
        data = errs.check(f"{path}.data", cap.check_base64_data, a["data"], limits.max_attachment_bytes) if "data" in a else None
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


def _tiers(errs: FieldErrors, value: Any, *, roster: Roster, me: str, now_ms: int, limits: ComposeLimits, content: _Content | None) -> list[_TierDraft] | None:
    items = errs.array("tiers", value, min_items=1, max_items=limits.max_tiers, what="tiers")
    if items is None:
        return None
    drafts: list[_TierDraft] = []
    names: dict[str, str] = {}  # tier name -> path of the tier
    placed: dict[str, str] = {}  # recipient -> path where it first appeared
    lists_known = 0
    for i, item in enumerate(items):
        path = f"tiers[{i}]"
        t = errs.obj(path, item, _TIER_REQUIRED, ("ack_deadline", "escalate_if_unacked"))
        if t is None:
            continue
        name = errs.short_name(f"{path}.name", t.get("name", MISSING))
        if name is not None and name in names:
            errs.add(f"{path}.name", f"Is already the name of {names[name]}; tier names must be unique.")
            name = None
        elif name is not None:
            names[name] = path
        draft = _TierDraft(path=path, name=name, recipients=[], listed=[], deadline=None, escalate=None)
        for j, r in enumerate(
            errs.array(f"{path}.recipients", t.get("recipients", MISSING), min_items=1, max_items=limits.max_recipients, what="recipients") or ()
        ):
            rpath = f"{path}.recipients[{j}]"
            if errs.check(rpath, _check_recipient, r, roster, me, now_ms) is None:
                continue
            if r in placed:
                errs.add(rpath, f'"{r}" is already a recipient at {placed[r]}; each recipient belongs to exactly one tier.')
            else:
                placed[r] = rpath
                draft.recipients.append(r)
        listed = errs.array(f"{path}.sections", t.get("sections", MISSING), min_items=0, max_items=len(REQUEST_SECTIONS), what="sections")
        for j, sid in enumerate(listed or ()):
            spath = f"{path}.sections[{j}]"
            if type(sid) is not str or sid not in REQUEST_SECTIONS:
                errs.add(spath, f"Must be one of {', '.join(REQUEST_SECTIONS)}.")
            elif sid in draft.listed:
                errs.add(spath, f'"{sid}" is listed twice.')
            elif content is not None and sid not in content.present and sid != "headline":
                errs.add(spath, f'The request has no "{sid}" section.')
            else:
                draft.listed.append(sid)
        draft.deadline = _deadline(errs, f"{path}.ack_deadline", t.get("ack_deadline", MISSING), limits)
        draft.escalate = _escalate(errs, f"{path}.escalate_if_unacked", t.get("escalate_if_unacked", MISSING), limits)
        drafts.append(draft)
        lists_known += listed is not None
    if len(placed) > limits.max_recipients:
        errs.add("tiers", f"Must name at most {limits.max_recipients} recipients in all.")
    if content is not None and lists_known == len(items):  # every tier's list is known: report sections nobody sees
        for sid in sorted(content.present - {"headline", *(s for d in drafts for s in d.listed)}):
            errs.add(f"sections.{sid}", "No tier lists this section, so no recipient would see it.")
    return drafts


def _escalate(errs: FieldErrors, path: str, value: Any, limits: ComposeLimits) -> tuple[str | None, int | None] | None:
    e = errs.obj(path, value, ("tier", "after"))
    if e is None:
        return None
    after = (
        errs.check(f"{path}.after", cap.parse_duration_ms, e["after"], min_ms=limits.min_duration_ms, max_ms=limits.max_duration_ms) if "after" in e else None
    )
    return errs.short_name(f"{path}.tier", e.get("tier", MISSING)), after


def _check_recipient(value: Any, roster: Roster, me: str, now_ms: int) -> str:
    if type(value) is not str or len(value) > MEMBER_ID_MAX or not MEMBER_ID_RE.fullmatch(value):
        raise FieldInvalid('Must be a member id such as "ke-police".')
    if value == me:
        raise FieldInvalid(f'"{value}" is this node; an agency does not send alerts to itself.')
    try:
        member = roster.member(value)
    except UnknownMemberError:
        raise FieldInvalid(f'"{value}" is not a member of federation {roster.federation}.') from None
    if member.kind != KIND_NODE:
        raise FieldInvalid(f'"{value}" is a gateway, not an agency node.')
    try:
        member.encryption_key_at(now_ms)
    except UnknownKeyError:
        raise FieldInvalid(f'"{value}" has no encryption key valid now, so it cannot receive alerts until the roster is updated.') from None
    return value


def _deadline(errs: FieldErrors, path: str, value: Any, limits: ComposeLimits) -> tuple[str, int] | None:
    if value is MISSING:
        return None
    if type(value) is str and "T" in value:
        at = errs.check(path, cap.parse_timestamp_ms, value)
        return None if at is None else ("at", at)
    if not cap.looks_like_duration(value):
        errs.add(path, 'Must be a duration such as "15m" or an RFC 3339 time such as "2026-11-26T12:00:00Z".')
        return None
    after = errs.check(path, cap.parse_duration_ms, value, min_ms=limits.min_duration_ms, max_ms=limits.max_duration_ms)
    return None if after is None else ("after", after)


def _resolve_tiers(errs: FieldErrors, drafts: list[_TierDraft], now_ms: int, expires_ms: int | None) -> tuple[AlertTier, ...]:
    """Check escalations across tiers and make ack deadlines absolute."""
    by_name = {d.name: d for d in drafts if d.name is not None}
    escalations: dict[str, Escalation] = {}  # target -> escalation
    for d in drafts:
        if d.escalate is None:
            continue
        target, after = d.escalate
        tpath = f"{d.path}.escalate_if_unacked"
        if after is not None and expires_ms is not None and now_ms + after >= expires_ms:
            errs.add(f"{tpath}.after", "Must be shorter than the time until the alert expires.")
        if target is None or d.name is None:
            continue
        if target == d.name:
            errs.add(f"{tpath}.tier", "Must name another tier; a tier cannot escalate to itself.")
        elif target not in by_name:
            errs.add(f"{tpath}.tier", f'There is no tier "{target}" in this request.')
        elif by_name[target].escalate is not None:
            errs.add(f"{tpath}.tier", f'Tier "{target}" has its own escalate_if_unacked; escalations cannot be chained.')
        elif target in escalations:
            errs.add(f"{tpath}.tier", f'Tier "{target}" is already the escalation target of tier "{escalations[target].watcher}".')
        elif after is not None:
            escalations[target] = Escalation(watcher=d.name, target=target, after_ms=after, due_ms=now_ms + after)
    tiers = []
    for d in drafts:
        held = escalations.get(d.name) if d.name is not None else None
        sent_ms = now_ms if held is None else held.due_ms
        deadline_ms = None
        if d.deadline is not None:
            deadline_ms = sent_ms + d.deadline[1] if d.deadline[0] == "after" else d.deadline[1]
            if deadline_ms <= sent_ms:
                errs.add(f"{d.path}.ack_deadline", "Must be in the future." if held is None else "Must be after the tier is sent by escalation.")
            elif expires_ms is not None and deadline_ms >= expires_ms:
                errs.add(f"{d.path}.ack_deadline", "Must be before the alert expires.")
        watch = next((e for e in escalations.values() if e.watcher == d.name), None)
        sections = tuple(sorted({INFO, *(s for s in d.listed if s != "headline")}))
        tiers.append(
            AlertTier(
                name=d.name or "", recipients=tuple(d.recipients), sections=sections, ack_deadline_ms=deadline_ms, escalation=watch, held=held is not None
            )
        )
    return tuple(tiers)


def _references(errs: FieldErrors, value: Any, kind: str | None, limits: ComposeLimits) -> tuple[bytes, ...]:
    needed = kind in ("update", "cancel")
    if value is MISSING:
        if needed:
            errs.add("references", f"Is required for a {kind}: name the message(s) it {'updates' if kind == 'update' else 'cancels'}.")
        return ()
    refs: list[bytes] = []
    for i, item in enumerate(errs.array("references", value, min_items=1 if needed else 0, max_items=limits.max_refs, what="message ids") or ()):
        ref = errs.check(f"references[{i}]", cap.check_message_id, item)
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
