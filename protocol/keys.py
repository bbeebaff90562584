"""Member identities and keys: Ed25519 signing, X25519 encryption, log keys.

Every federation member (node or gateway) has a member id, an Ed25519 signing
key (envelopes, receipts, requests), an X25519 encryption key (recipient
stanzas) and an Ed25519 transparency-log key (checkpoints). Each public key has
a key id: ``SHA-256("heliograph/key-id/v1" || 0x00 || alg || public)[:8]`` with
``alg`` 0x01 for Ed25519 and 0x02 for X25519.

All signatures over Heliograph's own structures are over ``domain || 0x00 || bytes`` where the
domain names the structure (see docs/PROTOCOL.md "Domain separation"), so a
signature over one kind of structure can never be replayed as another.
(Log checkpoints follow C2SP signed-note instead, which signs the note text.)

Nothing here touches files: :mod:`gateway.keyfile` writes key files with mode
0600. Secret fields are excluded from ``repr`` so that they cannot end up in logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.public
import nacl.signing

from protocol import fields
from protocol.errors import BadSignatureError, MalformedError

Rng = Callable[[int], bytes]
"""A source of randomness: ``rng(n)`` returns ``n`` random bytes."""

ALG_ED25519 = 0x01
ALG_X25519 = 0x02
KEY_ID_SIZE = 8
KEY_FILE_FORMAT = "heliograph-secret-key"
PUBLIC_FILE_FORMAT = "heliograph-public-identity"

DOMAIN_ENVELOPE_HEADER = b"heliograph/envelope-header/v1"
DOMAIN_MANIFEST = b"heliograph/manifest/v1"
DOMAIN_RECEIPT = b"heliograph/receipt/v1"
DOMAIN_ROSTER = b"heliograph/roster/v1"


def key_id(alg: int, public: bytes) -> bytes:
    """Return the 8-byte key id of a public key.

    Raises:
        MalformedError: Unknown algorithm or wrong key length.
    """
    if alg not in (ALG_ED25519, ALG_X25519):
        raise MalformedError(f"unknown key algorithm {alg}")
    fields.fixed_bytes("public key", public, 32)
    return hashlib.sha256(b"heliograph/key-id/v1\x00" + bytes([alg]) + public).digest()[:KEY_ID_SIZE]


def signed_message(domain: bytes, data: bytes) -> bytes:
    """Return the exact bytes an Ed25519 signature covers: ``domain || 0x00 || data``."""
    return domain + b"\x00" + data


def verify_signature(public: bytes, domain: bytes, data: bytes, signature: bytes) -> None:
    """Verify an Ed25519 signature made with :meth:`MemberKeys.sign`.

    Raises:
        BadSignatureError: The signature does not verify.
        MalformedError: The key or signature has the wrong length.
    """
    fields.fixed_bytes("signature", signature, 64)
    try:
        nacl.signing.VerifyKey(fields.fixed_bytes("public key", public, 32)).verify(signed_message(domain, data), signature)
    except nacl.exceptions.BadSignatureError:
        raise BadSignatureError(f"{domain.decode()} signature does not verify") from None


_b64 = fields.b64


def _unb64(where: str, text: object, size: int) -> bytes:
    return fields.fixed_bytes(where, fields.unb64(where, text), size)


def log_origin(member: str) -> str:
    """Return the transparency-log origin line used by ``member``'s log."""
    return f"heliograph/{fields.member_id('member', member)}"


def vkey_hash(name: str, public: bytes) -> bytes:
    """C2SP signed-note key hash: ``SHA-256(name || 0x0A || 0x01 || public)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public).digest()[:4]


def format_vkey(name: str, public: bytes) -> str:
    """Return the C2SP ``vkey`` string ``name+hash+base64(0x01 || public)``.

    Raises:
        MalformedError: Bad name or key length.
    """
    _check_note_name(name)
    fields.fixed_bytes("public key", public, 32)
    return f"{name}+{vkey_hash(name, public).hex()}+{_b64(bytes([ALG_ED25519]) + public)}"


def _check_note_name(name: str) -> None:
    if not name or any(ch.isspace() or ch == "+" or ord(ch) < 0x20 for ch in name):
        raise MalformedError(f"note key name {name!r} must be non-empty without spaces or '+'")


def parse_vkey(vkey: str) -> tuple[str, bytes]:
    """Parse a C2SP Ed25519 ``vkey`` string.

    Returns:
        ``(name, public_key)``.

    Raises:
        MalformedError: Wrong shape, unsupported algorithm or a hash that does
            not match the name and key.
    """
    parts = vkey.split("+", 2) if isinstance(vkey, str) else []
    if len(parts) != 3:
        raise MalformedError("vkey must be name+hash+key")
    name, hash_hex, key_b64 = parts
    _check_note_name(name)
    try:
        raw = base64.b64decode(key_b64.encode("ascii"), validate=True)
        given_hash = bytes.fromhex(hash_hex)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise MalformedError("vkey has bad hex or base64") from None
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise MalformedError("vkey is not an Ed25519 key")
    public = raw[1:]
    if hash_hex != given_hash.hex() or len(given_hash) != 4 or given_hash != vkey_hash(name, public) or _b64(raw) != key_b64:
        raise MalformedError("vkey hash does not match its name and key")
    return name, public


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicIdentity:
    """The public half of a member's keys, as published in a roster."""

    member_id: str
    signing_public: bytes
    encryption_public: bytes
    log_public: bytes

    def __post_init__(self) -> None:
        fields.member_id("member_id", self.member_id)
        fields.fixed_bytes("signing_public", self.signing_public, 32)
        fields.fixed_bytes("encryption_public", self.encryption_public, 32)
        fields.fixed_bytes("log_public", self.log_public, 32)

    @property
    def signing_key_id(self) -> bytes:
        return key_id(ALG_ED25519, self.signing_public)

    @property
    def encryption_key_id(self) -> bytes:
        return key_id(ALG_X25519, self.encryption_public)

    @property
    def log_vkey(self) -> str:
        return format_vkey(log_origin(self.member_id), self.log_public)

    def to_json(self) -> str:
        """Return the public identity file text (safe to share)."""
        doc = {
            "format": PUBLIC_FILE_FORMAT,
            "version": 1,
            "member_id": self.member_id,
            "signing_public": _b64(self.signing_public),
            "signing_key_id": self.signing_key_id.hex(),
            "encryption_public": _b64(self.encryption_public),
            "encryption_key_id": self.encryption_key_id.hex(),
            "log_vkey": self.log_vkey,
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PublicIdentity:
        """Parse a public identity file.

        Raises:
            MalformedError: Not a valid public identity file.
        """
        doc = _load_json(text, PUBLIC_FILE_FORMAT)
        name, log_public = parse_vkey(fields.typed("log_vkey", doc.get("log_vkey"), str))
        ident = cls(
            member_id=fields.member_id("member_id", doc.get("member_id")),
            signing_public=_unb64("signing_public", doc.get("signing_public"), 32),
            encryption_public=_unb64("encryption_public", doc.get("encryption_public"), 32),
            log_public=log_public,
        )
        if name != log_origin(ident.member_id):
            raise MalformedError("log_vkey names a different member")
        return ident


def _load_json(text: str, fmt: str) -> dict[str, object]:
    try:
        doc = json.loads(text)
    except (ValueError, TypeError):
        raise MalformedError("key file is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise MalformedError(f"not a {fmt} file")
    if type(doc.get("version")) is not int or doc.get("version") != 1:
        raise MalformedError(f"unsupported {fmt} version")
    return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberKeys:
    """A member's secret keys. ``repr`` never shows the secret material."""

    member_id: str
    signing_seed: bytes = field(repr=False)
    encryption_secret: bytes = field(repr=False)
    log_seed: bytes = field(repr=False)
    _signer: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)
    _log_signer: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)
    _box_key: nacl.public.PrivateKey = field(init=False, repr=False, compare=False)
    _signing_key_id: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.member_id("member_id", self.member_id)
        object.__setattr__(self, "_signer", nacl.signing.SigningKey(fields.fixed_bytes("signing_seed", self.signing_seed, 32)))
        object.__setattr__(self, "_log_signer", nacl.signing.SigningKey(fields.fixed_bytes("log_seed", self.log_seed, 32)))
        object.__setattr__(self, "_box_key", nacl.public.PrivateKey(fields.fixed_bytes("encryption_secret", self.encryption_secret, 32)))
        object.__setattr__(self, "_signing_key_id", key_id(ALG_ED25519, bytes(self._signer.verify_key)))

    @classmethod
    def generate(cls, member_id: str, rng: Rng) -> MemberKeys:
        """Generate fresh keys from ``rng`` (deterministic for a seeded rng)."""
        return cls(member_id=member_id, signing_seed=rng(32), encryption_secret=rng(32), log_seed=rng(32))

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(
            member_id=self.member_id,
            signing_public=self.signing_public,
            encryption_public=self.encryption_public,
            log_public=bytes(self._log_signer.verify_key),
        )

    @property
    def signing_public(self) -> bytes:
        return bytes(self._signer.verify_key)

    @property
    def signing_key_id(self) -> bytes:
        return self._signing_key_id

    @property
    def encryption_public(self) -> bytes:
        return bytes(self._box_key.public_key)

    @property
    def encryption_key_id(self) -> bytes:
        return key_id(ALG_X25519, self.encryption_public)

    @property
    def log_signer(self) -> nacl.signing.SigningKey:
        """The Ed25519 key that signs this member's log checkpoints."""
        return self._log_signer

    def sign(self, domain: bytes, data: bytes) -> bytes:
        """Sign ``domain || 0x00 || data`` with the member's signing key."""
        return self._signer.sign(signed_message(domain, data)).signature

    def to_file_text(self) -> str:
        """Return the secret key file text. Write it with mode 0600 only."""
        doc = {
            "format": KEY_FILE_FORMAT,
            "version": 1,
            "member_id": self.member_id,
            "signing_seed": _b64(self.signing_seed),
            "encryption_secret": _b64(self.encryption_secret),
            "log_seed": _b64(self.log_seed),
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_file_text(cls, text: str) -> MemberKeys:
        """Parse a secret key file.

        Raises:
            MalformedError: Not a valid secret key file (the message never
                includes key material).
        """
        doc = _load_json(text, KEY_FILE_FORMAT)
        return cls(
            member_id=fields.member_id("member_id", doc.get("member_id")),
            signing_seed=_unb64("signing_seed", doc.get("signing_seed"), 32),
            encryption_secret=_unb64("encryption_secret", doc.get("encryption_secret"), 32),
            log_seed=_unb64("log_seed", doc.get("log_seed"), 32),
        )
