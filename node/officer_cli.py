"""``heliograph send | inbox | ack | status``: the officer's scripting CLI over the officer API.

It speaks only HTTP to a node (:mod:`node.api`), with an API token as
``Authorization: Bearer``::

    export HELIOGRAPH_URL=http://127.0.0.1:7200 HELIOGRAPH_TOKEN=hgt_...
    heliograph send --headline "Suspects heading north" --summary "Grey van" \\
        --priority FLASH --tlp TLP:AMBER --ttl 6h --category Security --event "Robbery" \\
        --urgency Immediate --severity Severe --certainty Likely \\
        --tier action:fr-police:summary,details --tier inform:ke-fiu:summary \\
        --escalate action:inform:10m --ack-deadline action:15m --wait
    heliograph send --file alert.json            # the POST /v1/alerts body; '-' reads stdin
    heliograph inbox [--all]                     # live items; --all adds expired and purged ones
    heliograph inbox show ID
    heliograph ack ID --accept | --reject REASON | --received [--comment TEXT]
    heliograph status [ID] [--wait SECONDS]

Every command takes ``--url`` (default ``$HELIOGRAPH_URL``, else
``http://127.0.0.1:7200``), ``--token`` (default ``$HELIOGRAPH_TOKEN``; the
token is never printed, and the environment keeps it out of ``ps``) and
``--json`` (the API's JSON on stdout, for scripts). An ID may be given as a
unique prefix of at least 4 hex digits. The CLI checks only what the server
cannot see (the ``--tier`` syntax, a tier named by ``--escalate``); the node
validates the alert and its field errors are printed one per line under their
JSON path. ``send`` prints the new message id on stdout, alone, so
``ID=$(heliograph send ...)`` works; the live delivery view of ``--wait`` goes
to stderr.

Exit status: 0 done; 1 error (``error [CODE]: sentence``, field errors,
``hint: ...`` on stderr); 2 usage; 3 ``--wait`` ended before every recipient
that is not held back for escalation had the alert (timeout, or a hop rejected
or expired it). Command cores are async (:func:`run`) so tests can drive them
against servers on their own event loop; the clock and the output streams are
parameters of :func:`register`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO, TypeAlias
from urllib.parse import urlsplit

import aiohttp
from rich.console import Console, RenderableType
from rich.live import Live

from gateway.clock import Clock, SystemClock
from node import officer_views as views

DEFAULT_URL = "http://127.0.0.1:7200"
URL_ENV, TOKEN_ENV = "HELIOGRAPH_URL", "HELIOGRAPH_TOKEN"
DEFAULT_WAIT_S = 120.0
POLL_S = 1.0
REQUEST_TIMEOUT_S = 30.0
PIPE_WIDTH = 200
"""Console width when the output is not a terminal and $COLUMNS is unset."""
EXIT_ERROR, EXIT_USAGE, EXIT_NOT_DELIVERED = 1, 2, 3
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,512}")
_ID_RE, _PREFIX_RE = re.compile(r"[0-9a-f]{32}"), re.compile(r"[0-9a-f]{4,31}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HINTS = {
    "E_UNAUTHENTICATED": f"Check --token or ${TOKEN_ENV}; an operator issues API tokens with `heliograph node user token`.",
    "E_FORBIDDEN": "Your account's role does not allow this; ask a supervisor.",
    "E_VALIDATION": "Correct the fields named above and send again.",
    "E_NOT_FOUND": "`heliograph inbox` and `heliograph status` list the message ids you can use.",
    "E_UNREACHABLE": f"Is the node running? Check --url or ${URL_ENV}.",
}
_CONTENT_FLAGS = ("headline", "summary", "details", "instructions", "priority", "tlp", "ttl", "category", "event", "urgency", "severity", "certainty")
_MORE_FLAGS = ("tiers", "escalate", "ack_deadline", "kind", "refs")


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class OfficerError(Exception):
    """A failure to report as ``error [CODE]: message`` (exit 1): an API error answer, no answer, a bad file."""

    def __init__(self, code: str, message: str, *, fields: dict[str, str] | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.fields, self.hint = code, message, dict(fields or {}), hint


class UsageFailure(Exception):
    """The command line is wrong in a way argparse cannot see (exit 2)."""


class Terminal:
    """Where output goes: stdout for results, stderr for errors and the live view."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err

    def console(self, *, stderr: bool = False) -> Console:
        stream = self.err if stderr else self.out
        width = None if stream.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH
        return Console(file=stream, width=width, highlight=False, emoji=False)

    def show(self, renderable: RenderableType) -> None:
        self.console().print(renderable)

    def json(self, doc: Any) -> None:
        self.out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")

    def line(self, text: str, *, stderr: bool = False) -> None:
        print(_UNPRINTABLE.sub("?", text), file=self.err if stderr else self.out, flush=True)


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


def _client(args: argparse.Namespace, term: Terminal) -> OfficerClient:
    url = getattr(args, "url", None) or os.environ.get(URL_ENV) or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageFailure(f"--url must be an http:// or https:// URL, not {url!r}")
    if not token:
        raise OfficerError("E_UNAUTHENTICATED", f"no API token: pass --token or set ${TOKEN_ENV}")
    if not _TOKEN_RE.fullmatch(token):
        raise OfficerError("E_UNAUTHENTICATED", "the API token holds spaces or characters a token never has")  # never echo it
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        term.line(f"warning: the API token travels unencrypted to {parts.hostname}; use https:// beyond this host", stderr=True)
    return OfficerClient(url, token)


def _report(term: Terminal, exc: OfficerError) -> int:
    term.line(f"error [{exc.code}]: {exc.message}", stderr=True)
    for path, sentence in exc.fields.items():
        term.line(f"  {path}: {sentence}", stderr=True)
    hint = exc.hint or _HINTS.get(exc.code)
    if hint:
        term.line(f"hint: {hint}", stderr=True)
    return EXIT_ERROR


async def run(args: argparse.Namespace) -> int:
    """Run the parsed command (``args.core``) and return the exit status; errors are printed, not raised."""
    term = Terminal(args.out or sys.stdout, args.err or sys.stderr)
    args.json = getattr(args, "json", False)
    try:
        async with _client(args, term) as client:
            code: int = await args.core(args, term, client)
            return code
    except OfficerError as exc:
        return _report(term, exc)
    except UsageFailure as exc:
        term.line(f"error: {exc}", stderr=True)
        return EXIT_USAGE


def handle(args: argparse.Namespace) -> int:
    """The synchronous handler ``node.cli.main`` calls."""
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


async def _resolve(client: OfficerClient, given: str, listing: str, key: str) -> str:
    """A full message id from an id or a unique prefix of one listed at ``listing``."""
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


# -- send -------------------------------------------------------------------------------------


def _duration(text: str) -> str | int:
    return int(text) if text.isascii() and text.isdigit() else text


def _tier_arg(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) != 3 or not parts[0] or not parts[1].strip(","):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:member1,member2:section1,section2 (the sections may be empty: headline only)")
    return {"name": parts[0], "recipients": [m for m in parts[1].split(",") if m], "sections": [s for s in parts[2].split(",") if s]}


def _pair_arg(count: int, form: str) -> Callable[[str], list[str]]:
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


async def _wait(args: argparse.Namespace, term: Terminal, client: OfficerClient, message_id: str, timeout_s: float) -> tuple[dict[str, Any], bool]:
    """Poll the alert's status until no recipient is pending or ``timeout_s`` passes; True if every one has it."""
    clock: Clock = args.clock
    start = clock.monotonic()
    live = None if args.json else Live(console=term.console(stderr=True), auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
    with live or contextlib.nullcontext():
        while True:
            board = await client.call("GET", f"/v1/alerts/{message_id}")
            waited = clock.monotonic() - start
            if live is not None:
                live.update(views.progress_view(board, waited_s=waited, timeout_s=timeout_s), refresh=True)
            delivered, pending, failed, _held = views.delivery_counts(board)
            if pending == 0 or waited >= timeout_s:
                break
            await clock.sleep(min(POLL_S, timeout_s - waited))
    if live is not None and not live.console.is_terminal:
        live.console.line()  # rich ends the final frame with a newline only on a terminal
    complete = pending == 0 and failed == 0
    if complete:
        term.line(f"delivered to every recipient ({delivered})", stderr=True)
    else:
        missing = ", ".join(f"{r['member']} {r['state']}" for r in board["recipients"] if r["state"] not in views.DELIVERED_STATES | {"held"})
        term.line(f"not delivered to every recipient after {waited:.0f}s: {missing}", stderr=True)
        term.line(f"hint: `heliograph status {message_id}` shows each hop's receipts", stderr=True)
    return board, complete


async def _send(args: argparse.Namespace, term: Terminal, client: OfficerClient) -> int:
    answer = await client.call("POST", "/v1/alerts", alert_body(args))
    message_id = str(answer["message_id"])
    if not args.json:
        term.line(message_id)
    if args.wait is None:
        if args.json:
            term.json(answer)
        return 0
    board, complete = await _wait(args, term, client, message_id, args.wait)
    if args.json:
        term.json(board)
    return 0 if complete else EXIT_NOT_DELIVERED


# -- inbox, ack, status -----------------------------------------------------------------------


async def _inbox(args: argparse.Namespace, term: Terminal, client: OfficerClient) -> int:
    items, now = (await client.call("GET", "/v1/inbox"))["inbox"], args.clock.now_ms()
    shown = items if args.all else [i for i in items if not i["purged"] and i["expires"] > now]
    if args.json:
        term.json({"inbox": shown})
        return 0
    if shown:
        term.show(views.inbox_table(shown, now))
    else:
        term.line("the inbox is empty")
    if len(items) > len(shown):
        term.line(f"{len(items) - len(shown)} expired item(s) not shown; --all shows them")
    return 0


async def _inbox_show(args: argparse.Namespace, term: Terminal, client: OfficerClient) -> int:
    message_id = await _resolve(client, args.id, "/v1/inbox", "inbox")
    item = await client.call("GET", f"/v1/inbox/{message_id}")
    if args.json:
        term.json(item)
    else:
        term.show(views.inbox_item_view(item, args.clock.now_ms()))
    return 0


async def _ack(args: argparse.Namespace, term: Terminal, client: OfficerClient) -> int:
    message_id = await _resolve(client, args.id, "/v1/inbox", "inbox")
    disposition = "accepted" if args.accept else "received" if args.received else "rejected"
    body = {"disposition": disposition} | ({"reason": args.reject} if args.reject is not None else {})
    answer = await client.call("POST", f"/v1/inbox/{message_id}/ack", body | ({"comment": args.comment} if args.comment is not None else {}))
    if args.json:
        term.json(answer)
    else:
        term.line(f"{disposition} {message_id}; ack message {answer['ack_message_id']} is on its way to the sender")
    return 0


async def _status(args: argparse.Namespace, term: Terminal, client: OfficerClient) -> int:
    now = args.clock.now_ms()
    if args.id is None:
        if args.wait is not None:
            raise UsageFailure("--wait needs the ID of the alert to wait for")
        doc = await client.call("GET", "/v1/alerts")
        if args.json:
            term.json(doc)
        elif doc["alerts"]:
            term.show(views.alerts_table(doc["alerts"], now))
        else:
            term.line("no alerts sent yet")
        return 0
    message_id = await _resolve(client, args.id, "/v1/alerts", "alerts")
    if args.export is not None:
        bundle = await client.download(f"/v1/alerts/{message_id}/evidence")
        Path(args.export).write_bytes(bundle)
        term.line(f"wrote the evidence bundle of {message_id} ({len(bundle)} bytes) to {args.export}")
        term.line(f"check it offline with: heliograph verify receipts {args.export} --roster ROSTER")
        return 0
    complete = True
    if args.wait is not None:
        board, complete = await _wait(args, term, client, message_id, args.wait)
    else:
        board = await client.call("GET", f"/v1/alerts/{message_id}")
    if args.json:
        term.json(board)
    else:
        term.show(views.board_view(board, args.clock.now_ms()))
    return 0 if complete else EXIT_NOT_DELIVERED


# -- argparse ---------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 86400")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps a nested subcommand's defaults from overwriting options given before it.
    parser.add_argument("--url", default=argparse.SUPPRESS, help=f"the node's officer API (default ${URL_ENV}, else {DEFAULT_URL})")
    parser.add_argument("--token", default=argparse.SUPPRESS, help=f"API token (default ${TOKEN_ENV}, which keeps it out of ps and shell history)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON instead of tables")


def register(
    subparsers: Subparsers,
    *,
    clock: Clock | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> None:
    """Add ``send``, ``inbox``, ``ack`` and ``status`` to the CLI's top-level ``subparsers``.

    Args:
        subparsers: The result of ``add_subparsers()`` on the ``heliograph`` parser.
        clock: For relative times and ``--wait`` (the system clock).
        out: Where results go (``sys.stdout`` at run time).
        err: Where errors and the live view go (``sys.stderr`` at run time).
        stdin: What ``send --file -`` reads (``sys.stdin`` at run time).
    """
    injected = {"handler": handle, "clock": clock or SystemClock(), "out": out, "err": err, "stdin": stdin}

    def command(parent: Subparsers, name: str, text: str, core: Callable[..., Awaitable[int]]) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=text, description=text)
        _common(parser)
        parser.set_defaults(core=core, **injected)
        return parser

    send = command(subparsers, "send", "send an alert, update or cancel; prints its message id", _send)
    send.add_argument("--file", help="the whole POST /v1/alerts body as JSON ('-' for stdin)")
    for flag, text in (("headline", "one line, seen by every tier"), ("summary", ""), ("details", ""), ("instructions", "")):
        send.add_argument(f"--{flag}", help=text or f"the {flag} section")
    send.add_argument("--priority", help="FLASH, IMMEDIATE, PRIORITY or ROUTINE")
    send.add_argument("--tlp", help="TLP:RED, TLP:AMBER+STRICT, TLP:AMBER, TLP:GREEN or TLP:CLEAR")
    send.add_argument("--ttl", help="time to live (90s, 15m, 6h, 1d or seconds) or an RFC 3339 expiry time")
    for flag in ("category", "event", "urgency", "severity", "certainty"):
        send.add_argument(f"--{flag}", help=f"CAP {flag}")
    send.add_argument("--tier", dest="tiers", action="append", type=_tier_arg, default=[], metavar="NAME:MEMBERS:SECTIONS", help="repeat per tier")
    send.add_argument(
        "--escalate",
        action="append",
        default=[],
        type=_pair_arg(3, "WATCH:TARGET:AFTER"),
        metavar="WATCH:TARGET:AFTER",
        help="hold TARGET back; send it if WATCH has no accepted ack after AFTER",
    )
    send.add_argument(
        "--ack-deadline", action="append", default=[], type=_pair_arg(2, "TIER:DURATION"), metavar="TIER:DURATION|TIME", help="when TIER's acks are due"
    )
    send.add_argument("--kind", choices=("alert", "update", "cancel"), help="default alert; update and cancel need --ref")
    send.add_argument("--ref", dest="refs", action="append", default=[], metavar="ID", help="an earlier alert this one updates or cancels")
    send.add_argument("--wait", nargs="?", type=_seconds, const=DEFAULT_WAIT_S, metavar="SECONDS", help=f"show delivery live (default {DEFAULT_WAIT_S:.0f}s)")

    inbox = command(subparsers, "inbox", "alerts addressed to this agency, by precedence then time; `inbox show ID` for one", _inbox)
    inbox.add_argument("--all", action="store_true", help="also show expired and purged items")
    show = command(inbox.add_subparsers(dest="inbox_command", metavar="SUBCOMMAND"), "show", "one inbox item in full", _inbox_show)
    show.add_argument("id", metavar="ID")

    ack = command(subparsers, "ack", "acknowledge an inbox item to its sender", _ack)
    ack.add_argument("id", metavar="ID")
    how = ack.add_mutually_exclusive_group(required=True)
    how.add_argument("--accept", action="store_true", help="accept: you act on it (stops its escalation)")
    how.add_argument("--reject", metavar="REASON", help="reject, saying why")
    how.add_argument("--received", action="store_true", help="received, not yet decided")
    ack.add_argument("--comment", help="a note for the sender")

    status = command(subparsers, "status", "the delivery board of a sent alert, or the list of sent alerts", _status)
    status.add_argument("id", metavar="ID", nargs="?")
    status.add_argument("--wait", type=_seconds, metavar="SECONDS", help="wait until every recipient has it, showing progress")
    status.add_argument("--export", metavar="BUNDLE", help="write the alert's delivery-evidence bundle here (for heliograph verify receipts)")
