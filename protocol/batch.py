"""Hop-to-hop request and response bodies (msgpack, ``application/x-msgpack``).

``POST /v1/envelopes`` carries an :class:`EnvelopeBatch`: up to ``max_items``
items, each an envelope (exact bytes), the subset of its recipients this copy
is for (a hop routes only those, which is what prevents loops), and ``prev``,
the digest of the sender's latest receipt for the copy. The answer is a
:class:`BatchResults`: exactly one signed receipt per item, in order, either
``accepted`` or ``rejected`` with a reason code, so one poison envelope never
fails the batch.

``POST /v1/receipts`` carries a :class:`ReceiptBatch` of signed receipts
travelling back toward a message's origin; the answer is a
:class:`ReceiptAck` counting the receipts stored (duplicates included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol import encoding, fields
from protocol.errors import MalformedError
from protocol.limits import DEFAULT_LIMITS, Limits

VERSION = 1
MAX_BATCH_ITEMS = 256
MAX_BATCH_BYTES = 16 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchItem:
    """One envelope copy: the envelope, the recipients it is for, the sender's last receipt digest."""

    envelope: bytes
    recipients: tuple[str, ...]
    prev: bytes | None = None

    def __post_init__(self) -> None:
        fields.typed("envelope", self.envelope, bytes)
        if not self.recipients:
            raise MalformedError("item recipients must not be empty")
        for r in self.recipients:
            fields.member_id("item recipient", r)
        fields.sorted_unique("item recipients", self.recipients)
        if self.prev is not None:
            fields.fixed_bytes("prev", self.prev, 32)

    def to_wire(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"envelope": self.envelope, "recipients": list(self.recipients)}
        if self.prev is not None:
            doc["prev"] = self.prev
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeBatch:
    """The body of ``POST /v1/envelopes``."""

    items: tuple[BatchItem, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.items) <= MAX_BATCH_ITEMS:
            raise MalformedError(f"a batch holds 1..{MAX_BATCH_ITEMS} items")

    def to_bytes(self) -> bytes:
        return encoding.encode({"v": VERSION, "items": [i.to_wire() for i in self.items]})

    @classmethod
    def from_bytes(cls, data: bytes, *, max_items: int = MAX_BATCH_ITEMS, limits: Limits = DEFAULT_LIMITS) -> EnvelopeBatch:
        """Parse a batch body strictly.

        Raises:
            MalformedError: Anything wrong with the bytes or items.
            TooLargeError: Body larger than the batch limit.
        """
        m = fields.check_keys("batch", encoding.decode(data, max_size=MAX_BATCH_BYTES), frozenset({"v", "items"}), version=VERSION)
        items = []
        for i, raw in enumerate(fields.array("batch.items", m["items"], max_items)):
            im = fields.check_keys(f"items[{i}]", raw, frozenset({"envelope", "recipients"}), frozenset({"prev"}))
            items.append(
                BatchItem(
                    envelope=im["envelope"],
                    recipients=tuple(fields.array(f"items[{i}].recipients", im["recipients"], limits.max_recipients)),
                    prev=im.get("prev"),
                )
            )
        return cls(items=tuple(items))


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResults:
    """The answer to ``POST /v1/envelopes``: one signed receipt per item, in order."""

    results: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        return encoding.encode({"v": VERSION, "results": list(self.results)})

    @classmethod
    def from_bytes(cls, data: bytes) -> BatchResults:
        """Raises: MalformedError: Anything wrong with the bytes."""
        m = fields.check_keys("results", encoding.decode(data, max_size=MAX_BATCH_BYTES), frozenset({"v", "results"}), version=VERSION)
        return cls(results=tuple(fields.typed("result", r, bytes) for r in fields.array("results", m["results"], MAX_BATCH_ITEMS)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptBatch:
    """The body of ``POST /v1/receipts``."""

    receipts: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.receipts) <= MAX_BATCH_ITEMS:
            raise MalformedError(f"a receipt batch holds 1..{MAX_BATCH_ITEMS} receipts")
        for r in self.receipts:
            fields.typed("receipt", r, bytes)

    def to_bytes(self) -> bytes:
        return encoding.encode({"v": VERSION, "receipts": list(self.receipts)})

    @classmethod
    def from_bytes(cls, data: bytes) -> ReceiptBatch:
        """Raises: MalformedError: Anything wrong with the bytes."""
        m = fields.check_keys("receipts", encoding.decode(data, max_size=MAX_BATCH_BYTES), frozenset({"v", "receipts"}), version=VERSION)
        return cls(receipts=tuple(fields.array("receipts", m["receipts"], MAX_BATCH_ITEMS)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptAck:
    """The answer to ``POST /v1/receipts``."""

    stored: int

    def to_bytes(self) -> bytes:
        return encoding.encode({"v": VERSION, "stored": self.stored})

    @classmethod
    def from_bytes(cls, data: bytes) -> ReceiptAck:
        """Raises: MalformedError: Anything wrong with the bytes."""
        m = fields.check_keys("ack", encoding.decode(data), frozenset({"v", "stored"}), version=VERSION)
        return cls(stored=fields.timestamp("stored", m["stored"]))
