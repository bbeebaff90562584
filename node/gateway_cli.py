"""``heliograph gateway status`` and ``heliograph gateway trace``: a hop's queues, for its operator.

``status`` prints ``GET /v1/destinations`` as a table, one row per next hop: its
backlog by lane, back-off, failures and last error ("why is this alert late?").
``trace ID`` prints ``GET /v1/messages/{id}``: where one message is at this hop.
That covers each copy's destination, state, attempts, next retry and last error,
and every receipt the hop holds for it, verified against the hop's roster
("where is this alert?"). Both take ``--json`` for scripts and ``--ca`` for a hop
behind a private CA. Either works against a gateway or a node. A node also wants
an officer's API token in ``HELIOGRAPH_TOKEN``, or ``--token``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp

from gateway.tls import trust


def _age(now: int, then: int | None) -> str:
    if then is None:
        return "-"
    seconds = (now - then) / 1000
    return f"{seconds:.0f}s ago" if seconds >= 0 else f"in {-seconds:.0f}s"


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _fetch(args: argparse.Namespace, path: str) -> tuple[int, dict[str, Any]] | None:
    """GET ``path`` from ``--url``; None (after printing why) if the hop cannot be reached."""
    tls = trust(args.ca)
    token = args.token or os.environ.get("HELIOGRAPH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get() -> tuple[int, dict[str, Any]]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=tls or True)) as session,
            session.get(args.url.rstrip("/") + path, headers=headers) as resp,
        ):
            return resp.status, dict(json.loads(await resp.text()))

    try:
        return asyncio.run(get())
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        print(f"error [E_UNREACHABLE]: cannot fetch {args.url}{path}: {exc}", file=sys.stderr)
        return None


def _refused(status: int, doc: dict[str, Any]) -> bool:
    if status == 200:
        return False
    error = doc.get("error", {}) if isinstance(doc.get("error"), dict) else {}
    print(f"error [{error.get('code', 'E_HTTP')}]: {error.get('message', f'HTTP {status}')}", file=sys.stderr)
    return True


def _document(args: argparse.Namespace, path: str) -> tuple[int, dict[str, Any] | None]:
    """The exit status, and the answer to render as text (None: nothing more to print)."""
    answer = _fetch(args, path)
    if answer is None or _refused(*answer):
        return 1, None
    if args.json:
        print(json.dumps(answer[1], indent=2))
        return 0, None
    return 0, answer[1]


def cmd_status(args: argparse.Namespace) -> int:
    status, doc = _document(args, "/v1/destinations")
    if doc is None:
        return status
    now = int(doc["now"])
    rows = [("DESTINATION", "STATE", "BACKLOG", "FAILURES", "NEXT RETRY", "LAST SUCCESS", "LAST ERROR")]
    for d in doc["destinations"]:
        backlog = " ".join(f"{lane}={count}" for lane, count in d["backlog"].items()) or "-"
        error = (d["last_error"] or "-")[:60]
        rows.append((d["destination"], d["state"], backlog, str(d["failures"]), _age(now, d["next_retry_at"]), _age(now, d["last_success_at"]), error))
    _table(rows)
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    status, doc = _document(args, f"/v1/messages/{args.message_id.strip().lower()}")
    if doc is None:
        return status
    now = int(doc["now"])
    print(f"message {doc['message_id']} from {doc['origin']} ({doc['priority']}), received from {doc['from']} {_age(now, doc['received_at'])}")
    print(f"expires {_age(now, doc['expires'])}; ciphertext {doc['ciphertext']}; receipts queued toward the origin: {doc['receipts_queued']}")
    if doc["copies"]:
        rows = [("COPY TO", "RECIPIENTS", "STATE", "ATTEMPTS", "NEXT RETRY", "LAST ERROR")]
        for c in doc["copies"]:
            retry, error = _age(now, c["next_attempt_at"]), (c["last_error"] or "-")[:60]
            rows.append((c["destination"], ",".join(c["recipients"]), c["state"], str(c["attempts"]), retry, error))
        _table(rows)
    rows = [("RECEIPT", "HOP", "PEER", "LOG #", "WHEN", "VERIFIED")]
    for r in doc["receipts"]:
        if r["verified"]:
            event = r["event"] + (f" ({r['reason']})" if r.get("reason") else "")
            rows.append((event, r["hop"], r["peer"] or "-", str(r["log_index"]), _age(now, r["time"]), "yes"))
        else:
            rows.append(("?", "-", "-", "-", "-", f"NO: {r['error']}"))
    _table(rows)
    return 0


def register(gw_sub: Any) -> None:
    """Add ``status`` and ``trace`` under ``heliograph gateway``."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:7100", help="the hop's base URL")
        parser.add_argument("--json", action="store_true", help="print the raw JSON")
        parser.add_argument("--ca", help="CA certificates (PEM) an https:// URL must chain to")
        parser.add_argument("--token", help="an officer API token, for a node (default: $HELIOGRAPH_TOKEN)")

    status = gw_sub.add_parser("status", help="per-destination backlog, back-off and errors: why is this alert late?")
    common(status)
    status.set_defaults(handler=cmd_status)
    trace = gw_sub.add_parser("trace", help="one message at this hop: its copies, their retries, its receipts")
    trace.add_argument("message_id", help="the message id (32 hex digits)")
    common(trace)
    trace.set_defaults(handler=cmd_trace)
