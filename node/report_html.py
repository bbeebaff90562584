"""A self-contained HTML page for an evidence report: the delivery timeline and the verdict.

``heliograph verify receipts --html`` writes it for people who will not read a
terminal table: one lane per recipient (and per escalation and ack message),
the hops of its route left to right with each receipt's event and time, a
proportional time track, and every finding. The page is one file: inline CSS,
no JavaScript, no fonts, images or links to fetch, so it can be archived or
attached to a case file and opened offline. Every string that came from the
bundle is HTML-escaped, even those the protocol already restricts (member ids,
reason codes), so the page cannot be used to smuggle markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from protocol.evidence import FAIL, NOT_HELD, NOT_REACHED, PASS, EventView, EvidenceReport, RecipientReport

_STATUS = {PASS: ("✔ PASS", "pass"), FAIL: ("✘ FAIL", "fail"), NOT_REACHED: ("- not reached", "idle"), NOT_HELD: ("· not held by the origin", "idle")}

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem; color: #1b1f24; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; } h2 { font-size: 1.1rem; margin: 0; }
code, .mono { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-all; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.meta dt { font-weight: 600; }
.verdict { display: inline-block; padding: .15rem .6rem; border-radius: .3rem; font-weight: 700; }
.verdict.pass, .hop.pass .status { background: #dafbe1; color: #116329; }
.verdict.fail, .hop.fail .status { background: #ffebe9; color: #a40e26; }
.lane { border: 1px solid #d0d7de; border-radius: .5rem; padding: 1rem; margin: 1rem 0; }
.lane.fail { border-color: #cf222e; border-width: 2px; }
.outcome { font-weight: 400; color: #57606a; }
.track { position: relative; height: 1.2rem; margin: .8rem 0; border-bottom: 2px solid #d0d7de; }
.dot { position: absolute; bottom: -.45rem; width: .8rem; height: .8rem; margin-left: -.4rem; border-radius: 50%; background: #1a7f37; }
.dot.fail { background: #cf222e; }
ol.route { display: flex; gap: 1.2rem; list-style: none; padding: 0; margin: 0; overflow-x: auto; }
.hop { flex: 1 1 0; min-width: 11rem; border: 1px solid #d0d7de; border-radius: .4rem; padding: .5rem; position: relative; }
.hop + .hop::before { content: "\\2192"; position: absolute; left: -1.05rem; top: .4rem; color: #57606a; }
.hop.idle { opacity: .6; border-style: dashed; }
.hop .name { font-weight: 700; } .hop .status { display: inline-block; padding: 0 .4rem; border-radius: .25rem; font-size: .85em; }
.hop ul { list-style: none; padding: 0; margin: .4rem 0 0; font-size: .9em; }
.hop li.bad { color: #a40e26; } .reason { color: #a40e26; font-size: .9em; margin: .3rem 0 0; }
.findings li { margin: .3rem 0; }
footer { margin-top: 2rem; color: #57606a; font-size: .85em; }
"""


def iso(ms: int) -> str:
    """Unix ms as ``2026-11-26T08:51:46.250Z`` (UTC)."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _offset(ms: int) -> str:
    return f"+{ms / 1000:.3f}s" if ms < 120_000 else f"+{ms / 60_000:.1f}min"


def _event(e: EventView, t0: int) -> str:
    extra = []
    if e.peer:
        extra.append(f"peer {e.peer}")
    if e.reason:
        extra.append(e.reason)
    if e.retry_until is not None:
        extra.append(f"retry until {iso(e.retry_until)}")
    if e.log_index is not None:
        extra.append(f"log #{e.log_index}")
    tail = f" <span class=mono>({escape(', '.join(extra))})</span>" if extra else ""
    problem = f"<br><span class=reason>{escape(e.problem.code)}: {escape(e.problem.message)}</span>" if e.problem else ""
    return (
        f'<li class="{"bad" if e.problem else "good"}"><time datetime="{escape(iso(e.time), quote=True)}">{escape(iso(e.time))}</time>'
        f" {escape(_offset(e.time - t0))} <b>{escape(e.event)}</b>{tail}{problem}</li>"
    )


def _lane(lane: RecipientReport, t0: int, span: int) -> str:
    events = [e for row in lane.rows for e in row.events]
    dots = "".join(
        f'<span class="dot{" fail" if e.problem else ""}" style="left:{100 * (e.time - t0) / span:.2f}%" '
        f'title="{escape(f"{e.hop} {e.event} {iso(e.time)}", quote=True)}"></span>'
        for e in events
    )
    hops = []
    for row in lane.rows:
        word, css = _STATUS[row.status]
        items = "".join(_event(e, t0) for e in row.events)
        reason = f"<p class=reason>{escape(row.code or '')}: {escape(row.reason)}</p>" if row.status == FAIL else ""
        hops.append(
            f'<li class="hop {css}"><div class=name>{escape(row.hop)}</div><span class=status>{escape(word)}</span>'
            f"{f'<ul>{items}</ul>' if items else ''}{reason}</li>"
        )
    who = f"{lane.recipient} (ack from {lane.sender})" if lane.kind == "ack" else lane.recipient
    return (
        f'<article class="lane {"pass" if lane.ok else "fail"}"><h2>{escape(lane.kind)} <code>{escape(lane.message_id.hex())}</code>'
        f" → {escape(who)} <span class=outcome>— {escape(lane.outcome)}</span></h2>"
        f"<p>{escape(lane.detail)}</p><div class=track>{dots}</div><ol class=route>{''.join(hops)}</ol></article>"
    )


def render_report(report: EvidenceReport, *, title: str = "Delivery evidence") -> str:
    """The whole page for ``report``, as text (UTF-8 when written)."""
    times = [e.time for lane in report.lanes for row in lane.rows for e in row.events] + [e.time for e in report.stray]
    t0 = min(times, default=0)
    span = max(max(times, default=0) - t0, 1)
    first = report.first_failure
    verdict = '<span class="verdict pass">VERIFIED</span>' if report.ok else '<span class="verdict fail">FAILED</span>'
    meta = [
        ("Message", f"<code>{escape(report.message_id.hex())}</code>"),
        ("Origin", escape(report.origin)),
        ("Verdict", verdict + (" — every recipient delivered" if report.all_delivered else "")),
        ("First failure", f"<code>{escape(first.code)}</code> {escape(first.message)}" if first else "none"),
        ("Roster versions", escape(", ".join(f"v{v}" for v in report.roster_versions))),
        ("First receipt", escape(iso(t0)) if times else "none"),
    ]
    findings = "".join(f"<li><code>{escape(f.code)}</code> {escape(f.message)}</li>" for f in report.findings) or "<li>none</li>"
    stray = ""
    if report.stray:
        stray = f"<section><h2>Receipts off every route</h2><ul>{''.join(_event(e, t0) for e in report.stray)}</ul></section>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} {escape(report.message_id.hex())}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><dl class=meta>{''.join(f'<dt>{k}</dt><dd>{v}</dd>' for k, v in meta)}</dl></header>"
        f"<main>{''.join(_lane(lane, t0, span) for lane in report.lanes)}"
        f"<section class=findings><h2>Findings</h2><ol>{findings}</ol></section>{stray}</main>"
        "<footer>Checked offline against a trusted roster: receipt and header signatures, log checkpoints and inclusion proofs, "
        "and the receipt chain of every recipient (docs/PROTOCOL.md 22). This page contains no scripts and loads nothing.</footer>"
        "</body></html>\n"
    )
