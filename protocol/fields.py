"""Small strict readers shared by every ``from_bytes``/``from_wire`` parser.

Parsers read decoded maps through these helpers so that a missing field, an
unknown field or a field of the wrong type always becomes a precise
:class:`~protocol.errors.MalformedError`. Nothing here mutates its input.
"""

from __future__ import annotations

import base64
import binascii
import operator
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from protocol.errors import MalformedError, UnsupportedVersionError

T = TypeVar("T")

MEMBER_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
MEMBER_ID_MAX = 63
NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
U64_MAX = (1 << 64) - 1


def check_keys(where: str, value: Any, required: frozenset[str], optional: frozenset[str] = frozenset(), *, version: int | None = None) -> Mapping[str, Any]:
    """Check that ``value`` is a map holding every required and no unknown key.

    Absent optional fields are omitted on the wire, never sent as nil, so a nil
    value is refused: every value has exactly one encoding. With ``version``,
    the ``v`` field is checked first, so a newer structure is reported as
    unsupported rather than malformed.

    Raises:
        MalformedError: Wrong type, missing, unknown or nil fields.
        UnsupportedVersionError: ``v`` is an integer other than ``version``.
    """
    if not isinstance(value, dict):
        raise MalformedError(f"{where}: expected a map")
    if version is not None:
        if "v" not in value:
            raise MalformedError(f"{where}: missing field(s) ['v']")
        check_version(where, value["v"], version)
    keys = value.keys()
    missing = required - keys
    if missing:
        raise MalformedError(f"{where}: missing field(s) {sorted(missing)}")
    unknown = keys - required - optional
    if unknown:
        raise MalformedError(f"{where}: unknown field(s) {sorted(unknown)}")
    nil = [k for k, v in value.items() if v is None]
    if nil:
        raise MalformedError(f"{where}: field(s) {sorted(nil)} are nil; omit absent fields instead")
    return value


def string_map(where: str, value: Any, max_items: int) -> dict[str, Any]:
    """Return ``value`` if it is a map with text keys and at most ``max_items`` entries.

    Raises:
        MalformedError: Otherwise.
    """
    if not isinstance(value, dict) or not all(type(k) is str for k in value):
        raise MalformedError(f"{where}: expected a map with text keys")
    if len(value) > max_items:
        raise MalformedError(f"{where}: more than {max_items} entries")
    return value


def check_version(where: str, value: Any, supported: int) -> int:
    """Check a ``v`` field.

    Raises:
        MalformedError: Not an integer.
        UnsupportedVersionError: An integer other than ``supported``.
    """
    if type(value) is not int:
        raise MalformedError(f"{where}: version must be an integer")
    if value != supported:
        raise UnsupportedVersionError(f"{where}: version {value} is not supported (expected {supported})")
    return value


def typed(where: str, value: Any, kind: type[T]) -> T:
    """Return ``value`` if it is exactly of ``kind`` (bool is not an int here).

    Raises:
        MalformedError: Otherwise.
    """
    if type(value) is not kind:
        raise MalformedError(f"{where}: expected {kind.__name__}")
    return value


def fixed_bytes(where: str, value: Any, size: int) -> bytes:
    """Return ``value`` if it is bytes of exactly ``size``.

    Raises:
        MalformedError: Otherwise.
    """
    if type(value) is not bytes or len(value) != size:
        raise MalformedError(f"{where}: expected {size} bytes")
    return value


def timestamp(where: str, value: Any) -> int:
    """Return ``value`` if it is a non-negative integer (unix milliseconds).

    Raises:
        MalformedError: Otherwise.
    """
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise MalformedError(f"{where}: expected a non-negative integer time in unix milliseconds")
    return value


def member_id(where: str, value: Any) -> str:
    """Return ``value`` if it is a valid member id (a short DNS-like name).

    Raises:
        MalformedError: Otherwise.
    """
    if type(value) is not str or len(value) > MEMBER_ID_MAX or not MEMBER_ID_RE.fullmatch(value):
        raise MalformedError(f"{where}: {value!r} is not a valid member id")
    return value


_STR_ONLY = frozenset({str})
_VALID_MEMBER_IDS: set[str] = set()
"""Memo of ids that passed :func:`member_id` (a pure predicate), bounded in size."""


def member_ids(where: str, values: tuple[Any, ...]) -> tuple[str, ...]:
    """Check many member ids at once; ids seen valid before cost one set lookup.

    Raises:
        MalformedError: Any of ``values`` is not a valid member id (the first is named).
    """
    if {*map(type, values)} <= _STR_ONLY and _VALID_MEMBER_IDS.issuperset(values):
        return values
    for value in values:
        member_id(where, value)
    if len(_VALID_MEMBER_IDS) > 1 << 16:
        _VALID_MEMBER_IDS.clear()
    _VALID_MEMBER_IDS.update(values)
    return values


def short_name(where: str, value: Any) -> str:
    """Return ``value`` if it is a valid section or tier name.

    Raises:
        MalformedError: Otherwise.
    """
    if type(value) is not str or not NAME_RE.fullmatch(value):
        raise MalformedError(f"{where}: {value!r} is not a valid name ([a-z][a-z0-9_-]{{0,31}})")
    return value


def one_of(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``.

    Raises:
        MalformedError: Otherwise.
    """
    if type(value) is not str or value not in allowed:
        raise MalformedError(f"{where}: expected one of {', '.join(allowed)}")
    return value


def sorted_unique(where: str, items: tuple[T, ...]) -> tuple[T, ...]:
    """Return ``items`` if strictly ascending (sorted, no duplicates).

    Raises:
        MalformedError: Otherwise.
    """
    if not all(map(operator.lt, items, items[1:])):  # type: ignore[arg-type]
        raise MalformedError(f"{where}: must be sorted with no duplicates")
    return items


def array(where: str, value: Any, max_items: int) -> list[Any]:
    """Return ``value`` if it is an array of at most ``max_items``.

    Raises:
        MalformedError: Otherwise.
    """
    if not isinstance(value, list):
        raise MalformedError(f"{where}: expected an array")
    if len(value) > max_items:
        raise MalformedError(f"{where}: more than {max_items} items")
    return value


def b64(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def unb64(where: str, text: object) -> bytes:
    """Decode canonical standard base64 (re-encoding must give ``text`` back).

    Raises:
        MalformedError: Not text, not base64, or not canonical.
    """
    if not isinstance(text, str):
        raise MalformedError(f"{where}: expected base64 text")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedError(f"{where}: not valid base64") from None
    if b64(raw) != text:
        raise MalformedError(f"{where}: not canonical base64")
    return raw
