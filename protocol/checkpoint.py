"""Signed log checkpoints and witness cosignatures: C2SP signed-note, tlog-checkpoint, tlog-cosignature.

A log's tree head is a *checkpoint*: note text ``origin\\nsize\\nbase64(root)\\n`` plus
optional extension lines, signed by the member's log key under ``log_origin(member)``.
Witnesses append *cosignatures* (type 0x04, ``cosignature/v1``). Ed25519 only.

:class:`SignedNote` is the strict wire text and round-trips byte for byte;
:class:`Checkpoint` is the parsed text. :class:`NoteVerifier` (:func:`open_checkpoint`)
and :class:`CosignatureVerifier` (:func:`verify_cosignature`) each check one
configured key: other keys' lines are ignored, as signed-note requires, while a
line naming the configured key that does not verify is a ``BadSignatureError``.
Whether checkpoints are *consistent* is a Merkle question (:mod:`protocol.merkle`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar

import nacl.exceptions
import nacl.signing

from protocol import fields
from protocol.errors import BadSignatureError, CheckpointError, MalformedError, TooLargeError
from protocol.keys import parse_vkey
from protocol.merkle import HASH_SIZE

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
KEY_HASH_SIZE = 4
ED25519_SIGNATURE_SIZE = 64
COSIGNATURE_SIZE = 8 + ED25519_SIGNATURE_SIZE
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20
MAX_COSIGNATURE_TIME = (1 << 63) - 1
COSIGNATURE_HEADER = "cosignature/v1\n"

_SIG_PREFIX = "\u2014 "  # em dash, space
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")  # below U+0020, except newline
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}")


_b64 = fields.b64
_unb64 = fields.unb64


def _utf8(where: str, text: object, *, line: bool = False) -> bytes:
    if not isinstance(text, str) or (line and (not text or "\n" in text)):
        raise MalformedError(f"{where}: expected {'one non-empty line of ' if line else ''}text")
    if _CONTROL_RE.search(text):
        raise MalformedError(f"{where}: control characters other than newline are not allowed")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedError(f"{where}: not valid Unicode") from None


def _check_key_name(name: object) -> str:
    if not isinstance(name, str) or not name or any(ch.isspace() or ch == "+" for ch in name):
        raise MalformedError(f"note key name {name!r} must be non-empty without spaces or '+'")
    _utf8("note key name", name)
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A log's signed tree head: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _utf8("origin", self.origin, line=True)
        if type(self.size) is not int or not 0 <= self.size <= fields.U64_MAX:
            raise MalformedError("checkpoint size must be an integer from 0 to 2**64 - 1")
        fields.fixed_bytes("root", self.root, HASH_SIZE)
        if type(self.extensions) is not tuple:
            raise MalformedError("extensions must be a tuple of lines")
        for ext in self.extensions:
            _utf8("extension line", ext, line=True)

    def body(self) -> str:
        """Return the note text: ``origin\\nsize\\nbase64(root)\\n`` then one line per extension."""
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), _b64(self.root), *self.extensions))

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly.

        Raises:
            MalformedError: Under three lines, no final newline, an empty line, a size
                not in 0..2**64 - 1 or not plain decimal, a root not canonical base64 of 32 bytes.
        """
        if not isinstance(text, str) or not text.endswith("\n"):
            raise MalformedError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedError("checkpoint text needs origin, size and root lines")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE_RE.fullmatch(size_text) or int(size_text) > fields.U64_MAX:
            raise MalformedError("checkpoint size must be a decimal without leading zeros, at most 2**64 - 1")
        return cls(origin=origin, size=int(size_text), root=_unb64("checkpoint root", root_text), extensions=tuple(extensions))


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteSignature:
    """One signature line: key name, 4-byte key hash and the signature bytes after it.

    64 bytes for type 0x01, ``u64 big-endian timestamp || 64`` for type 0x04, else opaque.
    """

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        fields.fixed_bytes("key_hash", self.key_hash, KEY_HASH_SIZE)
        if type(self.signature) is not bytes or not self.signature:
            raise MalformedError("a note signature needs at least one byte after the key hash")

    def to_line(self) -> str:
        """Return the signature line, with its final newline."""
        return f"{_SIG_PREFIX}{self.name} {_b64(self.key_hash + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line given without its newline.

        Raises:
            MalformedError: Not em dash, space, name, space, canonical base64 of 5+ bytes.
        """
        if not line.startswith(_SIG_PREFIX):
            raise MalformedError("signature lines start with an em dash and a space")
        name, space, payload_text = line[len(_SIG_PREFIX) :].partition(" ")
        if not space:
            raise MalformedError("signature line has no signature after the key name")
        payload = _unb64("note signature", payload_text)
        if len(payload) <= KEY_HASH_SIZE:
            raise MalformedError("note signature is shorter than 5 bytes")
        return cls(name=name, key_hash=payload[:KEY_HASH_SIZE], signature=payload[KEY_HASH_SIZE:])


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedNote:
    """A C2SP signed note: the text (ending in a newline) and 1 to 100 signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        data = _utf8("note text", self.text)
        if not self.text.endswith("\n"):
            raise MalformedError("note text must be non-empty and end with a newline")
        if type(self.signatures) is not tuple or not self.signatures or not all(isinstance(s, NoteSignature) for s in self.signatures):
            raise MalformedError("signatures must be a non-empty tuple of NoteSignature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise TooLargeError(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
        if len({(s.name, s.key_hash) for s in self.signatures}) != len(self.signatures):
            raise MalformedError("two signatures with the same key name and key hash")
        if len(data) + sum(len(s.to_line().encode("utf-8")) for s in self.signatures) + 1 > MAX_NOTE_BYTES:
            raise TooLargeError(f"a signed note may be at most {MAX_NOTE_BYTES} bytes")

    def to_text(self) -> str:
        """Return the note: text, a blank line, then the signature lines."""
        return self.text + "\n" + "".join(s.to_line() for s in self.signatures)

    @classmethod
    def from_text(cls, note: str | bytes) -> SignedNote:
        """Parse a signed note strictly; ``SignedNote.from_text(x).to_text() == x``.

        Raises:
            MalformedError: Bad UTF-8, a control character but newline, no blank line, no or
                malformed signature lines, anything after the last line's newline.
            TooLargeError: Over :data:`MAX_NOTE_BYTES` or :data:`MAX_SIGNATURES`.
        """
        if isinstance(note, bytes):
            try:
                note = note.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedError("signed note is not valid UTF-8") from None
        if len(_utf8("signed note", note)) > MAX_NOTE_BYTES:
            raise TooLargeError(f"a signed note may be at most {MAX_NOTE_BYTES} bytes")
        split = note.rfind("\n\n")
        if split < 0:
            raise MalformedError("signed note has no blank line before its signatures")
        text, block = note[: split + 1], note[split + 2 :]
        if not block.endswith("\n"):
            raise MalformedError("signed note must end with a newline-terminated signature line")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise TooLargeError(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
        return cls(text=text, signatures=tuple(NoteSignature.from_line(line) for line in lines))

    def signature_by(self, name: str, key_hash: bytes) -> NoteSignature | None:
        """Return the signature with this key name and key hash, if any (there is at most one)."""
        return next((s for s in self.signatures if s.name == name and s.key_hash == key_hash), None)


def note_key_hash(name: str, sig_type: int, public: bytes) -> bytes:
    """C2SP key hash ``SHA-256(name || 0x0A || sig_type || public)[:4]`` of a 32-byte key.

    Raises:
        MalformedError: Bad name or key length.
    """
    data = _check_key_name(name).encode("utf-8") + b"\n" + bytes([sig_type]) + fields.fixed_bytes("public key", public, 32)
    return hashlib.sha256(data).digest()[:KEY_HASH_SIZE]


def format_cosigner_vkey(name: str, public: bytes) -> str:
    """Return the cosigner vkey ``name+hex(SHA-256(name || 0x0A || 0x04 || public)[:4])+base64(0x04 || public)``.

    Raises:
        MalformedError: Bad name or key length.
    """
    return CosignatureVerifier(name=name, public=public).vkey


def cosignature_message(text: str, timestamp: int) -> bytes:
    """Return what a cosignature/v1 signs: ``"cosignature/v1\\ntime <ts>\\n"`` then the whole checkpoint text.

    Raises:
        MalformedError: ``timestamp`` is not 0 to 2**63 - 1, or ``text`` is not note text.
    """
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_COSIGNATURE_TIME:
        raise MalformedError("cosignature timestamp must be unix seconds from 0 to 2**63 - 1")
    return f"{COSIGNATURE_HEADER}time {timestamp}\n".encode("ascii") + _utf8("checkpoint text", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class _NoteKey:
    """A trusted Ed25519 key with its note name; ``SIG_TYPE`` picks the signed-note signature type."""

    SIG_TYPE: ClassVar[int]
    name: str
    public: bytes

    def __post_init__(self) -> None:
        note_key_hash(self.name, self.SIG_TYPE, self.public)  # validates the name and key length

    @property
    def key_hash(self) -> bytes:
        return note_key_hash(self.name, self.SIG_TYPE, self.public)

    @property
    def vkey(self) -> str:
        """The C2SP vkey ``name+hex(key_hash)+base64(type || public)``."""
        return f"{self.name}+{self.key_hash.hex()}+{_b64(bytes([self.SIG_TYPE]) + self.public)}"

    def _signature(self, note: SignedNote, size: int) -> bytes:
        sig = note.signature_by(self.name, self.key_hash)
        if sig is None:
            raise CheckpointError(f"note has no signature by {self.name}")
        if len(sig.signature) != size:
            raise BadSignatureError(f"signature by {self.name} is not {size} bytes")
        return sig.signature

    def _verify_ed25519(self, message: bytes, signature: bytes) -> None:
        try:
            nacl.signing.VerifyKey(self.public).verify(message, signature)
        except nacl.exceptions.CryptoError:
            raise BadSignatureError(f"signature by {self.name} does not verify") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteVerifier(_NoteKey):
    """A trusted Ed25519 note key (signature type 0x01), e.g. a member's log key."""

    SIG_TYPE = SIG_ED25519

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Build a verifier from a C2SP vkey ``name+hash+base64(0x01 || public)``.

        Raises:
            MalformedError: Not a valid Ed25519 vkey.
        """
        name, public = parse_vkey(vkey)
        return cls(name=name, public=public)

    def verify(self, note: SignedNote) -> None:
        """Check this key's signature on ``note``; other keys' signatures are ignored.

        Raises:
            CheckpointError: No signature line names this key.
            BadSignatureError: The line naming this key does not verify.
        """
        self._verify_ed25519(note.text.encode("utf-8"), self._signature(note, ED25519_SIGNATURE_SIZE))


@dataclass(frozen=True, slots=True, kw_only=True)
class CosignatureVerifier(_NoteKey):
    """A trusted witness key for Ed25519 cosignatures (signature type 0x04)."""

    SIG_TYPE = SIG_COSIGNATURE_V1

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Build a verifier from a cosigner vkey ``name+hash+base64(0x04 || public)``.

        Raises:
            MalformedError: Wrong shape or type, non-canonical text, or a wrong key hash.
        """
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise MalformedError("vkey must be name+hash+key")
        raw = _unb64("vkey key", parts[2])
        if len(raw) != 33 or raw[0] != SIG_COSIGNATURE_V1:
            raise MalformedError("vkey is not an Ed25519 cosigner (type 0x04) key")
        verifier = cls(name=parts[0], public=raw[1:])
        if parts[1] != verifier.key_hash.hex():
            raise MalformedError("vkey hash does not match its name and key")
        return verifier


def sign_note(text: str, name: str, key: nacl.signing.SigningKey) -> SignedNote:
    """Sign ``text`` as a C2SP note with an Ed25519 key (type 0x01) under ``name``.

    Raises:
        MalformedError: Text or name not allowed in a note.
    """
    key_hash = note_key_hash(name, SIG_ED25519, bytes(key.verify_key))
    signature = key.sign(_utf8("note text", text)).signature
    return SignedNote(text=text, signatures=(NoteSignature(name=name, key_hash=key_hash, signature=signature),))


def sign_checkpoint(checkpoint: Checkpoint, name: str, key: nacl.signing.SigningKey) -> SignedNote:
    """Sign a checkpoint with the log key; the signature covers the note text bytes exactly.

    Raises:
        CheckpointError: ``name`` is not the checkpoint's origin (it would never open).
    """
    if name != checkpoint.origin:
        raise CheckpointError(f"log key name {name!r} must equal the checkpoint origin {checkpoint.origin!r}")
    return sign_note(checkpoint.body(), name, key)


def open_checkpoint(note_text: str | bytes, verifier: NoteVerifier) -> Checkpoint:
    """Parse a signed checkpoint and return it if ``verifier``'s key signed it.

    Raises:
        MalformedError: Not a valid signed note or checkpoint text (TooLargeError: over the limits).
        CheckpointError: No signature by the verifier's key, or another log's origin.
        BadSignatureError: The verifier's signature line does not verify.
    """
    note = SignedNote.from_text(note_text)
    verifier.verify(note)
    checkpoint = Checkpoint.from_body(note.text)
    if checkpoint.origin != verifier.name:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not the log {verifier.name!r}")
    return checkpoint


def cosign(note: SignedNote, name: str, key: nacl.signing.SigningKey, timestamp: int) -> SignedNote:
    """Add (or replace) this witness's cosignature/v1; ``timestamp`` is unix *seconds*.

    Only signs: the witness must first open the checkpoint and check it extends what it saw.

    Raises:
        MalformedError: ``note`` is not a checkpoint, bad name or timestamp.
    """
    Checkpoint.from_body(note.text)
    key_hash = note_key_hash(name, SIG_COSIGNATURE_V1, bytes(key.verify_key))
    message = cosignature_message(note.text, timestamp)  # validates the timestamp
    signature = timestamp.to_bytes(8, "big") + key.sign(message).signature
    kept = tuple(s for s in note.signatures if (s.name, s.key_hash) != (name, key_hash))
    return SignedNote(text=note.text, signatures=(*kept, NoteSignature(name=name, key_hash=key_hash, signature=signature)))


def verify_cosignature(note: SignedNote, verifier: CosignatureVerifier) -> int:
    """Verify ``verifier``'s cosignature on a checkpoint note and return its timestamp (unix seconds).

    Raises:
        MalformedError: The note text is not a checkpoint.
        CheckpointError: No cosignature line by this witness key.
        BadSignatureError: That line is not 72 bytes, its time is over 2**63 - 1, or it does not verify.
    """
    Checkpoint.from_body(note.text)
    signature = verifier._signature(note, COSIGNATURE_SIZE)
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_COSIGNATURE_TIME:
        raise BadSignatureError(f"cosignature by {verifier.name} has a timestamp over 2**63 - 1")
    verifier._verify_ed25519(cosignature_message(note.text, timestamp), signature[8:])
    return timestamp
