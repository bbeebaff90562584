"""The typed officer API requests that :mod:`node.compose` builds from a valid body.

Frozen dataclasses and nothing that reads a clock, a store or a random source.
:func:`node.compose.parse_alert_request` returns an :class:`AlertRequest` whose
times are all absolute, with one :class:`AlertTier` per tier and an
:class:`Escalation` for each tier held back; :func:`node.compose.parse_ack_request`
returns an :class:`AckRequest`. :mod:`node.service` seals what they hold: each
request writes its own section plaintexts in the format of :mod:`node.cap`.
:class:`ComposeLimits` holds every size and count bound the validation applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node import cap
from node.cap import ACK, ATTACHMENTS, INFO, Attachment
from protocol.envelope import Tier
from protocol.errors import MalformedError

REQUEST_SECTIONS = ("headline", "summary", "details", "instructions", "attachments")


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
