"""The tiers of a ``POST /v1/alerts`` body: recipients, sections, ack deadlines and escalations.

Part of :func:`node.compose.parse_alert_request`, in two passes that file their
errors in the same :class:`~node.field_errors.FieldErrors`. :func:`parse_tiers`
reads each tier on its own into a :class:`TierDraft` (its name, recipients
checked against the roster, the sections it lists, its ``ack_deadline`` and
``escalate_if_unacked`` as given); :func:`resolve_tiers` then checks the
escalations across tiers (no self-escalation, no chains, one watcher per
target, before ``expires``) and makes ack deadlines absolute, returning the
:class:`~node.officer_requests.AlertTier` values of the request. The rules are
listed in the docstring of :mod:`node.compose`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.cap import INFO
from node.field_errors import MISSING, FieldErrors
from node.field_rules import FieldInvalid, looks_like_duration, parse_duration_ms, parse_timestamp_ms
from node.officer_requests import REQUEST_SECTIONS, AlertTier, ComposeLimits, Escalation
from protocol.errors import UnknownKeyError, UnknownMemberError
from protocol.fields import MEMBER_ID_MAX, MEMBER_ID_RE
from protocol.roster import KIND_NODE, Roster

_TIER_REQUIRED = ("name", "recipients", "sections")


@dataclass(slots=True)
class TierDraft:
    """One tier as read on its own, before the checks across tiers; a field that failed its check is None."""

    path: str
    name: str | None
    recipients: list[str]
    listed: list[str]
    deadline: tuple[str, int] | None
    """("after", duration ms) or ("at", unix ms)."""
    escalate: tuple[str | None, int | None] | None
    """(target tier, after ms) as given, either possibly invalid."""


def parse_tiers(
    errs: FieldErrors, value: Any, *, roster: Roster, me: str, now_ms: int, limits: ComposeLimits, present: frozenset[str] | None
) -> list[TierDraft] | None:
    """Read the ``tiers`` array, or return None if it is not one; ``present`` is the request's sections, if readable."""
    items = errs.array("tiers", value, min_items=1, max_items=limits.max_tiers, what="tiers")
    if items is None:
        return None
    drafts: list[TierDraft] = []
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
        draft = TierDraft(path=path, name=name, recipients=[], listed=[], deadline=None, escalate=None)
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
            elif present is not None and sid not in present and sid != "headline":
                errs.add(spath, f'The request has no "{sid}" section.')
            else:
                draft.listed.append(sid)
        draft.deadline = _deadline(errs, f"{path}.ack_deadline", t.get("ack_deadline", MISSING), limits)
        draft.escalate = _escalate(errs, f"{path}.escalate_if_unacked", t.get("escalate_if_unacked", MISSING), limits)
        drafts.append(draft)
        lists_known += listed is not None
    if len(placed) > limits.max_recipients:
        errs.add("tiers", f"Must name at most {limits.max_recipients} recipients in all.")
    if present is not None and lists_known == len(items):  # every tier's list is known: report sections nobody sees
        for sid in sorted(present - {"headline", *(s for d in drafts for s in d.listed)}):
            errs.add(f"sections.{sid}", "No tier lists this section, so no recipient would see it.")
    return drafts


def _escalate(errs: FieldErrors, path: str, value: Any, limits: ComposeLimits) -> tuple[str | None, int | None] | None:
    e = errs.obj(path, value, ("tier", "after"))
    if e is None:
        return None
    after = errs.check(f"{path}.after", parse_duration_ms, e["after"], min_ms=limits.min_duration_ms, max_ms=limits.max_duration_ms) if "after" in e else None
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
        at = errs.check(path, parse_timestamp_ms, value)
        return None if at is None else ("at", at)
    if not looks_like_duration(value):
        errs.add(path, 'Must be a duration such as "15m" or an RFC 3339 time such as "2026-11-26T12:00:00Z".')
        return None
    after = errs.check(path, parse_duration_ms, value, min_ms=limits.min_duration_ms, max_ms=limits.max_duration_ms)
    return None if after is None else ("after", after)


def resolve_tiers(errs: FieldErrors, drafts: list[TierDraft], now_ms: int, expires_ms: int | None) -> tuple[AlertTier, ...]:
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
