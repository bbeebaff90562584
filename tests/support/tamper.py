"""Byte-level tampering for property tests: flip, truncate or extend a buffer."""

from __future__ import annotations

from hypothesis import strategies as st

MUTATIONS = st.tuples(
    st.sampled_from(["flip", "truncate", "extend"]),
    st.integers(min_value=0, max_value=1 << 16),
    st.integers(min_value=1, max_value=255),
)
"""(kind, position, value) triples; the position wraps around the buffer length."""


def tamper(data: bytes, mutation: tuple[str, int, int]) -> bytes:
    """Return ``data`` with one mutation applied; the result always differs from ``data``."""
    kind, pos, value = mutation
    buf = bytearray(data)
    i = pos % len(buf)
    if kind == "flip":
        buf[i] ^= value
    elif kind == "truncate":
        del buf[i:]
    else:
        buf[i:i] = bytes([value]) * (1 + pos % 3)
    assert bytes(buf) != data
    return bytes(buf)
