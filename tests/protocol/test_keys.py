"""Identities and keys: key ids, vkeys, key file formats, no secrets in repr."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import BadSignatureError, MalformedError
from protocol.keys import (
    ALG_ED25519,
    ALG_X25519,
    DOMAIN_RECEIPT,
    DOMAIN_ROSTER,
    MemberKeys,
    PublicIdentity,
    format_vkey,
    key_id,
    log_origin,
    parse_vkey,
    verify_signature,
)
from tests.support.federation import SeededRng


@pytest.fixture
def keys() -> MemberKeys:
    return MemberKeys.generate("ke-police", SeededRng("keys"))


def test_key_ids_are_derived_and_algorithm_separated(keys: MemberKeys) -> None:
    assert len(keys.signing_key_id) == 8
    assert keys.signing_key_id == key_id(ALG_ED25519, keys.signing_public)
    assert key_id(ALG_ED25519, keys.signing_public) != key_id(ALG_X25519, keys.signing_public)
    with pytest.raises(MalformedError):
        key_id(3, keys.signing_public)
    with pytest.raises(MalformedError):
        key_id(ALG_ED25519, b"short")


def test_generation_is_deterministic_for_a_seed() -> None:
    assert MemberKeys.generate("a", SeededRng("s")).to_file_text() == MemberKeys.generate("a", SeededRng("s")).to_file_text()


def test_signatures_are_domain_separated(keys: MemberKeys) -> None:
    sig = keys.sign(DOMAIN_RECEIPT, b"data")
    verify_signature(keys.signing_public, DOMAIN_RECEIPT, b"data", sig)
    with pytest.raises(BadSignatureError):
        verify_signature(keys.signing_public, DOMAIN_ROSTER, b"data", sig)
    with pytest.raises(MalformedError):
        verify_signature(keys.signing_public, DOMAIN_ROSTER, b"data", sig[:10])


def test_repr_never_shows_secrets(keys: MemberKeys) -> None:
    text = repr(keys) + str(keys)
    for secret in (keys.signing_seed, keys.encryption_secret, keys.log_seed):
        assert secret.hex() not in text and base64.b64encode(secret).decode() not in text
        assert repr(secret) not in text


def test_secret_key_file_round_trip(keys: MemberKeys) -> None:
    again = MemberKeys.from_file_text(keys.to_file_text())
    assert again == keys and again.signing_public == keys.signing_public


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"format": "other", "version": 1}),
        json.dumps({"format": "heliograph-secret-key", "version": 2}),
        json.dumps({"format": "heliograph-secret-key", "version": 1, "member_id": "ke-police", "signing_seed": "!!", "encryption_secret": "", "log_seed": ""}),
        json.dumps({"format": "heliograph-secret-key", "version": 1, "member_id": "ke-police", "signing_seed": 5, "encryption_secret": "", "log_seed": ""}),
        json.dumps(
            {"format": "heliograph-secret-key", "version": 1, "member_id": "ke-police", "signing_seed": "AAAA", "encryption_secret": "", "log_seed": ""}
        ),
    ],
)
def test_bad_secret_key_files(text: str) -> None:
    with pytest.raises(MalformedError):
        MemberKeys.from_file_text(text)


def test_public_identity_round_trip(keys: MemberKeys) -> None:
    ident = keys.public
    again = PublicIdentity.from_json(ident.to_json())
    assert again == ident
    doc = json.loads(ident.to_json())
    assert doc["signing_key_id"] == keys.signing_key_id.hex()
    assert "seed" not in ident.to_json() and "secret" not in ident.to_json()
    other = MemberKeys.generate("ke-fiu", SeededRng("o")).public
    doc["log_vkey"] = other.log_vkey
    with pytest.raises(MalformedError, match="different member"):
        PublicIdentity.from_json(json.dumps(doc))


def test_vkey_round_trip_and_c2sp_shape(keys: MemberKeys) -> None:
    vkey = keys.public.log_vkey
    name, public = parse_vkey(vkey)
    assert name == log_origin("ke-police") == "heliograph/ke-police"
    assert public == bytes(keys.log_signer.verify_key)
    parts = vkey.split("+", 2)
    assert len(parts[1]) == 8 and base64.b64decode(parts[2])[0] == 0x01


def test_known_c2sp_vkey_parses() -> None:
    # The example verifier key from the Go signed-note package documentation.
    name, public = parse_vkey("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    assert name == "PeterNeumann" and len(public) == 32


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "a+b",
        "na me+00000000+AA==",
        "name+zz+AA==",
        "name+00000000+!!",
        "name+00000000+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
        "name+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),
    ],
)
def test_bad_vkeys(vkey: str) -> None:
    with pytest.raises(MalformedError):
        parse_vkey(vkey)


def test_format_vkey_refuses_bad_names() -> None:
    with pytest.raises(MalformedError):
        format_vkey("a+b", bytes(32))
    with pytest.raises(MalformedError):
        format_vkey("", bytes(32))


@given(st.binary(min_size=32, max_size=32))
def test_vkey_round_trip_property(public: bytes) -> None:
    assert parse_vkey(format_vkey("log.example/x", public)) == ("log.example/x", public)
