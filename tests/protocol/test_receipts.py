"""Hop receipts: round trips, validation, chaining and tamper resistance."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from protocol.errors import BadSignatureError, HeliographError, KeyExpiredError, MalformedError, RevokedKeyError, TooLargeError, UnknownMemberError
from protocol.limits import Limits
from protocol.receipts import EVENTS, Receipt, SignedReceipt, verify_receipt
from tests.support.federation import T0, YEAR_MS, Federation, build_federation
from tests.support.tamper import MUTATIONS, tamper

MSG = b"\x01" * 16
HDR = b"\x02" * 32


def _receipt(fed: Federation, hop: str = "gw-af", **kw: object) -> Receipt:
    args: dict[str, object] = {
        "message_id": MSG,
        "header_digest": HDR,
        "hop": hop,
        "hop_key": fed.keys[hop].signing_key_id,
        "event": "accepted",
        "time": T0,
        "peer": "ke-police",
    }
    args.update(kw)
    return Receipt(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("event", EVENTS)
def test_round_trip_every_event(fed: Federation, event: str) -> None:
    extra: dict[str, object] = {}
    if event == "delayed":
        extra["retry_until"] = T0 + 60_000
    if event == "rejected":
        extra["reason"] = "E_POLICY_DENIED"
    signed = _receipt(fed, event=event, log_index=3, prev=b"\x03" * 32, **extra).sign(fed.keys["gw-af"])
    data = signed.to_bytes()
    again = SignedReceipt.from_bytes(data)
    assert again == signed and again.to_bytes() == data
    assert Receipt.from_bytes(signed.body) == signed.receipt
    assert verify_receipt(data, fed.roster) == signed.receipt


def test_the_largest_receipt_is_far_below_the_size_limit() -> None:
    """Signing does not parse its own body back (SignedReceipt._of); that is sound only because every field is bounded."""
    from protocol.fields import MEMBER_ID_MAX, U64_MAX
    from protocol.receipts import REASON_MAX

    longest = "a" * MEMBER_ID_MAX
    big = Receipt(
        message_id=MSG, header_digest=HDR, hop=longest, hop_key=b"k" * 8, event="rejected", time=U64_MAX, peer=longest,
        prev=b"p" * 32, reason="E_" + "X" * (REASON_MAX - 2), log_index=U64_MAX,
    )  # fmt: skip
    assert len(big.to_bytes()) < Limits().max_receipt_bytes // 8


def test_optional_fields_are_omitted_not_nil(fed: Federation) -> None:
    from protocol import encoding

    body = encoding.decode(_receipt(fed, peer=None).to_bytes())
    assert set(body) == {"v", "message_id", "header_digest", "hop", "hop_key", "event", "time"}


def test_receipts_chain_by_digest(fed: Federation) -> None:
    first = _receipt(fed).sign(fed.keys["gw-af"])
    second = _receipt(fed, hop="gw-eu", event="relayed", peer="int-org", prev=first.digest).sign(fed.keys["gw-eu"])
    assert second.receipt.prev == first.digest
    assert len(first.digest) == 32 and first.digest != second.digest


@pytest.mark.parametrize(
    "kw",
    [
        {"event": "delayed"},
        {"event": "accepted", "retry_until": T0 + 1},
        {"event": "delayed", "retry_until": T0 - 1},
        {"event": "rejected"},
        {"event": "accepted", "reason": "E_X"},
        {"event": "rejected", "reason": ""},
        {"event": "rejected", "reason": "x" * 65},
        {"event": "lost"},
        {"time": -1},
        {"prev": b"short"},
        {"peer": "Not Valid"},
        {"log_index": -1},
        {"message_id": b"short"},
    ],
)
def test_validation(fed: Federation, kw: dict[str, object]) -> None:
    with pytest.raises(MalformedError):
        _receipt(fed, **kw)


def test_only_the_named_hop_can_sign(fed: Federation) -> None:
    with pytest.raises(MalformedError):
        _receipt(fed).sign(fed.keys["gw-eu"])


def test_verification_failures(fed: Federation) -> None:
    signed = _receipt(fed).sign(fed.keys["gw-af"])
    forged = SignedReceipt(body=signed.body, signature=bytes(64))
    with pytest.raises(BadSignatureError):
        forged.verify(fed.roster)
    late = _receipt(fed, time=T0 + YEAR_MS).sign(fed.keys["gw-af"])
    with pytest.raises(KeyExpiredError):
        late.verify(fed.roster)
    gw = fed.roster.member("gw-af")
    revoked = replace(gw, signing_keys=(replace(gw.signing_keys[0], revoked_at=T0),))
    roster = replace(fed.roster, members=tuple(revoked if m.id == "gw-af" else m for m in fed.roster.members))
    with pytest.raises(RevokedKeyError):
        signed.verify(roster)
    assert _receipt(fed, time=T0 - 1).sign(fed.keys["gw-af"]).verify(roster).time == T0 - 1
    smaller = replace(fed.roster, members=tuple(m for m in fed.roster.members if m.id not in ("gw-af", "ke-fiu", "ke-police")))
    with pytest.raises(UnknownMemberError):
        signed.verify(smaller)


def test_size_limit(fed: Federation) -> None:
    data = _receipt(fed).sign(fed.keys["gw-af"]).to_bytes()
    with pytest.raises(TooLargeError):
        SignedReceipt.from_bytes(data, limits=Limits(max_receipt_bytes=64))


@pytest.fixture(scope="module")
def wire() -> tuple[Federation, bytes]:
    fed = build_federation()
    return fed, _receipt(fed, event="delayed", retry_until=T0 + 5, log_index=9, prev=b"\x05" * 32).sign(fed.keys["gw-af"]).to_bytes()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(MUTATIONS)
def test_any_tampering_is_refused(wire: tuple[Federation, bytes], mutation: tuple[str, int, int]) -> None:
    fed, data = wire
    with pytest.raises(HeliographError):
        verify_receipt(tamper(data, mutation), fed.roster)
