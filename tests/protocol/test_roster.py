"""Roster: threshold signatures, version chain, key validity windows."""

from __future__ import annotations

from dataclasses import replace

import nacl.signing
import pytest

from protocol.errors import (
    ExpiredError,
    KeyExpiredError,
    MalformedError,
    RevokedKeyError,
    RosterError,
    UnknownKeyError,
    UnknownMemberError,
)
from protocol.roster import Authority, Member, Roster, RosterKey, SignedRoster
from tests.support.federation import T0, YEAR_MS, Federation, SeededRng, build_federation


def test_round_trip(fed: Federation) -> None:
    data = fed.signed.to_bytes()
    again = SignedRoster.from_bytes(data)
    assert again == fed.signed and again.to_bytes() == data
    assert Roster.from_bytes(fed.roster.to_bytes()) == fed.roster
    assert again.verify_trusted(T0) == fed.roster
    assert {m.id for m in fed.roster.gateways()} == {"gw-af", "gw-eu"}
    assert len(fed.roster.nodes()) == 4


def test_threshold_minus_one_signature_fails(fed: Federation) -> None:
    one = SignedRoster.sign(fed.roster, fed.authority_keys[:1])
    with pytest.raises(RosterError, match="1 valid authority signatures, needs 2"):
        one.verify_trusted(T0)
    assert one.add_signatures(fed.authority_keys[2:]).verify_trusted(T0) == fed.roster


def test_signatures_by_strangers_or_repeated_do_not_count(fed: Federation) -> None:
    stranger = nacl.signing.SigningKey(b"\x07" * 32)
    signed = SignedRoster.sign(fed.roster, [fed.authority_keys[0], stranger, fed.authority_keys[0]])
    with pytest.raises(RosterError):
        signed.verify_trusted(T0)
    # A corrupted signature from a real authority does not count either.
    kid, _sig = fed.signed.signatures[0]
    bad = SignedRoster(body=fed.signed.body, signatures=((kid, bytes(64)), *fed.signed.signatures[1:]))
    with pytest.raises(RosterError):
        bad.verify_trusted(T0)


def _next_version(fed: Federation, authorities: list[nacl.signing.SigningKey], threshold: int = 2) -> Roster:
    return replace(
        fed.roster,
        version=fed.roster.version + 1,
        threshold=threshold,
        authorities=tuple(sorted((Authority(id=f"authority-n{i}", public=bytes(k.verify_key)) for i, k in enumerate(authorities)), key=lambda a: a.id)),
    )


def test_rotation_signed_by_previous_threshold_succeeds(fed: Federation) -> None:
    rng = SeededRng("new-auth")
    new_keys = [nacl.signing.SigningKey(rng(32)) for _ in range(3)]
    nxt = _next_version(fed, new_keys)
    signed = SignedRoster.sign(nxt, fed.authority_keys[:2] + new_keys[:2])
    assert signed.verify_update(fed.roster, T0).version == 2


def test_rotation_signed_only_by_new_authorities_fails(fed: Federation) -> None:
    rng = SeededRng("new-auth")
    new_keys = [nacl.signing.SigningKey(rng(32)) for _ in range(3)]
    signed = SignedRoster.sign(_next_version(fed, new_keys), new_keys)
    with pytest.raises(RosterError, match="from the v1 authorities"):
        signed.verify_update(fed.roster, T0)
    one_old = SignedRoster.sign(_next_version(fed, new_keys), fed.authority_keys[:1] + new_keys)
    with pytest.raises(RosterError):
        one_old.verify_update(fed.roster, T0)


def test_rotation_must_also_satisfy_its_own_threshold(fed: Federation) -> None:
    rng = SeededRng("new-auth")
    new_keys = [nacl.signing.SigningKey(rng(32)) for _ in range(3)]
    signed = SignedRoster.sign(_next_version(fed, new_keys), fed.authority_keys)
    with pytest.raises(RosterError, match="valid authority signatures"):
        signed.verify_update(fed.roster, T0)


def test_version_chain_and_federation_are_enforced(fed: Federation) -> None:
    skip = SignedRoster.sign(replace(fed.roster, version=3), fed.authority_keys)
    with pytest.raises(RosterError, match="does not follow"):
        skip.verify_update(fed.roster, T0)
    same = SignedRoster.sign(fed.roster, fed.authority_keys)
    with pytest.raises(RosterError):
        same.verify_update(fed.roster, T0)
    other = SignedRoster.sign(replace(fed.roster, version=2, federation="other-fed"), fed.authority_keys)
    with pytest.raises(RosterError, match="federation"):
        other.verify_update(fed.roster, T0)


def test_expired_roster(fed: Federation) -> None:
    with pytest.raises(ExpiredError):
        fed.signed.verify_trusted(T0 + YEAR_MS)


def test_key_validity_questions(fed: Federation) -> None:
    keys = fed.keys["ke-police"]
    member = fed.roster.member("ke-police")
    revoked = replace(member, signing_keys=(replace(member.signing_keys[0], revoked_at=T0),))
    roster = replace(fed.roster, members=tuple(revoked if m.id == "ke-police" else m for m in fed.roster.members))
    assert roster.check_signing_key("ke-police", keys.signing_key_id, T0 - 1) == keys.signing_public
    with pytest.raises(RevokedKeyError):
        roster.check_signing_key("ke-police", keys.signing_key_id, T0)
    with pytest.raises(KeyExpiredError):
        fed.roster.check_signing_key("ke-police", keys.signing_key_id, T0 + YEAR_MS)
    with pytest.raises(KeyExpiredError):
        fed.roster.check_signing_key("ke-police", keys.signing_key_id, T0 - YEAR_MS - 1)
    with pytest.raises(UnknownKeyError):
        fed.roster.check_signing_key("ke-police", b"\x00" * 8, T0)
    with pytest.raises(UnknownMemberError):
        fed.roster.check_signing_key("nobody", keys.signing_key_id, T0)
    with pytest.raises(UnknownKeyError):
        fed.roster.member("ke-police").encryption_key_at(T0 + YEAR_MS)


def test_model_validation(fed: Federation) -> None:
    node = fed.roster.member("ke-police")
    gw = fed.roster.member("gw-eu")
    key = node.signing_keys[0]
    bad_members = [
        lambda: replace(node, kind="robot"),
        lambda: replace(node, endpoint="ftp://x"),
        lambda: replace(node, home_gateway=None),
        lambda: replace(gw, home_gateway="gw-af"),
        lambda: replace(node, signing_keys=()),
        lambda: replace(node, signing_keys=(key, key)),
        lambda: replace(node, log_vkey="nonsense"),
        lambda: replace(node, display_name="x" * 201),
        lambda: RosterKey(public=key.public, not_before=10, not_after=10),
        lambda: RosterKey(public=b"short", not_before=1, not_after=10),
    ]
    for make in bad_members:
        with pytest.raises(MalformedError):
            make()
    bad_rosters = [
        {"threshold": 0},
        {"threshold": 4},
        {"version": 0},
        {"expires": fed.roster.issued},
        {"authorities": ()},
        {"authorities": (fed.roster.authorities[1], fed.roster.authorities[0])},
        {"authorities": (fed.roster.authorities[0], replace(fed.roster.authorities[0], id="zz-dup"))},
        {"members": (fed.roster.members[1], fed.roster.members[0])},
        {"members": tuple(m for m in fed.roster.members if m.id != "gw-af")},
        {"members": tuple(replace(m, kind="node", home_gateway="gw-eu") if m.id == "gw-af" else m for m in fed.roster.members)},
    ]
    for change in bad_rosters:
        with pytest.raises(MalformedError):
            replace(fed.roster, **change)  # type: ignore[arg-type]


def test_parser_refuses_bad_documents(fed: Federation) -> None:
    from protocol import encoding

    doc = encoding.decode(fed.roster.to_bytes())
    for mutate in (
        lambda d: d.update(v=2),
        lambda d: d.update(extra=1),
        lambda d: d.pop("members"),
        lambda d: d["members"][0]["signing_keys"][0].update(key_id=b"\x00" * 8),
        lambda d: d["members"][0].update(log_vkey=5),
        lambda d: d["authorities"][0].update(extra=1),
    ):
        copy = encoding.decode(fed.roster.to_bytes())
        mutate(copy)
        with pytest.raises(MalformedError):
            Roster.from_bytes(encoding.encode(copy))
    assert doc == encoding.decode(fed.roster.to_bytes())
    signed = encoding.decode(fed.signed.to_bytes())
    signed["signatures"] = [signed["signatures"][1], signed["signatures"][0]]
    with pytest.raises(MalformedError):
        SignedRoster.from_bytes(encoding.encode(signed))
    with pytest.raises(MalformedError):
        SignedRoster.from_bytes(encoding.encode({"v": 1, "roster": b"junk", "signatures": []}))


def test_large_roster_lookups_scale() -> None:
    nodes = tuple((f"node-{i:04d}", "gw-eu") for i in range(300))
    big = build_federation("big", nodes=nodes)
    assert big.roster.member("node-0299").home_gateway == "gw-eu"
    assert isinstance(big.roster.member("node-0000"), Member)
