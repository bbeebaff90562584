"""Delivery evidence bundles on the wire: the model of one bundle and its strict parser.

A bundle (docs/PROTOCOL.md section 22) holds, for one alert, the signed headers
of the alert, its escalation messages and the ``ack`` messages that answer it,
each with the receipts the origin holds for it (every receipt with a checkpoint
of its hop's log and an inclusion proof), and optionally later roster versions.
:func:`node.evidence.export_bundle` builds one; :func:`protocol.evidence.verify_bundle`
judges one. This module only models the bytes: every model validates itself,
and :meth:`EvidenceBundle.from_bytes` refuses anything non-canonical, unknown or
oversize, so a bundle that parses is well formed but not yet trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from protocol import encoding, fields
from protocol.checkpoint import Checkpoint, SignedNote
from protocol.errors import MalformedError, TooLargeError
from protocol.header import MESSAGE_ID_SIZE, Header
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.merkle import HASH_SIZE
from protocol.receipts import SignedReceipt
from protocol.roster import SignedRoster

VERSION = 1
MAX_BUNDLE_BYTES = 16 << 20
MAX_ITEMS = 8192
MAX_PARTS = 4096
MAX_ROSTERS = 16
MAX_PROOF = 64
MAX_CHECKPOINT_CHARS = 1 << 16


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceItem:
    """One receipt with a checkpoint of its hop's log and the receipt's inclusion proof in it."""

    receipt: bytes
    checkpoint: str
    inclusion: tuple[bytes, ...]
    limits: Limits = field(default=DEFAULT_LIMITS, repr=False, compare=False)
    signed: SignedReceipt = field(init=False, repr=False, compare=False)
    note: SignedNote = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.typed("item.receipt", self.receipt, bytes)
        if type(self.checkpoint) is not str:
            raise MalformedError("item.checkpoint: expected text")
        if len(self.checkpoint) > MAX_CHECKPOINT_CHARS:
            raise TooLargeError(f"item.checkpoint: longer than {MAX_CHECKPOINT_CHARS} characters")
        if type(self.inclusion) is not tuple or len(self.inclusion) > MAX_PROOF:
            raise MalformedError(f"item.inclusion: expected at most {MAX_PROOF} hashes")
        for h in self.inclusion:
            fields.fixed_bytes("item.inclusion", h, HASH_SIZE)
        object.__setattr__(self, "signed", SignedReceipt.from_bytes(self.receipt, limits=self.limits))
        note = SignedNote.from_text(self.checkpoint)
        Checkpoint.from_body(note.text)
        object.__setattr__(self, "note", note)

    @property
    def digest(self) -> bytes:
        """The receipt digest (section 8.3): SHA-256 of the receipt wire bytes, the log leaf."""
        return hashlib.sha256(self.receipt).digest()

    def to_wire(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "inclusion": list(self.inclusion), "receipt": self.receipt}

    @classmethod
    def from_wire(cls, where: str, value: Any, limits: Limits) -> EvidenceItem:
        m = fields.check_keys(where, value, frozenset({"receipt", "checkpoint", "inclusion"}))
        inclusion = tuple(fields.array(f"{where}.inclusion", m["inclusion"], MAX_PROOF))
        return cls(receipt=m["receipt"], checkpoint=m["checkpoint"], inclusion=inclusion, limits=limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvidence:
    """One message: its signed header (no body) and the items for its receipts."""

    header_bytes: bytes
    signature: bytes
    items: tuple[EvidenceItem, ...]
    limits: Limits = field(default=DEFAULT_LIMITS, repr=False, compare=False)
    header: Header = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.typed("header", self.header_bytes, bytes)
        fields.fixed_bytes("sig", self.signature, 64)
        if type(self.items) is not tuple or not all(isinstance(i, EvidenceItem) for i in self.items):
            raise MalformedError("items: expected a tuple of EvidenceItem")
        if len(self.items) > MAX_ITEMS:
            raise TooLargeError(f"items: more than {MAX_ITEMS}")
        if len({i.digest for i in self.items}) != len(self.items):
            raise MalformedError("items: the same receipt twice")
        object.__setattr__(self, "header", Header.from_bytes(self.header_bytes, limits=self.limits))

    @property
    def message_id(self) -> bytes:
        return self.header.message_id

    @property
    def header_digest(self) -> bytes:
        """SHA-256 of the header bytes: what every receipt for the message names."""
        return hashlib.sha256(self.header_bytes).digest()

    def to_wire(self) -> dict[str, Any]:
        return {"header": self.header_bytes, "items": [i.to_wire() for i in self.items], "sig": self.signature}

    @classmethod
    def from_wire(cls, where: str, value: Any, limits: Limits) -> MessageEvidence:
        m = fields.check_keys(where, value, frozenset({"header", "sig", "items"}))
        items = tuple(EvidenceItem.from_wire(f"{where}.items[{i}]", x, limits) for i, x in enumerate(fields.array(f"{where}.items", m["items"], MAX_ITEMS)))
        return cls(header_bytes=m["header"], signature=m["sig"], items=items, limits=limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceBundle:
    """Everything needed to verify the delivery of message ``message_id`` offline (section 22)."""

    message_id: bytes
    message: MessageEvidence
    escalations: tuple[MessageEvidence, ...] = ()
    acks: tuple[MessageEvidence, ...] = ()
    rosters: tuple[bytes, ...] = ()
    """Signed roster versions, oldest first, that extend the verifier's trusted one."""
    signed_rosters: tuple[SignedRoster, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.fixed_bytes("message_id", self.message_id, MESSAGE_ID_SIZE)
        for name in ("escalations", "acks"):
            parts = getattr(self, name)
            if type(parts) is not tuple or not all(isinstance(p, MessageEvidence) for p in parts):
                raise MalformedError(f"{name}: expected a tuple of MessageEvidence")
        if not isinstance(self.message, MessageEvidence):
            raise MalformedError("message: expected MessageEvidence")
        if self.message.message_id != self.message_id:
            raise MalformedError("message_id is not the message id of the bundle's header")
        if len(self.escalations) + len(self.acks) > MAX_PARTS:
            raise TooLargeError(f"more than {MAX_PARTS} escalation and ack messages")
        ids = [p.message_id for p in self.parts]
        if len(set(ids)) != len(ids):
            raise MalformedError("the same message twice in one bundle")
        if type(self.rosters) is not tuple or len(self.rosters) > MAX_ROSTERS:
            raise MalformedError(f"rosters: expected a tuple of at most {MAX_ROSTERS}")
        object.__setattr__(self, "signed_rosters", tuple(SignedRoster.from_bytes(fields.typed("rosters", r, bytes)) for r in self.rosters))

    @property
    def parts(self) -> tuple[MessageEvidence, ...]:
        """The alert, then its escalation messages, then the ack messages."""
        return (self.message, *self.escalations, *self.acks)

    def to_bytes(self) -> bytes:
        return encoding.encode(
            {
                "v": VERSION,
                "message_id": self.message_id,
                "message": self.message.to_wire(),
                "escalations": [p.to_wire() for p in self.escalations],
                "acks": [p.to_wire() for p in self.acks],
                "rosters": list(self.rosters),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> EvidenceBundle:
        """Parse a bundle strictly; every receipt, checkpoint, header and roster is parsed too.

        Raises:
            MalformedError: Anything wrong with the bytes or a model inside.
            TooLargeError: Over :data:`MAX_BUNDLE_BYTES` or another bound.
            UnsupportedVersionError: An unknown ``v``.
        """
        m = fields.check_keys(
            "evidence bundle",
            encoding.decode(data, max_size=MAX_BUNDLE_BYTES),
            frozenset({"v", "message_id", "message", "escalations", "acks", "rosters"}),
            version=VERSION,
        )

        def parts(name: str) -> tuple[MessageEvidence, ...]:
            return tuple(MessageEvidence.from_wire(f"{name}[{i}]", p, limits) for i, p in enumerate(fields.array(name, m[name], MAX_PARTS)))

        return cls(
            message_id=m["message_id"],
            message=MessageEvidence.from_wire("message", m["message"], limits),
            escalations=parts("escalations"),
            acks=parts("acks"),
            rosters=tuple(fields.array("rosters", m["rosters"], MAX_ROSTERS)),
        )
