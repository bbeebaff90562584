"""Rich renderings of officer API answers, for the officer CLI (:mod:`node.officer_cli`).

Pure functions: each takes a decoded JSON answer of :mod:`node.api` and the
current time (unix ms, from the CLI's injected clock) and returns a ``rich``
renderable. No I/O, no clock. Everything that came from the server (headlines,
member ids, comments) goes into :class:`rich.text.Text`, never through console
markup, so a headline such as ``[bold]`` is shown as typed. Meaning never rests
on colour alone: priorities carry ``!`` markers and delivery states a word and
a symbol, so the views read the same with ``NO_COLOR`` or in a pipe.

Times are shown as UTC ISO 8601 plus a relative form (``2026-11-26T08:51:46Z
(5m ago)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

PRIORITY_MARKS = {"FLASH": ("!!! ", "bold red"), "IMMEDIATE": ("!!  ", "red"), "PRIORITY": ("!   ", "yellow"), "ROUTINE": ("    ", "")}
TLP_STYLES = {"TLP:RED": "bold red", "TLP:AMBER+STRICT": "bold yellow", "TLP:AMBER": "yellow", "TLP:GREEN": "green", "TLP:CLEAR": ""}
STATE_MARKS = {
    "held": ("‖", "dim"),
    "queued": ("…", "yellow"),
    "accepted": ("…", "yellow"),
    "relayed": ("→", "yellow"),
    "delayed": ("⏳", "bold yellow"),
    "delivered": ("✔", "green"),
    "acknowledged": ("✔✔", "bold green"),
    "rejected": ("✘", "bold red"),
    "expired": ("✘", "bold red"),
}
DELIVERED_STATES = frozenset({"delivered", "acknowledged"})
FAILED_STATES = frozenset({"rejected", "expired"})
TEXT_SECTIONS = ("summary", "details", "instructions")
_FOLLOW_VERBS = {"update": "updated", "cancel": "cancelled"}
_UNITS = (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1))


def iso(ms: int | None) -> str:
    """Unix ms as ``2026-11-26T08:51:46Z``; ``-`` for None."""
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(ms: int) -> str:
    """A duration in its two largest units: ``45s``, ``5m 10s``, ``2h``, ``3d 4h``."""
    seconds = abs(ms) // 1000
    for i, (unit, size) in enumerate(_UNITS):
        if seconds >= size or unit == "s":
            first = f"{seconds // size}{unit}"
            if i + 1 < len(_UNITS) and (rest := (seconds % size) // _UNITS[i + 1][1]):
                return f"{first} {rest}{_UNITS[i + 1][0]}"
            return first
    raise AssertionError("unreachable: the last unit always matches")


def relative(ms: int | None, now: int) -> str:
    """``in 5m``, ``5m ago`` or ``now`` (within a second)."""
    if ms is None:
        return "-"
    if abs(ms - now) < 1000:
        return "now"
    return f"in {span(ms - now)}" if ms > now else f"{span(now - ms)} ago"


def expires_text(ms: int, now: int, *, purged: bool) -> str:
    """``in 5h 57m``, ``expired 2m ago`` or ``purged``."""
    return "purged" if purged else f"in {span(ms - now)}" if ms > now else f"expired {span(now - ms)} ago"


def when(ms: int | None, now: int) -> str:
    """ISO time and the relative form: ``2026-11-26T08:51:46Z (5m ago)``."""
    return "-" if ms is None else f"{iso(ms)} ({relative(ms, now)})"


def short_id(message_id: str) -> str:
    return message_id[:12] + "…"


def priority_text(priority: str) -> Text:
    mark, style = PRIORITY_MARKS.get(priority, ("?   ", ""))
    return Text(mark + priority, style=style)


def tlp_text(label: str) -> Text:
    return Text(label, style=TLP_STYLES.get(label, ""))


def state_text(state: str) -> Text:
    mark, style = STATE_MARKS.get(state, ("?", ""))
    return Text(f"{mark} {state}", style=style)


def _lines(*lines: str | Text) -> Text:
    return Text("\n").join(line if isinstance(line, Text) else Text(line) for line in lines if line)


def links_text(kind: str, refs: Iterable[str], superseded_by: Iterable[Mapping[str, Any]]) -> Text:
    """``updates X`` / ``cancels X`` for the item's own refs; ``updated by Y``, ``cancelled by Y`` or
    ``referenced by Y`` (e.g. the escalation send of a held tier) for later messages."""
    verb = {"update": "updates", "cancel": "cancels"}.get(kind, "refers to")
    own = [f"{verb} {short_id(r)}" for r in refs]
    later = [f"{_FOLLOW_VERBS.get(s['kind'], 'referenced')} by {short_id(s['message_id'])}" for s in superseded_by]
    return _lines(*own, *(Text(line, style="bold") for line in later)) or Text("-")


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


# -- inbox ------------------------------------------------------------------------------------


def inbox_table(items: list[dict[str, Any]], now: int) -> Table:
    """The inbox, in the API's order (precedence, then time)."""
    table = _table("ID", "PRIORITY", "TLP", "FROM", "HEADLINE", "RECEIVED", "EXPIRES", "TIER", "SECTIONS", "LINKS")
    for item in items:
        sections = _lines(
            "shown: " + (", ".join(item["sections_visible"]) or "headline only"),
            Text("withheld: " + ", ".join(item["sections_withheld"]), style="dim") if item["sections_withheld"] else "",
        )
        headline = Text(item["headline"] or "(content purged)")
        if item["kind"] != "alert":
            headline = Text.assemble((f"[{item['kind'].upper()}] ", "bold"), headline)
        table.add_row(
            Text(item["message_id"]),
            priority_text(item["priority"]),
            tlp_text(item["tlp"]),
            Text(item["origin"]),
            headline,
            Text(when(item["received_at"], now)),
            Text(expires_text(item["expires"], now, purged=item["purged"])),
            Text(item["tier"]),
            sections,
            links_text(item["kind"], item["refs"], item.get("superseded_by", ())),
        )
    return table


def inbox_item_view(item: dict[str, Any], now: int) -> RenderableType:
    """One inbox item in full: header, every section this tier sees, withheld sections named."""
    content = item.get("content") or {}
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Priority", Text.assemble(priority_text(item["priority"]), "   ", tlp_text(item["tlp"])))
    head.add_row("Headline", Text(item["headline"] or "(content purged)", style="bold"))
    head.add_row("Message", Text(f"{item['message_id']} ({item['kind']} from {item['origin']}, tier {item['tier']})"))
    if content:
        cap = ", ".join(f"{k} {content[k]}" for k in ("category", "urgency", "severity", "certainty") if k in content)
        head.add_row("Event", Text(f"{content.get('event', '-')} ({cap})"))
    head.add_row("Sent", Text(when(item["created"], now)))
    head.add_row("Received", Text(when(item["received_at"], now)))
    head.add_row("Expires", Text(when(item["expires"], now)))
    links = links_text(item["kind"], item["refs"], item.get("superseded_by", ()))
    if links.plain != "-":
        head.add_row("Links", links)
    for ack in item.get("acks", ()):
        head.add_row("Your ack", Text(f"{ack['disposition']} by {ack['officer']} at {when(ack['at'], now)}"))
    parts: list[RenderableType] = [head]
    if item["purged"]:
        parts.append(Text("The content was purged after the alert expired; only the metadata remains.", style="italic"))
    withheld = set(item["sections_withheld"])
    for sid in (*TEXT_SECTIONS, "attachments"):
        if sid in content:
            body = content[sid] if sid != "attachments" else _lines(*(f"{a['name']} ({a['type']}, {a['size']} bytes)" for a in content[sid]))
            parts.append(Panel(body if isinstance(body, Text) else Text(body), title=sid, title_align="left"))
        elif sid in withheld:
            note = Text(f"withheld: not sealed for tier {item['tier']!r}", style="dim italic")
            parts.append(Panel(note, title=f"{sid} (withheld)", title_align="left", border_style="dim"))
    return Group(*parts)


# -- sent alerts ------------------------------------------------------------------------------


def delivery_counts(board: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(delivered, pending, failed, held) recipients of an alert status answer."""
    states = [r["state"] for r in board["recipients"]]
    delivered = sum(s in DELIVERED_STATES for s in states)
    failed = sum(s in FAILED_STATES for s in states)
    held = states.count("held")
    return delivered, len(states) - delivered - failed - held, failed, held


def _delivery_summary(board: Mapping[str, Any]) -> Text:
    delivered, pending, failed, held = delivery_counts(board)
    parts = [f"{delivered}/{delivered + pending + failed} delivered"]
    parts += [f"{n} {what}" for n, what in ((pending, "pending"), (failed, "failed"), (held, "held")) if n]
    return Text(" · ".join(parts), style="bold red" if failed else "")


def _acks_summary(tiers: Iterable[Mapping[str, Any]]) -> str:
    totals = {d: sum(t["acks"][d] for t in tiers) for d in ("accepted", "received", "rejected")}
    return ", ".join(f"{n} {d}" for d, n in totals.items() if n) or "-"


def alerts_table(alerts: list[dict[str, Any]], now: int) -> Table:
    """The agency's sent alerts (``GET /v1/alerts``)."""
    table = _table("ID", "KIND", "PRIORITY", "TLP", "HEADLINE", "CREATED", "EXPIRES", "STATUS", "DELIVERY", "ACKS")
    for a in alerts:
        table.add_row(
            Text(a["message_id"]),
            Text(a["kind"]),
            priority_text(a["priority"]),
            tlp_text(a["tlp"]),
            Text(a["headline"] or "(content purged)"),
            Text(when(a["created"], now)),
            Text(expires_text(a["expires"], now, purged=a["purged"])),
            Text(a["status"]),
            _delivery_summary(a),
            Text(_acks_summary(a["tiers"])),
        )
    return table


def _tiers_table(board: Mapping[str, Any], now: int) -> Table:
    table = _table("TIER", "RECIPIENTS", "SECTIONS", "ACK DEADLINE", "ACKS", "ESCALATION", title="Tiers")
    for t in board["tiers"]:
        acks = ", ".join(f"{n} {d}" for d, n in t["acks"].items())
        esc = t["escalation"]
        escalation = f"to {esc['target']} at {when(esc['due_at'], now)}: {esc['state']}" if esc else "-"
        sections = ", ".join("headline" if s == "info" else s for s in t["sections"])
        name = Text(t["name"]) + (Text(f" ({held_note(board, t['name'])})", style="dim") if t["held"] else Text())
        table.add_row(name, Text(", ".join(t["recipients"])), Text(sections), Text(when(t["ack_deadline"], now)), Text(acks), Text(escalation))
    return table


def _event_detail(e: Mapping[str, Any]) -> str:
    parts = [f"retry until {iso(e['retry_until'])}"] if "retry_until" in e else []
    parts += [str(e["reason"])] if "reason" in e else []
    parts.append(f"log #{e['log_index']}" if e.get("log_index") is not None else "")
    return "; ".join(p for p in parts if p)


def _ack_line(ack: Mapping[str, Any]) -> tuple[Text, Text]:
    extra = "; ".join(str(x) for x in (ack.get("reason"), ack.get("comment")) if x)
    event = Text(f"ack: {ack['disposition']}", style="bold")
    if not ack["receipt_verified"]:
        event.append(" (UNVERIFIED: no verified ack receipt)", style="bold red")
    return event, Text(extra)


def held_note(board: Mapping[str, Any], tier: str) -> str:
    """What became of a tier held back for escalation: held, sent, or never sent (and why)."""
    esc = next((t["escalation"] for t in board["tiers"] if t["escalation"] and t["escalation"]["target"] == tier), None)
    state = esc["state"] if esc else "pending"
    return {"pending": "held until escalation", "fired": "sent by escalation"}.get(state, f"not sent: escalation {state}")


def board_view(board: Mapping[str, Any], now: int) -> RenderableType:
    """The delivery board of one sent alert: header, tiers, per-recipient hop timeline, unverified receipts."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Alert", Text(f"{board['message_id']} ({board['kind']}, {board['status']}, sent by {board['officer']})"))
    head.add_row("Priority", Text.assemble(priority_text(board["priority"]), "   ", tlp_text(board["tlp"])))
    head.add_row("Headline", Text(board["headline"] or "(content purged; timeline kept)"))
    head.add_row("Created", Text(when(board["created"], now)))
    head.add_row("Expires", Text(when(board["expires"], now)))
    head.add_row("Delivery", _delivery_summary(board))
    links = links_text(board["kind"], board["refs"], board.get("referenced_by", ()))
    if links.plain != "-":
        head.add_row("Links", links)
    timeline = _table("RECIPIENT", "TIER", "STATE", "HOP", "EVENT", "TIME", "PEER", "DETAIL", title="Delivery")
    for r in board["recipients"]:
        rows: list[tuple[Text, ...]] = [
            (Text(e["hop"]), Text(e["event"]), Text(when(e["time"], now)), Text(e["peer"] or "-"), Text(_event_detail(e))) for e in r.get("timeline", ())
        ]
        if r["ack"] is not None:
            event, detail = _ack_line(r["ack"])
            rows.append((Text(r["member"]), event, Text(when(r["ack"]["at"], now)), Text("-"), detail))
        note = held_note(board, r["tier"]) if r["state"] == "held" else "no receipts yet"
        rows = rows or [(Text("-"), Text(note, style="dim"), Text(), Text(), Text())]
        for i, row in enumerate(rows):
            lead = (Text(r["member"], style="bold"), Text(r["tier"]), state_text(r["state"])) if i == 0 else (Text(), Text(), Text())
            timeline.add_row(*lead, *row)
        timeline.add_section()
    parts: list[RenderableType] = [head, _tiers_table(board, now), timeline]
    unverified = board["unverified_receipts"]
    if unverified:
        warn = Text(f"WARNING: {len(unverified)} receipt(s) did not verify against the roster and are not counted:", style="bold red")
        parts.append(_lines(warn, *(f"  {u['digest'][:16]}…  {u['error']}" for u in unverified)))
    return Group(*parts)


def progress_view(board: Mapping[str, Any], *, waited_s: float, timeout_s: float) -> RenderableType:
    """The live view while waiting for delivery: a bar and each recipient's state."""
    delivered, pending, failed, _held = delivery_counts(board)
    total = delivered + pending + failed
    header = Text.assemble(
        ("Waiting for delivery of ", ""), (board["message_id"], "bold"), f"  {_delivery_summary(board).plain}  ({waited_s:.0f}s of {timeout_s:.0f}s)"
    )
    table = _table("RECIPIENT", "TIER", "STATE", "LAST RECEIPT")
    for r in board["recipients"]:
        last = r.get("timeline") or []
        latest = max(last, key=lambda e: e["time"]) if last else None
        table.add_row(Text(r["member"]), Text(r["tier"]), state_text(r["state"]), Text(f"{latest['hop']} {latest['event']}" if latest else "-"))
    top = Table.grid()
    top.add_row(header)
    top.add_row(ProgressBar(total=max(total, 1), completed=delivered, width=50))
    return Group(top, table)
