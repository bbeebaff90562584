"""The envelope's public half: the signed header and the outer envelope frame.

A gateway reads only this module's structures. The header holds routing
metadata and the SHA-256 of the body; the envelope frame carries the header as
the exact bytes that were signed, the origin's Ed25519 signature over
``"heliograph/envelope-header/v1" || 0x00 || header``, and the opaque body.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from protocol import encoding, fields
from protocol.errors import MalformedError, TooLargeError
from protocol.limits import DEFAULT_LIMITS, Limits

VERSION = 1
MESSAGE_ID_SIZE = 16
PRIORITIES = ("FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE")
"""Precedence levels, highest first."""
LABELS = ("TLP:RED", "TLP:AMBER+STRICT", "TLP:AMBER", "TLP:GREEN", "TLP:CLEAR")
"""TLP 2.0 handling labels."""
KINDS = ("alert", "update", "cancel", "ack", "error")

_HEADER_FIELDS = frozenset({"v", "message_id", "origin", "origin_key", "recipients", "priority", "label", "kind", "refs", "created", "expires", "body_digest"})
_FRAME_FIELDS = frozenset({"v", "header", "sig", "body"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """Routing metadata every hop can read; signed by the origin."""

    message_id: bytes
    origin: str
    origin_key: bytes
    recipients: tuple[str, ...]
    priority: str
    label: str
    kind: str
    refs: tuple[bytes, ...]
    created: int
    expires: int
    body_digest: bytes
    max_recipients: int = field(default=DEFAULT_LIMITS.max_recipients, repr=False, compare=False)
    max_refs: int = field(default=DEFAULT_LIMITS.max_refs, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.fixed_bytes("message_id", self.message_id, MESSAGE_ID_SIZE)
        fields.member_id("origin", self.origin)
        fields.fixed_bytes("origin_key", self.origin_key, 8)
        if not self.recipients:
            raise MalformedError("recipients: at least one recipient is required")
        if len(self.recipients) > self.max_recipients:
            raise MalformedError(f"recipients: more than {self.max_recipients}")
        fields.member_ids("recipients", self.recipients)
        fields.sorted_unique("recipients", self.recipients)
        fields.one_of("priority", self.priority, PRIORITIES)
        fields.one_of("label", self.label, LABELS)
        fields.one_of("kind", self.kind, KINDS)
        if len(self.refs) > self.max_refs:
            raise MalformedError(f"refs: more than {self.max_refs}")
        for ref in self.refs:
            fields.fixed_bytes("refs", ref, MESSAGE_ID_SIZE)
        fields.sorted_unique("refs", self.refs)
        if self.message_id in self.refs:
            raise MalformedError("refs: a message cannot refer to itself")
        fields.timestamp("created", self.created)
        fields.timestamp("expires", self.expires)
        if self.expires <= self.created:
            raise MalformedError("expires must be later than created")
        fields.fixed_bytes("body_digest", self.body_digest, 32)

    def with_body_digest(self, body_digest: bytes) -> Header:
        """Return a copy with another ``body_digest`` without re-validating the other fields."""
        fields.fixed_bytes("body_digest", body_digest, 32)
        new = object.__new__(Header)
        for name in Header.__slots__:
            object.__setattr__(new, name, getattr(self, name))
        object.__setattr__(new, "body_digest", body_digest)
        return new

    def _wire(self) -> dict[str, Any]:
        return {  # keys in canonical (sorted) order: encoded with encode_trusted
            "body_digest": self.body_digest,
            "created": self.created,
            "expires": self.expires,
            "kind": self.kind,
            "label": self.label,
            "message_id": self.message_id,
            "origin": self.origin,
            "origin_key": self.origin_key,
            "priority": self.priority,
            "recipients": list(self.recipients),
            "refs": list(self.refs),
            "v": VERSION,
        }

    def to_bytes(self) -> bytes:
        return encoding.encode_trusted(self._wire())

    @property
    def context_digest(self) -> bytes:
        """SHA-256 over the header without ``body_digest``: the AEAD binding.

        The body cannot be bound to the header digest itself (the header holds
        the body's digest), so ciphertexts bind this context instead.
        """
        wire = self._wire()
        del wire["body_digest"]
        return hashlib.sha256(b"heliograph/envelope-context/v1\x00" + encoding.encode_trusted(wire)).digest()

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Header:
        """Parse header bytes strictly.

        Raises:
            MalformedError: Anything wrong with the bytes or the fields.
            UnsupportedVersionError: Unknown header version.
        """
        m = fields.check_keys("header", encoding.decode(data, max_size=limits.max_envelope_bytes), _HEADER_FIELDS, version=VERSION)
        return cls(
            message_id=m["message_id"],
            origin=m["origin"],
            origin_key=m["origin_key"],
            recipients=tuple(fields.array("recipients", m["recipients"], limits.max_recipients)),
            priority=m["priority"],
            label=m["label"],
            kind=m["kind"],
            refs=tuple(fields.array("refs", m["refs"], limits.max_refs)),
            created=m["created"],
            expires=m["expires"],
            body_digest=m["body_digest"],
            max_recipients=limits.max_recipients,
            max_refs=limits.max_refs,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """The outer frame: signed header bytes, their signature, and the body."""

    header_bytes: bytes
    signature: bytes
    body: bytes
    header: Header = field(init=False, repr=False, compare=False)
    limits: Limits = field(default=DEFAULT_LIMITS, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.typed("header", self.header_bytes, bytes)
        fields.fixed_bytes("sig", self.signature, 64)
        fields.typed("body", self.body, bytes)
        object.__setattr__(self, "header", Header.from_bytes(self.header_bytes, limits=self.limits))

    @classmethod
    def from_parts(cls, header: Header, header_bytes: bytes, signature: bytes, body: bytes, limits: Limits = DEFAULT_LIMITS) -> Envelope:
        """Build the frame from a header object and its exact bytes, without parsing them again (for seal)."""
        env = object.__new__(cls)
        for name, value in (("header_bytes", header_bytes), ("signature", signature), ("body", body), ("header", header), ("limits", limits)):
            object.__setattr__(env, name, value)
        fields.fixed_bytes("sig", signature, 64)
        return env

    @property
    def message_id(self) -> bytes:
        return self.header.message_id

    @property
    def header_digest(self) -> bytes:
        """SHA-256 of the exact header bytes: what receipts refer to."""
        return hashlib.sha256(self.header_bytes).digest()

    def to_bytes(self) -> bytes:
        return encoding.encode_trusted({"body": self.body, "header": self.header_bytes, "sig": self.signature, "v": VERSION})

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
        """Parse an envelope strictly, without verifying anything.

        Raises:
            TooLargeError: Larger than ``limits.max_envelope_bytes``.
            MalformedError: Anything wrong with the bytes or header fields.
        """
        if len(data) > limits.max_envelope_bytes:
            raise TooLargeError(f"envelope of {len(data)} bytes exceeds the limit of {limits.max_envelope_bytes}")
        m = fields.check_keys("envelope", encoding.decode(data, max_size=limits.max_envelope_bytes), _FRAME_FIELDS, version=VERSION)
        return cls(header_bytes=m["header"], signature=m["sig"], body=m["body"], limits=limits)
