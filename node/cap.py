"""Alert content: the CAP 1.2 vocabulary and the section plaintext format.

Both parts are pure (no I/O, no clock). The vocabulary (categories, urgencies,
severities, certainties, ack dispositions and the section ids) is what
:mod:`node.compose` accepts from an officer. The format of the sealed sections
is written by the requests :mod:`node.compose` builds
(:mod:`node.officer_requests`) and read back by a receiving node with
:func:`decode_sections`, which holds received text, file names and media types
to the sender's rules. Those single-field rules live in :mod:`node.field_rules`
and the strict JSON reader in :mod:`node.field_errors`; their names are
re-exported here, so ``from node.cap import ...`` keeps working.

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.field_errors import MISSING, FieldErrors, _json_type
from node.field_rules import (
    MAX_FILE_NAME,
    FieldInvalid,
    check_base64_data,
    check_file_name,
    check_media_type,
    check_message_id,
    clean_text,
    format_duration,
    looks_like_duration,
    parse_duration_ms,
    parse_timestamp_ms,
)
from protocol import encoding, fields
from protocol.errors import MalformedError
from protocol.header import MESSAGE_ID_SIZE

__all__ = [
    "ACK",
    "ATTACHMENTS",
    "CATEGORIES",
    "CERTAINTIES",
    "CONTENT_VERSION",
    "DISPOSITIONS",
    "INFO",
    "MAX_ATTACHMENTS",
    "MAX_FILE_NAME",
    "MISSING",
    "SEVERITIES",
    "TEXT_SECTIONS",
    "URGENCIES",
    "Attachment",
    "FieldErrors",
    "FieldInvalid",
    "check_base64_data",
    "check_file_name",
    "check_media_type",
    "check_message_id",
    "clean_text",
    "decode_ack",
    "decode_sections",
    "encode_ack",
    "encode_attachments",
    "encode_info",
    "format_duration",
    "looks_like_duration",
    "parse_duration_ms",
    "parse_timestamp_ms",
    "_json_type",  # tests/node/test_compose.py reads cap._json_type
]

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

_INFO_FIELDS = frozenset({"category", "certainty", "event", "headline", "severity", "urgency", "v"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file attached to an alert: a safe name, a lower-case media type and its bytes."""

    name: str
    media_type: str
    data: bytes


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
