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

This module holds the argparse wiring, the command cores and the output
(:class:`Terminal`; the tables and views are in :mod:`node.officer_views`).
What the cores send is built and sent by :mod:`node.officer_client`: the HTTP
client and its errors, message-id prefixes and the ``send`` body.
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

from rich.console import Console, RenderableType
from rich.live import Live

from gateway.clock import Clock, SystemClock
from node import officer_views as views
from node.officer_client import OfficerClient, OfficerError, UsageFailure, alert_body, pair_arg, resolve_message_id, tier_arg

DEFAULT_URL = "http://127.0.0.1:7200"
URL_ENV, TOKEN_ENV = "HELIOGRAPH_URL", "HELIOGRAPH_TOKEN"
DEFAULT_WAIT_S = 120.0
POLL_S = 1.0
PIPE_WIDTH = 200
"""Console width when the output is not a terminal and $COLUMNS is unset."""
EXIT_ERROR, EXIT_USAGE, EXIT_NOT_DELIVERED = 1, 2, 3
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,512}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HINTS = {
    "E_UNAUTHENTICATED": f"Check --token or ${TOKEN_ENV}; an operator issues API tokens with `heliograph node user token`.",
    "E_FORBIDDEN": "Your account's role does not allow this; ask a supervisor.",
    "E_VALIDATION": "Correct the fields named above and send again.",
    "E_NOT_FOUND": "`heliograph inbox` and `heliograph status` list the message ids you can use.",
    "E_UNREACHABLE": f"Is the node running? Check --url or ${URL_ENV}.",
}


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


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


# -- send -------------------------------------------------------------------------------------


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
    message_id = await resolve_message_id(client, args.id, "/v1/inbox", "inbox")
    item = await client.call("GET", f"/v1/inbox/{message_id}")
    if args.json:
        term.json(item)
    else:
        term.show(views.inbox_item_view(item, args.clock.now_ms()))
    return 0


async def _ack(args: argparse.Namespace, term: Terminal, client: OfficerClient) -> int:
    message_id = await resolve_message_id(client, args.id, "/v1/inbox", "inbox")
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
    message_id = await resolve_message_id(client, args.id, "/v1/alerts", "alerts")
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
    send.add_argument("--tier", dest="tiers", action="append", type=tier_arg, default=[], metavar="NAME:MEMBERS:SECTIONS", help="repeat per tier")
    send.add_argument(
        "--escalate",
        action="append",
        default=[],
        type=pair_arg(3, "WATCH:TARGET:AFTER"),
        metavar="WATCH:TARGET:AFTER",
        help="hold TARGET back; send it if WATCH has no accepted ack after AFTER",
    )
    send.add_argument(
        "--ack-deadline", action="append", default=[], type=pair_arg(2, "TIER:DURATION"), metavar="TIER:DURATION|TIME", help="when TIER's acks are due"
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
