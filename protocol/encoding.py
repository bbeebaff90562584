"""Canonical, strict, bounded msgpack: the only serialisation Heliograph signs.

Every signed structure travels as the exact bytes that were signed; this module
makes sure those bytes are also the *only* encoding of their value, so two
implementations never disagree about what was signed.

Canonical form (see docs/PROTOCOL.md, "Canonical encoding"):

* msgpack with the ``bin`` family for bytes and the ``str`` family for text;
* the shortest encoding for every integer, string, binary, array and map header
  (what msgpack-python's packer produces);
* maps have text keys, sorted by their UTF-8 bytes, with no duplicates;
* allowed values: nil, booleans, integers (-2**63 .. 2**64-1), UTF-8 text,
  bytes, arrays and maps. No floats, no extension types (including the
  timestamp extension): times are integer unix milliseconds.

The decoder refuses everything else, plus trailing bytes, nesting deeper than
``max_depth`` and input longer than ``max_size``. Whatever goes wrong, it raises
:class:`~protocol.errors.MalformedError` (or :class:`TooLargeError`, itself a
refusal with its own code) and nothing else.
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocol.errors import MalformedError, TooLargeError

DEFAULT_MAX_SIZE = 1 << 20
"""Default upper bound on the size of one decoded document (1 MiB)."""

DEFAULT_MAX_DEPTH = 8
"""Default nesting limit: the deepest Heliograph structure (the roster) needs 5."""

_ALLOWED_SCALARS = (type(None), bool, int, str, bytes)


_EXACT_SCALARS = frozenset({type(None), bool, int, str, bytes})


def _canonical(value: Any, depth: int, max_depth: int) -> Any:
    """Return ``value`` with maps re-built in sorted key order, checking types.

    Text keys sort by code point, which is the same order as their UTF-8 bytes
    (also for lone surrogates under ``surrogatepass``). Scalars inside a
    container are checked inline instead of by a recursive call.
    """
    if depth > max_depth:
        raise MalformedError(f"nesting deeper than {max_depth}")
    if isinstance(value, _ALLOWED_SCALARS):
        return value
    child = depth + 1
    if isinstance(value, (list, tuple)):
        if value and child > max_depth:
            raise MalformedError(f"nesting deeper than {max_depth}")
        return [item if type(item) in _EXACT_SCALARS else _canonical(item, child, max_depth) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise MalformedError("map keys must be text")
        if value and child > max_depth:
            raise MalformedError(f"nesting deeper than {max_depth}")
        out = {}
        for key in sorted(value):
            item = value[key]
            out[key] = item if type(item) in _EXACT_SCALARS else _canonical(item, child, max_depth)
        return out
    raise MalformedError(f"type {type(value).__name__} cannot be encoded canonically")


def encode(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """Encode ``value`` in canonical msgpack.

    Args:
        value: nil, bool, int, str, bytes, list/tuple or dict with str keys.
        max_depth: Deepest nesting allowed.

    Returns:
        The canonical bytes.

    Raises:
        MalformedError: The value holds a float, a non-text key, an integer out
            of range, text that is not valid Unicode, or nests too deeply.
    """
    canon = _canonical(value, 0, max_depth)
    try:
        return msgpack.packb(canon, use_bin_type=True, strict_types=False)  # type: ignore[no-any-return]
    except (OverflowError, ValueError, TypeError, UnicodeEncodeError) as exc:
        raise MalformedError(f"value cannot be encoded: {exc}") from None


def encode_trusted(value: Any) -> bytes:
    """Encode a value this package built itself already in canonical shape.

    The caller guarantees text keys inserted in sorted order and allowed types
    only; nothing is re-walked. Tests check ``encode_trusted(x) == encode(x)``
    for every structure built this way, and every decoder refuses non-canonical
    bytes, so a mistake cannot go unnoticed.
    """
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Build a map, refusing non-text keys and keys not in strictly ascending order."""
    result: dict[str, Any] = {}
    prev = None
    for key, item in pairs:
        if type(key) is not str:
            raise MalformedError("map keys must be text")
        if prev is not None and key <= prev:
            raise MalformedError(f"duplicate map key {key!r}" if key == prev else "map keys are not in canonical order")
        result[key] = item
        prev = key
    return result


def _check_tree(value: Any, depth: int, max_depth: int) -> None:
    """Refuse floats and nesting deeper than ``max_depth`` (the only things msgpack lets through)."""
    if depth > max_depth:
        raise MalformedError(f"nesting deeper than {max_depth}")
    kind = type(value)
    if kind is list:
        items: Any = value
    elif kind is dict:
        items = value.values()
    elif kind in _EXACT_SCALARS:
        return
    else:
        raise MalformedError(f"type {kind.__name__} is not allowed")
    if not items:
        return
    child = depth + 1
    if child > max_depth:
        raise MalformedError(f"nesting deeper than {max_depth}")
    if {*map(type, items)} <= _EXACT_SCALARS:
        return
    for item in items:
        t = type(item)
        if t is list or t is dict:
            _check_tree(item, child, max_depth)
        elif t not in _EXACT_SCALARS:
            raise MalformedError(f"type {t.__name__} is not allowed")


def _refuse_ext(code: int, data: bytes) -> Any:
    raise MalformedError(f"extension type {code} is not allowed")


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Decode one canonical msgpack document, strictly.

    Args:
        data: The complete document; nothing may follow it.
        max_size: Refuse input longer than this many bytes before parsing.
        max_depth: Refuse nesting deeper than this.

    Returns:
        The decoded value (lists for arrays, dicts for maps).

    Raises:
        TooLargeError: ``data`` is longer than ``max_size``.
        MalformedError: For anything else wrong with ``data``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError("expected bytes")
    if len(data) > max_size:
        raise TooLargeError(f"document of {len(data)} bytes exceeds the limit of {max_size}")
    raw = bytes(data)
    limit = max(len(raw), 1)
    try:
        value = msgpack.unpackb(
            raw,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_pairs_to_dict,
            ext_hook=_refuse_ext,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=limit,
        )
    except MalformedError:
        raise
    except Exception as exc:  # msgpack raises many unrelated types; all mean "malformed"
        raise MalformedError(f"not valid msgpack: {type(exc).__name__}") from None
    _check_tree(value, 0, max_depth)
    # Keys are known sorted and unique and every value is an allowed type, so the
    # canonical encoding of ``value`` is exactly msgpack's: no Python re-walk needed.
    if msgpack.packb(value, use_bin_type=True) != raw:
        raise MalformedError("not in canonical form")
    return value
