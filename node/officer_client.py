"""The request side of the officer CLI: the HTTP client, its errors, message ids and the alert body.

:mod:`node.officer_cli` parses the command line, runs one command core and
prints; everything a core sends to a node's officer API (:mod:`node.api`) is
built and sent here. :class:`OfficerClient` makes one request at a time with
the API token and turns every failure (an API error answer, no answer, an
answer that is not Heliograph JSON) into an :class:`OfficerError` carrying the
API's stable code, its sentence and its field errors; :class:`UsageFailure` is
a command line argparse could not refuse. :func:`resolve_message_id` turns a
unique prefix of at least 4 hex digits into a full message id by asking the
API's listing, and :func:`alert_body` builds the ``POST /v1/alerts`` body from
``--file`` (strict JSON: no duplicate keys, no NaN) or from the ``--tier``,
``--escalate``, ``--ack-deadline`` and content flags, whose argparse types
(:func:`tier_arg`, :func:`pair_arg`) are here too. The CLI checks only what the
server cannot see; the node validates the rest.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import aiohttp

REQUEST_TIMEOUT_S = 30.0
_ID_RE, _PREFIX_RE = re.compile(r"[0-9a-f]{32}"), re.compile(r"[0-9a-f]{4,31}")
_CONTENT_FLAGS = ("headline", "summary", "details", "instructions", "priority", "tlp", "ttl", "category", "event", "urgency", "severity", "certainty")
_MORE_FLAGS = ("tiers", "escalate", "ack_deadline", "kind", "refs")


class OfficerError(Exception):
    """A failure to report as ``error [CODE]: message`` (exit 1): an API error answer, no answer, a bad file."""

    def __init__(self, code: str, message: str, *, fields: dict[str, str] | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.fields, self.hint = code, message, dict(fields or {}), hint


class UsageFailure(Exception):
    """The command line is wrong in a way argparse cannot see (exit 2)."""


class OfficerClient:
    """One node's officer API with a bearer token; every failure becomes an :class:`OfficerError`."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OfficerClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def download(self, path: str) -> bytes:
        """GET a binary resource (an evidence bundle).

        Raises:
            OfficerError: As :meth:`call`.
        """
        assert self._session is not None, "use the client as an async context manager"
        try:
            async with self._session.get(self.url + path, headers=self._headers) as resp:
                if resp.status == 200 and resp.content_type == "application/octet-stream":
                    return await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise OfficerError("E_UNREACHABLE", f"cannot reach the node at {self.url}: {type(exc).__name__} {exc}".rstrip()) from None
        await self.call("GET", path)  # re-asks for the JSON error, which call() turns into an OfficerError
        raise OfficerError("E_MALFORMED", f"GET {path} did not answer with a bundle")

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """Send one request and return the decoded JSON object of a 2xx answer.

        Raises:
            OfficerError: The API's error (its code, sentence and field errors),
                ``E_UNREACHABLE`` without an answer, ``E_MALFORMED`` for an answer
                that is not a Heliograph JSON body.
        """
        assert self._session is not None, "use the client as an async context manager"
        try:
            async with self._session.request(method, self.url + path, json=body, headers=self._headers) as resp:
                status, content_type, raw = resp.status, resp.content_type, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise OfficerError("E_UNREACHABLE", f"cannot reach the node at {self.url}: {type(exc).__name__} {exc}".rstrip()) from None
        try:
            doc = json.loads(raw) if content_type == "application/json" else None
        except ValueError:
            doc = None
        if 200 <= status < 300 and isinstance(doc, dict):
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            raw_fields = error.get("fields")
            fields = {str(k): str(v) for k, v in raw_fields.items()} if isinstance(raw_fields, dict) else {}
            raise OfficerError(error["code"], str(error.get("message", "")), fields=fields)
        raise OfficerError("E_MALFORMED", f"{method} {path} answered HTTP {status} without a Heliograph JSON body; is {self.url} a node's officer API?")


async def resolve_message_id(client: OfficerClient, given: str, listing: str, key: str) -> str:
    """A full message id from an id or a unique prefix of one listed at ``listing``.

    Raises:
        UsageFailure: ``given`` is neither an id nor a prefix of one, or starts several ids.
        OfficerError: No listed id starts with ``given``, or the listing request failed.
    """
    given = given.lower()
    if _ID_RE.fullmatch(given):
        return given
    if not _PREFIX_RE.fullmatch(given):
        raise UsageFailure(f"{given!r} is not a message id: 32 hex digits, or a unique prefix of at least 4")
    matches = [i["message_id"] for i in (await client.call("GET", listing))[key] if i["message_id"].startswith(given)]
    if not matches:
        raise OfficerError("E_NOT_FOUND", f"no message id here starts with {given}")
    if len(matches) > 1:
        raise UsageFailure(f"{given} is the start of {len(matches)} message ids; give more digits")
    return str(matches[0])


# -- the POST /v1/alerts body -----------------------------------------------------------------


def _duration(text: str) -> str | int:
    return int(text) if text.isascii() and text.isdigit() else text


def tier_arg(text: str) -> dict[str, Any]:
    """The argparse type of ``--tier NAME:MEMBERS:SECTIONS``: one entry of the body's ``tiers``.

    Raises:
        argparse.ArgumentTypeError: Not that form, or no member named.
    """
    parts = text.split(":")
    if len(parts) != 3 or not parts[0] or not parts[1].strip(","):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:member1,member2:section1,section2 (the sections may be empty: headline only)")
    return {"name": parts[0], "recipients": [m for m in parts[1].split(",") if m], "sections": [s for s in parts[2].split(",") if s]}


def pair_arg(count: int, form: str) -> Callable[[str], list[str]]:
    """The argparse type of ``count`` colon-separated parts (``--escalate``, ``--ack-deadline``); ``form`` is for the error."""

    def parse(text: str) -> list[str]:
        parts = text.split(":", count - 1)  # the last part may be an RFC 3339 time with colons
        if len(parts) != count or not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not {form}")
        return parts

    return parse


def _load_json(name: str, stdin: TextIO) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
        return dict(pairs)

    def no_constants(word: str) -> Any:
        raise ValueError(f"{word} is not JSON")

    try:
        text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OfficerError("E_BAD_REQUEST", f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except ValueError as exc:
        raise OfficerError("E_MALFORMED", f"{name} is not valid JSON: {exc}") from None


def alert_body(args: argparse.Namespace) -> Any:
    """The ``POST /v1/alerts`` body from ``--file`` or from the convenience flags; unset flags are left out.

    Raises:
        UsageFailure: ``--file`` with content flags, neither, or ``--escalate`` /
            ``--ack-deadline`` naming a tier no ``--tier`` defines (or twice).
        OfficerError: The file cannot be read or is not strict JSON.
    """
    given = [f for f in (*_CONTENT_FLAGS, *_MORE_FLAGS) if getattr(args, f) not in (None, [])]
    if args.file is not None:
        if given:
            flag = {"tiers": "tier", "refs": "ref"}.get(given[0], given[0]).replace("_", "-")
            raise UsageFailure(f"--file holds the whole alert; it cannot be combined with --{flag}")
        return _load_json(args.file, args.stdin or sys.stdin)
    if not given:
        raise UsageFailure("give the alert with --file ALERT.json, or with --headline, --summary, --tier and the other flags")
    scalars = ("kind", "priority", "tlp", "category", "event", "urgency", "severity", "certainty")
    body: dict[str, Any] = {k: getattr(args, k) for k in scalars if getattr(args, k)}
    if args.ttl is not None:
        body["expires"] = args.ttl if "T" in args.ttl else {"ttl_seconds": int(args.ttl)} if args.ttl.isdigit() else {"ttl": args.ttl}
    sections = {k: getattr(args, k) for k in ("headline", "summary", "details", "instructions") if getattr(args, k) is not None}
    if sections:
        body["sections"] = sections
    tier_list = [dict(t) for t in args.tiers]
    tiers: dict[str, dict[str, Any]] = {}
    for t in tier_list:
        tiers.setdefault(t["name"], t)  # a repeated name is the server's to report, at its path
    for flag, key, pairs in (("--escalate", "escalate_if_unacked", args.escalate), ("--ack-deadline", "ack_deadline", args.ack_deadline)):
        for name, *rest in pairs:
            if name not in tiers or key in tiers[name]:
                raise UsageFailure(f"{flag} {name}:...: " + ("no --tier is named so" if name not in tiers else "given twice for this tier"))
            tiers[name][key] = {"tier": rest[0], "after": _duration(rest[1])} if len(rest) == 2 else _duration(rest[0])
    if tier_list:
        body["tiers"] = tier_list
    if args.refs:
        body["references"] = args.refs
    return body
