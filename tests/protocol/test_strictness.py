"""Strict parsing: one encoding per value, version before fields, no lenient corners."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest

from protocol import encoding, fields
from protocol import envelope as env_mod
from protocol.envelope import Manifest
from protocol.errors import DecryptError, MalformedError, RosterError, UnsupportedVersionError
from protocol.header import Envelope, Header
from protocol.keys import DOMAIN_ENVELOPE_HEADER, MemberKeys, format_vkey, parse_vkey
from protocol.receipts import Receipt, SignedReceipt
from protocol.roster import RosterKey, SignedRoster
from tests.protocol.conftest import HOUR
from tests.support.federation import T0, Federation, SeededRng, roster_member


@pytest.mark.parametrize("name", ["ke-police\n", "summary\n"])
def test_names_with_a_trailing_newline_are_refused(name: str) -> None:
    with pytest.raises(MalformedError):
        fields.member_id("x", name)
    with pytest.raises(MalformedError):
        fields.short_name("x", name)


def test_nil_is_never_a_value(fed: Federation) -> None:
    r = Receipt(message_id=b"\x01" * 16, header_digest=b"\x02" * 32, hop="gw-af", hop_key=fed.keys["gw-af"].signing_key_id, event="accepted", time=T0)
    doc = encoding.decode(r.to_bytes())
    doc["peer"] = None
    with pytest.raises(MalformedError, match="nil"):
        Receipt.from_bytes(encoding.encode(doc))


def test_newer_versions_are_unsupported_not_malformed(fed: Federation) -> None:
    r = Receipt(message_id=b"\x01" * 16, header_digest=b"\x02" * 32, hop="gw-af", hop_key=fed.keys["gw-af"].signing_key_id, event="accepted", time=T0)
    doc = encoding.decode(r.to_bytes())
    doc.update(v=2, new_field=1)
    with pytest.raises(UnsupportedVersionError) as info:
        Receipt.from_bytes(encoding.encode(doc))
    assert info.value.code == "E_UNSUPPORTED_VERSION"
    with pytest.raises(MalformedError, match="missing"):
        SignedReceipt.from_bytes(encoding.encode({"receipt": b"", "sig": b""}))


@pytest.mark.parametrize("reason", ["policy denied", "e_lower", "E_", "E_X\n"])
def test_rejection_reason_must_be_an_error_code(fed: Federation, reason: str) -> None:
    with pytest.raises(MalformedError):
        Receipt(message_id=b"\x01" * 16, header_digest=b"\x02" * 32, hop="gw-af", hop_key=b"\x00" * 8, event="rejected", time=T0, reason=reason)


def test_vkey_text_must_be_canonical() -> None:
    vkey = format_vkey("heliograph/x", bytes(range(32)))
    name, hash_hex, key = vkey.split("+", 2)
    with pytest.raises(MalformedError):
        parse_vkey(f"{name}+{hash_hex.upper()}+{key}")
    assert len(base64.b64decode(key)) == 33  # 44 characters, no padding: no spare bits to vary


def test_secret_key_file_needs_canonical_base64_and_integer_version() -> None:
    keys = MemberKeys.generate("ke-police", SeededRng("b64"))
    text = keys.to_file_text()
    with pytest.raises(MalformedError):
        MemberKeys.from_file_text(text.replace('"version": 1', '"version": true'))
    with pytest.raises(MalformedError):
        MemberKeys.from_file_text(text.replace('"version": 1', '"version": 1.0'))
    # 32 bytes take 43 characters plus '=': the last character carries 2 spare bits.
    seed = base64.b64encode(keys.signing_seed).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = seed[:42] + alphabet[alphabet.index(seed[42]) ^ 1] + "="
    assert base64.b64decode(sloppy) == keys.signing_seed and sloppy != seed
    with pytest.raises(MalformedError, match="canonical"):
        MemberKeys.from_file_text(text.replace(seed, sloppy))


def test_roster_member_log_key_must_be_its_own(fed: Federation) -> None:
    node = fed.roster.member("ke-police")
    with pytest.raises(MalformedError, match="log_vkey must be named"):
        replace(node, log_vkey=fed.roster.member("ke-fiu").log_vkey)


@pytest.mark.parametrize("public", [bytes(32), b"\x01" + bytes(31)])
def test_low_order_encryption_keys_are_refused(fed: Federation, public: bytes) -> None:
    node = fed.roster.member("ke-police")
    with pytest.raises(MalformedError, match="X25519"):
        replace(node, encryption_keys=(RosterKey(public=public, not_before=0, not_after=T0 * 2),))


def test_roster_update_cannot_go_back_in_time(fed: Federation) -> None:
    older = SignedRoster.sign(replace(fed.roster, version=2, issued=fed.roster.issued - 1), fed.authority_keys)
    with pytest.raises(RosterError, match="issued before"):
        older.verify_update(fed.roster, T0)


def test_manifest_must_be_self_consistent() -> None:
    good = {
        "v": 1,
        "message_id": b"\x01" * 16,
        "origin": "int-org",
        "context": b"\x02" * 32,
        "tiers": {"inform": ["summary"]},
        "recipients": {"ke-police": "inform"},
        "sections": {"summary": {"size": 1, "digest": b"\x03" * 32, "key_commit": b"\x04" * 32}},
    }
    assert Manifest.from_bytes(encoding.encode(good)).recipients == {"ke-police": "inform"}
    for change in (
        {"tiers": {"inform": ["details"]}},
        {"tiers": {"inform": []}},
        {"tiers": {"inform": ["summary", "summary"]}},
        {"tiers": ["inform"]},
        {"recipients": {"ke-police": "action"}},
        {"recipients": {"ke-police": ["inform"]}},
        {"recipients": {"ke-police": {"a": 1}}},
        {"sections": {"summary": 1}},
    ):
        with pytest.raises(MalformedError):
            Manifest.from_bytes(encoding.encode({**good, **change}))


def _resign(fed: Federation, env: Envelope, body: dict[str, object]) -> Envelope:
    raw = encoding.encode(body)
    header: Header = replace(env.header, body_digest=hashlib.sha256(raw).digest())
    hb = header.to_bytes()
    return Envelope(header_bytes=hb, signature=fed.keys["int-org"].sign(DOMAIN_ENVELOPE_HEADER, hb), body=raw)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["sections"].append(b["sections"][0]),
        lambda b: b["sections"].reverse(),
        lambda b: b["stanzas"][0].update(recipient=["a"]),
        lambda b: b["stanzas"][0].update(key_id={"a": 1}),
        lambda b: b["stanzas"].reverse(),
        lambda b: b["manifest"].update(nonce=b"short"),
        lambda b: b.update(v=2),
        lambda b: b.update(sections={}),
    ],
)
def test_origin_signed_garbage_bodies_are_opaque_errors(fed: Federation, seal: object, mutate: object) -> None:
    env = seal()  # type: ignore[operator]
    body = encoding.decode(env.body)
    mutate(body)  # type: ignore[operator]
    evil = _resign(fed, env, body)
    env_mod.verify_header(evil, fed.roster, T0)
    with pytest.raises(DecryptError):
        env_mod.open(evil, fed.keys["ke-police"], fed.roster, T0)


def test_roster_member_helper_still_builds_valid_members(fed: Federation) -> None:
    m = roster_member(fed.keys["ke-police"], "node", "gw-af", not_after=T0 + HOUR)
    assert m.signing_keys[0].not_after == T0 + HOUR
