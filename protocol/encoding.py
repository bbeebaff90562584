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


def _canonical(value: Any, depth: int, max_depth: int) -> Any:
    """Return ``value`` with maps re-built in sorted key order, checking types."""
    if depth > max_depth:
        raise MalformedError(f"nesting deeper than {max_depth}")
    if isinstance(value, _ALLOWED_SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1, max_depth) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise MalformedError("map keys must be text")
        return {key: _canonical(value[key], depth + 1, max_depth) for key in sorted(value, key=_key_order)}
    raise MalformedError(f"type {type(value).__name__} cannot be encoded canonically")


def _key_order(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


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


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if not isinstance(key, str):
            raise MalformedError("map keys must be text")
        if key in result:
            raise MalformedError(f"duplicate map key {key!r}")
        result[key] = item
    return result


def _check_tree(value: Any, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise MalformedError(f"nesting deeper than {max_depth}")
    if isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1, max_depth)
    elif isinstance(value, dict):
        for item in value.values():
            _check_tree(item, depth + 1, max_depth)
    elif not isinstance(value, _ALLOWED_SCALARS):
        raise MalformedError(f"type {type(value).__name__} is not allowed")


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
    if encode(value, max_depth=max_depth) != raw:
        raise MalformedError("not in canonical form")
    return value
