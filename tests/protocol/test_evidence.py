"""Delivery evidence bundles: wire format, every chain rule, and tampering with bundles from the real stack.

Two sources of bundles:

* :class:`Logs` signs receipts with a seeded federation's keys and appends them to
  in-memory RFC 9162 logs, one per hop, so each chain rule can be exercised exactly;
* the ``live`` fixture runs real nodes and gateways on 127.0.0.1 (tests/support/agencies.py),
  sends an alert with an escalation and two acks, and exports the bundle with
  :func:`node.evidence.export_bundle` against the live log APIs. The tamper cases and
  the Hypothesis property use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings

from protocol import encoding
from protocol import envelope as env_mod
from protocol.checkpoint import Checkpoint, CosignatureVerifier, SignedNote, cosign, sign_checkpoint, sign_note
from protocol.errors import (
    BadSignatureError,
    CheckpointError,
    HeliographError,
    MalformedError,
    TooLargeError,
    UnsupportedVersionError,
)
from protocol.evidence import (
    FAIL,
    MAX_CHECKPOINT_CHARS,
    MAX_ROSTERS,
    NOT_HELD,
    NOT_REACHED,
    PASS,
    BrokenChainError,
    EventView,
    EvidenceBundle,
    EvidenceItem,
    EvidenceReport,
    Finding,
    HopRow,
    MessageEvidence,
    RecipientReport,
    route,
    verify_bundle,
)
from protocol.header import Envelope, Header
from protocol.keys import DOMAIN_ENVELOPE_HEADER, log_origin
from protocol.merkle import CompactRange, inclusion_proof
from protocol.receipts import Receipt, SignedReceipt
from protocol.roster import Roster, RosterKey, SignedRoster
from tests.support.federation import T0, Federation, SeededRng, build_federation
from tests.support.tamper import MUTATIONS, tamper

HOUR = 3_600_000
WITNESS_KEYS = [nacl.signing.SigningKey(hashlib.sha256(f"witness {i}".encode()).digest()) for i in range(2)]
WITNESSES = [CosignatureVerifier(name=f"witness.example/w{i}", public=bytes(k.verify_key)) for i, k in enumerate(WITNESS_KEYS)]


def digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


class Logs:
    """Per-hop in-memory logs: sign a receipt as a hop, append it, prove it against a signed checkpoint."""

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.leaves: dict[str, list[bytes]] = {}
        self.ranges: dict[str, CompactRange] = {}
        self.subtrees: dict[str, dict[tuple[int, int], bytes]] = {}

    def append(self, hop: str, leaf: bytes) -> int:
        rng = self.ranges.setdefault(hop, CompactRange())
        for level, index, h in rng.append(hashlib.sha256(b"\x00" + leaf).digest()):
            self.subtrees.setdefault(hop, {})[(level, index)] = h
        self.leaves.setdefault(hop, []).append(leaf)
        return len(self.leaves[hop]) - 1

    def sign(self, hop: str, event: str, env: Envelope, *, time: int = T0, log_index: bool = True, **kw: Any) -> bytes:
        index = len(self.leaves.get(hop, []))
        if event == "delayed":
            kw.setdefault("retry_until", env.header.expires)
        receipt = Receipt(
            message_id=kw.pop("message_id", env.message_id),
            header_digest=kw.pop("header_digest", env.header_digest),
            hop=hop,
            hop_key=self.fed.keys[hop].signing_key_id,
            event=event,
            time=time,
            log_index=index if log_index else None,
            **kw,
        )
        raw = receipt.sign(self.fed.keys[hop]).to_bytes()
        self.append(hop, raw)
        return raw

    def checkpoint(self, hop: str) -> str:
        rng = self.ranges[hop]
        cp = Checkpoint(origin=log_origin(hop), size=rng.size, root=rng.root())
        return sign_checkpoint(cp, log_origin(hop), self.fed.keys[hop].log_signer).to_text()

    def item(self, raw: bytes, *, note: str | None = None) -> EvidenceItem:
        r = SignedReceipt.from_bytes(raw).receipt
        size = len(self.leaves[r.hop])
        index = self.leaves[r.hop].index(raw)
        proof = inclusion_proof(index, size, lambda level, i: self.subtrees[r.hop][(level, i)])
        return EvidenceItem(receipt=raw, checkpoint=note or self.checkpoint(r.hop), inclusion=tuple(proof))

    def part(self, env: Envelope, receipts: Sequence[bytes]) -> MessageEvidence:
        return MessageEvidence(header_bytes=env.header_bytes, signature=env.signature, items=tuple(self.item(r) for r in receipts))


def seal(fed: Federation, recipients: Sequence[str], *, sender: str = "int-org", seed: str = "m", **kw: Any) -> Envelope:
    return env_mod.seal(
        sender=fed.keys[sender],
        roster=fed.roster,
        tiers=[env_mod.Tier(name="all", sections=("summary",), recipients=tuple(recipients))],
        sections={"summary": b"evidence test"},
        priority="FLASH",
        label="TLP:AMBER",
        now=T0,
        expires=T0 + HOUR,
        rng=SeededRng(seed),
        **kw,
    )


def deliver(logs: Logs, env: Envelope, *, skip: frozenset[str] = frozenset(), upto: dict[str, str] | None = None) -> dict[str, bytes]:
    """Receipts of a normal delivery, keyed ``hop:event:peer``; ``skip`` leaves keys out, ``upto`` stops a recipient at a hop."""
    roster = logs.fed.roster
    out: dict[str, bytes] = {}

    def put(key: str, hop: str, event: str, **kw: Any) -> bytes | None:
        if key in out:
            return out[key]
        if key in skip:
            return None
        out[key] = logs.sign(hop, event, env, **kw)
        return out[key]

    def prev(key: str) -> bytes:
        return digest(out[key]) if key in out else b"\x00" * 32

    acc: dict[str, str] = {}

    def accept(hop: str, peer: str | None) -> None:
        if hop not in acc:
            acc[hop] = f"{hop}:accepted:{peer or ''}"
            put(acc[hop], hop, "accepted", **({"peer": peer, "prev": prev(acc[peer])} if peer else {}))

    origin = env.header.origin
    g1 = str(roster.member(origin).home_gateway)
    accept(origin, None)
    accept(g1, origin)
    put(f"{origin}:relayed:{g1}", origin, "relayed", peer=g1, prev=prev(acc[g1]))
    for r in env.header.recipients:
        for s, d in itertools.pairwise(route(roster, origin, r)[1:]):
            if upto and upto.get(r) == s:
                break
            accept(d, s)
            kind = "delivered" if d == r else "relayed"
            put(f"{s}:{kind}:{d}", s, kind, peer=d, prev=prev(acc[d]))
    return out


@pytest.fixture(scope="module")
def fed() -> Federation:
    return build_federation("evidence")


@pytest.fixture
def logs(fed: Federation) -> Logs:
    return Logs(fed)


@pytest.fixture
def alert(fed: Federation) -> Envelope:
    return seal(fed, ["fr-police", "ke-fiu"])


def bundle_of(logs: Logs, env: Envelope, receipts: dict[str, bytes] | Sequence[bytes], **kw: Any) -> EvidenceBundle:
    raws = list(receipts.values()) if isinstance(receipts, dict) else list(receipts)
    return EvidenceBundle(message_id=env.message_id, message=logs.part(env, raws), **kw)


def verify(fed: Federation, bundle: EvidenceBundle, **kw: Any) -> EvidenceReport:
    report = verify_bundle(bundle, fed.roster, **kw)
    again = verify_bundle(bundle.to_bytes(), fed.roster, **kw)
    assert again == report, "bytes and parsed bundles verify alike"
    return report


def lane(report: EvidenceReport, recipient: str, kind: str | None = None) -> RecipientReport:
    (found,) = [x for x in report.lanes if x.recipient == recipient and (kind is None or x.kind == kind)]
    return found


def codes(report: EvidenceReport) -> list[str]:
    return [f.code for f in report.findings]


# -- the happy paths -----------------------------------------------------------------------


def test_a_normal_delivery_verifies_with_one_lane_per_recipient(fed: Federation, logs: Logs, alert: Envelope) -> None:
    bundle = bundle_of(logs, alert, deliver(logs, alert))
    report = verify(fed, bundle)
    assert report.ok and report.all_delivered and report.first_failure is None and report.stray == ()
    report.raise_for_failure()
    fr, ke = lane(report, "fr-police"), lane(report, "ke-fiu")
    assert fr.route == ("int-org", "gw-eu", "fr-police") and ke.route == ("int-org", "gw-eu", "gw-af", "ke-fiu")
    assert fr.outcome == ke.outcome == "delivered" and fr.ok
    assert [(r.hop, r.status, [e.event for e in r.events]) for r in ke.rows] == [
        ("int-org", PASS, ["accepted", "relayed"]),
        ("gw-eu", PASS, ["accepted", "relayed"]),
        ("gw-af", PASS, ["accepted", "delivered"]),
        ("ke-fiu", PASS, ["accepted"]),
    ]
    doc = report.to_json()
    assert doc["ok"] and doc["first_failure"] is None and doc["lanes"][0]["rows"][0]["events"][0]["event"] == "accepted"
    assert EvidenceBundle.from_bytes(bundle.to_bytes()) == bundle


def test_acknowledged_delayed_and_expired_outcomes(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert, upto={"ke-fiu": "gw-af"})
    ack = logs.sign("fr-police", "acknowledged", alert, peer="int-org", prev=digest(rs["fr-police:accepted:gw-eu"]))
    gw_af = digest(rs["gw-af:accepted:gw-eu"])
    delayed = logs.sign("gw-af", "delayed", alert, peer="ke-fiu", prev=gw_af)
    expired = logs.sign("gw-af", "expired", alert, peer="ke-fiu", prev=gw_af, time=T0 + HOUR)
    report = verify(fed, bundle_of(logs, alert, [*rs.values(), ack, delayed, expired]))
    assert report.ok, report.findings
    assert lane(report, "fr-police").outcome == "acknowledged" and "acknowledged" in lane(report, "fr-police").detail
    ke = lane(report, "ke-fiu")
    assert ke.outcome == "expired" and [r.status for r in ke.rows] == [PASS, PASS, PASS, NOT_REACHED]
    assert [e.event for e in ke.rows[2].events] == ["accepted", "delayed", "expired"]
    assert not report.all_delivered


def test_a_refusal_by_the_next_hop_and_a_request_level_refusal_are_final(fed: Federation, logs: Logs) -> None:
    env = seal(fed, ["fr-police", "ke-fiu"])
    rs = deliver(logs, env, upto={"fr-police": "gw-eu", "ke-fiu": "gw-eu"})
    g1 = digest(rs["gw-eu:accepted:int-org"])
    refused = logs.sign("fr-police", "rejected", env, peer="gw-eu", prev=g1, reason="E_POLICY_DENIED")
    sender_side = logs.sign("gw-eu", "rejected", env, peer="fr-police", prev=digest(refused), reason="E_POLICY_DENIED")
    poison = logs.sign("gw-eu", "rejected", env, peer="gw-af", prev=g1, reason="E_TOO_LARGE")
    report = verify(fed, bundle_of(logs, env, [*rs.values(), refused, sender_side, poison]))
    assert report.ok, report.findings
    fr = lane(report, "fr-police")
    assert fr.outcome == "rejected" and "E_POLICY_DENIED" in fr.detail
    assert [e.event for e in fr.rows[2].events] == ["rejected"] and fr.rows[2].status == PASS
    assert lane(report, "ke-fiu").outcome == "rejected" and "E_TOO_LARGE" in lane(report, "ke-fiu").detail


# -- broken and incomplete chains ------------------------------------------------------------


def test_a_chain_that_just_stops_is_incomplete(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert, upto={"ke-fiu": "gw-af"})
    delayed = logs.sign("gw-af", "delayed", alert, peer="ke-fiu", prev=digest(rs["gw-af:accepted:gw-eu"]))
    report = verify(fed, bundle_of(logs, alert, [*rs.values(), delayed]))
    ke = lane(report, "ke-fiu")
    assert ke.outcome == "delayed" and not ke.ok and codes(report) == ["E_BROKEN_CHAIN"]
    assert "still retrying ke-fiu" in report.findings[0].message and ke.rows[2].status == FAIL
    report = verify(fed, bundle_of(logs, alert, rs))
    assert lane(report, "ke-fiu").outcome == "in-transit" and "chain ends at gw-af" in report.findings[0].message
    with pytest.raises(BrokenChainError) as err:
        report.raise_for_failure()
    assert err.value.code == "E_BROKEN_CHAIN" and err.value.http_status == 422


@pytest.mark.parametrize(
    ("missing", "recipient", "words"),
    [
        ("int-org:accepted:", "fr-police", "no 'accepted' receipt from the sender int-org"),
        ("gw-af:accepted:gw-eu", "ke-fiu", "gw-af's 'accepted' receipt, which is not in the bundle"),
        ("gw-eu:relayed:gw-af", "ke-fiu", "no 'relayed' or 'delivered' receipt from gw-eu names that acceptance"),
        ("fr-police:accepted:gw-eu", "fr-police", "fr-police's 'accepted' receipt, which is not in the bundle"),
    ],
)
def test_a_removed_receipt_is_a_gap(fed: Federation, logs: Logs, alert: Envelope, missing: str, recipient: str, words: str) -> None:
    rs = deliver(logs, alert)
    del rs[missing]
    report = verify(fed, bundle_of(logs, alert, rs))
    assert not report.ok and set(codes(report)) == {"E_BROKEN_CHAIN"} and not lane(report, recipient).ok
    assert any(words in f.message for f in report.findings), report.findings


def test_a_sender_that_gave_up_on_a_hop_that_accepted_is_a_gap(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert)
    del rs["gw-eu:relayed:gw-af"]
    expired = logs.sign("gw-eu", "expired", alert, peer="gw-af", prev=digest(rs["gw-eu:accepted:int-org"]))
    report = verify(fed, bundle_of(logs, alert, [*rs.values(), expired]))
    assert codes(report) == ["E_BROKEN_CHAIN"] and "(gw-eu recorded 'expired' instead)" in report.findings[0].message


def test_a_hand_over_claimed_without_the_receivers_acceptance_is_broken(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert, skip=frozenset({"ke-fiu:accepted:gw-af"}))
    rs["gw-af:delivered:ke-fiu"] = logs.sign("gw-af", "delivered", alert, peer="ke-fiu", prev=b"\x09" * 32)
    report = verify(fed, bundle_of(logs, alert, rs))
    assert lane(report, "ke-fiu").outcome == "broken" and "ke-fiu's 'accepted' receipt, which is not in the bundle" in report.findings[0].message


def _forged(logs: Logs, env: Envelope, rs: dict[str, bytes]) -> dict[str, tuple[str | None, Callable[[], bytes]]]:
    """Forged receipts (all genuinely signed and logged), each with the key of the receipt it replaces, if any."""
    g1 = digest(rs["gw-eu:accepted:int-org"])
    return {
        "origin names a peer": ("int-org:accepted:", lambda: logs.sign("int-org", "accepted", env, peer="gw-eu")),
        "accepted from a non-neighbour": ("ke-fiu:accepted:gw-af", lambda: logs.sign("ke-fiu", "accepted", env, peer="gw-eu", prev=g1)),
        "accepted names the wrong prev": (
            "gw-af:accepted:gw-eu",
            lambda: logs.sign("gw-af", "accepted", env, peer="gw-eu", prev=digest(rs["int-org:accepted:"])),
        ),
        "delivered to a gateway": (None, lambda: logs.sign("gw-eu", "delivered", env, peer="gw-af", prev=digest(rs["gw-af:accepted:gw-eu"]))),
        "relayed to a node": (None, lambda: logs.sign("gw-eu", "relayed", env, peer="fr-police", prev=digest(rs["fr-police:accepted:gw-eu"]))),
        "delayed names another prev": (None, lambda: logs.sign("gw-eu", "delayed", env, peer="gw-af", prev=digest(rs["int-org:accepted:"]))),
        "rejection naming nothing it may": (None, lambda: logs.sign("gw-eu", "rejected", env, peer="gw-af", prev=b"\x05" * 32, reason="E_X")),
        "peer off the route": (None, lambda: logs.sign("gw-eu", "relayed", env, peer="ke-police", prev=g1)),
        "hop off the route": (None, lambda: logs.sign("ke-police", "accepted", env, peer="gw-af", prev=digest(rs["gw-af:accepted:gw-eu"]))),
        "ack by a gateway": (None, lambda: logs.sign("gw-eu", "acknowledged", env, peer="int-org", prev=g1)),
        "ack naming another peer": (None, lambda: logs.sign("ke-fiu", "acknowledged", env, peer="gw-af", prev=digest(rs["ke-fiu:accepted:gw-af"]))),
        "a second accepted": (None, lambda: logs.sign("gw-af", "accepted", env, peer="gw-eu", prev=g1, time=T0 + 1)),
        "item refusal naming another prev": (None, lambda: logs.sign("gw-af", "rejected", env, peer="gw-eu", prev=b"\x06" * 32, reason="E_X")),
    }


FORGED = [
    "origin names a peer",
    "accepted from a non-neighbour",
    "accepted names the wrong prev",
    "delivered to a gateway",
    "relayed to a node",
    "delayed names another prev",
    "rejection naming nothing it may",
    "peer off the route",
    "hop off the route",
    "ack by a gateway",
    "ack naming another peer",
    "a second accepted",
    "item refusal naming another prev",
]


@pytest.mark.parametrize("case", FORGED)
def test_every_receipt_must_fit_the_chain(fed: Federation, logs: Logs, alert: Envelope, case: str) -> None:
    rs = deliver(logs, alert)
    replaces, make = _forged(logs, alert, rs)[case]
    forged = make()
    rs[replaces or "forged"] = forged
    report = verify(fed, bundle_of(logs, alert, rs))
    assert set(codes(report)) == {"E_BROKEN_CHAIN"}, (case, report.findings)
    assert any(SignedReceipt.from_bytes(forged).receipt.hop in f.message for f in report.findings)
    views = [e for x in report.lanes for r in x.rows for e in r.events if e.digest == digest(forged)] + [e for e in report.stray if e.digest == digest(forged)]
    assert views and all(not e.ok for e in views), case
    if case in ("peer off the route", "hop off the route"):
        assert [e.digest for e in report.stray] == [digest(forged)] and report.to_json()["stray"][0]["problem"]["code"] == "E_BROKEN_CHAIN"


# -- signatures, digests, logs ----------------------------------------------------------------


def test_signatures_digests_and_proofs_each_fail_with_their_own_code(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert)
    good = bundle_of(logs, alert, rs)
    other = seal(fed, ["fr-police"], seed="other")

    def with_item(i: int, item: EvidenceItem) -> EvidenceBundle:
        items = list(good.message.items)
        items[i] = item
        return replace(good, message=replace(good.message, items=tuple(items)))

    first = good.message.items[0]
    signed = first.signed
    bad_sig = SignedReceipt(body=signed.body, signature=bytes(64)).to_bytes()
    wrong_key = sign_note(first.note.text, first.note.signatures[0].name, nacl.signing.SigningKey(b"\x07" * 32)).to_text()
    cases: dict[str, EvidenceBundle] = {
        "E_BAD_SIGNATURE": with_item(0, replace(first, receipt=bad_sig)),
        "E_BAD_CHECKPOINT": with_item(0, replace(first, checkpoint=wrong_key)),
        "E_BAD_PROOF": with_item(1, replace(good.message.items[1], inclusion=good.message.items[2].inclusion)),
        "E_DIGEST_MISMATCH": replace(
            good, message_id=other.message_id, message=replace(good.message, header_bytes=other.header_bytes, signature=other.signature)
        ),
    }
    for code, bundle in cases.items():
        report = verify(fed, bundle)
        assert report.first_failure is not None and report.first_failure.code == code, (code, report.findings)
        with pytest.raises(HeliographError) as err:
            report.raise_for_failure()
        assert err.value.code == code
    swapped_sig = replace(good, message=replace(good.message, signature=other.signature))
    report = verify(fed, swapped_sig)
    assert codes(report) == ["E_BAD_SIGNATURE"] and "header of alert message" in report.findings[0].message
    no_index = logs.sign("gw-eu", "delayed", alert, peer="gw-af", prev=digest(rs["gw-eu:accepted:int-org"]), log_index=False)
    report = verify(fed, bundle_of(logs, alert, [*rs.values(), no_index]))
    assert codes(report) == ["E_BAD_PROOF"] and "no log_index" in report.findings[0].message


def test_two_checkpoints_of_one_size_with_different_roots_are_a_fork(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert)
    bundle = bundle_of(logs, alert, rs)
    items = list(bundle.message.items)
    gw_eu = [i for i, item in enumerate(items) if item.signed.receipt.hop == "gw-eu"]
    cp = Checkpoint.from_body(items[gw_eu[0]].note.text)
    forked = sign_checkpoint(replace(cp, root=b"\x01" * 32), cp.origin, fed.keys["gw-eu"].log_signer).to_text()
    items[gw_eu[1]] = replace(items[gw_eu[1]], checkpoint=forked)
    report = verify(fed, replace(bundle, message=replace(bundle.message, items=tuple(items))))
    assert codes(report)[0] == "E_BAD_CHECKPOINT" and "forked" in report.findings[0].message


def test_witness_cosignatures(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert)
    plain = bundle_of(logs, alert, rs)

    def cosigned(keys: Sequence[int], ts: int = T0 // 1000, corrupt: bool = False) -> EvidenceBundle:
        items = []
        for item in plain.message.items:
            note = item.note
            for k in keys:
                note = cosign(note, WITNESSES[k].name, WITNESS_KEYS[k], ts)
            text = note.to_text()
            if corrupt:
                sig = note.signatures[-1]
                text = replace(note, signatures=(*note.signatures[:-1], replace(sig, signature=sig.signature[:8] + bytes(64)))).to_text()
            items.append(replace(item, checkpoint=text))
        return replace(plain, message=replace(plain.message, items=tuple(items)))

    assert verify(fed, cosigned([0, 1]), witnesses=WITNESSES, require_k=2).ok
    assert verify(fed, cosigned([1]), witnesses=WITNESSES, require_k=1).ok
    report = verify(fed, cosigned([1]), witnesses=WITNESSES, require_k=2)
    assert codes(report)[0] == "E_BAD_CHECKPOINT" and "1 of the 2 witness cosignatures" in report.findings[0].message
    assert codes(verify(fed, cosigned([0], corrupt=True), witnesses=WITNESSES, require_k=1))[0] == "E_BAD_SIGNATURE"
    late = verify(fed, cosigned([0], ts=T0 // 1000 + 3600), witnesses=WITNESSES, require_k=1, now=T0)
    assert codes(late)[0] == "E_NOT_YET_VALID"
    assert verify(fed, cosigned([0], corrupt=True)).ok, "cosignatures by keys nobody asked for are ignored"
    for k in (-1, 3, True):
        with pytest.raises(MalformedError):
            verify_bundle(plain, fed.roster, witnesses=WITNESSES, require_k=k)


def test_verification_time_refuses_the_future(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert)
    assert verify(fed, bundle_of(logs, alert, rs), now=T0).ok
    late = logs.sign("fr-police", "acknowledged", alert, peer="int-org", prev=digest(rs["fr-police:accepted:gw-eu"]), time=T0 + HOUR)
    report = verify(fed, bundle_of(logs, alert, [*rs.values(), late]), now=T0)
    assert codes(report) == ["E_NOT_YET_VALID"]
    report = verify(fed, bundle_of(logs, alert, rs), now=T0 - HOUR)
    assert codes(report)[0] == "E_NOT_YET_VALID" and "header of alert" in report.findings[0].message


# -- rosters ------------------------------------------------------------------------------------


def _next_roster(fed: Federation, roster: Roster, *, issued: int, signers: int = 2, **changes: Any) -> SignedRoster:
    new = replace(roster, version=roster.version + 1, issued=issued, **changes)
    return SignedRoster.sign(new, fed.authority_keys[:signers])


def test_later_roster_versions_extend_trust_and_revocations_apply(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert)
    gw_af = fed.roster.member("gw-af")
    revoked = replace(gw_af, signing_keys=(replace(gw_af.signing_keys[0], revoked_at=T0 - 1),))
    v2 = _next_roster(fed, fed.roster, issued=T0 + HOUR, members=tuple(revoked if m.id == "gw-af" else m for m in fed.roster.members))
    report = verify(fed, bundle_of(logs, alert, rs, rosters=(fed.signed.to_bytes(), v2.to_bytes())))
    assert report.roster_versions == (1, 2)
    assert set(codes(report)) >= {"E_REVOKED"} and "revoked at" in report.findings[0].message

    rotated = replace(gw_af, signing_keys=(*gw_af.signing_keys, RosterKey(public=b"\x11" * 32, not_before=T0, not_after=T0 + 2 * HOUR)))
    v2 = _next_roster(fed, fed.roster, issued=T0 - 10, members=tuple(rotated if m.id == "gw-af" else m for m in fed.roster.members))
    report = verify(fed, bundle_of(logs, alert, rs, rosters=(v2.to_bytes(),)))
    assert report.ok and report.roster_versions == (1, 2)

    new_key = RosterKey(public=b"\x12" * 32, not_before=T0, not_after=T0 + 2 * HOUR)
    members = tuple(replace(m, signing_keys=(new_key,)) if m.id == "gw-eu" else m for m in fed.roster.members if m.id != "ke-fiu")
    dropped = _next_roster(fed, fed.roster, issued=T0 + HOUR, members=members)
    report = verify(fed, bundle_of(logs, alert, rs, rosters=(dropped.to_bytes(),)))
    assert report.ok and report.roster_versions == (1, 2), "members and keys dropped later still prove what they signed before"

    unsigned = _next_roster(fed, fed.roster, issued=T0, signers=1)
    report = verify(fed, bundle_of(logs, alert, rs, rosters=(unsigned.to_bytes(),)))
    assert codes(report) == ["E_ROSTER"] and report.roster_versions == (1,) and report.ok is False
    expired = _next_roster(fed, fed.roster, issued=T0 - 10, expires=T0 + 1)
    assert codes(verify(fed, bundle_of(logs, alert, rs, rosters=(expired.to_bytes(),)), now=T0 + 2)) == ["E_EXPIRED"]
    fork = SignedRoster.sign(replace(fed.roster, issued=fed.roster.issued + 1), fed.authority_keys[:2])
    report = verify(fed, bundle_of(logs, alert, rs, rosters=(fork.to_bytes(),)))
    assert codes(report) == ["E_ROSTER"] and "fork of the roster" in report.findings[0].message


def test_routes_come_from_the_roster(fed: Federation) -> None:
    assert route(fed.roster, "int-org", "fr-police") == ("int-org", "gw-eu", "fr-police")
    assert route(fed.roster, "ke-fiu", "ke-police") == ("ke-fiu", "gw-af", "ke-police")
    with pytest.raises(HeliographError):
        route(fed.roster, "int-org", "gw-af")
    with pytest.raises(MalformedError):
        route(fed.roster, "int-org", "int-org")


def _signed_header(fed: Federation, **kw: Any) -> tuple[bytes, bytes]:
    args: dict[str, Any] = {
        "message_id": b"\x42" * 16,
        "origin": "int-org",
        "origin_key": fed.keys["int-org"].signing_key_id,
        "recipients": ("fr-police",),
        "priority": "FLASH",
        "label": "TLP:AMBER",
        "kind": "alert",
        "refs": (),
        "created": T0,
        "expires": T0 + HOUR,
        "body_digest": b"\x00" * 32,
    }
    args.update(kw)
    data = Header(**args).to_bytes()
    return data, fed.keys[args["origin"]].sign(DOMAIN_ENVELOPE_HEADER, data)


def test_a_recipient_without_a_route_is_reported(fed: Federation) -> None:
    data, sig = _signed_header(fed, recipients=("gw-af", "int-org"))
    bundle = EvidenceBundle(message_id=b"\x42" * 16, message=MessageEvidence(header_bytes=data, signature=sig, items=()))
    report = verify(fed, bundle)
    assert codes(report) == ["E_UNKNOWN_MEMBER", "E_MALFORMED"] and report.lanes == ()


# -- escalations and acks ---------------------------------------------------------------------


def test_escalations_and_acks_get_their_own_lanes(fed: Federation, logs: Logs, alert: Envelope) -> None:
    rs = deliver(logs, alert)
    child = seal(fed, ["ke-police"], seed="child", refs=(alert.message_id,))
    cs = deliver(logs, child)
    ack = seal(fed, ["int-org"], sender="fr-police", seed="ack", kind="ack", refs=(alert.message_id,))
    acc = logs.sign("int-org", "accepted", ack, peer="gw-eu", prev=b"\x03" * 32)
    child_ack = seal(fed, ["int-org"], sender="ke-police", seed="ack2", kind="ack", refs=(child.message_id,))
    full = deliver(logs, child_ack)
    bundle = bundle_of(
        logs, alert, rs, escalations=(logs.part(child, list(cs.values())),), acks=(logs.part(ack, [acc]), logs.part(child_ack, list(full.values())))
    )
    report = verify(fed, bundle)
    assert report.ok, report.findings
    assert lane(report, "ke-police").kind == "escalation" and lane(report, "ke-police").outcome == "delivered"
    fr_ack = next(x for x in report.lanes if x.kind == "ack" and x.sender == "fr-police")
    assert fr_ack.outcome == "received" and [r.status for r in fr_ack.rows] == [NOT_HELD, NOT_HELD, PASS]
    ke_ack = next(x for x in report.lanes if x.kind == "ack" and x.sender == "ke-police")
    assert [r.status for r in ke_ack.rows] == [PASS, PASS, PASS, PASS]

    no_accept = replace(bundle, acks=(logs.part(ack, []),))
    report = verify(fed, no_accept)
    assert codes(report) == ["E_BROKEN_CHAIN"] and next(x for x in report.lanes if x.kind == "ack").outcome == "broken"
    wrong_prev = logs.sign("int-org", "accepted", ack, peer="gw-eu", prev=digest(rs["gw-eu:accepted:int-org"]))
    gw = logs.sign("gw-eu", "accepted", ack, peer="fr-police", prev=b"\x01" * 32)
    assert codes(verify(fed, replace(bundle, acks=(logs.part(ack, [wrong_prev, gw]),)))) == ["E_BROKEN_CHAIN"]
    refused = logs.sign("gw-eu", "rejected", ack, peer="int-org", prev=b"\x08" * 32, reason="E_X")
    assert verify(fed, replace(bundle, acks=(logs.part(ack, [acc, refused]),))).ok, "a partial ack chain may name receipts the origin does not hold"


@pytest.mark.parametrize(
    ("what", "kw"),
    [
        ("escalation", {"refs": ()}),
        ("escalation", {"kind": "update", "refs": (b"\x01" * 16,)}),
        ("ack", {"kind": "alert"}),
        ("ack", {"refs": (b"\x01" * 16,)}),
        ("ack", {"origin": "ke-police"}),
    ],
)
def test_escalations_and_acks_must_belong_to_the_alert(fed: Federation, logs: Logs, alert: Envelope, what: str, kw: dict[str, Any]) -> None:
    rs = deliver(logs, alert)
    kw = dict(kw)
    sender = kw.pop("origin", "fr-police" if what == "ack" else "int-org")
    base: dict[str, Any] = {"origin": sender, "origin_key": fed.keys[sender].signing_key_id, "message_id": b"\x77" * 16}
    if what == "ack":
        base |= {"kind": "ack", "recipients": ("int-org",), "refs": (alert.message_id,)}
    else:
        base |= {"recipients": ("ke-police",), "refs": (alert.message_id,)}
    data, sig = _signed_header(fed, **(base | kw))
    part = MessageEvidence(header_bytes=data, signature=sig, items=())
    bundle = bundle_of(logs, alert, rs, **{"escalations" if what == "escalation" else "acks": (part,)})
    report = verify(fed, bundle)
    assert codes(report)[0] == "E_MALFORMED" and f"{what} message" in report.findings[0].message


# -- the wire format ------------------------------------------------------------------------


def test_wire_format_is_strict(fed: Federation, logs: Logs, alert: Envelope) -> None:
    bundle = bundle_of(logs, alert, deliver(logs, alert))
    data = bundle.to_bytes()
    doc = encoding.decode(data, max_size=1 << 24)
    assert set(doc) == {"v", "message_id", "message", "escalations", "acks", "rosters"}
    assert set(doc["message"]) == {"header", "sig", "items"} and set(doc["message"]["items"][0]) == {"receipt", "checkpoint", "inclusion"}
    with pytest.raises(MalformedError):
        EvidenceBundle.from_bytes(data + b"\x00")
    with pytest.raises(UnsupportedVersionError):
        EvidenceBundle.from_bytes(encoding.encode(doc | {"v": 2}))
    with pytest.raises(MalformedError):
        EvidenceBundle.from_bytes(encoding.encode(doc | {"extra": 1}))
    with pytest.raises(MalformedError):
        EvidenceBundle.from_bytes(encoding.encode(doc | {"message_id": b"\x00" * 16}))
    dup = doc | {"message": doc["message"] | {"items": doc["message"]["items"] * 2}}
    with pytest.raises(MalformedError, match="twice"):
        EvidenceBundle.from_bytes(encoding.encode(dup))
    with pytest.raises(MalformedError, match="twice"):
        EvidenceBundle.from_bytes(encoding.encode(doc | {"escalations": [doc["message"]]}))
    with pytest.raises(MalformedError):
        EvidenceBundle.from_bytes(encoding.encode(doc | {"rosters": [b"junk"]}))
    with pytest.raises(MalformedError):
        verify_bundle(b"\x80", fed.roster)


def test_models_validate_themselves(fed: Federation, logs: Logs, alert: Envelope) -> None:
    bundle = bundle_of(logs, alert, deliver(logs, alert))
    item = bundle.message.items[0]
    bad: list[Callable[[], object]] = [
        lambda: replace(item, receipt="x"),  # type: ignore[arg-type]
        lambda: replace(item, checkpoint=b"x"),  # type: ignore[arg-type]
        lambda: replace(item, inclusion=[b"\x00" * 32]),  # type: ignore[arg-type]
        lambda: replace(item, inclusion=(b"\x00" * 31,)),
        lambda: replace(item, inclusion=(b"\x00" * 32,) * 65),
        lambda: replace(item, checkpoint="not a note\n"),
        lambda: replace(item, checkpoint=sign_note("just text\n", "heliograph/gw-eu", nacl.signing.SigningKey(b"\x01" * 32)).to_text()),
        lambda: replace(bundle.message, items=[item]),  # type: ignore[arg-type]
        lambda: replace(bundle.message, signature=b"x"),
        lambda: replace(bundle, escalations=[bundle.message]),  # type: ignore[arg-type]
        lambda: replace(bundle, message=item),  # type: ignore[arg-type]
        lambda: replace(bundle, rosters=[b""]),  # type: ignore[arg-type]
        lambda: replace(bundle, rosters=(fed.signed.to_bytes(),) * (MAX_ROSTERS + 1)),
        lambda: replace(bundle, rosters=("x",)),  # type: ignore[arg-type]
        lambda: Finding(code="BAD", message="x"),
        lambda: HopRow(hop="gw-eu", events=(), status="MAYBE"),
        lambda: HopRow(hop="gw-eu", events=(), status=FAIL),
        lambda: RecipientReport(kind="alert", message_id=b"", sender="a", recipient="b", route=(), outcome="lost", rows=()),
    ]
    for make in bad:
        with pytest.raises(MalformedError):
            make()
    with pytest.raises(TooLargeError):
        replace(item, checkpoint="x" * (MAX_CHECKPOINT_CHARS + 1))
    with pytest.raises(TooLargeError):
        replace(bundle.message, items=(item,) * 8193)
    with pytest.raises(TooLargeError):
        replace(bundle, escalations=(bundle.message,) * 4097)
    assert item.signed.receipt.hop and bundle.parts == (bundle.message,)


def test_a_report_raises_the_error_class_of_its_first_code() -> None:
    view = EventView(hop="gw-eu", event="accepted", time=T0, peer=None, digest=b"\x00" * 32, problem=Finding(code="E_BAD_PROOF", message="no"))
    for code, cls in (("E_BAD_PROOF", "ProofError"), ("E_SOMETHING_NEW", "HeliographError"), ("E_BROKEN_CHAIN", "BrokenChainError")):
        report = EvidenceReport(message_id=b"\x00" * 16, origin="int-org", lanes=(), findings=(Finding(code=code, message="why"),), stray=(view,))
        with pytest.raises(HeliographError) as err:
            report.raise_for_failure()
        assert type(err.value).__name__ == cls and err.value.message == "why"
    assert not view.ok and EvidenceReport(message_id=b"\x00" * 16, origin="x", lanes=(), findings=()).to_json()["stray"] == []


# -- bundles from the real stack ------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    roster: Roster
    bundle: bytes
    other: tuple[bytes, bytes, bytes]
    """Another alert of int-org: (message id, header bytes, signature)."""
    stray: EvidenceItem
    """A receipt ke-police signed and logged for the alert, though it is no recipient of it."""


async def _build_live(tmp: Path) -> Live:
    from gateway.hop import sign_receipt
    from node.evidence import Prover, export_bundle
    from tests.support.agencies import alert_body, start_agencies

    a = await start_agencies(tmp)
    try:
        assert a.session is not None
        status, body = await a.call("int-org", "POST", "/v1/alerts", json=alert_body())
        assert status == 201, body
        await a.settle()
        mid = bytes.fromhex(body["message_id"])
        await a.advance(11 * 60_000)  # the escalation to ke-police fires
        status, _ = await a.call("fr-police", "POST", f"/v1/inbox/{mid.hex()}/ack", json={"disposition": "accepted"})
        assert status == 202
        (child,) = await a.nodes["int-org"].reader.children(mid)
        await a.settle()
        status, _ = await a.call("ke-police", "POST", f"/v1/inbox/{child.message_id.hex()}/ack", json={"disposition": "received"})
        assert status == 202
        status, other = await a.call("int-org", "POST", "/v1/alerts", json=alert_body())
        await a.settle()
        data = await export_bundle(a.nodes["int-org"], mid, a.session)
        stored = await a.nodes["int-org"].hop.ctx.reader.message(bytes.fromhex(other["message_id"]))
        assert stored is not None and stored[1] is not None
        envelope = stored[1]
        env = Envelope.from_bytes(envelope)
        bundle = EvidenceBundle.from_bytes(data)
        gw_af = next(i for i in bundle.message.items if i.signed.receipt.hop == "gw-af" and i.signed.receipt.event == "accepted")
        ctx = a.nodes["ke-police"].hop.ctx
        build = sign_receipt(ctx, message_id=mid, header_digest=bundle.message.header_digest, event="accepted", peer="gw-af", prev=gw_af.digest)
        _, raw = await ctx.log.submit(build)
        assert raw is not None
        stray = await Prover(a.session, a.fed.roster).item(raw)
        return Live(roster=a.fed.roster, bundle=data, other=(env.message_id, env.header_bytes, env.signature), stray=stray)
    finally:
        await a.close()


@pytest.fixture(scope="module")
def live() -> Live:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_build_live(Path(tmp)))


def test_a_bundle_exported_from_the_real_stack_verifies(live: Live) -> None:
    report = verify_bundle(live.bundle, live.roster)
    assert report.ok and report.all_delivered, report.findings
    outcomes = {(x.kind, x.recipient, x.sender): x.outcome for x in report.lanes}
    assert outcomes == {
        ("alert", "fr-police", "int-org"): "acknowledged",
        ("alert", "ke-fiu", "int-org"): "delivered",
        ("escalation", "ke-police", "int-org"): "acknowledged",
        ("ack", "int-org", "fr-police"): "received",
        ("ack", "int-org", "ke-police"): "received",
    }
    assert all(r.status == PASS for x in report.lanes if x.kind != "ack" for r in x.rows)


def _edit(live: Live, edit: Callable[[list[EvidenceItem]], None]) -> EvidenceBundle:
    bundle = EvidenceBundle.from_bytes(live.bundle)
    items = list(bundle.message.items)
    edit(items)
    return replace(bundle, message=replace(bundle.message, items=tuple(items)))


def _index(items: list[EvidenceItem], hop: str, event: str) -> int:
    return next(i for i, item in enumerate(items) if item.signed.receipt.hop == hop and item.signed.receipt.event == event)


def test_tampered_real_bundles_fail_each_with_its_own_reason(live: Live) -> None:
    def flip_signature(items: list[EvidenceItem]) -> None:
        i = _index(items, "gw-eu", "accepted")
        sig = bytearray(items[i].signed.signature)
        sig[-1] ^= 1
        items[i] = replace(items[i], receipt=SignedReceipt(body=items[i].signed.body, signature=bytes(sig)).to_bytes())

    def remove(items: list[EvidenceItem]) -> None:
        del items[_index(items, "gw-af", "accepted")]

    def add_stray(items: list[EvidenceItem]) -> None:
        items.append(live.stray)

    def wrong_proof(items: list[EvidenceItem]) -> None:
        i = _index(items, "gw-af", "delivered")
        path = items[i].inclusion
        items[i] = replace(items[i], inclusion=(bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]) if path else (b"\x00" * 32,))

    def wrong_key(items: list[EvidenceItem]) -> None:
        i = _index(items, "gw-eu", "relayed")
        note = SignedNote.from_text(items[i].checkpoint)
        items[i] = replace(items[i], checkpoint=sign_note(note.text, log_origin("gw-eu"), nacl.signing.SigningKey(b"\x02" * 32)).to_text())

    cases = {
        "E_BAD_SIGNATURE": (flip_signature, "gw-eu 'accepted'"),
        "E_BROKEN_CHAIN": (remove, "gw-af's 'accepted' receipt, which is not in the bundle"),
        "E_BAD_PROOF": (wrong_proof, "gw-af 'delivered'"),
        "E_BAD_CHECKPOINT": (wrong_key, "no signature by heliograph/gw-eu"),
    }
    for code, (edit, words) in cases.items():
        report = verify_bundle(_edit(live, edit), live.roster)
        assert report.first_failure is not None and report.first_failure.code == code, (code, report.findings)
        assert words in report.first_failure.message, report.first_failure.message
    report = verify_bundle(_edit(live, add_stray), live.roster)
    assert codes(report) == ["E_BROKEN_CHAIN"] and "ke-police is not on the route of any recipient" in report.findings[0].message
    assert [e.hop for e in report.stray] == ["ke-police"]

    mid, header, sig = live.other
    bundle = EvidenceBundle.from_bytes(live.bundle)
    swapped = replace(bundle, message_id=mid, message=replace(bundle.message, header_bytes=header, signature=sig))
    report = verify_bundle(swapped, live.roster)
    assert report.first_failure is not None and report.first_failure.code == "E_DIGEST_MISMATCH"
    assert "not this header's" in report.first_failure.message
    with pytest.raises(MalformedError, match="message_id"):
        replace(bundle, message=replace(bundle.message, header_bytes=header, signature=sig))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutation=MUTATIONS)
def test_random_damage_never_verifies_and_never_escapes_the_error_hierarchy(live: Live, mutation: tuple[str, int, int]) -> None:
    damaged = tamper(live.bundle, mutation)
    try:
        report = verify_bundle(damaged, live.roster)
    except HeliographError:
        return
    assert not report.ok
    with pytest.raises(HeliographError):
        report.raise_for_failure()


def test_bad_signature_error_is_what_a_damaged_header_signature_gives(live: Live) -> None:
    bundle = EvidenceBundle.from_bytes(live.bundle)
    sig = bytearray(bundle.message.signature)
    sig[0] ^= 0x80
    report = verify_bundle(replace(bundle, message=replace(bundle.message, signature=bytes(sig))), live.roster)
    with pytest.raises(BadSignatureError):
        report.raise_for_failure()
    assert isinstance(CheckpointError("x"), HeliographError)
