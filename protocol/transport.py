"""Peer request authentication: the ``Authorization: Heliograph ...`` header.

Every HTTP request between federation members is signed by the sender's
Ed25519 signing key, in the spirit of Matrix's ``X-Matrix`` header but also
covering a timestamp, a random nonce and the SHA-256 of the body, so a captured
request can be neither altered nor replayed outside its window::

    Authorization: Heliograph origin="gw-eu",key="<16 hex>",destination="gw-af",ts="<unix ms>",nonce="<22 b64url>",sig="<86 b64url>"

The grammar is exact: the case-sensitive scheme ``Heliograph``, one space, then
the six parameters in exactly that order as ``name="value"`` separated by bare
commas. ``key`` is the lower-case hex key id, ``ts`` a decimal integer without
leading zeros, ``nonce`` (16 bytes) and ``sig`` (64 bytes) canonical unpadded
base64url. Anything else, including spaces, duplicate, unknown or reordered
parameters, over-long values and headers over :data:`MAX_HEADER_BYTES`, is
refused with :class:`~protocol.errors.BadAuthError`; only Heliograph members
produce this header, so there is no reason to be lenient.

The signature is over ``DOMAIN_REQUEST || 0x00 || encode(map)`` where ``map`` is
the canonical msgpack map built by :func:`canonical_request`. ``path`` and
``query`` are the raw strings as sent on the wire, before any percent-decoding
(with aiohttp: ``request.rel_url.raw_path`` and ``request.rel_url.raw_query_string``).

:func:`verify_request` is pure and checks everything but replay: remembering
nonces is state, kept by ``gateway.policy.NonceCache``, which a server consults
only after this function has accepted the request.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from protocol import encoding, fields
from protocol.errors import BadAuthError, ClockSkewError, MalformedError, WrongDestinationError
from protocol.keys import KEY_ID_SIZE, MemberKeys, verify_signature
from protocol.roster import Roster

DOMAIN_REQUEST = b"heliograph/request/v1"
"""Signature domain of peer requests (see :func:`protocol.keys.signed_message`)."""

SCHEME = "Heliograph"
MAX_HEADER_BYTES = 1024
NONCE_SIZE = 16
SIGNATURE_SIZE = 64
PARAMS = ("origin", "key", "destination", "ts", "nonce", "sig")
"""Header parameters, in the only order allowed."""

_MAX_VALUE = {"origin": fields.MEMBER_ID_MAX, "key": 2 * KEY_ID_SIZE, "destination": fields.MEMBER_ID_MAX, "ts": 20, "nonce": 22, "sig": 86}
_PARAM_RE = re.compile(r'([a-z]+)="([^"]*)"')
_KEY_RE = re.compile(r"[0-9a-f]{16}")
_TS_RE = re.compile(r"0|[1-9][0-9]*")
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_METHOD_RE = re.compile(r"[A-Z]{1,32}")
_FORBIDDEN_IN_TARGET = re.compile(r"[\x00-\x20\x7f#]")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(where: str, text: str, size: int) -> bytes:
    """Decode canonical unpadded base64url of exactly ``size`` bytes.

    Raises:
        BadAuthError: Wrong alphabet, length or non-zero padding bits.
    """
    if len(text) != (4 * size + 2) // 3 or not _B64URL_RE.fullmatch(text):
        raise BadAuthError(f"Authorization {where}: expected {size} bytes as base64url without padding")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url(raw) != text:
        raise BadAuthError(f"Authorization {where}: not canonical base64url (non-zero trailing bits)")
    return raw


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAuth:
    """The parsed parameters of one ``Authorization: Heliograph`` header."""

    origin: str
    key_id: bytes
    destination: str
    ts: int
    nonce: bytes
    signature: bytes

    def __post_init__(self) -> None:
        fields.member_id("origin", self.origin)
        fields.fixed_bytes("key", self.key_id, KEY_ID_SIZE)
        fields.member_id("destination", self.destination)
        fields.timestamp("ts", self.ts)
        fields.fixed_bytes("nonce", self.nonce, NONCE_SIZE)
        fields.fixed_bytes("sig", self.signature, SIGNATURE_SIZE)

    def to_header(self) -> str:
        """Return the header value (without the ``Authorization:`` name)."""
        return (
            f'{SCHEME} origin="{self.origin}",key="{self.key_id.hex()}",destination="{self.destination}",'
            f'ts="{self.ts}",nonce="{_b64url(self.nonce)}",sig="{_b64url(self.signature)}"'
        )


def canonical_request(*, method: str, path: str, query: str, origin: str, destination: str, ts: int, nonce: bytes, body: bytes) -> bytes:
    """Return the canonical msgpack bytes a request signature covers (without the domain).

    The map holds ``method``, ``path``, ``query`` (raw, possibly empty),
    ``origin``, ``destination``, ``ts``, ``nonce`` and ``body_sha256``.

    Raises:
        MalformedError: A value cannot be encoded (e.g. text with lone surrogates).
    """
    return encoding.encode(
        {
            "method": method,
            "path": path,
            "query": query,
            "origin": origin,
            "destination": destination,
            "ts": ts,
            "nonce": nonce,
            "body_sha256": hashlib.sha256(body).digest(),
        }
    )


def sign_request(keys: MemberKeys, *, method: str, path: str, query: str, destination: str, body: bytes, now: int, nonce: bytes) -> str:
    """Sign a request from ``keys.member_id`` to ``destination``.

    Args:
        keys: The sender's keys; its current signing key signs.
        method: The HTTP method, upper case (``POST``).
        path: The raw request path as it will be sent, starting with ``/``.
        query: The raw query string without ``?``, or ``""``.
        destination: The member id of the receiving member.
        body: The exact body bytes that will be sent.
        now: The signing time, unix milliseconds.
        nonce: 16 fresh random bytes (the caller's rng).

    Returns:
        The ``Authorization`` header value.

    Raises:
        MalformedError: Any argument is not of the required form.
    """
    if type(method) is not str or not _METHOD_RE.fullmatch(method):
        raise MalformedError("method: expected an upper-case HTTP method")
    if type(path) is not str or not path.startswith("/") or "?" in path or _FORBIDDEN_IN_TARGET.search(path):
        raise MalformedError("path: expected a raw path starting with '/' without query, fragment, spaces or controls")
    if type(query) is not str or _FORBIDDEN_IN_TARGET.search(query):
        raise MalformedError("query: expected a raw query string without fragment, spaces or controls")
    fields.typed("body", body, bytes)
    fields.member_id("destination", destination)
    fields.timestamp("now", now)
    fields.fixed_bytes("nonce", nonce, NONCE_SIZE)
    data = canonical_request(method=method, path=path, query=query, origin=keys.member_id, destination=destination, ts=now, nonce=nonce, body=body)
    signature = keys.sign(DOMAIN_REQUEST, data)
    return RequestAuth(origin=keys.member_id, key_id=keys.signing_key_id, destination=destination, ts=now, nonce=nonce, signature=signature).to_header()


def _split_params(value: str) -> dict[str, str]:
    """Split the parameter list, enforcing names, order and lengths.

    Raises:
        BadAuthError: Anything but exactly :data:`PARAMS` in order.
    """
    prefix = SCHEME + " "
    if not value.startswith(prefix):
        raise BadAuthError(f"Authorization: expected the scheme {SCHEME!r} followed by one space")
    params: dict[str, str] = {}
    pos = len(prefix)
    while True:
        match = _PARAM_RE.match(value, pos)
        if match is None:
            raise BadAuthError(f'Authorization: expected name="value" at offset {pos}')
        name, text = match.groups()
        if name not in _MAX_VALUE:
            raise BadAuthError(f"Authorization: unknown parameter {name!r}")
        if name in params:
            raise BadAuthError(f"Authorization: duplicate parameter {name!r}")
        expected = PARAMS[len(params)]  # every known name is either seen or still to come
        if name != expected:
            raise BadAuthError(f"Authorization: parameter {name!r} out of order (expected {expected!r})")
        if len(text) > _MAX_VALUE[name]:
            raise BadAuthError(f"Authorization {name}: longer than {_MAX_VALUE[name]} characters")
        params[name] = text
        pos = match.end()
        if pos == len(value):
            break
        if value[pos] != ",":
            raise BadAuthError(f"Authorization: expected ',' at offset {pos}")
        pos += 1
    if len(params) != len(PARAMS):
        raise BadAuthError(f"Authorization: missing parameter {PARAMS[len(params)]!r}")
    return params


def parse_authorization(value: str) -> RequestAuth:
    """Parse an ``Authorization`` header value strictly, without verifying it.

    Raises:
        BadAuthError: The value does not follow the grammar exactly.
    """
    if type(value) is not str:
        raise BadAuthError("Authorization: expected a header value")
    if len(value) > MAX_HEADER_BYTES:
        raise BadAuthError(f"Authorization: longer than {MAX_HEADER_BYTES} bytes")
    if not value.isascii():
        raise BadAuthError("Authorization: must be ASCII")
    params = _split_params(value)
    if not _KEY_RE.fullmatch(params["key"]):
        raise BadAuthError("Authorization key: expected 16 lower-case hex digits")
    if not _TS_RE.fullmatch(params["ts"]):
        raise BadAuthError("Authorization ts: expected a decimal integer without leading zeros")
    nonce = _unb64url("nonce", params["nonce"], NONCE_SIZE)
    signature = _unb64url("sig", params["sig"], SIGNATURE_SIZE)
    try:
        return RequestAuth(
            origin=params["origin"],
            key_id=bytes.fromhex(params["key"]),
            destination=params["destination"],
            ts=int(params["ts"]),
            nonce=nonce,
            signature=signature,
        )
    except MalformedError as exc:
        raise BadAuthError(f"Authorization {exc.message}") from None


def verify_request(value: str, *, method: str, path: str, query: str, body: bytes, me: str, roster: Roster, now: int, max_skew_ms: int) -> RequestAuth:
    """Authenticate a peer request (everything except replay detection).

    Checks, in this order: the header grammar, that the request is for ``me``,
    the timestamp against ``now``, the signing key against the roster at
    ``now``, then the signature. The caller must then check the nonce for
    replay (``gateway.policy.NonceCache``) before acting on the request.

    Args:
        value: The ``Authorization`` header value.
        method: The request method as received.
        path: The raw request path as received.
        query: The raw query string as received (``""`` if none).
        body: The exact body bytes received.
        me: This member's id.
        roster: The current trusted roster.
        now: The receiver's time, unix milliseconds.
        max_skew_ms: The largest allowed ``|now - ts|``.

    Returns:
        The verified parameters; ``origin`` is now authenticated.

    Raises:
        BadAuthError: The header does not parse.
        WrongDestinationError: The request was signed for another member.
        ClockSkewError: ``ts`` is more than ``max_skew_ms`` away from ``now``.
        UnknownMemberError: The origin is not in the roster.
        UnknownKeyError: The origin has no such signing key.
        RevokedKeyError: The key is revoked at ``now``.
        KeyExpiredError: The key is not valid at ``now``.
        BadSignatureError: The signature does not cover this request.
        MalformedError: The request line cannot be encoded at all.
    """
    auth = parse_authorization(value)
    if auth.destination != me:
        raise WrongDestinationError(f"request from {auth.origin} is addressed to {auth.destination}, not {me}")
    if abs(now - auth.ts) > max_skew_ms:
        raise ClockSkewError(f"request from {auth.origin} has ts {auth.ts}, more than {max_skew_ms} ms away from {now}")
    public = roster.check_signing_key(auth.origin, auth.key_id, now)
    data = canonical_request(method=method, path=path, query=query, origin=auth.origin, destination=auth.destination, ts=auth.ts, nonce=auth.nonce, body=body)
    verify_signature(public, DOMAIN_REQUEST, data, auth.signature)
    return auth
