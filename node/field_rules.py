"""Value rules for single fields of officer input: durations, times, text, file names, media types.

Each rule is a pure function (no I/O, no clock) that takes a decoded JSON value
and returns it checked and normalised, or raises :class:`FieldInvalid` whose
message is a sentence for the officer. :class:`node.field_errors.FieldErrors`
runs them while reading a request body and files each sentence under its JSON
path; :mod:`node.cap` applies the text, file name and media type rules again to
content a node receives, so a receiver holds a sender to the same rules; and
:mod:`node.config` reads its durations with :func:`parse_duration_ms`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from protocol import fields
from protocol.errors import MalformedError

MAX_FILE_NAME = 255

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_RE = re.compile(r"([1-9][0-9]{0,9})([smhd])")
_RFC3339_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MEDIA_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_MESSAGE_ID_RE = re.compile(r"[0-9a-f]{32}")


class FieldInvalid(Exception):
    """One field's value is invalid; the message is a sentence for the officer."""


def parse_duration_ms(value: Any, *, min_ms: int = 1000, max_ms: int = 30 * _UNITS_MS["d"]) -> int:
    """Read ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or an integer number of seconds.

    Raises:
        FieldInvalid: Another form, or outside ``min_ms .. max_ms``.
    """
    if type(value) is int:
        ms = value * 1000
    elif type(value) is str and (match := _DURATION_RE.fullmatch(value)):
        ms = int(match[1]) * _UNITS_MS[match[2]]
    else:
        raise FieldInvalid('Must be a duration such as "90s", "15m", "2h" or "1d", or a whole number of seconds.')
    if not min_ms <= ms <= max_ms:
        raise FieldInvalid(f"Must be between {format_duration(min_ms)} and {format_duration(max_ms)}.")
    return ms


def looks_like_duration(value: Any) -> bool:
    """True if ``value`` has the form of a duration (bounds not checked)."""
    return type(value) is int or (type(value) is str and _DURATION_RE.fullmatch(value) is not None)


def format_duration(ms: int) -> str:
    """Write milliseconds in the largest unit that divides them, e.g. ``"30d"`` or ``"90s"``."""
    for unit in ("d", "h", "m", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def parse_timestamp_ms(text: str) -> int:
    """Read an RFC 3339 date-time with a time zone (``2026-11-26T12:00:00Z``) as unix ms.

    Upper-case ``T`` and ``Z`` only; fractions beyond milliseconds are truncated.

    Raises:
        FieldInvalid: Not that form, an impossible date or time, or before 1970.
    """
    match = _RFC3339_RE.fullmatch(text)
    if match is None:
        raise FieldInvalid('Must be an RFC 3339 time with a time zone, such as "2026-11-26T12:00:00Z".')
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        ordinal = date(year, month, day).toordinal()
    except ValueError:
        raise FieldInvalid("Is not a real calendar date.") from None
    offset_hours, offset_minutes = (0, 0) if match[8] else (int(match[10]), int(match[11]))
    if hour > 23 or minute > 59 or second > 59 or offset_hours > 23 or offset_minutes > 59:
        raise FieldInvalid("Is not a real time of day or time zone offset.")
    offset = (offset_hours * 60 + offset_minutes) * 60 * (-1 if match[9] == "-" else 1)
    seconds = (ordinal - _EPOCH_ORDINAL) * 86_400 + hour * 3600 + minute * 60 + second - offset
    ms = seconds * 1000 + int((match[7] or "0").ljust(3, "0")[:3])
    if ms < 0:
        raise FieldInvalid("Must not be before 1970.")
    return ms


def clean_text(value: Any, *, single_line: bool, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    """Check officer text and return it NFC-normalised.

    Args:
        value: The decoded JSON value.
        single_line: Refuse line breaks and tabs as well.
        max_chars: Longest length in characters, after normalisation.
        max_bytes: Longest length in UTF-8 bytes, after normalisation.

    Raises:
        FieldInvalid: Not a string, not valid Unicode, empty or blank, a control
            character, or too long.
    """
    if type(value) is not str:
        raise FieldInvalid("Must be a string.")
    bound = min(b for b in (max_chars, max_bytes, 1 << 30) if b is not None)
    if len(value) > 4 * bound:  # too long even after normalisation; don't normalise megabytes
        raise FieldInvalid(_too_long(max_chars, max_bytes))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldInvalid("Is not valid Unicode text (it holds an unpaired surrogate).") from None
    text = unicodedata.normalize("NFC", value)
    bad = (_CONTROL_SINGLE_LINE if single_line else _CONTROL_MULTILINE).search(text)
    if bad:
        allowed = "it must be a single line" if single_line else "only line feed and tab are allowed"
        raise FieldInvalid(f"Contains the control character U+{ord(bad[0]):04X}; {allowed}.")
    if not text.strip():
        raise FieldInvalid("Must not be empty or blank; leave the field out instead.")
    if (max_chars is not None and len(text) > max_chars) or (max_bytes is not None and len(text.encode()) > max_bytes):
        raise FieldInvalid(_too_long(max_chars, max_bytes))
    return text


def _too_long(max_chars: int | None, max_bytes: int | None) -> str:
    return f"Must be at most {max_chars} characters long." if max_chars is not None else f"Must be at most {max_bytes} bytes long in UTF-8."


def check_file_name(value: Any) -> str:
    """Check an attachment's file name: one path component, printable, NFC.

    Raises:
        FieldInvalid: Otherwise.
    """
    name = clean_text(value, single_line=True, max_chars=MAX_FILE_NAME)
    if name != name.strip() or any(c in name for c in "/\\:") or name in (".", ".."):
        raise FieldInvalid("Must be a plain file name: no '/', '\\' or ':', not '.' or '..', no surrounding spaces.")
    return name


def check_media_type(value: Any) -> str:
    """Check a media type such as ``image/jpeg`` (no parameters) and return it in lower case.

    Raises:
        FieldInvalid: Otherwise.
    """
    if type(value) is not str or len(value) > 255 or not _MEDIA_TYPE_RE.fullmatch(value.lower()):
        raise FieldInvalid('Must be a media type such as "image/jpeg", without parameters.')
    return value.lower()


def check_base64_data(value: Any, max_bytes: int) -> bytes:
    """Decode an attachment's canonical standard base64 (docs/PROTOCOL.md 1.6) of 1..``max_bytes`` bytes.

    Raises:
        FieldInvalid: Not a string, not canonical base64, empty or too large.
    """
    if type(value) is not str:
        raise FieldInvalid("Must be a string of base64.")
    if len(value) > 4 * -(-max_bytes // 3):  # refuse before decoding
        raise FieldInvalid(f"Must decode to at most {max_bytes // 1024} KiB.")
    try:
        data = fields.unb64("data", value)
    except MalformedError:
        raise FieldInvalid("Must be standard base64 (RFC 4648) with padding and no line breaks or spaces.") from None
    if not data:
        raise FieldInvalid("Must not be empty.")
    if len(data) > max_bytes:
        raise FieldInvalid(f"Must decode to at most {max_bytes // 1024} KiB.")
    return data


def check_message_id(value: Any) -> bytes:
    """Read a message id written as 32 lower-case hex digits.

    Raises:
        FieldInvalid: Otherwise.
    """
    if type(value) is not str or not _MESSAGE_ID_RE.fullmatch(value):
        raise FieldInvalid("Must be a message id: 32 lower-case hex digits.")
    return bytes.fromhex(value)
