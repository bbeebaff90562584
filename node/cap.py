"""Alert content: the CAP 1.2 vocabulary, value rules, and the section plaintext format.

Three parts, all pure (no I/O, no clock): the value rules the officer API
applies to single fields (durations, RFC 3339 times, text, file names, media
types, base64, message ids), each raising :class:`FieldInvalid` with a sentence;
:class:`FieldErrors`, the strict JSON reader :mod:`node.compose` builds its
requests with, which collects every error under its JSON path; and the format
of the sealed sections, written by ``node.compose`` and read back by a
receiving node with :func:`decode_sections`.

Section plaintext (what ``seal`` encrypts, one entry per section id). ``enc``
is the canonical msgpack of docs/PROTOCOL.md section 2; every map below is a
versioned structure with the rules of section 2.4 (``v`` first, exact field
set, no nil, exact types)::

    info         enc({category, certainty, event, headline, severity, urgency, v: 1})
                 every value a str; always sealed, and in every tier
    summary      UTF-8 text, no BOM, no terminator
    details      UTF-8 text
    instructions UTF-8 text
    attachments  enc({items: [{data: bin, name: str, type: str}, ...], v: 1})
                 1..MAX_ATTACHMENTS items, in the order the officer gave them
    ack          enc({comment?: str, disposition: str, reason?: str, ref: bin(16), v: 1})
                 the only section of an ``ack`` message; reason present iff
                 disposition is "rejected"; ref = the acknowledged message id

Text (event, headline, the three text sections, ack reason and comment) is
NFC-normalised by the sender, is never empty or blank, and holds no control
character (Unicode Cc) other than line feed and tab; event and headline are a
single line (no line feed, tab, U+2028 or U+2029). Canonical msgpack rather
than JSON because the project already has one strict canonical encoding with a
decoder that refuses every alternative form, and attachments travel as raw
bytes, not base64, inside a 1 MiB envelope.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol import encoding, fields
from protocol.errors import MalformedError, ValidationError
from protocol.header import MESSAGE_ID_SIZE

CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
DISPOSITIONS = ("received", "accepted", "rejected")
"""Acknowledgement dispositions an officer can give."""

INFO = "info"
TEXT_SECTIONS = ("summary", "details", "instructions")
ATTACHMENTS = "attachments"
ACK = "ack"
CONTENT_VERSION = 1
MAX_ATTACHMENTS = 5
MAX_FILE_NAME = 255

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_RE = re.compile(r"([1-9][0-9]{0,9})([smhd])")
_RFC3339_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MEDIA_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_MESSAGE_ID_RE = re.compile(r"[0-9a-f]{32}")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number", type(None): "null"}
_INFO_FIELDS = frozenset({"category", "certainty", "event", "headline", "severity", "urgency", "v"})


# -- value rules ------------------------------------------------------------------------------


class FieldInvalid(Exception):
    """One field's value is invalid; the message is a sentence for the officer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file attached to an alert: a safe name, a lower-case media type and its bytes."""

    name: str
    media_type: str
    data: bytes


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


# -- reading officer JSON ---------------------------------------------------------------------


MISSING: Any = object()
"""Stands for a field absent from the request; every reader below passes it through as None."""


class FieldErrors:
    """Reads decoded officer JSON strictly, collecting ``{path: sentence}`` instead of stopping.

    Each reader returns the checked value, or None after recording why (or
    when handed :data:`MISSING`). The first error at a path wins, and at most
    ``limit`` are kept, so a hostile body cannot make the answer huge.
    """

    def __init__(self, limit: int) -> None:
        self.fields: dict[str, str] = {}
        self._limit = limit

    def add(self, path: str, message: str) -> None:
        if len(self.fields) < self._limit:
            self.fields.setdefault(path, message)

    def check(self, path: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a check raising :class:`FieldInvalid`; record its sentence and return None on failure."""
        try:
            return fn(*args, **kwargs)
        except FieldInvalid as exc:
            self.add(path, str(exc))
            return None

    def raise_if_any(self) -> None:
        """Raise if anything was recorded.

        Raises:
            ValidationError: With every recorded path and sentence.
        """
        if self.fields:
            raise ValidationError(self.fields)

    def obj(self, path: str, value: Any, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any] | None:
        """A JSON object; unknown keys and missing required keys are errors at their own paths."""
        if value is MISSING:
            return None
        if type(value) is not dict:
            self.add(path, f"Must be a JSON object, not {_json_type(value)}.")
            return None
        known = {*required, *optional}
        for key in value:
            if key not in known:
                self.add(_key_path(path, key), "Is not a known field.")
        for key in sorted(required):
            if key not in value:
                self.add(_key_path(path, key), "Is required.")
        return value

    def array(self, path: str, value: Any, *, min_items: int, max_items: int, what: str) -> list[Any] | None:
        """A JSON array; beyond ``max_items`` only the first ``max_items`` are returned for checking."""
        if value is MISSING:
            return None
        if type(value) is not list:
            self.add(path, f"Must be a JSON array, not {_json_type(value)}.")
            return None
        if len(value) < min_items:
            self.add(path, f"Must hold at least {min_items} {what}.")
        if len(value) > max_items:
            self.add(path, f"Must hold at most {max_items} {what}.")
        return value[:max_items]

    def enum(self, path: str, value: Any, allowed: tuple[str, ...]) -> str | None:
        """Exactly one of ``allowed`` (case-sensitive); a near miss gets a "did you mean"."""
        if value is MISSING:
            return None
        if type(value) is str and value in allowed:
            return value
        message = f"Must be one of {', '.join(allowed)}."
        if type(value) is str and len(value) < 40:
            folded = "tlp:clear" if value.upper() in ("WHITE", "TLP:WHITE") else value.casefold()
            guess = next((a for a in allowed if a.casefold() in (folded, "tlp:" + folded)), None)
            if guess is not None:
                message += f' Did you mean "{guess}"?'
        self.add(path, message)
        return None

    def text(self, path: str, value: Any, **rules: Any) -> str | None:
        """Officer text, checked and normalised by :func:`clean_text` with ``rules``."""
        return None if value is MISSING else self.check(path, clean_text, value, **rules)

    def short_name(self, path: str, value: Any) -> str | None:
        """A tier name (docs/PROTOCOL.md 1.4)."""
        if value is MISSING:
            return None
        if type(value) is not str or not fields.NAME_RE.fullmatch(value):
            self.add(path, "Must be a short name: a lower-case letter, then up to 31 lower-case letters, digits, '_' or '-'.")
            return None
        return value


def _key_path(parent: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return key if parent == "$" else f"{parent}.{key}"
    return f"{parent}[{json.dumps(key if len(key) <= 40 else key[:40] + '...')}]"


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


# -- section plaintext ------------------------------------------------------------------------


def encode_info(*, category: str, certainty: str, event: str, headline: str, severity: str, urgency: str) -> bytes:
    """The ``info`` section plaintext."""
    return encoding.encode(
        {"category": category, "certainty": certainty, "event": event, "headline": headline, "severity": severity, "urgency": urgency, "v": CONTENT_VERSION}
    )


def encode_attachments(attachments: tuple[Attachment, ...]) -> bytes:
    """The ``attachments`` section plaintext."""
    items = [{"data": a.data, "name": a.name, "type": a.media_type} for a in attachments]
    return encoding.encode({"items": items, "v": CONTENT_VERSION})


def encode_ack(*, ref: bytes, disposition: str, reason: str | None, comment: str | None) -> bytes:
    """The ``ack`` section plaintext; absent optional fields are omitted.

    Raises:
        MalformedError: ``ref`` is not a 16-byte message id.
    """
    fields.fixed_bytes("ack ref", ref, MESSAGE_ID_SIZE)
    doc: dict[str, Any] = {"disposition": disposition, "ref": ref, "v": CONTENT_VERSION}
    if reason is not None:
        doc["reason"] = reason
    if comment is not None:
        doc["comment"] = comment
    return encoding.encode(doc)


def decode_sections(opened: Mapping[str, bytes]) -> dict[str, Any]:
    """Turn opened section plaintexts into the JSON shape an inbox shows.

    Sections that are missing (withheld from this tier) are simply absent from
    the result. The ``info`` fields are flattened into the top level; text
    sections become strings; ``attachments`` a list of ``{name, type, size,
    data}`` with ``data`` in base64; ``ack`` a map with ``ref`` in hex.

    Raises:
        MalformedError: An unknown section id, or a section whose plaintext
            does not follow the format in this module's docstring.
    """
    unknown = set(opened) - {INFO, *TEXT_SECTIONS, ATTACHMENTS, ACK}
    if unknown:
        raise MalformedError(f"unknown alert section(s) {sorted(unknown)!r}")
    out: dict[str, Any] = {}
    if INFO in opened:
        out.update(_decode_info(opened[INFO]))
    for sid in TEXT_SECTIONS:
        if sid in opened:
            out[sid] = _received_text(sid, _utf8(sid, opened[sid]), single_line=False)
    if ATTACHMENTS in opened:
        out[ATTACHMENTS] = _decode_attachments(opened[ATTACHMENTS])
    if ACK in opened:
        out[ACK] = _decode_ack(opened[ACK])
    return out


def _content_map(where: str, data: bytes, required: frozenset[str], optional: frozenset[str] = frozenset()) -> Mapping[str, Any]:
    return fields.check_keys(where, encoding.decode(data), required, optional, version=CONTENT_VERSION)


def _utf8(where: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"{where}: not valid UTF-8") from None


def _received_text(where: str, value: Any, *, single_line: bool) -> str:
    """Check a text field of received content with the sender's rules (no size limits)."""
    try:
        text = clean_text(value, single_line=single_line)
    except FieldInvalid as exc:
        raise MalformedError(f"{where}: {exc}") from None
    if text != value:
        raise MalformedError(f"{where}: not in Unicode normal form C")
    return text


def _decode_info(data: bytes) -> dict[str, str]:
    m = _content_map("info", data, _INFO_FIELDS)
    for name, allowed in (("category", CATEGORIES), ("certainty", CERTAINTIES), ("severity", SEVERITIES), ("urgency", URGENCIES)):
        fields.one_of(f"info.{name}", m[name], allowed)
    for name in ("event", "headline"):
        _received_text(f"info.{name}", m[name], single_line=True)
    return {k: m[k] for k in sorted(_INFO_FIELDS - {"v"})}


def _decode_attachments(data: bytes) -> list[dict[str, Any]]:
    m = _content_map("attachments", data, frozenset({"items", "v"}))
    items = fields.array("attachments.items", m["items"], MAX_ATTACHMENTS)
    if not items:
        raise MalformedError("attachments: at least one item is required")
    out = []
    for i, item in enumerate(items):
        where = f"attachments.items[{i}]"
        a = fields.check_keys(where, item, frozenset({"data", "name", "type"}))
        data_bytes = fields.typed(f"{where}.data", a["data"], bytes)
        try:
            name, media_type = check_file_name(a["name"]), check_media_type(a["type"])
        except FieldInvalid as exc:
            raise MalformedError(f"{where}: {exc}") from None
        if name != a["name"] or media_type != a["type"]:
            raise MalformedError(f"{where}: name or type not in canonical form")
        out.append({"name": name, "type": media_type, "size": len(data_bytes), "data": fields.b64(data_bytes)})
    return out


def _decode_ack(data: bytes) -> dict[str, Any]:
    m = _content_map("ack", data, frozenset({"disposition", "ref", "v"}), frozenset({"reason", "comment"}))
    disposition = fields.one_of("ack.disposition", m["disposition"], DISPOSITIONS)
    if ("reason" in m) != (disposition == "rejected"):
        raise MalformedError("ack: a reason is required for, and only for, a rejection")
    out: dict[str, Any] = {"disposition": disposition, "ref": fields.fixed_bytes("ack.ref", m["ref"], MESSAGE_ID_SIZE).hex()}
    for name in ("reason", "comment"):
        if name in m:
            out[name] = _received_text(f"ack.{name}", m[name], single_line=False)
    return out


def decode_ack(data: bytes) -> dict[str, Any]:
    """Decode an ``ack`` section: ``{disposition, ref (hex), reason?, comment?}``.

    Raises:
        MalformedError: The plaintext does not follow the ``ack`` format.
    """
    return _decode_ack(data)
