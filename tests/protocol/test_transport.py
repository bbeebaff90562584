"""Peer request authentication: round trip, each rejection's code, tampering, vectors, strict grammar."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import msgpack
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import transport
from protocol.errors import BadAuthError, HeliographError, MalformedError
from protocol.keys import DOMAIN_ENVELOPE_HEADER, MemberKeys, verify_signature
from protocol.transport import DOMAIN_REQUEST, RequestAuth, canonical_request, parse_authorization, sign_request, verify_request
from tests.support.federation import T0, YEAR_MS, SeededRng, build_federation, roster_member

FED = build_federation()
SKEW = 30_000
NONCE = bytes(range(16))
BODY = b"heliograph test body"
REQUEST: dict[str, Any] = {"method": "POST", "path": "/v1/envelopes", "query": "", "body": BODY}

_EXTRA = {name: MemberKeys.generate(name, SeededRng(f"transport-{name}")) for name in ("gw-expired", "gw-revoked", "gw-stranger")}
FED_EXTRA = build_federation(
    extra_members=(
        roster_member(_EXTRA["gw-revoked"], "gateway", None, revoked_at=T0 - 1),
        roster_member(_EXTRA["gw-expired"], "gateway", None, not_before=T0 - YEAR_MS, not_after=T0),
    )
)


def _sign(keys: MemberKeys | None = None, *, destination: str = "gw-af", now: int = T0, nonce: bytes = NONCE, **request: Any) -> str:
    args = {**REQUEST, **request}
    return sign_request(keys or FED.keys["gw-eu"], destination=destination, now=now, nonce=nonce, **args)


def _verify(header: str, *, me: str = "gw-af", now: int = T0, roster: Any = None, **request: Any) -> RequestAuth:
    args = {**REQUEST, **request}
    return verify_request(header, me=me, roster=roster or FED.roster, now=now, max_skew_ms=SKEW, **args)


def _code(header: str, **kwargs: Any) -> str:
    with pytest.raises(HeliographError) as info:
        _verify(header, **kwargs)
    return info.value.code


# -- round trip ---------------------------------------------------------------------------------


def test_round_trip_returns_the_authenticated_parameters() -> None:
    keys = FED.keys["gw-eu"]
    header = _sign(query="since=4&lane=FLASH")
    auth = _verify(header, query="since=4&lane=FLASH")
    assert auth == RequestAuth(origin="gw-eu", key_id=keys.signing_key_id, destination="gw-af", ts=T0, nonce=NONCE, signature=auth.signature)
    assert parse_authorization(header) == auth
    assert auth.to_header() == header
    assert len(header) < transport.MAX_HEADER_BYTES


@pytest.mark.parametrize("offset", [-SKEW, SKEW])
def test_the_skew_window_is_inclusive(offset: int) -> None:
    assert _verify(_sign(now=T0 + offset)).ts == T0 + offset


def test_nodes_sign_requests_to_their_gateway() -> None:
    header = sign_request(FED.keys["ke-police"], method="GET", path="/v1/destinations", query="", destination="gw-af", body=b"", now=T0, nonce=NONCE)
    assert _verify(header, method="GET", path="/v1/destinations", body=b"").origin == "ke-police"


@settings(max_examples=50, deadline=None)
@given(
    origin=st.sampled_from(["gw-eu", "a", "x" * 63, "a.b-c.d"]),
    key_id=st.binary(min_size=8, max_size=8),
    ts=st.integers(0, (1 << 64) - 1),
    nonce=st.binary(min_size=16, max_size=16),
    signature=st.binary(min_size=64, max_size=64),
)
def test_header_text_round_trips(origin: str, key_id: bytes, ts: int, nonce: bytes, signature: bytes) -> None:
    auth = RequestAuth(origin=origin, key_id=key_id, destination="gw-af", ts=ts, nonce=nonce, signature=signature)
    text = auth.to_header()
    assert parse_authorization(text) == auth
    assert len(text) <= transport.MAX_HEADER_BYTES


# -- every rejection, in order, with its code ---------------------------------------------------


def test_unparsable_header_is_bad_auth() -> None:
    with pytest.raises(BadAuthError) as info:
        _verify("")
    assert (info.value.code, info.value.http_status) == ("E_BAD_AUTH", 401)


def test_request_for_another_member_is_wrong_destination() -> None:
    with pytest.raises(HeliographError) as info:
        _verify(_sign(), me="gw-eu")
    assert (info.value.code, info.value.http_status) == ("E_WRONG_DESTINATION", 421)


@pytest.mark.parametrize("offset", [-SKEW - 1, SKEW + 1])
def test_timestamp_outside_the_window_is_clock_skew(offset: int) -> None:
    assert _code(_sign(now=T0 + offset)) == "E_CLOCK_SKEW"


def test_destination_is_checked_before_skew_and_skew_before_keys() -> None:
    stranger = _sign(_EXTRA["gw-stranger"], now=T0 + SKEW + 1)
    assert _code(stranger, me="gw-eu") == "E_WRONG_DESTINATION"
    assert _code(stranger) == "E_CLOCK_SKEW"
    assert _code(_sign(_EXTRA["gw-stranger"])) == "E_UNKNOWN_MEMBER"


def test_member_not_in_roster_is_unknown_member() -> None:
    assert _code(_sign(_EXTRA["gw-stranger"])) == "E_UNKNOWN_MEMBER"


def test_key_not_in_roster_is_unknown_key() -> None:
    impostor = MemberKeys.generate("gw-eu", SeededRng("impostor"))
    assert _code(_sign(impostor)) == "E_UNKNOWN_KEY"


def test_revoked_key_is_revoked() -> None:
    assert _code(_sign(_EXTRA["gw-revoked"]), roster=FED_EXTRA.roster) == "E_REVOKED"


def test_expired_key_is_key_expired() -> None:
    assert _code(_sign(_EXTRA["gw-expired"]), roster=FED_EXTRA.roster) == "E_KEY_EXPIRED"
    assert _verify(_sign(_EXTRA["gw-expired"], now=T0 - 1), now=T0 - 1, roster=FED_EXTRA.roster).origin == "gw-expired"


@pytest.mark.parametrize(
    "change",
    [{"method": "PUT"}, {"path": "/v1/receipts"}, {"query": "x=1"}, {"body": BODY + b"!"}],
    ids=["method", "path", "query", "body"],
)
def test_a_changed_request_is_bad_signature(change: dict[str, Any]) -> None:
    assert _code(_sign(), **change) == "E_BAD_SIGNATURE"


def test_another_members_signature_is_bad_signature() -> None:
    auth = parse_authorization(_sign(FED.keys["gw-af"], destination="gw-af"))
    forged = RequestAuth(origin="gw-eu", key_id=FED.keys["gw-eu"].signing_key_id, destination="gw-af", ts=T0, nonce=NONCE, signature=auth.signature)
    assert _code(forged.to_header()) == "E_BAD_SIGNATURE"


def test_request_signatures_are_domain_separated() -> None:
    keys = FED.keys["gw-eu"]
    data = canonical_request(origin="gw-eu", destination="gw-af", ts=T0, nonce=NONCE, **REQUEST)
    signature = parse_authorization(_sign()).signature
    verify_signature(keys.signing_public, DOMAIN_REQUEST, data, signature)
    with pytest.raises(HeliographError, match="does not verify"):
        verify_signature(keys.signing_public, DOMAIN_ENVELOPE_HEADER, data, signature)


def test_unencodable_request_text_is_malformed_not_a_crash() -> None:
    assert _code(_sign(), path="/v1/\udc80") == "E_MALFORMED"


# -- tamper property ----------------------------------------------------------------------------

GOOD = _sign(query="a=1")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_character_change_in_the_header_is_refused(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(GOOD) - 1))
    char = data.draw(st.characters().filter(lambda c: c != GOOD[index]))
    tampered = GOOD[:index] + char + GOOD[index + 1 :]
    with pytest.raises(HeliographError):
        _verify(tampered, query="a=1")


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["method", "path", "query", "body"]),
    value=st.one_of(st.text(max_size=40), st.binary(max_size=40)),
)
def test_any_change_to_the_signed_request_is_refused(field: str, value: str | bytes) -> None:
    original = {**REQUEST, "query": "a=1"}
    changed = value.encode("utf-8", "surrogatepass") if field == "body" and isinstance(value, str) else value
    if field != "body" and isinstance(changed, bytes):
        changed = changed.decode("latin-1")
    if changed == original[field]:
        return
    with pytest.raises(HeliographError):
        _verify(GOOD, **{**original, field: changed})


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, len(GOOD) - 1), extra=st.text(min_size=1, max_size=5))
def test_truncated_or_extended_headers_are_refused(cut: int, extra: str) -> None:
    for tampered in (GOOD[:cut], GOOD + extra, extra + GOOD):
        with pytest.raises(HeliographError):
            _verify(tampered, query="a=1")


# -- known-answer vectors -----------------------------------------------------------------------

VECTORS = [
    {
        "origin": "gw-eu",
        "destination": "gw-af",
        "method": "POST",
        "path": "/v1/envelopes",
        "query": "",
        "body": BODY.hex(),
        "ts": T0,
        "nonce": NONCE.hex(),
        "public_key": "c04fa9872bd5b2fff56c5bd843795807b5ea41f7c909551526f3cc3d14f1a540",
        "canonical": (
            "88ab626f64795f736861323536c420ef98999e1eb5bee1bfec64bc29e6179d14912481f1abfc1e49ce1bf4f14c86e8ab64657374696e6174696f6ea567772d6166"
            "a66d6574686f64a4504f5354a56e6f6e6365c410000102030405060708090a0b0c0d0e0fa66f726967696ea567772d6575a470617468ad2f76312f656e76656c"
            "6f706573a57175657279a0a27473cf0000019e70448800"
        ),
        "header": (
            'Heliograph origin="gw-eu",key="5632d4296043125d",destination="gw-af",ts="1780000000000",nonce="AAECAwQFBgcICQoLDA0ODw",'
            'sig="c5Ey_3tspR3bDn7qzMJ_D7ZS-PjHyGLIuzKXIuQ4-IzgVJXzbJThtLO7dBn_BSvxAAyMky8DIAIJJOtSx4hwCQ"'
        ),
    },
    {
        "origin": "ke-police",
        "destination": "gw-af",
        "method": "GET",
        "path": "/v1/destinations",
        "query": "state=delayed&limit=10",
        "body": "",
        "ts": T0 + 1,
        "nonce": "ff" * 16,
        "public_key": "23b053d6c9d0510cd5f4a963afb18e17253780463286ee634410890547d1e186",
        "canonical": (
            "88ab626f64795f736861323536c420e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855ab64657374696e6174696f6ea567772d6166"
            "a66d6574686f64a3474554a56e6f6e6365c410ffffffffffffffffffffffffffffffffa66f726967696ea96b652d706f6c696365a470617468b02f76312f6465"
            "7374696e6174696f6e73a57175657279b673746174653d64656c61796564266c696d69743d3130a27473cf0000019e70448801"
        ),
        "header": (
            'Heliograph origin="ke-police",key="6f9f0c2186f09685",destination="gw-af",ts="1780000000001",nonce="_____________________w",'
            'sig="AZS6h1xivKFYD0pZgm0H0I7n3fFLwjPjcKLcHHgKS7Zwqy_F-2mBNl82Q-eTcSSbGugjF2EY6pPXmBAZLB6fDQ"'
        ),
    },
]


def _vector_header(vector: dict[str, Any]) -> str:
    return sign_request(
        FED.keys[vector["origin"]],
        method=vector["method"],
        path=vector["path"],
        query=vector["query"],
        destination=vector["destination"],
        body=bytes.fromhex(vector["body"]),
        now=vector["ts"],
        nonce=bytes.fromhex(vector["nonce"]),
    )


VECTOR_IDS = ["post-envelopes", "get-with-query"]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_known_answer_vectors_byte_for_byte(vector: dict[str, Any]) -> None:
    keys = FED.keys[vector["origin"]]
    assert keys.signing_public.hex() == vector["public_key"]
    canonical = canonical_request(
        method=vector["method"],
        path=vector["path"],
        query=vector["query"],
        origin=vector["origin"],
        destination=vector["destination"],
        ts=vector["ts"],
        nonce=bytes.fromhex(vector["nonce"]),
        body=bytes.fromhex(vector["body"]),
    )
    assert canonical.hex() == vector["canonical"]
    assert _vector_header(vector) == vector["header"]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vectors_verify_from_the_spec_alone(vector: dict[str, Any]) -> None:
    """An outside verifier needs only PyNaCl, hashlib and plain msgpack."""
    header = vector["header"]
    scheme, _, rest = header.partition(" ")
    params = {k: v.strip('"') for k, v in (item.split("=", 1) for item in rest.split(","))}
    assert scheme == "Heliograph" and list(params) == ["origin", "key", "destination", "ts", "nonce", "sig"]
    doc = {
        "body_sha256": hashlib.sha256(bytes.fromhex(vector["body"])).digest(),
        "destination": params["destination"],
        "method": vector["method"],
        "nonce": base64.urlsafe_b64decode(params["nonce"] + "=="),
        "origin": params["origin"],
        "path": vector["path"],
        "query": vector["query"],
        "ts": int(params["ts"]),
    }
    signed = b"heliograph/request/v1\x00" + msgpack.packb(doc, use_bin_type=True)
    public = FED.roster.member(params["origin"]).signing_key(bytes.fromhex(params["key"])).public
    nacl.signing.VerifyKey(public).verify(signed, base64.urlsafe_b64decode(params["sig"] + "=="))
    auth = _verify(header, method=vector["method"], path=vector["path"], query=vector["query"], body=bytes.fromhex(vector["body"]), now=T0)
    assert auth.origin == vector["origin"]


# -- strict grammar -----------------------------------------------------------------------------

_G = _sign()
_P = parse_authorization(_G)
_NONCE = base64.urlsafe_b64encode(NONCE).rstrip(b"=").decode()
_SIG = base64.urlsafe_b64encode(_P.signature).rstrip(b"=").decode()
_KEY = _P.key_id.hex()


def _swap_last(text: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return text[:-1] + alphabet[alphabet.index(text[-1]) ^ 1]


CORPUS: list[tuple[str, object, str]] = [
    ("empty", "", "scheme"),
    ("other scheme", "Bearer abc", "scheme"),
    ("scheme only", "Heliograph", "scheme"),
    ("lower-case scheme", _G.replace("Heliograph", "heliograph"), "scheme"),
    ("X-Matrix scheme", _G.replace("Heliograph", "X-Matrix"), "scheme"),
    ("two spaces", _G.replace("Heliograph ", "Heliograph  "), "offset"),
    ("tab", _G.replace("Heliograph ", "Heliograph\t"), "scheme"),
    ("leading space", " " + _G, "scheme"),
    ("space after comma", _G.replace(",key", ", key"), "offset"),
    ("space before comma", _G.replace('",key', '" ,key'), "offset"),
    ("space around =", _G.replace("origin=", "origin ="), "offset"),
    ("trailing comma", _G + ",", "offset"),
    ("trailing space", _G + " ", "expected ','"),
    ("trailing newline", _G + "\n", "expected ','"),
    ("CRLF injection", _G + "\r\nX-Evil: 1", "expected ','"),
    ("semicolons", _G.replace(",", ";"), "offset"),
    ("unquoted value", _G.replace('origin="gw-eu"', "origin=gw-eu"), "offset"),
    ("single quotes", _G.replace('origin="gw-eu"', "origin='gw-eu'"), "offset"),
    ("upper-case name", _G.replace("origin=", "Origin="), "offset"),
    ("unknown parameter", _G.replace("origin=", "sender="), "unknown parameter"),
    ("extra parameter", _G + ',extra="1"', "unknown parameter"),
    ("duplicate parameter", _G.replace(f'key="{_KEY}"', f'origin="gw-eu",key="{_KEY}"'), "duplicate"),
    ("duplicate at end", _G + f',sig="{_SIG}"', "duplicate"),
    ("reordered", _G.replace(f'key="{_KEY}",destination="gw-af"', f'destination="gw-af",key="{_KEY}"'), "out of order"),
    ("missing parameter", _G.replace(f',nonce="{_NONCE}"', ""), "out of order"),
    ("missing last parameter", _G.replace(f',sig="{_SIG}"', ""), "missing parameter 'sig'"),
    ("over-long origin", _G.replace("gw-eu", "g" * 64), "longer than 63"),
    ("over-long key", _G.replace(_KEY, _KEY + "0"), "longer than 16"),
    ("over-long ts", _G.replace('ts="', 'ts="1' + "0" * 20), "longer than 20"),
    ("over-long nonce", _G.replace(_NONCE, _NONCE + "A"), "longer than 22"),
    ("over-long sig", _G.replace(_SIG, _SIG + "A"), "longer than 86"),
    ("empty origin", _G.replace('origin="gw-eu"', 'origin=""'), "not a valid member id"),
    ("upper-case origin", _G.replace('origin="gw-eu"', 'origin="GW-EU"'), "not a valid member id"),
    ("bad destination", _G.replace('destination="gw-af"', 'destination="gw_af"'), "not a valid member id"),
    ("upper-case hex key", _G.replace(_KEY, _KEY.upper()), "hex"),
    ("short key", _G.replace(_KEY, _KEY[:-1]), "hex"),
    ("ts leading zero", _G.replace('ts="', 'ts="0'), "leading zeros"),
    ("ts sign", _G.replace('ts="', 'ts="+'), "leading zeros"),
    ("ts negative", _G.replace(f'ts="{T0}"', 'ts="-1"'), "leading zeros"),
    ("ts empty", _G.replace(f'ts="{T0}"', 'ts=""'), "leading zeros"),
    ("ts beyond u64", _G.replace(f'ts="{T0}"', f'ts="{1 << 64}"'), "ts"),
    ("ts with underscore", _G.replace(f'ts="{T0}"', 'ts="1_780_000_000_000"'), "leading zeros"),
    ("padded nonce", _G.replace(_NONCE, _NONCE[:20] + "=="), "base64url"),
    ("short nonce", _G.replace(_NONCE, _NONCE[:21]), "base64url"),
    ("standard-alphabet sig", _G.replace(_SIG, _SIG.replace("-", "+").replace("_", "/")), "base64url"),
    ("non-canonical nonce bits", _G.replace(_NONCE, _swap_last(_NONCE)), "canonical"),
    ("non-canonical sig bits", _G.replace(_SIG, _swap_last(_SIG)), "canonical"),
    ("non-ASCII", _G.replace("gw-eu", "gw-\u00e9u"), "ASCII"),
    ("over 1024 bytes", _G + " " * (transport.MAX_HEADER_BYTES - len(_G) + 1), "1024"),
    ("bytes, not text", _G.encode(), "header value"),
]


@pytest.mark.parametrize(("value", "message"), [(v, m) for _, v, m in CORPUS], ids=[name for name, _, _ in CORPUS])
def test_strict_parser_refuses(value: str, message: str) -> None:
    with pytest.raises(BadAuthError, match=message) as info:
        parse_authorization(value)
    assert info.value.code == "E_BAD_AUTH"


def test_corpus_mutations_really_differ() -> None:
    assert all(value != _G for _, value, _ in CORPUS)
    assert parse_authorization(_G.replace(f'ts="{T0}"', f'ts="{(1 << 64) - 1}"')).ts == (1 << 64) - 1
    assert parse_authorization(_G.replace(f'ts="{T0}"', 'ts="0"')).ts == 0


# -- signing arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "post"},
        {"method": ""},
        {"method": "PO ST"},
        {"method": b"POST"},
        {"path": "v1/envelopes"},
        {"path": "/v1/envelopes?x=1"},
        {"path": "/v1/env elopes"},
        {"path": "/v1/envelopes#frag"},
        {"path": b"/v1/envelopes"},
        {"query": "a=1#frag"},
        {"query": "a=1\n"},
        {"query": None},
        {"body": "text"},
        {"destination": "GW-AF"},
        {"now": -1},
        {"nonce": b"\x00" * 15},
    ],
    ids=repr,
)
def test_sign_request_refuses_bad_arguments(bad: dict[str, Any]) -> None:
    with pytest.raises(MalformedError):
        _sign(**bad)


@pytest.mark.parametrize(
    "bad",
    [{"origin": "GW"}, {"key_id": b"\x00" * 7}, {"destination": ""}, {"ts": -1}, {"ts": True}, {"nonce": b""}, {"signature": b"\x00" * 63}],
    ids=repr,
)
def test_request_auth_validates_itself(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"origin": "gw-eu", "key_id": b"\x00" * 8, "destination": "gw-af", "ts": T0, "nonce": NONCE, "signature": b"\x00" * 64}
    with pytest.raises(MalformedError):
        RequestAuth(**{**args, **bad})
