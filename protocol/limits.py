"""Every size, count and time limit of the protocol core, in one place.

Servers build one :class:`Limits` from their config and pass it down; the
defaults are what the spec calls the interoperability floor: every
implementation must accept envelopes within them.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import MalformedError


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds applied when sealing, verifying and opening envelopes."""

    max_envelope_bytes: int = 1 << 20
    max_recipients: int = 512
    max_sections: int = 16
    max_tiers: int = 16
    max_refs: int = 32
    max_clock_skew_ms: int = 5 * 60 * 1000
    max_receipt_bytes: int = 4096

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise MalformedError(f"limit {name} must be a positive integer")


DEFAULT_LIMITS = Limits()
