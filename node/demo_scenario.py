"""The scenario ``heliograph demo`` plays against a running federation, narrated as a terminal timeline.

It uses only what an officer or an oversight body has: the officer API of each
node (API tokens) and every hop's public log API. Each step has a name; the
first failure raises :class:`node.demo.DemoFailure` with it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TextIO

import aiohttp

from gateway.clock import Clock
from node.demo import DemoFailure

if TYPE_CHECKING:
    from node.demo import Federation

ESCALATE_AFTER = "8s"
POLL_S = 0.2


class Narrator:
    """Prints the demo's timeline: ``[+  1.23 s] step  what happened``."""

    def __init__(self, out: TextIO, clock: Clock) -> None:
        self._out, self._clock = out, clock
        self._t0 = clock.monotonic()

    def _line(self, text: str) -> None:
        print(f"[+{self._clock.monotonic() - self._t0:7.2f} s] {text}", file=self._out, flush=True)

    def step(self, name: str, text: str) -> None:
        self._line(f"== {name:<10} {text}")

    def event(self, text: str) -> None:
        self._line(f"   {text}")

    def note(self, text: str) -> None:
        self._line(f"   note: {text}")

    def fail(self, name: str, text: str) -> None:
        self._line(f"!! FAILED at step '{name}': {text}")

    def done(self) -> None:
        self._line("== done       every step passed")


class Officer:
    """One officer's view of one node's API."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, member: str) -> None:
        self.session, self.url, self.member = session, url, member
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, step: str, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        try:
            async with self.session.request(method, self.url + path, json=body, headers=self.headers) as resp:
                data = await resp.json()
                if resp.status != expect:
                    raise DemoFailure(step, f"{method} {path} at {self.member}: HTTP {resp.status} {data}")
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DemoFailure(step, f"{method} {path} at {self.member}: {type(exc).__name__}: {exc}") from None


def alert(
    kind: str = "alert", refs: tuple[str, ...] = (), *, escalate: bool = True, headline: str = "Armed robbery suspects heading for the border"
) -> dict[str, Any]:
    action: dict[str, Any] = {"name": "action", "recipients": ["fr-police"], "sections": ["summary", "details", "instructions"]}
    tiers = [action, {"name": "inform", "recipients": ["za-fiu"], "sections": ["summary"]}]
    if escalate:
        action["escalate_if_unacked"] = {"tier": "escalation", "after": ESCALATE_AFTER}
        tiers.append({"name": "escalation", "recipients": ["ke-police"], "sections": ["summary", "details"]})
    return {
        "kind": kind,
        "references": list(refs),
        "category": "Security",
        "event": "Armed robbery",
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Likely",
        "priority": "FLASH",
        "tlp": "TLP:AMBER",
        "expires": {"ttl": "2h"},
        "sections": {
            "headline": headline,
            "summary": "Three suspects in a grey van, last seen near Lyon.",
            "details": "Plate FR-123-AB. Suspects are armed. Linked to transfers flagged by FIU reports.",
            "instructions": "Stop and hold; do not approach alone. Call the duty desk.",
        },
        "tiers": tiers,
    }


async def wait_for(step: str, what: str, check: Any, timeout_s: float, clock: Clock) -> Any:
    """Poll ``check()`` until it returns something truthy; fail the step after ``timeout_s``."""
    deadline = clock.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if clock.monotonic() > deadline:
            raise DemoFailure(step, f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(POLL_S)


async def follow_receipts(step: str, sender: Officer, mid: str, members: set[str], *, narrator: Narrator, clock: Clock, seen: set[str]) -> dict[str, Any]:
    """Narrate receipts as they arrive until every member in ``members`` is delivered."""

    async def poll() -> dict[str, Any] | None:
        board = await sender.call(step, "GET", f"/v1/alerts/{mid}")
        for r in board["recipients"]:
            for e in r.get("timeline", []):
                if e["digest"] not in seen:
                    seen.add(e["digest"])
                    peer = f" -> {e['peer']}" if e.get("peer") else ""
                    narrator.event(f"receipt  {e['hop']:<10} {e['event']:<12}{peer:<14} log #{e['log_index']}  (for {r['member']})")
        if board["unverified_receipts"]:
            raise DemoFailure(step, f"unverified receipts: {board['unverified_receipts']}")
        states = {r["member"]: r["state"] for r in board["recipients"]}
        return board if all(states.get(m) in ("delivered", "acknowledged") for m in members) else None

    board: dict[str, Any] = await wait_for(step, f"delivery to {sorted(members)}", poll, 20, clock)
    return board


async def play(fed: Federation, narrator: Narrator, clock: Clock) -> None:
    from gateway.log_verifier import verify_log

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        m = fed.members
        int_org = Officer(session, m["int-org"].url, m["int-org"].token, "int-org")
        fr = Officer(session, m["fr-police"].url, m["fr-police"].token, "fr-police")
        za = Officer(session, m["za-fiu"].url, m["za-fiu"].token, "za-fiu")
        ke = Officer(session, m["ke-police"].url, m["ke-police"].token, "ke-police")
        seen: set[str] = set()

        narrator.step(
            "send", f"int-org sends a FLASH alert: action=fr-police (all sections), inform=za-fiu (summary), escalation=ke-police after {ESCALATE_AFTER}"
        )
        mid = (await int_org.call("send", "POST", "/v1/alerts", alert(), expect=201))["message_id"]
        narrator.event(f"committed and queued: message {mid}")

        narrator.step("receipts", "receipts travel back hop by hop")
        await follow_receipts("receipts", int_org, mid, {"fr-police", "za-fiu"}, narrator=narrator, clock=clock, seen=seen)

        narrator.step("inbox", "what each agency can open")
        for officer in (fr, za):
            item = await officer.call("inbox", "GET", f"/v1/inbox/{mid}")
            visible, withheld = ", ".join(item["sections_visible"]), ", ".join(item["sections_withheld"]) or "none"
            narrator.event(f"{officer.member:<10} tier {item['tier']:<7} sees {visible}; withheld: {withheld}")
        if (await ke.call("inbox", "GET", "/v1/inbox"))["inbox"]:
            raise DemoFailure("inbox", "ke-police received the escalation tier ahead of time")
        narrator.event("ke-police  has nothing yet: the escalation tier is held back")

        narrator.step("ack", "za-fiu acknowledges (received); fr-police, the action tier, does not")
        await za.call("ack", "POST", f"/v1/inbox/{mid}/ack", {"disposition": "received", "comment": "Checking transfers"}, expect=202)

        narrator.step("escalation", f"no accepted ack from the action tier within {ESCALATE_AFTER}: the escalation tier is sealed and sent")

        async def escalated() -> Any:
            return (await ke.call("escalation", "GET", "/v1/inbox"))["inbox"]

        (item,) = await wait_for("escalation", "ke-police to receive the escalation", escalated, 30, clock)
        narrator.event(f"ke-police received {item['message_id']} (refs {item['refs'][0][:8]}...), tier {item['tier']}")
        await ke.call("escalation", "POST", f"/v1/inbox/{item['message_id']}/ack", {"disposition": "accepted", "comment": "Unit dispatched"}, expect=202)
        narrator.event("ke-police acknowledges: accepted")

        async def acks_home() -> Any:
            board = await int_org.call("escalation", "GET", f"/v1/alerts/{mid}")
            za_row = next(r for r in board["recipients"] if r["member"] == "za-fiu")
            return board if za_row["ack"] and za_row["ack"]["receipt_verified"] else None

        board = await wait_for("escalation", "the acks to reach int-org", acks_home, 20, clock)
        for r in board["recipients"]:
            ack = r["ack"]
            narrator.event(f"status   {r['member']:<10} {r['state']:<13} ack: {ack['disposition'] + ' (verified receipt)' if ack else '-'}")

        narrator.step("update", "int-org sends an update to the original")
        up = (
            await int_org.call("update", "POST", "/v1/alerts", alert("update", (mid,), escalate=False, headline="UPDATE: suspects changed vehicle"), expect=201)
        )["message_id"]
        await follow_receipts("update", int_org, up, {"fr-police", "za-fiu"}, narrator=narrator, clock=clock, seen=seen)

        narrator.step("cancel", "int-org cancels the alert")
        cancel = (
            await int_org.call("cancel", "POST", "/v1/alerts", alert("cancel", (mid,), escalate=False, headline="CANCEL: suspects arrested"), expect=201)
        )["message_id"]
        await follow_receipts("cancel", int_org, cancel, {"fr-police", "za-fiu"}, narrator=narrator, clock=clock, seen=seen)
        original = await fr.call("cancel", "GET", f"/v1/inbox/{mid}")
        kinds = sorted(s["kind"] for s in original["superseded_by"])
        if kinds != ["cancel", "update"]:
            raise DemoFailure("cancel", f"fr-police shows the original linked to {kinds}, expected update and cancel")
        narrator.event("fr-police  shows the original linked to its update and its cancel")

        narrator.step("oversight", "verify every hop's log from its public API, and every receipt against the roster")
        for member in fed.hops():
            try:
                report = await verify_log(member.url, member.log_vkey)
            except Exception as exc:
                raise DemoFailure("oversight", f"log of {member.id}: {exc}") from None
            narrator.event(f"log      {member.id:<10} verified: {report.lines[-1] if report.lines else 'ok'}")
        witness = fed.members["witness"]

        async def witnessed() -> Any:
            async with session.get(f"{witness.url}/v1/witness/status") as resp:
                doc = await resp.json()
            states = {log["origin"]: log["state"] for log in doc["logs"]}
            if "alarm" in states.values():
                raise DemoFailure("oversight", f"the witness raised an alarm: {doc}")
            return states if len(states) == len(fed.hops()) and set(states.values()) == {"ok"} else None

        states = await wait_for("oversight", "the witness to verify every log", witnessed, 20, clock)
        narrator.event(f"witness  {witness.display} verified and cosigned {len(states)} logs, no alarm")

        async def bundle() -> bytes | None:
            # int-org requires the witness's cosignature on every checkpoint it puts in a bundle; the
            # witness cosigns once a second, so the newest receipts may need one more round.
            async with session.get(f"{int_org.url}/v1/alerts/{mid}/evidence", headers=int_org.headers) as resp:
                return await resp.read() if resp.status == 200 else None

        bundle_path = fed.state / f"evidence-{mid[:8]}.hgev"
        bundle_path.write_bytes(await wait_for("oversight", "a witness-cosigned evidence bundle", bundle, 20, clock))
        from node.demo import cli

        html = fed.state / f"evidence-{mid[:8]}.html"
        argv = ("verify", "receipts", str(bundle_path), "--roster", str(fed.roster), "--html", str(html), "--require-delivery")
        table = await asyncio.to_thread(cli, *argv, "--witness", witness.log_vkey, "--require-k", "1", step="oversight")
        passes = sum(1 for line in table.splitlines() if "PASS" in line)
        narrator.event(f"evidence {mid[:8]}... bundle (witness-cosigned) verified offline against the roster: {passes} PASS rows, report {html.name}")
        for message in (mid, up, cancel):
            board = await int_org.call("oversight", "GET", f"/v1/alerts/{message}")
            if board["unverified_receipts"]:
                raise DemoFailure("oversight", f"message {message}: receipts that do not verify: {board['unverified_receipts']}")
            count = sum(len(r.get("timeline", [])) for r in board["recipients"])
            narrator.event(f"receipts {message[:8]}... {count} receipt entries, all verified against the roster")

        narrator.step("backup", "back up int-org while it runs, then check the copy as a restore drill would")
        copy = fed.state / "backup-int-org"
        config = str(fed.state / "int-org" / "node.toml")
        await asyncio.to_thread(cli, "backup", "create", "--config", config, "--out", str(copy), step="backup")
        checked = await asyncio.to_thread(cli, "backup", "check", str(copy), "--roster", str(fed.roster), step="backup")
        narrator.event("backup   " + checked.strip().split(": ", 1)[-1] + "; no secret key in it")
