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

This module is the entry point. It holds the checks of each receipt on its
own: signatures and keys against the roster chain, times, and inclusion in
witnessed checkpoints. The wire model lives in :mod:`protocol.evidence_bundle`,
the report in :mod:`protocol.evidence_report`, and the chain rules (section
18.9, 21.3: how receipts link hop to hop) in :mod:`protocol.evidence_chain`.
Their public names are re-exported here, so ``from protocol.evidence import
...`` stays the one import callers need.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from protocol.checkpoint import CosignatureVerifier, NoteVerifier, open_checkpoint, verify_cosignature
from protocol.errors import (
    BrokenChainError,
    CheckpointError,
    DigestMismatchError,
    HeliographError,
    MalformedError,
    NotYetValidError,
    ProofError,
    RevokedKeyError,
    RosterError,
    UnknownKeyError,
    UnknownMemberError,
)
from protocol.evidence_bundle import (
    MAX_BUNDLE_BYTES,
    MAX_CHECKPOINT_CHARS,
    MAX_ITEMS,
    MAX_PARTS,
    MAX_PROOF,
    MAX_ROSTERS,
    VERSION,
    EvidenceBundle,
    EvidenceItem,
    MessageEvidence,
)
from protocol.evidence_chain import HANDOVER, Part, build_lanes, check_links, describe, route
from protocol.evidence_report import (
    FAIL,
    NOT_HELD,
    NOT_REACHED,
    OUTCOMES,
    PASS,
    STATUSES,
    EventView,
    EvidenceReport,
    Finding,
    HopRow,
    RecipientReport,
)
from protocol.keys import DOMAIN_ENVELOPE_HEADER, DOMAIN_RECEIPT, verify_signature
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.merkle import leaf_hash, verify_inclusion
from protocol.receipts import Receipt
from protocol.roster import Member, Roster

__all__ = [
    "FAIL",
    "HANDOVER",
    "MAX_BUNDLE_BYTES",
    "MAX_CHECKPOINT_CHARS",
    "MAX_ITEMS",
    "MAX_PARTS",
    "MAX_PROOF",
    "MAX_ROSTERS",
    "NOT_HELD",
    "NOT_REACHED",
    "OUTCOMES",
    "PASS",
    "STATUSES",
    "VERSION",
    "BrokenChainError",
    "EventView",
    "EvidenceBundle",
    "EvidenceItem",
    "EvidenceReport",
    "Finding",
    "HopRow",
    "MessageEvidence",
    "RecipientReport",
    "route",
    "verify_bundle",
]


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

    def check_header(self, part: Part) -> None:
        ev, header = part.evidence, part.evidence.header
        try:
            public = self.check_key(header.origin, header.origin_key, header.created)
            verify_signature(public, DOMAIN_ENVELOPE_HEADER, ev.header_bytes, ev.signature)
            self.check_time(f"header of message {header.message_id.hex()}", header.created)
        except HeliographError as exc:
            self.fail(exc.code, f"header of {part.kind} message {header.message_id.hex()} from {header.origin}: {exc.message}")

    def check_item(self, part: Part, item: EvidenceItem) -> None:
        r = item.signed.receipt
        try:
            public = self.check_key(r.hop, r.hop_key, r.time)
            verify_signature(public, DOMAIN_RECEIPT, item.signed.body, item.signed.signature)
            self.check_time("the receipt", r.time)
            if r.message_id != part.evidence.message_id or r.header_digest != part.evidence.header_digest:
                raise DigestMismatchError(f"it names message {r.message_id.hex()} with header digest {r.header_digest.hex()}, not this header's")
            self.check_inclusion(item, r)
        except HeliographError as exc:
            part.problems[item.digest] = self.fail(exc.code, f"{describe(r)}: {exc.message}")

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
    parts = [Part(kind=bundle.message.header.kind, evidence=bundle.message, sender=origin, recipients=bundle.message.header.recipients, partial=False)]
    parts += [Part(kind="escalation", evidence=e, sender=origin, recipients=e.header.recipients, partial=False) for e in bundle.escalations]
    parts += [Part(kind="ack", evidence=a, sender=a.header.origin, recipients=a.header.recipients, partial=True) for a in bundle.acks]
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
        check_links(part, routes, v.fail)
        more_lanes, more_stray = build_lanes(part, routes, v.fail)
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


def _check_relation(v: _Verifier, part: Part, *, alert: bytes, origin: str, ids: dict[bytes, MessageEvidence]) -> None:
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
