"""The chain rules of delivery evidence: routes, links between receipts and the lane verdicts.

:func:`protocol.evidence.verify_bundle` first checks every receipt on its own
(signature, time, inclusion in its hop's log); the functions here then judge
how the good receipts of one message link up along each recipient's route
(:func:`route`) and turn them into report lanes. They do no cryptography and
record every failure through the ``record`` callback the verifier passes in, so
findings stay in check order.

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

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.errors import BrokenChainError, MalformedError, UnknownMemberError
from protocol.evidence_bundle import EvidenceItem, MessageEvidence
from protocol.evidence_report import FAIL, NOT_HELD, NOT_REACHED, PASS, EventView, Finding, HopRow, RecipientReport
from protocol.receipts import Receipt
from protocol.roster import KIND_NODE, Roster

HANDOVER = ("relayed", "delivered")

Record = Callable[[str, str], Finding]
"""Records a failed check (code, sentence) in the verifier's findings and returns it."""


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


def describe(r: Receipt) -> str:
    """How a finding names a receipt: its hop, event, peer, log index and message."""
    where = f" ({'to' if r.event in (*HANDOVER, 'delayed', 'expired') else 'peer'} {r.peer})" if r.peer else ""
    index = f" at log index {r.log_index}" if r.log_index is not None else ""
    return f"{r.hop} '{r.event}'{where}{index} for message {r.message_id.hex()}"


@dataclass(slots=True)
class Part:
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


def check_links(part: Part, routes: dict[str, tuple[str, ...]], record: Record) -> None:
    """Mark every good receipt whose ``peer`` or ``prev`` breaks the chain rules as a problem of ``part``."""
    preds: dict[str, set[str]] = {}
    succs: dict[str, set[str]] = {}
    for hops in routes.values():
        for a, b in itertools.pairwise(hops):
            succs.setdefault(a, set()).add(b)
            preds.setdefault(b, set()).add(a)
    on_route = set(preds) | set(succs)
    for digest, r in part.good():
        if r.event == "accepted" and r.hop in part.accepted:
            part.problems[digest] = record(BrokenChainError.code, f"{describe(r)}: a second, different 'accepted' receipt from {r.hop}")
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
            part.problems[digest] = record(BrokenChainError.code, f"{describe(r)}: {problem}")


def build_lanes(part: Part, routes: dict[str, tuple[str, ...]], record: Record) -> tuple[list[RecipientReport], list[EventView]]:
    """One lane per recipient of ``part``, and the receipts that fit no row of any lane."""
    items = part.evidence.items
    placed: set[bytes] = set()
    lanes = []
    for recipient, hops in routes.items():
        failures: dict[str, Finding] = {}
        outcome, detail = (_partial_lane if part.partial else _strict_lane)(record, part, hops, failures)
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
    part: Part, r: Receipt, *, preds: dict[str, set[str]], succs: dict[str, set[str]], good: dict[bytes, Receipt], known: dict[bytes, Receipt]
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


def _strict_lane(record: Record, part: Part, hops: tuple[str, ...], failures: dict[str, Finding]) -> tuple[str, str]:
    """Walk ``hops`` hand-over by hand-over; return (outcome, detail) and record chain failures by hop."""
    mid = part.evidence.message_id.hex()
    recipient = hops[-1]
    good = [r for _d, r in part.good()]

    def fail(hop: str, text: str) -> None:
        failures.setdefault(hop, record(BrokenChainError.code, f"message {mid} to {recipient}: {text}"))

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


def _partial_lane(record: Record, part: Part, hops: tuple[str, ...], failures: dict[str, Finding]) -> tuple[str, str]:
    """An ack lane: the origin holds its own receipts only, so only its 'accepted' is required."""
    last = hops[-1]
    if last not in part.accepted:
        failures[last] = record(BrokenChainError.code, f"ack message {part.evidence.message_id.hex()} from {hops[0]}: no 'accepted' receipt from {last}")
        return "broken", f"{last} holds no 'accepted' receipt"
    return "received", f"{last} accepted the ack"
