"""The officer CLI (send, inbox, ack, status) against real nodes and gateways on 127.0.0.1.

Output goes to injected streams rather than capsys: in tests the servers' structlog
lines land on the process's stdout, which would mix with what the CLI prints.
The CLI's clock reads the federation's FakeClock for wall time; its ``sleep``
lets the federation forward instead of waiting, so ``--wait`` is deterministic.
"""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from node import officer_cli, officer_views
from tests.support.agencies import Agencies, alert_body
from tests.support.net import free_port

FLAGS = [
    *("--headline", "Suspects heading north on the A1", "--summary", "Three suspects in a grey van.", "--details", "Plate FR-123-AB; armed."),
    *("--priority", "FLASH", "--tlp", "TLP:AMBER", "--ttl", "6h", "--category", "Security", "--event", "Armed robbery"),
    *("--urgency", "Immediate", "--severity", "Severe", "--certainty", "Likely"),
    *("--tier", "action:fr-police:summary,details", "--tier", "inform:ke-fiu:summary", "--tier", "escalation:ke-police:summary"),
    *("--escalate", "action:escalation:10m", "--ack-deadline", "action:15m"),
]


class SettlingClock:
    """The CLI's clock: wall time from the federation; each sleep runs the federation's forwarding."""

    def __init__(self, a: Agencies) -> None:
        self.a, self.elapsed, self.sleeps = a, 0.0, 0

    def now_ms(self) -> int:
        return self.a.clock.now_ms()

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.elapsed += seconds
        await self.a.settle()


class Cli:
    def __init__(self, a: Agencies) -> None:
        self.a, self.clock = a, SettlingClock(a)
        self.out, self.err = "", ""

    async def __call__(self, node: str, *argv: str, role: str = "officer", token: str | None = None, url: str | None = None, stdin: str = "") -> int:
        out, err = io.StringIO(), io.StringIO()
        parser = argparse.ArgumentParser(prog="heliograph")
        officer_cli.register(parser.add_subparsers(), clock=self.clock, out=out, err=err, stdin=io.StringIO(stdin))
        args = parser.parse_args([*argv, "--url", url or self.a.url(node), "--token", token or self.a.tokens[(node, role)]])
        code = await officer_cli.run(args)
        self.out, self.err = out.getvalue(), err.getvalue()
        return code

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(fed: Agencies) -> Cli:
    return Cli(fed)


async def test_send_by_flags_then_inbox_ack_and_status(fed: Agencies, cli: Cli, tmp_path: Path) -> None:
    assert await cli("int-org", "send", *FLAGS) == 0, cli.err
    mid = cli.out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", mid)
    await fed.settle()

    assert await cli("fr-police", "inbox") == 0, cli.err
    assert mid in cli.out and "Suspects heading north on the A1" in cli.out and "int-org" in cli.out
    assert "!!! FLASH" in cli.out and "TLP:AMBER" in cli.out and "action" in cli.out and "in 6h" in cli.out
    assert await cli("ke-fiu", "inbox", "show", mid[:8]) == 0, cli.err
    assert "Three suspects in a grey van." in cli.out and "details (withheld)" in cli.out and "Plate FR-123-AB" not in cli.out
    assert "2026-05-28T20:26:40Z (now)" in cli.out, "times are shown in UTC ISO form and relative"

    assert await cli("fr-police", "ack", mid, "--accept", "--comment", "units on the way") == 0, cli.err
    assert cli.out.startswith(f"accepted {mid}; ack message ")
    await fed.settle()

    assert await cli("int-org", "status", mid) == 0, cli.err
    board = cli.out
    assert "✔✔ acknowledged" in board and "✔ delivered" in board and "‖ held" in board
    assert "ack: accepted" in board and "units on the way" in board and "UNVERIFIED" not in board
    assert "gw-eu" in board and "relayed" in board and "to escalation at" in board and "acked" in board
    assert await cli("int-org", "status") == 0, cli.err
    assert mid in cli.out and "2/2 delivered · 1 held" in cli.out and "1 accepted" in cli.out

    bundle = tmp_path / "evidence.hgev"
    assert await cli("int-org", "status", mid, "--export", str(bundle)) == 0, cli.err
    from protocol.evidence import verify_bundle

    report = verify_bundle(bundle.read_bytes(), fed.fed.roster)
    assert report.ok, report.first_failure
    assert await cli("int-org", "status", "0" * 32, "--export", str(tmp_path / "none.hgev")) == 1
    assert "E_NOT_FOUND" in cli.err and not (tmp_path / "none.hgev").exists()


async def test_send_from_a_file_and_json_output(fed: Agencies, cli: Cli, tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(alert_body()))
    assert await cli("int-org", "send", "--file", str(alert), "--json") == 0, cli.err
    mid = cli.json()["message_id"]
    await fed.settle()
    assert await cli("ke-fiu", "inbox", "--json") == 0
    (item,) = cli.json()["inbox"]
    assert item["message_id"] == mid and item["sections_withheld"] == ["details", "instructions"]
    assert await cli("int-org", "status", str(mid), "--json") == 0
    states = {r["member"]: r["state"] for r in cli.json()["recipients"]}
    assert states == {"fr-police": "delivered", "ke-fiu": "delivered", "ke-police": "held"}
    assert await cli("int-org", "send", "--file", "-", stdin=json.dumps(alert_body(priority="ROUTINE"))) == 0, cli.err
    # A file body is the whole alert: flags may not be mixed in, and duplicate keys are refused.
    assert await cli("int-org", "send", "--file", str(alert), "--headline", "x") == 2 and "--headline" in cli.err
    alert.write_text('{"priority": "FLASH", "priority": "ROUTINE"}')
    assert await cli("int-org", "send", "--file", str(alert)) == 1 and "duplicate key 'priority'" in cli.err


async def test_update_links_show_in_the_inbox(fed: Agencies, cli: Cli) -> None:
    assert await cli("int-org", "send", *FLAGS) == 0
    mid = cli.out.strip()
    update = [f for f in FLAGS[: FLAGS.index("--tier")]] + ["--tier", "action:fr-police:summary,details", "--kind", "update", "--ref", mid]
    assert await cli("int-org", "send", *update) == 0, cli.err
    uid = cli.out.strip()
    await fed.settle()
    assert await cli("fr-police", "inbox") == 0
    assert f"updated by {uid[:12]}" in cli.out and f"updates {mid[:12]}" in cli.out and "[UPDATE]" in cli.out


async def test_wait_shows_delivery_then_times_out_when_a_gateway_is_down(fed: Agencies, cli: Cli) -> None:
    assert await cli("int-org", "send", *FLAGS, "--wait", "30") == 0, cli.err
    assert re.fullmatch(r"[0-9a-f]{32}\n", cli.out) and "delivered to every recipient (2)" in cli.err
    assert "Waiting for delivery of" in cli.err and "fr-police" in cli.err

    await fed.servers["gw-af"].close()
    sleeps = cli.clock.sleeps
    assert await cli("int-org", "send", *FLAGS, "--wait", "3") == 3
    assert "not delivered to every recipient after 3s: ke-fiu" in cli.err and "heliograph status" in cli.err
    assert cli.clock.sleeps - sleeps == 3
    mid = cli.out.strip()
    assert await cli("int-org", "status", mid, "--wait", "2", "--json") == 3
    assert {r["member"]: r["state"] for r in cli.json()["recipients"]}["ke-fiu"] != "delivered"


async def test_field_errors_are_printed_with_their_paths(cli: Cli) -> None:
    bad = [*FLAGS[: FLAGS.index("--tier")], "--priority", "URGENT", "--tlp", "amber", "--tier", "action:nobody-here:summary"]
    assert await cli("int-org", "send", *bad) == 1
    assert cli.out == ""
    lines = cli.err.splitlines()
    assert lines[0].startswith("error [E_VALIDATION]: ")
    assert "  priority: Must be one of FLASH, IMMEDIATE, PRIORITY, ROUTINE." in lines
    assert '  tlp: Must be one of TLP:RED, TLP:AMBER+STRICT, TLP:AMBER, TLP:GREEN, TLP:CLEAR. Did you mean "TLP:AMBER"?' in lines
    assert any(line.startswith("  tiers[0].recipients[0]: ") for line in lines) and lines[-1].startswith("hint: ")
    # What only the CLI can check is a usage error (exit 2).
    assert await cli("int-org", "send", "--headline", "h", "--tier", "a:fr-police:", "--escalate", "b:a:10m") == 2
    assert "no --tier is named so" in cli.err
    assert await cli("int-org", "status", "--wait", "5") == 2


async def test_credentials_roles_and_unreachable_nodes(fed: Agencies, cli: Cli) -> None:
    bad_token = "hgt_" + "A" * 43
    assert await cli("int-org", "inbox", token=bad_token) == 1
    assert cli.err.startswith("error [E_UNAUTHENTICATED]: ") and "HELIOGRAPH_TOKEN" in cli.err and bad_token not in cli.err
    assert await cli("int-org", "inbox", token="hgt_ with space") == 1 and "E_UNAUTHENTICATED" in cli.err and "with space" not in cli.err
    assert await cli("int-org", "send", *FLAGS, role="auditor") == 1 and cli.err.startswith("error [E_FORBIDDEN]: ")
    assert await cli("int-org", "inbox", role="auditor") == 1 and "E_FORBIDDEN" in cli.err
    assert await cli("int-org", "status", "--json", role="auditor") == 0 and cli.json() == {"alerts": []}
    assert await cli("int-org", "inbox", url=f"http://127.0.0.1:{free_port()}") == 1
    assert cli.err.startswith("error [E_UNREACHABLE]: cannot reach the node at http://127.0.0.1:")
    assert await cli("int-org", "inbox", "show", "00" * 16) == 1 and cli.err.startswith("error [E_NOT_FOUND]: ")
    assert await cli("int-org", "ack", "zz", "--received") == 2 and "not a message id" in cli.err


async def test_reject_needs_a_reason_and_reaches_the_sender(fed: Agencies, cli: Cli) -> None:
    assert await cli("int-org", "send", *FLAGS) == 0
    mid = cli.out.strip()
    await fed.settle()
    assert await cli("ke-fiu", "ack", mid, "--reject", "not our jurisdiction") == 0, cli.err
    await fed.settle()
    assert await cli("int-org", "status", mid) == 0
    assert "ack: rejected" in cli.out and "not our jurisdiction" in cli.out
    assert await cli("ke-fiu", "ack", mid, "--reject", "again") == 1 and "E_CONFLICT" in cli.err


async def test_expired_items_are_hidden_unless_all(fed: Agencies, cli: Cli) -> None:
    assert await cli("int-org", "send", *FLAGS) == 0
    mid = cli.out.strip()
    await fed.settle()
    await fed.advance(6 * 3_600_000 + 60_000)
    assert await cli("fr-police", "inbox") == 0
    assert cli.out == "the inbox is empty\n1 expired item(s) not shown; --all shows them\n"
    assert await cli("fr-police", "inbox", "--all") == 0
    assert mid in cli.out and "expired 1m ago" in cli.out


def test_durations_and_times_read_naturally() -> None:
    assert [officer_views.span(ms) for ms in (0, 59_000, 61_000, 3_600_000, 90_061_000)] == ["0s", "59s", "1m 1s", "1h", "1d 1h"]
    assert officer_views.relative(10_000, 70_000) == "1m ago" and officer_views.relative(70_000, 10_000) == "in 1m"
    assert officer_views.when(1_780_000_000_000, 1_780_000_000_500) == "2026-05-28T20:26:40Z (now)"


def test_server_text_is_never_read_as_console_markup() -> None:
    item = {
        **{"message_id": "ab" * 16, "origin": "fr-police", "kind": "alert", "priority": "ROUTINE", "tlp": "TLP:CLEAR", "tier": "all"},
        **{"created": 0, "expires": 10_000, "received_at": 0, "purged": False, "refs": [], "superseded_by": []},
        **{"headline": "[bold red]not markup[/] [link=http://x]y[/link]", "event": "e", "sections_visible": [], "sections_withheld": ["details"]},
    }
    out = io.StringIO()
    Console(file=out, width=300).print(officer_views.inbox_table([item], 0))
    assert "[bold red]not markup[/] [link=http://x]y[/link]" in out.getvalue() and "withheld: details" in out.getvalue()
