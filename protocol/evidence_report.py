"""The verdict on a delivery evidence bundle: findings, hop rows, lanes and the report.

:func:`protocol.evidence.verify_bundle` returns an :class:`EvidenceReport` with
one :class:`RecipientReport` lane per (message, recipient) and one
:class:`HopRow` per hop on the recipient's route, each showing its receipts as
:class:`EventView` rows. Every failed check is a :class:`Finding` with a stable
``E_`` code; :meth:`EvidenceReport.raise_for_failure` turns the first one into
its exception class. ``heliograph verify receipts`` prints this model and
:mod:`node.report_html` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol import fields
from protocol.errors import ALL_ERRORS, HeliographError, MalformedError, ValidationError

PASS, FAIL, NOT_REACHED, NOT_HELD = "PASS", "FAIL", "NOT_REACHED", "NOT_HELD"
STATUSES = (PASS, FAIL, NOT_REACHED, NOT_HELD)
OUTCOMES = ("acknowledged", "delivered", "received", "rejected", "expired", "delayed", "in-transit", "broken")


_ERRORS: dict[str, type[HeliographError]] = {cls.code: cls for cls in ALL_ERRORS if cls is not ValidationError}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One failed check: a stable code and a precise sentence naming the message, hop and receipt."""

    code: str
    message: str

    def __post_init__(self) -> None:
        if type(self.code) is not str or not self.code.startswith("E_") or type(self.message) is not str:
            raise MalformedError("a finding needs an E_ code and a sentence")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventView:
    """One receipt as shown in a report row, with its own verdict."""

    hop: str
    event: str
    time: int
    peer: str | None
    digest: bytes
    log_index: int | None = None
    reason: str | None = None
    retry_until: int | None = None
    problem: Finding | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True, slots=True, kw_only=True)
class HopRow:
    """One hop on a recipient's route: its receipts for that recipient and the verdict."""

    hop: str
    events: tuple[EventView, ...]
    status: str
    reason: str = ""
    code: str | None = None

    def __post_init__(self) -> None:
        fields.one_of("status", self.status, STATUSES)
        if (self.status == FAIL) != (self.code is not None):
            raise MalformedError("a row fails exactly when it carries a code")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientReport:
    """One lane: what the receipts prove about one message reaching one recipient."""

    kind: str
    """``alert`` (or the header kind: ``update``, ``cancel``), ``escalation`` or ``ack``."""
    message_id: bytes
    sender: str
    recipient: str
    route: tuple[str, ...]
    outcome: str
    rows: tuple[HopRow, ...]
    detail: str = ""

    def __post_init__(self) -> None:
        fields.one_of("outcome", self.outcome, OUTCOMES)

    @property
    def ok(self) -> bool:
        return all(r.status != FAIL for r in self.rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceReport:
    """The verdict on a bundle: one lane per (message, recipient), every finding in check order."""

    message_id: bytes
    origin: str
    lanes: tuple[RecipientReport, ...]
    findings: tuple[Finding, ...]
    stray: tuple[EventView, ...] = ()
    """Receipts that belong to no row (a hop or peer off every route); each carries its finding."""
    roster_versions: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every check passed and every chain ended in a final outcome."""
        return not self.findings

    @property
    def first_failure(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def all_delivered(self) -> bool:
        """True when every alert and escalation recipient is proven delivered (or acknowledged)."""
        return self.ok and all(lane.outcome in ("delivered", "acknowledged") for lane in self.lanes if lane.kind != "ack")

    def raise_for_failure(self) -> None:
        """Raise the first failure as its error class (``E_BROKEN_CHAIN``: :class:`BrokenChainError`).

        Raises:
            HeliographError: The subclass of the first finding's code.
        """
        first = self.first_failure
        if first is not None:
            raise _ERRORS.get(first.code, HeliographError)(first.message)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (hex ids) for ``heliograph verify receipts --json``."""

        def event(e: EventView) -> dict[str, Any]:
            out: dict[str, Any] = {"hop": e.hop, "event": e.event, "time": e.time, "peer": e.peer, "digest": e.digest.hex(), "log_index": e.log_index}
            out |= {k: v for k, v in (("reason", e.reason), ("retry_until", e.retry_until)) if v is not None}
            if e.problem is not None:
                out["problem"] = {"code": e.problem.code, "message": e.problem.message}
            return out

        first = self.first_failure
        return {
            "message_id": self.message_id.hex(),
            "origin": self.origin,
            "ok": self.ok,
            "all_delivered": self.all_delivered,
            "first_failure": {"code": first.code, "message": first.message} if first else None,
            "findings": [{"code": f.code, "message": f.message} for f in self.findings],
            "roster_versions": list(self.roster_versions),
            "lanes": [
                {
                    "kind": lane.kind,
                    "message_id": lane.message_id.hex(),
                    "sender": lane.sender,
                    "recipient": lane.recipient,
                    "route": list(lane.route),
                    "outcome": lane.outcome,
                    "detail": lane.detail,
                    "ok": lane.ok,
                    "rows": [{"hop": r.hop, "status": r.status, "code": r.code, "reason": r.reason, "events": [event(e) for e in r.events]} for r in lane.rows],
                }
                for lane in self.lanes
            ],
            "stray": [event(e) for e in self.stray],
        }
