"""Hop receipts: one signed statement per hop and event, chained to the previous hop.

A receipt says "hop H, with key K, saw event E for message M (whose header has
digest D) at time T, from/to peer P". ``prev`` is the digest of the receipt
this one follows from: the same hop's previous receipt for the message
(accepted -> delayed -> relayed), or the neighbouring hop's receipt that proves
a hand-over, so the receipts of one delivery form hash chains. Receipts are
appended to the issuing hop's transparency log (``log_index`` is the leaf index
when the hop knows it at signing time) and travel back toward the origin.

Wire form: ``{v, receipt: bin(body), sig: Ed25519(domain || 0x00 || body)}``.
The receipt digest is SHA-256 of that whole wire form, which is also the exact
log leaf.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from protocol import encoding, fields
from protocol.errors import MalformedError
from protocol.header import MESSAGE_ID_SIZE
from protocol.keys import DOMAIN_RECEIPT, MemberKeys, verify_signature
from protocol.limits import DEFAULT_LIMITS, Limits
from protocol.roster import Roster

VERSION = 1
EVENTS = ("accepted", "relayed", "delivered", "delayed", "rejected", "expired", "acknowledged")
REASON_MAX = 64
_REASON_RE = re.compile(r"E_[A-Z0-9_]+")
_REQUIRED = frozenset({"v", "message_id", "header_digest", "hop", "hop_key", "event", "time"})
_OPTIONAL = frozenset({"peer", "prev", "retry_until", "reason", "log_index"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """The signed content of one hop receipt."""

    message_id: bytes
    header_digest: bytes
    hop: str
    hop_key: bytes
    event: str
    time: int
    peer: str | None = None
    prev: bytes | None = None
    retry_until: int | None = None
    reason: str | None = None
    log_index: int | None = None

    def __post_init__(self) -> None:
        fields.fixed_bytes("message_id", self.message_id, MESSAGE_ID_SIZE)
        fields.fixed_bytes("header_digest", self.header_digest, 32)
        fields.member_id("hop", self.hop)
        fields.fixed_bytes("hop_key", self.hop_key, 8)
        fields.one_of("event", self.event, EVENTS)
        fields.timestamp("time", self.time)
        if self.peer is not None:
            fields.member_id("peer", self.peer)
        if self.prev is not None:
            fields.fixed_bytes("prev", self.prev, 32)
        if self.log_index is not None:
            fields.timestamp("log_index", self.log_index)
        if (self.event == "delayed") != (self.retry_until is not None):
            raise MalformedError("retry_until is required for, and only for, delayed receipts")
        if self.retry_until is not None and fields.timestamp("retry_until", self.retry_until) < self.time:
            raise MalformedError("retry_until must not be earlier than time")
        if (self.event == "rejected") != (self.reason is not None):
            raise MalformedError("reason is required for, and only for, rejected receipts")
        if self.reason is not None and (type(self.reason) is not str or len(self.reason) > REASON_MAX or not _REASON_RE.fullmatch(self.reason)):
            raise MalformedError(f"reason must be an error code like E_POLICY_DENIED of at most {REASON_MAX} characters")

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "v": VERSION,
            "message_id": self.message_id,
            "header_digest": self.header_digest,
            "hop": self.hop,
            "hop_key": self.hop_key,
            "event": self.event,
            "time": self.time,
        }
        for name in ("peer", "prev", "retry_until", "reason", "log_index"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        return encoding.encode(doc)

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Receipt:
        """Parse receipt body bytes.

        Raises:
            MalformedError: Anything wrong with the bytes or fields.
            TooLargeError: Larger than ``limits.max_receipt_bytes``.
        """
        m = fields.check_keys("receipt", encoding.decode(data, max_size=limits.max_receipt_bytes), _REQUIRED, _OPTIONAL, version=VERSION)
        return cls(**{k: v for k, v in m.items() if k != "v"})

    def sign(self, keys: MemberKeys) -> SignedReceipt:
        """Sign this receipt as hop ``keys.member_id``.

        Raises:
            MalformedError: ``keys`` is not the hop and key the receipt names.
        """
        if keys.member_id != self.hop or keys.signing_key_id != self.hop_key:
            raise MalformedError("receipt hop and hop_key must be the signer's")
        body = self.to_bytes()
        return SignedReceipt._of(self, body, keys.sign(DOMAIN_RECEIPT, body))


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedReceipt:
    """A receipt as the exact signed bytes plus the hop's signature."""

    body: bytes
    signature: bytes
    receipt: Receipt = field(init=False, repr=False, compare=False)
    limits: Limits = field(default=DEFAULT_LIMITS, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields.typed("receipt", self.body, bytes)
        fields.fixed_bytes("sig", self.signature, 64)
        object.__setattr__(self, "receipt", Receipt.from_bytes(self.body, limits=self.limits))

    @classmethod
    def _of(cls, receipt: Receipt, body: bytes, signature: bytes) -> SignedReceipt:
        """A receipt just signed: ``body`` is ``receipt.to_bytes()``, so it is not parsed back.

        (Every field is bounded, so a receipt's encoding is far below any ``max_receipt_bytes``.)
        """
        signed = object.__new__(cls)
        for name, value in (("body", body), ("signature", signature), ("receipt", receipt), ("limits", DEFAULT_LIMITS)):
            object.__setattr__(signed, name, value)
        return signed

    def to_bytes(self) -> bytes:
        return encoding.encode({"v": VERSION, "receipt": self.body, "sig": self.signature})

    @property
    def digest(self) -> bytes:
        """SHA-256 of the wire form: what the next receipt's ``prev`` names."""
        return hashlib.sha256(self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> SignedReceipt:
        """Parse a signed receipt without verifying it.

        Raises:
            MalformedError: Anything wrong with the bytes.
            TooLargeError: Larger than ``limits.max_receipt_bytes``.
        """
        m = fields.check_keys("signed receipt", encoding.decode(data, max_size=limits.max_receipt_bytes), frozenset({"v", "receipt", "sig"}), version=VERSION)
        return cls(body=m["receipt"], signature=m["sig"], limits=limits)

    def verify(self, roster: Roster) -> Receipt:
        """Verify the hop's signature; the hop key must be valid at the receipt's time.

        Returns:
            The verified receipt.

        Raises:
            UnknownMemberError, UnknownKeyError, RevokedKeyError, KeyExpiredError:
                The hop or its key, at the receipt's time.
            BadSignatureError: The signature does not verify.
        """
        r = self.receipt
        public = roster.check_signing_key(r.hop, r.hop_key, r.time)
        verify_signature(public, DOMAIN_RECEIPT, self.body, self.signature)
        return r


def verify_receipt(data: bytes, roster: Roster, *, limits: Limits = DEFAULT_LIMITS) -> Receipt:
    """Parse and verify signed receipt bytes in one step.

    Raises:
        HeliographError: See :meth:`SignedReceipt.from_bytes` and :meth:`SignedReceipt.verify`.
    """
    return SignedReceipt.from_bytes(data, limits=limits).verify(roster)
