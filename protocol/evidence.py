"""Delivery evidence bundles: prove offline, from signatures and logs alone, what became of one alert.

A bundle (docs/PROTOCOL.md section 22) holds, for one message ``M``:

* the signed header of ``M`` (bytes and the origin's signature; never the body,
  so an alert whose ciphertext was purged can still be proven), and of every
  escalation message sent for it and every ``ack`` message that answers it;
* every receipt the origin holds for those messages, each with a checkpoint of
  the issuing hop's log and an inclusion proof of the receipt in it;
* optionally, later roster versions, oldest first.

:func:`verify_bundle` checks it against a trusted roster and returns an
:class:`EvidenceReport` with one lane per (message, recipient) and one row per
hop on the recipient's route (``[origin, home(origin), home(recipient) if
different, recipient]``). It never raises once the bundle is parsed: every
failure becomes a :class:`Finding` with a stable code, and
:meth:`EvidenceReport.raise_for_failure` turns the first one into an exception.

Chain rules (section 18.9, 21.3): a hand-over ``S -> D`` is proven by ``D``'s
``accepted`` (peer ``S``, ``prev`` = ``S``'s ``accepted``) *and* ``S``'s
``relayed``/``delivered`` (peer ``D``, ``prev`` = ``D``'s ``accepted``);
``delayed`` and ``expired`` name their hop's own ``accepted``; a sender's
``rejected`` names the next hop's ``rejected`` (or its own ``accepted`` when
the refusal was a whole request); ``acknowledged`` comes from a recipient,
names the origin as peer and its own ``accepted``. A chain must run without
gaps until the recipient accepted, or end in a ``rejected`` or ``expired``
receipt; anything else is :class:`BrokenChainError`. The origin holds only its
own receipts of an ``ack`` message, so ack lanes are checked as far as they go
(every receipt present must fit) and need only the origin's ``accepted``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol import encoding, fields
from protocol.checkpoint import Checkpoint, CosignatureVerifier, NoteVerifier, SignedNote, open_checkpoint, verify_cosignature
from protocol.errors import (
    ALL_ERRORS,
    BrokenChainError,
    CheckpointError,
    DigestMismatchError,
    HeliographError,
    MalformedError,
    NotYetValidError,
    ProofError,
    RevokedKeyError,
    RosterError,
    TooLargeError,
    UnknownKeyError,
    UnknownMemberError,
    ValidationError,
)
from protocol.header import MESSAGE_ID_SIZE, Header
from protocol.keys import DOMAIN_ENVELOPE_HEADER, DOMAIN_RECEIPT, verify_signature
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from protocol.receipts import Receipt, SignedReceipt
from protocol.roster import KIND_NODE, Member, Roster, SignedRoster

VERSION = 1
MAX_BUNDLE_BYTES = 16 << 20
MAX_ITEMS = 8192
MAX_PARTS = 4096
MAX_ROSTERS = 16
MAX_PROOF = 64
MAX_CHECKPOINT_CHARS = 1 << 16

PASS, FAIL, NOT_REACHED, NOT_HELD = "PASS", "FAIL", "NOT_REACHED", "NOT_HELD"
STATUSES = (PASS, FAIL, NOT_REACHED, NOT_HELD)
OUTCOMES = ("acknowledged", "delivered", "received", "rejected", "expired", "delayed", "in-transit", "broken")
HANDOVER = ("relayed", "delivered")


_ERRORS: dict[str, type[HeliographError]] = {cls.code: cls for cls in ALL_ERRORS if cls is not ValidationError}


# -- wire format ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceItem:
    """One receipt with a checkpoint of its hop's log and the receipt's inclusion proof in it."""

    receipt: bytes
    checkpoint: str
    inclusion: tuple[bytes, ...]
    limits: Limits = field(default=DEFAULT_LIMITS, repr=False, compare=False)
    signed: SignedReceipt = field(init=False, repr=False, compare=False)
    note: SignedNote = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.typed("item.receipt", self.receipt, bytes)
        if type(self.checkpoint) is not str:
            raise MalformedError("item.checkpoint: expected text")
        if len(self.checkpoint) > MAX_CHECKPOINT_CHARS:
            raise TooLargeError(f"item.checkpoint: longer than {MAX_CHECKPOINT_CHARS} characters")
        if type(self.inclusion) is not tuple or len(self.inclusion) > MAX_PROOF:
            raise MalformedError(f"item.inclusion: expected at most {MAX_PROOF} hashes")
        for h in self.inclusion:
            fields.fixed_bytes("item.inclusion", h, HASH_SIZE)
        object.__setattr__(self, "signed", SignedReceipt.from_bytes(self.receipt, limits=self.limits))
        note = SignedNote.from_text(self.checkpoint)
        Checkpoint.from_body(note.text)
        object.__setattr__(self, "note", note)

    @property
    def digest(self) -> bytes:
        """The receipt digest (section 8.3): SHA-256 of the receipt wire bytes, the log leaf."""
        return hashlib.sha256(self.receipt).digest()

    def to_wire(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "inclusion": list(self.inclusion), "receipt": self.receipt}

    @classmethod
    def from_wire(cls, where: str, value: Any, limits: Limits) -> EvidenceItem:
        m = fields.check_keys(where, value, frozenset({"receipt", "checkpoint", "inclusion"}))
        inclusion = tuple(fields.array(f"{where}.inclusion", m["inclusion"], MAX_PROOF))
        return cls(receipt=m["receipt"], checkpoint=m["checkpoint"], inclusion=inclusion, limits=limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvidence:
    """One message: its signed header (no body) and the items for its receipts."""

    header_bytes: bytes
    signature: bytes
    items: tuple[EvidenceItem, ...]
    limits: Limits = field(default=DEFAULT_LIMITS, repr=False, compare=False)
    header: Header = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.typed("header", self.header_bytes, bytes)
        fields.fixed_bytes("sig", self.signature, 64)
        if type(self.items) is not tuple or not all(isinstance(i, EvidenceItem) for i in self.items):
            raise MalformedError("items: expected a tuple of EvidenceItem")
        if len(self.items) > MAX_ITEMS:
            raise TooLargeError(f"items: more than {MAX_ITEMS}")
        if len({i.digest for i in self.items}) != len(self.items):
            raise MalformedError("items: the same receipt twice")
        object.__setattr__(self, "header", Header.from_bytes(self.header_bytes, limits=self.limits))

    @property
    def message_id(self) -> bytes:
        return self.header.message_id

    @property
    def header_digest(self) -> bytes:
        """SHA-256 of the header bytes: what every receipt for the message names."""
        return hashlib.sha256(self.header_bytes).digest()

    def to_wire(self) -> dict[str, Any]:
        return {"header": self.header_bytes, "items": [i.to_wire() for i in self.items], "sig": self.signature}

    @classmethod
    def from_wire(cls, where: str, value: Any, limits: Limits) -> MessageEvidence:
        m = fields.check_keys(where, value, frozenset({"header", "sig", "items"}))
        items = tuple(EvidenceItem.from_wire(f"{where}.items[{i}]", x, limits) for i, x in enumerate(fields.array(f"{where}.items", m["items"], MAX_ITEMS)))
        return cls(header_bytes=m["header"], signature=m["sig"], items=items, limits=limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceBundle:
    """Everything needed to verify the delivery of message ``message_id`` offline (section 22)."""

    message_id: bytes
    message: MessageEvidence
    escalations: tuple[MessageEvidence, ...] = ()
    acks: tuple[MessageEvidence, ...] = ()
    rosters: tuple[bytes, ...] = ()
    """Signed roster versions, oldest first, that extend the verifier's trusted one."""
    signed_rosters: tuple[SignedRoster, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.fixed_bytes("message_id", self.message_id, MESSAGE_ID_SIZE)
        for name in ("escalations", "acks"):
            parts = getattr(self, name)
            if type(parts) is not tuple or not all(isinstance(p, MessageEvidence) for p in parts):
                raise MalformedError(f"{name}: expected a tuple of MessageEvidence")
        if not isinstance(self.message, MessageEvidence):
            raise MalformedError("message: expected MessageEvidence")
        if self.message.message_id != self.message_id:
            raise MalformedError("message_id is not the message id of the bundle's header")
        if len(self.escalations) + len(self.acks) > MAX_PARTS:
            raise TooLargeError(f"more than {MAX_PARTS} escalation and ack messages")
        ids = [p.message_id for p in self.parts]
        if len(set(ids)) != len(ids):
            raise MalformedError("the same message twice in one bundle")
        if type(self.rosters) is not tuple or len(self.rosters) > MAX_ROSTERS:
            raise MalformedError(f"rosters: expected a tuple of at most {MAX_ROSTERS}")
        object.__setattr__(self, "signed_rosters", tuple(SignedRoster.from_bytes(fields.typed("rosters", r, bytes)) for r in self.rosters))

    @property
    def parts(self) -> tuple[MessageEvidence, ...]:
        """The alert, then its escalation messages, then the ack messages."""
        return (self.message, *self.escalations, *self.acks)

    def to_bytes(self) -> bytes:
        return encoding.encode(
            {
                "v": VERSION,
                "message_id": self.message_id,
                "message": self.message.to_wire(),
                "escalations": [p.to_wire() for p in self.escalations],
                "acks": [p.to_wire() for p in self.acks],
                "rosters": list(self.rosters),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> EvidenceBundle:
        """Parse a bundle strictly; every receipt, checkpoint, header and roster is parsed too.

        Raises:
            MalformedError: Anything wrong with the bytes or a model inside.
            TooLargeError: Over :data:`MAX_BUNDLE_BYTES` or another bound.
            UnsupportedVersionError: An unknown ``v``.
        """
        m = fields.check_keys(
            "evidence bundle",
            encoding.decode(data, max_size=MAX_BUNDLE_BYTES),
            frozenset({"v", "message_id", "message", "escalations", "acks", "rosters"}),
            version=VERSION,
        )

        def parts(name: str) -> tuple[MessageEvidence, ...]:
            return tuple(MessageEvidence.from_wire(f"{name}[{i}]", p, limits) for i, p in enumerate(fields.array(name, m[name], MAX_PARTS)))

        return cls(
            message_id=m["message_id"],
            message=MessageEvidence.from_wire("message", m["message"], limits),
            escalations=parts("escalations"),
            acks=parts("acks"),
            rosters=tuple(fields.array("rosters", m["rosters"], MAX_ROSTERS)),
        )


# -- the report ----------------------------------------------------------------------------


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


# -- verification --------------------------------------------------------------------------


def route(roster: Roster, sender: str, recipient: str) -> tuple[str, ...]:
    """The hops a message from node ``sender`` to node ``recipient`` passes (section 18.1).

    Raises:
        UnknownMemberError: Either is not an agency node of ``roster``.
        MalformedError: ``sender`` names itself as recipient.
    """
    s, r = roster.member(sender), roster.member(recipient)
    for m in (s, r):
        if m.kind != KIND_NODE:
            raise UnknownMemberError(f"{m.id} is not an agency node")
    if sender == recipient:
        raise MalformedError(f"{sender} cannot be its own recipient")
    hops = [sender, str(s.home_gateway)]
    if r.home_gateway != s.home_gateway:
        hops.append(str(r.home_gateway))
    return (*hops, recipient)


def _describe(r: Receipt) -> str:
    where = f" ({'to' if r.event in (*HANDOVER, 'delayed', 'expired') else 'peer'} {r.peer})" if r.peer else ""
    index = f" at log index {r.log_index}" if r.log_index is not None else ""
    return f"{r.hop} '{r.event}'{where}{index} for message {r.message_id.hex()}"


@dataclass(slots=True)
class _Part:
    """A message being verified, with what the checks found so far (internal, mutable)."""

    kind: str
    evidence: MessageEvidence
    sender: str
    recipients: tuple[str, ...]
    partial: bool
    problems: dict[bytes, Finding] = field(default_factory=dict)
    accepted: dict[str, bytes] = field(default_factory=dict)

    def good(self) -> list[tuple[bytes, Receipt]]:
        return [(i.digest, i.signed.receipt) for i in self.evidence.items if i.digest not in self.problems]


class _Verifier:
    """One run of :func:`verify_bundle`: the trusted roster chain and the findings, in check order."""

    def __init__(self, trusted: Roster, now: int | None, witnesses: Sequence[CosignatureVerifier], require_k: int, limits: Limits) -> None:
        self.chain = [trusted]
        self.now = now
        self.witnesses = tuple(witnesses)
        self.require_k = require_k
        self.limits = limits
        self.findings: list[Finding] = []
        self.roots: dict[tuple[str, int], bytes] = {}

    def fail(self, code: str, message: str) -> Finding:
        finding = Finding(code=code, message=message)
        self.findings.append(finding)
        return finding

    # rosters and time

    def extend_trust(self, bundle: EvidenceBundle) -> None:
        trusted = self.chain[0]
        for i, signed in enumerate(bundle.signed_rosters):
            new = signed.roster
            if new.federation == trusted.federation and new.version <= self.chain[-1].version:
                same = next((r for r in self.chain if r.version == new.version), None)
                if same is not None and signed.body != same.to_bytes():
                    self.fail(RosterError.code, f"bundle roster #{i} differs from the trusted roster v{new.version} of the same version: a fork of the roster")
                continue  # older versions cannot be checked against a newer trust anchor, and are not needed
            try:
                self.chain.append(signed.verify_update(self.chain[-1], self.now if self.now is not None else new.issued))
            except HeliographError as exc:
                self.fail(exc.code, f"bundle roster #{i} (v{new.version}) does not extend trusted v{self.chain[-1].version}: {exc.message}")
                return

    def roster_at(self, at: int) -> Roster:
        """The newest trusted roster issued at or before ``at`` (the oldest one for earlier times)."""
        found = self.chain[0]
        for roster in self.chain[1:]:
            if roster.issued <= at:
                found = roster
        return found

    def check_time(self, what: str, at: int) -> None:
        if self.now is not None and at > self.now + self.limits.max_clock_skew_ms:
            raise NotYetValidError(f"{what} is dated {at}, after the verification time {self.now}")

    def check_key(self, member: str, kid: bytes, at: int) -> bytes:
        """The key valid at ``at`` in the roster then in force, and not revoked by ``at`` in the newest roster."""
        public = self.roster_at(at).check_signing_key(member, kid, at)
        try:
            later = self.newest(member).signing_key(kid)
        except UnknownKeyError:
            return public  # dropped from later rosters: judged by the roster in force at the time
        if later.revoked_at is not None and later.revoked_at <= at:
            raise RevokedKeyError(f"signing key {kid.hex()} of {member} was revoked at {later.revoked_at} in a later roster")
        return public

    def newest(self, member_id: str) -> Member:
        """The member's entry in the newest trusted roster that lists it.

        Raises:
            UnknownMemberError: No trusted roster lists it.
        """
        for roster in reversed(self.chain[1:]):
            with contextlib.suppress(UnknownMemberError):
                return roster.member(member_id)
        return self.chain[0].member(member_id)

    # one message

    def check_header(self, part: _Part) -> None:
        ev, header = part.evidence, part.evidence.header
        try:
            public = self.check_key(header.origin, header.origin_key, header.created)
            verify_signature(public, DOMAIN_ENVELOPE_HEADER, ev.header_bytes, ev.signature)
            self.check_time(f"header of message {header.message_id.hex()}", header.created)
        except HeliographError as exc:
            self.fail(exc.code, f"header of {part.kind} message {header.message_id.hex()} from {header.origin}: {exc.message}")

    def check_item(self, part: _Part, item: EvidenceItem) -> None:
        r = item.signed.receipt
        try:
            public = self.check_key(r.hop, r.hop_key, r.time)
            verify_signature(public, DOMAIN_RECEIPT, item.signed.body, item.signed.signature)
            self.check_time("the receipt", r.time)
            if r.message_id != part.evidence.message_id or r.header_digest != part.evidence.header_digest:
                raise DigestMismatchError(f"it names message {r.message_id.hex()} with header digest {r.header_digest.hex()}, not this header's")
            self.check_inclusion(item, r)
        except HeliographError as exc:
            part.problems[item.digest] = self.fail(exc.code, f"{_describe(r)}: {exc.message}")

    def check_inclusion(self, item: EvidenceItem, r: Receipt) -> None:
        member = self.newest(r.hop)  # the checkpoint is recent: judge it by the newest listing of the hop
        checkpoint = open_checkpoint(item.checkpoint, NoteVerifier.from_vkey(member.log_vkey))
        cosigned = 0
        for witness in self.witnesses:
            try:
                self.check_time(f"{witness.name}'s cosignature", verify_cosignature(item.note, witness) * 1000)
            except CheckpointError:
                continue  # this witness did not cosign; a bad line by it raises BadSignatureError
            cosigned += 1
        if cosigned < self.require_k:
            raise CheckpointError(f"the checkpoint of {member.id}'s log has {cosigned} of the {self.require_k} witness cosignatures required")
        seen = self.roots.setdefault((member.id, checkpoint.size), checkpoint.root)
        if seen != checkpoint.root:
            raise CheckpointError(f"two checkpoints of {member.id}'s log of size {checkpoint.size} with different roots: the log forked")
        if r.log_index is None:
            raise ProofError("the receipt carries no log_index")
        verify_inclusion(r.log_index, checkpoint.size, leaf_hash(item.receipt), item.inclusion, checkpoint.root)

    def check_links(self, part: _Part, routes: dict[str, tuple[str, ...]]) -> None:
        preds: dict[str, set[str]] = {}
        succs: dict[str, set[str]] = {}
        for hops in routes.values():
            for a, b in itertools.pairwise(hops):
                succs.setdefault(a, set()).add(b)
                preds.setdefault(b, set()).add(a)
        on_route = set(preds) | set(succs)
        for digest, r in part.good():
            if r.event == "accepted" and r.hop in part.accepted:
                part.problems[digest] = self.fail(BrokenChainError.code, f"{_describe(r)}: a second, different 'accepted' receipt from {r.hop}")
            elif r.event == "accepted":
                part.accepted[r.hop] = digest
        known = {i.digest: i.signed.receipt for i in part.evidence.items}
        good = dict(part.good())
        for digest, r in list(good.items()):
            problem = (
                f"{r.hop} is not on the route of any recipient of this message"
                if r.hop not in on_route
                else _link_problem(part, r, preds=preds, succs=succs, good=good, known=known)
            )
            if problem is not None:
                part.problems[digest] = self.fail(BrokenChainError.code, f"{_describe(r)}: {problem}")

    def lanes(self, part: _Part, routes: dict[str, tuple[str, ...]]) -> tuple[list[RecipientReport], list[EventView]]:
        items = part.evidence.items
        placed: set[bytes] = set()
        lanes = []
        for recipient, hops in routes.items():
            failures: dict[str, Finding] = {}
            outcome, detail = (_partial_lane if part.partial else _strict_lane)(self, part, hops, failures)
            rows = []
            for i, hop in enumerate(hops):
                mine = [item for item in items if _in_row(item.signed.receipt, hops, i)]
                placed.update(item.digest for item in mine)
                views = tuple(sorted((_view(item, part.problems.get(item.digest)) for item in mine), key=lambda e: (e.time, e.event)))
                problem = next((e.problem for e in views if e.problem is not None), failures.get(hop))
                if problem is not None:
                    rows.append(HopRow(hop=hop, events=views, status=FAIL, reason=problem.message, code=problem.code))
                else:
                    rows.append(HopRow(hop=hop, events=views, status=PASS if views else NOT_HELD if part.partial else NOT_REACHED))
            lanes.append(
                RecipientReport(
                    kind=part.kind,
                    message_id=part.evidence.message_id,
                    sender=part.sender,
                    recipient=recipient,
                    route=hops,
                    outcome=outcome,
                    rows=tuple(rows),
                    detail=detail,
                )
            )
        stray = [_view(item, part.problems.get(item.digest)) for item in items if item.digest not in placed]
        return lanes, stray


def _rejection_by(theirs: Receipt | None, peer: str, hop: str, reason: str | None) -> bool:
    return theirs is not None and theirs.hop == peer and theirs.event == "rejected" and theirs.peer == hop and theirs.reason == reason


def _link_problem(
    part: _Part, r: Receipt, *, preds: dict[str, set[str]], succs: dict[str, set[str]], good: dict[bytes, Receipt], known: dict[bytes, Receipt]
) -> str | None:
    """What is wrong with ``r``'s ``peer`` and ``prev`` under section 18.9, or None."""
    hop, peer, prev = r.hop, r.peer, r.prev

    def names_accepted(owner: str) -> str | None:
        want = part.accepted.get(owner)
        what = f"{owner}'s {'own ' if owner == hop else ''}'accepted' receipt"
        if want is None:
            return None if part.partial and prev is not None and prev not in known else f"its prev must name {what}, which is not in the bundle (a gap)"
        return None if prev == want else f"its prev does not name {what}"

    if r.event == "accepted":
        if hop == part.sender:
            return None if peer is None and prev is None else "the sender's own 'accepted' receipt must name no peer and no prev"
        if peer not in preds.get(hop, ()):
            return f"it names peer {peer}, which is not the hop before {hop} on any route"
        return names_accepted(str(peer))
    if r.event == "acknowledged":
        if hop not in part.recipients or peer != part.sender:
            return f"only a recipient acknowledges, naming the sender {part.sender} as peer"
        return names_accepted(hop)
    if peer in succs.get(hop, ()):
        if r.event in HANDOVER:
            expected = "delivered" if peer in part.recipients else "relayed"
            return names_accepted(str(peer)) if r.event == expected else f"a hand-over to {peer} is '{expected}', not '{r.event}'"
        if r.event != "rejected":  # delayed, expired
            return names_accepted(hop)
        if prev is not None and (prev == part.accepted.get(hop) or _rejection_by(good.get(prev), str(peer), hop, r.reason)):
            return None
        if part.partial and prev is not None and prev not in known:
            return None
        return f"its prev names neither {hop}'s own 'accepted' receipt nor a rejection by {peer} with reason {r.reason}"
    if r.event == "rejected" and peer in preds.get(hop, ()):
        return names_accepted(str(peer))  # a refused item names the sender's 'accepted', as the item did
    return f"it names peer {peer}, which is not next to {hop} on any route"


def _in_row(r: Receipt, hops: tuple[str, ...], i: int) -> bool:
    hop = hops[i]
    if r.hop != hop:
        return False
    if r.event == "accepted":
        return True
    if r.event == "acknowledged":
        return i == len(hops) - 1
    after = hops[i + 1] if i + 1 < len(hops) else None
    before = hops[i - 1] if i > 0 else None
    return (r.peer is not None and r.peer == after) or (r.event == "rejected" and r.peer is not None and r.peer == before)


def _view(item: EvidenceItem, problem: Finding | None) -> EventView:
    r = item.signed.receipt
    return EventView(
        hop=r.hop,
        event=r.event,
        time=r.time,
        peer=r.peer,
        digest=item.digest,
        log_index=r.log_index,
        reason=r.reason,
        retry_until=r.retry_until,
        problem=problem,
    )


def _strict_lane(v: _Verifier, part: _Part, hops: tuple[str, ...], failures: dict[str, Finding]) -> tuple[str, str]:
    """Walk ``hops`` hand-over by hand-over; return (outcome, detail) and record chain failures by hop."""
    mid = part.evidence.message_id.hex()
    recipient = hops[-1]
    good = [r for _d, r in part.good()]

    def fail(hop: str, text: str) -> None:
        failures.setdefault(hop, v.fail(BrokenChainError.code, f"message {mid} to {recipient}: {text}"))

    if hops[0] not in part.accepted:
        fail(hops[0], f"no 'accepted' receipt from the sender {hops[0]}")
        return "broken", f"no 'accepted' receipt from {hops[0]}"
    for sender, receiver in itertools.pairwise(hops):
        theirs = part.accepted.get(receiver)
        out = [r for r in good if r.hop == sender and r.peer == receiver]
        if theirs is not None:
            if not any(r.event in HANDOVER and r.prev == theirs for r in out):
                ended = "".join(f" ({sender} recorded '{r.event}' instead)" for r in out if r.event in ("expired", "rejected"))[:200]
                fail(sender, f"{receiver} accepted, but no 'relayed' or 'delivered' receipt from {sender} names that acceptance (a gap){ended}")
            continue
        claimed = (i.signed.receipt for i in part.evidence.items)  # failed ones too: they are findings already
        if any(r.hop == sender and r.peer == receiver and r.event in HANDOVER for r in claimed):
            return "broken", f"{sender} claims a hand-over to {receiver}, whose 'accepted' receipt is missing"
        for event, outcome in (("rejected", "rejected"), ("expired", "expired")):
            final = next((r for r in out if r.event == event), None)
            if final is not None:
                because = f" ({final.reason})" if final.reason else ""
                return outcome, f"{sender} {event} the copy for {receiver}{because}"
        delayed = next((r for r in out if r.event == "delayed"), None)
        if delayed is not None:
            fail(sender, f"incomplete: {sender} was still retrying {receiver} (delayed, retry until {delayed.retry_until}); no later receipt")
            return "delayed", f"{sender} delayed the copy for {receiver}"
        fail(sender, f"incomplete: the chain ends at {sender}'s 'accepted' receipt; nothing shows what became of the copy for {receiver}")
        return "in-transit", f"last seen at {sender}"
    acked = any(r.event == "acknowledged" and r.hop == recipient for r in good)
    return ("acknowledged", f"{recipient} acknowledged") if acked else ("delivered", f"{recipient} accepted")


def _partial_lane(v: _Verifier, part: _Part, hops: tuple[str, ...], failures: dict[str, Finding]) -> tuple[str, str]:
    """An ack lane: the origin holds its own receipts only, so only its 'accepted' is required."""
    last = hops[-1]
    if last not in part.accepted:
        failures[last] = v.fail(BrokenChainError.code, f"ack message {part.evidence.message_id.hex()} from {hops[0]}: no 'accepted' receipt from {last}")
        return "broken", f"{last} holds no 'accepted' receipt"
    return "received", f"{last} accepted the ack"


def verify_bundle(
    bundle: EvidenceBundle | bytes,
    trusted_roster: Roster,
    *,
    now: int | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    require_k: int = 0,
    limits: Limits = DEFAULT_LIMITS,
) -> EvidenceReport:
    """Verify a delivery evidence bundle offline against a trusted roster (section 22.3).

    Args:
        bundle: A parsed bundle, or its bytes.
        trusted_roster: A roster the caller already trusts (e.g. verified with
            :meth:`SignedRoster.verify_trusted`). Roster versions in the bundle
            are used only if they extend it (:meth:`SignedRoster.verify_update`).
        now: The verification time (unix ms). If given, anything dated more than
            ``limits.max_clock_skew_ms`` after it, and a bundle roster expired at
            it, is a failure. None judges historical evidence: every signature at
            its own time only.
        witnesses: Witness cosigner keys; a present but invalid cosignature by
            one of them is always a failure.
        require_k: How many of ``witnesses`` must have cosigned every checkpoint.
        limits: Parsing limits for headers and receipts.

    Returns:
        The report; it never hides a failure (``report.ok`` is False then).

    Raises:
        MalformedError: ``bundle`` bytes that do not parse (or a subclass:
            ``E_TOO_LARGE``, ``E_UNSUPPORTED_VERSION``), or ``require_k`` not
            between 0 and ``len(witnesses)``.
    """
    if isinstance(bundle, bytes):
        bundle = EvidenceBundle.from_bytes(bundle, limits=limits)
    if type(require_k) is not int or not 0 <= require_k <= len(witnesses):
        raise MalformedError("require_k must be between 0 and the number of witnesses")
    v = _Verifier(trusted_roster, now, witnesses, require_k, limits)
    v.extend_trust(bundle)
    origin = bundle.message.header.origin
    ids = {p.message_id: p for p in (bundle.message, *bundle.escalations)}
    parts = [_Part(kind=bundle.message.header.kind, evidence=bundle.message, sender=origin, recipients=bundle.message.header.recipients, partial=False)]
    parts += [_Part(kind="escalation", evidence=e, sender=origin, recipients=e.header.recipients, partial=False) for e in bundle.escalations]
    parts += [_Part(kind="ack", evidence=a, sender=a.header.origin, recipients=a.header.recipients, partial=True) for a in bundle.acks]
    lanes: list[RecipientReport] = []
    stray: list[EventView] = []
    for part in parts:
        header = part.evidence.header
        v.check_header(part)
        _check_relation(v, part, alert=bundle.message_id, origin=origin, ids=ids)
        for item in part.evidence.items:
            v.check_item(part, item)
        routes: dict[str, tuple[str, ...]] = {}
        roster = v.roster_at(header.created)
        for recipient in header.recipients:
            try:
                routes[recipient] = route(roster, part.sender, recipient)
            except HeliographError as exc:
                v.fail(exc.code, f"{part.kind} message {header.message_id.hex()} to {recipient}: {exc.message}")
        v.check_links(part, routes)
        more_lanes, more_stray = v.lanes(part, routes)
        lanes += more_lanes
        stray += more_stray
    return EvidenceReport(
        message_id=bundle.message_id,
        origin=origin,
        lanes=tuple(lanes),
        findings=tuple(v.findings),
        stray=tuple(stray),
        roster_versions=tuple(r.version for r in v.chain),
    )


def _check_relation(v: _Verifier, part: _Part, *, alert: bytes, origin: str, ids: dict[bytes, MessageEvidence]) -> None:
    """An escalation is an alert of the same origin referring to the alert; an ack answers one of them, to the origin."""
    header = part.evidence.header
    mid = header.message_id.hex()
    if part.kind == "escalation" and (header.origin != origin or header.kind != "alert" or header.refs != (alert,)):
        v.fail(MalformedError.code, f"escalation message {mid} is not an alert from {origin} that refers to {alert.hex()}")
    if part.kind == "ack":
        ref = header.refs[0] if len(header.refs) == 1 else None
        answered = ids.get(ref) if ref is not None else None
        if header.kind != "ack" or header.recipients != (origin,) or answered is None or header.origin not in answered.header.recipients:
            v.fail(MalformedError.code, f"ack message {mid} is not an ack to {origin} from a recipient of this alert or its escalations")
