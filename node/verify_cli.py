"""``heliograph verify receipts BUNDLE --roster ROSTER``: check a delivery evidence bundle offline.

Anyone holding a bundle (docs/PROTOCOL.md 22) and a roster they trust, an auditor,
a court or the recipient agency, can check what became of an alert without
contacting any hop: every signature, every log inclusion proof, and the receipt
chain per recipient. The command prints one row per recipient and hop (PASS or
FAIL with the reason) with ``rich``, or the report as JSON with ``--json``, and
writes a self-contained HTML report with ``--html``.

The roster file must be signed by a threshold of its own authorities; it is not
refused for having expired, because receipts are judged at their own times
(use ``--at`` to also refuse anything dated after a given time). Exit status: 0
when every check passes (and, with ``--require-delivery``, every recipient is
proven delivered), 1 otherwise with ``error [CODE]: reason`` on standard error,
2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.roster_watch import read_signed_roster
from node.report_html import iso, render_report
from node.roster_cli import parse_time
from protocol.checkpoint import CosignatureVerifier
from protocol.errors import HeliographError, NotFoundError
from protocol.evidence import FAIL, NOT_HELD, NOT_REACHED, PASS, EvidenceBundle, EvidenceReport, verify_bundle

_STATUS = {PASS: ("✔ PASS", "green"), FAIL: ("✘ FAIL", "bold red"), NOT_REACHED: ("- not reached", "dim"), NOT_HELD: ("· not held", "dim")}


def _error(exc: HeliographError) -> int:
    print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    return 1


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror or exc}") from None


def report_table(report: EvidenceReport) -> Table:
    """The per-recipient, per-hop table; everything from the bundle goes in as plain text, never markup."""
    table = Table(title=Text(f"Delivery evidence for message {report.message_id.hex()} from {report.origin}"), show_lines=False)
    for name in ("MESSAGE", "RECIPIENT", "HOP", "EVENTS", "RESULT", "REASON"):
        table.add_column(name, overflow="fold")
    for lane in report.lanes:
        label = Text(f"{lane.kind} {lane.message_id.hex()[:8]}")
        who = Text(f"{lane.recipient}\n({lane.outcome})" if lane.kind != "ack" else f"{lane.recipient} from {lane.sender}\n({lane.outcome})")
        for i, row in enumerate(lane.rows):
            events = "\n".join(f"{e.event} {iso(e.time)[11:19]}" + (f" {e.reason}" if e.reason else "") for e in row.events) or "-"
            word, style = _STATUS[row.status]
            table.add_row(label if i == 0 else Text(""), who if i == 0 else Text(""), Text(row.hop), Text(events), Text(word, style=style), Text(row.reason))
        table.add_section()
    for e in report.stray:
        reason = e.problem.message if e.problem else ""
        table.add_row(Text("stray"), Text("-"), Text(e.hop), Text(f"{e.event} {iso(e.time)}"), Text(_STATUS[FAIL][0], style=_STATUS[FAIL][1]), Text(reason))
    return table


def cmd_verify_receipts(args: argparse.Namespace) -> int:
    """Verify a bundle file against a roster file; see the module docstring for the exit status."""
    try:
        signed = read_signed_roster(Path(args.roster))
        trusted = signed.verify_trusted(signed.roster.issued)  # threshold only: old evidence is judged at its own times
        witnesses = [CosignatureVerifier.from_vkey(v) for v in args.witness]
        bundle = EvidenceBundle.from_bytes(_read(args.bundle))
        report = verify_bundle(bundle, trusted, now=args.at, witnesses=witnesses, require_k=args.require_k if args.require_k is not None else len(witnesses))
    except HeliographError as exc:
        return _error(exc)
    if args.html:
        try:
            Path(args.html).write_text(render_report(report), encoding="utf-8")
        except OSError as exc:
            print(f"error [E_CONFIG]: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        # A pipe or file gets a wide table rather than rich's 80-column default.
        Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(report_table(report))
    if not report.ok:
        first = report.first_failure
        assert first is not None
        print(f"error [{first.code}]: {first.message}", file=sys.stderr)
        return 1
    if args.require_delivery and not report.all_delivered:
        missing = ", ".join(f"{x.recipient} ({x.outcome})" for x in report.lanes if x.kind != "ack" and x.outcome not in ("delivered", "acknowledged"))
        print(f"not delivered: the evidence verifies, but these recipients are not proven delivered: {missing}", file=sys.stderr)
        return 1
    if not args.json:  # --json keeps standard output one JSON document
        print("evidence verified" + (": every recipient delivered" if report.all_delivered else ""))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``verify`` command group (``verify receipts``) to the ``heliograph`` parser.

    Args:
        subparsers: The top-level ``add_subparsers()`` result.
    """
    verify = subparsers.add_parser("verify", help="verify evidence offline")
    sub = verify.add_subparsers(dest="verify_command", metavar="SUBCOMMAND")
    p = sub.add_parser("receipts", help="verify a delivery evidence bundle against a trusted roster, offline")
    p.add_argument("bundle", help="the evidence bundle file (docs/PROTOCOL.md 22)")
    p.add_argument("--roster", required=True, help="a signed roster file you trust (the bundle may carry later versions that extend it)")
    p.add_argument("--html", help="also write a self-contained HTML report here")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--witness", action="append", default=[], metavar="VKEY", help="a trusted witness cosigner vkey (repeat for several)")
    p.add_argument("--require-k", type=int, help="how many of the witnesses must have cosigned every checkpoint (default: all)")
    p.add_argument("--at", type=parse_time, help="verification time (unix ms or ISO 8601); anything dated later is refused")
    p.add_argument("--require-delivery", action="store_true", help="also fail unless every recipient is proven delivered")
    p.set_defaults(handler=cmd_verify_receipts)
