"""Envelopes: seal, verify_header and open, tier isolation, and tamper resistance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from protocol import encoding
from protocol import envelope as env_mod
from protocol.errors import (
    BadSignatureError,
    DecryptError,
    DigestMismatchError,
    ExpiredError,
    HeliographError,
    KeyExpiredError,
    MalformedError,
    NotRecipientError,
    NotYetValidError,
    RevokedKeyError,
    TooLargeError,
    UnknownKeyError,
    UnknownMemberError,
)
from protocol.header import Envelope, Header
from protocol.keys import DOMAIN_ENVELOPE_HEADER, MemberKeys
from protocol.limits import Limits
from protocol.roster import Roster
from protocol.sealing import aead_open
from tests.protocol.conftest import HOUR, SECTIONS, TIERS
from tests.support.federation import T0, Federation, SeededRng, build_federation, roster_member
from tests.support.tamper import MUTATIONS, tamper

Sealer = Callable[..., Envelope]


def test_round_trip_and_tiers(fed: Federation, seal: Sealer) -> None:
    env = seal()
    data = env.to_bytes()
    again = Envelope.from_bytes(data)
    assert again == env and again.to_bytes() == data
    assert Header.from_bytes(env.header_bytes) == env.header
    header = env_mod.verify_header(data, fed.roster, T0 + 10)
    assert header.recipients == ("fr-police", "ke-fiu", "ke-police")
    assert header.priority == "FLASH" and header.kind == "alert" and header.label == "TLP:AMBER"
    action = env_mod.open(data, fed.keys["ke-police"], fed.roster, T0 + 10)
    assert action.tier == "action" and dict(action.sections) == SECTIONS and action.withheld == ()
    inform = env_mod.open(env, fed.keys["fr-police"], fed.roster, T0 + 10)
    assert inform.tier == "inform"
    assert dict(inform.sections) == {"summary": SECTIONS["summary"]}
    assert inform.withheld == ("details", "instructions")
    assert action.manifest == inform.manifest and action.manifest_bytes == inform.manifest_bytes


def test_open_verified_skips_the_second_check_and_insists_on_the_envelope_s_own_header(fed: Federation, seal: Sealer) -> None:
    env, other = seal(), seal(rng=SeededRng("another message"))
    header = env_mod.verify_header(env, fed.roster, T0 + 10)
    opened = env_mod.open_verified(env, header, fed.keys["fr-police"], fed.roster)
    assert opened == env_mod.open(env, fed.keys["fr-police"], fed.roster, T0 + 10)
    with pytest.raises(MalformedError):
        env_mod.open_verified(env, other.header, fed.keys["fr-police"], fed.roster)
    with pytest.raises(NotRecipientError):
        env_mod.open_verified(env, header, fed.keys["int-org"], fed.roster)


def test_seal_is_deterministic_for_a_seeded_rng(seal: Sealer) -> None:
    assert seal().to_bytes() == seal().to_bytes()
    assert seal().to_bytes() != seal(rng=SeededRng("other")).to_bytes()


def test_inform_recipient_cannot_open_details(fed: Federation, seal: Sealer) -> None:
    env = seal()
    opened = env_mod.open(env, fed.keys["ke-fiu"], fed.roster, T0 + 1)
    assert "details" not in opened.sections
    # The details ciphertext does not open under any key the inform stanza carries.
    body = encoding.decode(env.body)
    details = next(s for s in body["sections"] if s["id"] == "details")
    from protocol.sealing import open_box

    keys = fed.keys["ke-fiu"]
    stanza_box = next(s["box"] for s in body["stanzas"] if s["recipient"] == "ke-fiu")
    stanza = encoding.decode(open_box(keys.encryption_public, keys.encryption_secret, stanza_box))
    assert set(stanza["keys"]) == {"summary"}
    for key in [*stanza["keys"].values(), stanza["manifest_key"]]:
        with pytest.raises(DecryptError):
            aead_open(key, details["nonce"], details["ct"], b"heliograph/section/v1\x00" + env.header.context_digest + b"details")


def test_non_recipient_opens_nothing(fed: Federation, seal: Sealer) -> None:
    env = seal()
    for outsider in ("int-org", "gw-eu"):
        with pytest.raises(NotRecipientError) as info:
            env_mod.open(env, fed.keys[outsider], fed.roster, T0 + 1)
        assert info.value.code == "E_NOT_RECIPIENT"


def test_wrong_secret_key_is_an_opaque_decrypt_error(fed: Federation, seal: Sealer) -> None:
    impostor = MemberKeys.generate("ke-police", SeededRng("impostor"))
    with pytest.raises(DecryptError) as info:
        env_mod.open(seal(), impostor, fed.roster, T0 + 1)
    assert info.value.code == "E_DECRYPT" and info.value.message == "message could not be decrypted"


def _roster_with_origin_key(fed: Federation, **window: int | None) -> Roster:
    members = tuple(roster_member(fed.keys["int-org"], "node", "gw-eu", **window) if m.id == "int-org" else m for m in fed.roster.members)  # type: ignore[arg-type]
    return replace(fed.roster, members=members)


def test_revoked_origin_key_has_its_own_code(fed: Federation, seal: Sealer) -> None:
    roster = _roster_with_origin_key(fed, revoked_at=T0 + 5)
    env = seal()
    env_mod.verify_header(env, roster, T0 + 4)
    with pytest.raises(RevokedKeyError) as info:
        env_mod.verify_header(env, roster, T0 + 5)
    assert info.value.code == "E_REVOKED"
    with pytest.raises(RevokedKeyError):
        env_mod.open(env, fed.keys["ke-police"], roster, T0 + 6)


def test_expired_origin_key_has_its_own_code(fed: Federation, seal: Sealer) -> None:
    roster = _roster_with_origin_key(fed, not_before=T0 - HOUR, not_after=T0 + 10)
    with pytest.raises(KeyExpiredError) as info:
        env_mod.verify_header(seal(), roster, T0 + 10)
    assert info.value.code == "E_KEY_EXPIRED"
    roster = _roster_with_origin_key(fed, not_before=T0 + 1, not_after=T0 + HOUR)
    with pytest.raises(KeyExpiredError):
        env_mod.verify_header(seal(), roster, T0 + 2)  # backdated before the key existed


def test_unknown_origin_key_and_member(fed: Federation, seal: Sealer) -> None:
    stranger = MemberKeys.generate("int-org", SeededRng("stranger"))
    with pytest.raises(UnknownKeyError):
        env_mod.verify_header(seal(sender=stranger), fed.roster, T0)
    outsider = MemberKeys.generate("xx-unknown", SeededRng("outsider"))
    with pytest.raises(UnknownMemberError):
        env_mod.verify_header(seal(sender=outsider), fed.roster, T0)


def test_expired_and_future_messages(fed: Federation, seal: Sealer) -> None:
    env = seal()
    with pytest.raises(ExpiredError) as info:
        env_mod.verify_header(env, fed.roster, T0 + HOUR)
    assert info.value.code == "E_EXPIRED"
    env_mod.verify_header(env, fed.roster, T0 + HOUR - 1)
    future = seal(now=T0 + 10 * 60 * 1000, expires=T0 + 2 * HOUR)
    with pytest.raises(NotYetValidError):
        env_mod.verify_header(future, fed.roster, T0)
    env_mod.verify_header(future, fed.roster, T0 + 5 * 60 * 1000)


def test_bad_signature_and_body_swap(fed: Federation, seal: Sealer) -> None:
    env = seal()
    other = seal(rng=SeededRng("other"))
    forged = Envelope(header_bytes=env.header_bytes, signature=other.signature, body=env.body)
    with pytest.raises(BadSignatureError):
        env_mod.verify_header(forged, fed.roster, T0)
    swapped = Envelope(header_bytes=env.header_bytes, signature=env.signature, body=other.body)
    with pytest.raises(DigestMismatchError):
        env_mod.verify_header(swapped, fed.roster, T0)


def test_resigned_header_with_gateway_recipient_is_refused(fed: Federation, seal: Sealer) -> None:
    env = seal()
    header = replace(env.header, recipients=("gw-eu", "ke-police"))
    hb = header.to_bytes()
    resigned = Envelope(header_bytes=hb, signature=fed.keys["int-org"].sign(DOMAIN_ENVELOPE_HEADER, hb), body=env.body)
    with pytest.raises(UnknownMemberError):
        env_mod.verify_header(resigned, fed.roster, T0)


def test_recipient_cannot_reseal_for_someone_else(fed: Federation, seal: Sealer) -> None:
    """ke-police re-signs the header naming ke-fiu as well: the origin's key is not theirs."""
    env = seal(tiers=(TIERS[0],))
    header = replace(env.header, recipients=("ke-fiu", "ke-police"))
    hb = header.to_bytes()
    resealed = Envelope(header_bytes=hb, signature=fed.keys["ke-police"].sign(DOMAIN_ENVELOPE_HEADER, hb), body=env.body)
    with pytest.raises(BadSignatureError):
        env_mod.open(resealed, fed.keys["ke-fiu"], fed.roster, T0)


def test_origin_equivocation_in_the_body_is_caught(fed: Federation, seal: Sealer) -> None:
    """An origin that signs a body whose stanza list disagrees with the header is refused."""
    env = seal()
    body = encoding.decode(env.body)
    body["stanzas"] = [s for s in body["stanzas"] if s["recipient"] != "ke-fiu"]
    new_body = encoding.encode(body)
    import hashlib

    header = replace(env.header, body_digest=hashlib.sha256(new_body).digest())
    hb = header.to_bytes()
    evil = Envelope(header_bytes=hb, signature=fed.keys["int-org"].sign(DOMAIN_ENVELOPE_HEADER, hb), body=new_body)
    with pytest.raises(DecryptError):
        env_mod.open(evil, fed.keys["ke-police"], fed.roster, T0)


def test_size_limits(fed: Federation, seal: Sealer) -> None:
    small = Limits(max_envelope_bytes=1024)
    with pytest.raises(TooLargeError):
        seal(limits=small)
    data = seal().to_bytes()
    with pytest.raises(TooLargeError) as info:
        env_mod.verify_header(data, fed.roster, T0, limits=small)
    assert info.value.code == "E_TOO_LARGE" and info.value.http_status == 413
    with pytest.raises(TooLargeError):
        env_mod.verify_header(Envelope.from_bytes(data), fed.roster, T0, limits=small)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sections": {}}, "sections"),
        ({"tiers": ()}, "tiers"),
        ({"sections": {"Bad Name": b"x"}}, "valid name"),
        ({"sections": {"summary": "text"}}, "expected bytes"),
        ({"tiers": (env_mod.Tier(name="a", sections=("nope",), recipients=("ke-police",)),)}, "unknown section"),
        ({"tiers": (TIERS[0], env_mod.Tier(name="b", sections=("summary",), recipients=("ke-police",)))}, "more than one tier"),
        ({"tiers": (TIERS[0], env_mod.Tier(name="action", sections=("summary",), recipients=("ke-fiu",)))}, "unique"),
        ({"priority": "URGENT"}, "priority"),
        ({"label": "SECRET"}, "label"),
        ({"kind": "spam"}, "kind"),
        ({"expires": T0}, "later than created"),
        ({"refs": [b"short"]}, "refs"),
        ({"refs": [b"\x01" * 16, b"\x01" * 16]}, "sorted"),
    ],
)
def test_seal_validates_its_input(seal: Sealer, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        seal(**overrides)


def test_seal_refuses_gateway_and_unknown_recipients(seal: Sealer) -> None:
    only_summary = {"summary": SECTIONS["summary"]}
    with pytest.raises(UnknownMemberError):
        seal(sections=only_summary, tiers=(env_mod.Tier(name="a", sections=("summary",), recipients=("gw-eu",)),))
    with pytest.raises(UnknownMemberError):
        seal(sections=only_summary, tiers=(env_mod.Tier(name="a", sections=("summary",), recipients=("zz-nobody",)),))


def test_seal_refuses_sections_no_tier_can_read(seal: Sealer) -> None:
    with pytest.raises(MalformedError, match="visible to no tier"):
        seal(tiers=(env_mod.Tier(name="a", sections=("summary",), recipients=("ke-police",)),))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "Bad", "sections": ("a",), "recipients": ("ke-police",)},
        {"name": "a", "sections": (), "recipients": ("ke-police",)},
        {"name": "a", "sections": ("a", "a"), "recipients": ("ke-police",)},
        {"name": "a", "sections": ("a",), "recipients": ("KE",)},
    ],
)
def test_tier_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(MalformedError):
        env_mod.Tier(**kwargs)  # type: ignore[arg-type]


def test_update_and_cancel_carry_refs(fed: Federation, seal: Sealer) -> None:
    first = seal()
    update = seal(kind="update", refs=[first.message_id], rng=SeededRng("update"))
    assert env_mod.verify_header(update, fed.roster, T0).refs == (first.message_id,)
    with pytest.raises(MalformedError, match="itself"):
        replace(update.header, refs=(update.message_id,))


def _seal_with(fed: Federation, roster: Roster, tiers: tuple[env_mod.Tier, ...], seed: str) -> Envelope:
    return env_mod.seal(
        sender=fed.keys["int-org"],
        roster=roster,
        tiers=tiers,
        sections=SECTIONS,
        priority="FLASH",
        label="TLP:AMBER",
        now=T0,
        expires=T0 + HOUR,
        rng=SeededRng(seed),
    )


def test_recipient_key_rotation_seals_to_the_newest_valid_key(fed: Federation) -> None:
    old = fed.keys["ke-police"]
    new = MemberKeys.generate("ke-police", SeededRng("rotated"))
    from protocol.roster import RosterKey

    member = fed.roster.member("ke-police")
    rotated = replace(member, encryption_keys=(*member.encryption_keys, RosterKey(public=new.encryption_public, not_before=T0 - 10, not_after=T0 + HOUR)))
    fed2 = build_federation()
    roster = replace(fed2.roster, members=tuple(rotated if m.id == "ke-police" else m for m in fed2.roster.members))
    env = _seal_with(fed, roster, (TIERS[0],), "rot")
    newer = MemberKeys(member_id="ke-police", signing_seed=old.signing_seed, encryption_secret=new.encryption_secret, log_seed=old.log_seed)
    assert env_mod.open(env, newer, roster, T0).sections["details"] == SECTIONS["details"]
    with pytest.raises(DecryptError):
        env_mod.open(env, old, roster, T0)


@pytest.fixture(scope="module")
def sample() -> tuple[Federation, bytes]:
    fed = build_federation()
    return fed, _seal_with(fed, fed.roster, TIERS, "tamper").to_bytes()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(MUTATIONS)
def test_any_tampering_is_refused_with_a_protocol_error(sample: tuple[Federation, bytes], mutation: tuple[str, int, int]) -> None:
    fed, data = sample
    tampered = tamper(data, mutation)
    for opener in ("ke-police", "fr-police"):
        with pytest.raises(HeliographError):
            env_mod.open(tampered, fed.keys[opener], fed.roster, T0 + 1)
    with pytest.raises(HeliographError):
        env_mod.verify_header(tampered, fed.roster, T0 + 1)
