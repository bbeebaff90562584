"""Canonical encoding: round trips, and a strict, bounded decoder."""

from __future__ import annotations

import contextlib
import time

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.encoding import decode, encode
from protocol.errors import MalformedError, TooLargeError

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=20) | st.binary(max_size=40)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


@given(values)
def test_round_trip(value: object) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


@given(st.dictionaries(st.text(max_size=6), st.integers(min_value=0, max_value=1000), min_size=2, max_size=8))
def test_map_keys_are_sorted_by_utf8_bytes(value: dict[str, int]) -> None:
    decoded_keys = list(msgpack.unpackb(encode(value), raw=False).keys())
    assert decoded_keys == sorted(value, key=lambda k: k.encode())


@given(st.binary(max_size=200))
def test_decoder_raises_only_malformed_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(MalformedError):
        decode(data)


@given(values, st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_refused_or_a_different_canonical_value(value: object, pos: int, delta: int) -> None:
    data = bytearray(encode(value))
    i = pos % len(data)
    data[i] = (data[i] + delta + 1) % 256
    try:
        again = decode(bytes(data))
    except MalformedError:
        return
    assert encode(again) == bytes(data)


MALFORMED = {
    "empty": b"",
    "reserved byte 0xc1": b"\xc1",
    "truncated str": b"\xa5ab",
    "truncated map": b"\x82\xa1a\x01",
    "trailing bytes": b"\x01\x02",
    "float32": b"\xca\x00\x00\x00\x00",
    "float64": b"\xcb\x00\x00\x00\x00\x00\x00\x00\x00",
    "ext fixext1": b"\xd4\x01\x00",
    "timestamp ext -1": b"\xd6\xff\x00\x00\x00\x01",
    "duplicate key": b"\x82\xa1a\x01\xa1a\x02",
    "unsorted keys": b"\x82\xa1b\x01\xa1a\x02",
    "int key": b"\x81\x01\x01",
    "bin key": b"\x81\xc4\x01a\x01",
    "non-minimal uint8": b"\xcc\x01",
    "non-minimal uint16": b"\xcd\x00\x10",
    "non-minimal int8 positive": b"\xd0\x05",
    "str8 for short str": b"\xd9\x01a",
    "array16 for short array": b"\xdc\x00\x01\x01",
    "map16 for short map": b"\xde\x00\x01\xa1a\x01",
    "str as raw bytes (invalid utf-8)": b"\xa2\xff\xfe",
    "huge str length": b"\xdb\xff\xff\xff\xff",
    "huge bin length": b"\xc6\xff\xff\xff\xff",
    "huge array length": b"\xdd\xff\xff\xff\xff",
    "huge map length": b"\xdf\xff\xff\xff\xff",
    "huge ext length": b"\xc9\xff\xff\xff\xff\x01",
    "deep nesting": b"\x91" * 100 + b"\xc0",
    "very deep nesting": b"\x91" * 100_000 + b"\xc0",
    "deep maps": b"\x81\xa1a" * 50 + b"\xc0",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_corpus_is_refused_fast(name: str) -> None:
    start = time.perf_counter()
    with pytest.raises(MalformedError):
        decode(MALFORMED[name], max_size=1 << 20)
    assert time.perf_counter() - start < 0.5, "refusal must not allocate or loop on the declared length"


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(TooLargeError) as info:
        decode(b"\xc0" * 101, max_size=100)
    assert info.value.code == "E_TOO_LARGE"


def test_depth_limit_is_configurable() -> None:
    nested = encode([[[1]]])
    assert decode(nested, max_depth=3) == [[[1]]]
    with pytest.raises(MalformedError):
        decode(nested, max_depth=2)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(MalformedError):
        decode("text")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1.5, {1: 2}, {"a": 1.0}, [object()], 2**64, -(2**63) - 1, "\ud800", [[[[[[[[[[1]]]]]]]]]]])
def test_encoder_refuses_what_is_not_canonical(value: object) -> None:
    with pytest.raises(MalformedError):
        encode(value)


def test_tuples_encode_as_arrays() -> None:
    assert encode((1, 2)) == encode([1, 2])
