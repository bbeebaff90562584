"""Node benchmark: real ``heliograph node run`` and ``gateway run`` processes on loopback.

Run from the repository root (``make bench``)::

    .venv/bin/python bench/node_bench.py [--quick] [--rounds N] [--duration S] [--out PATH]
    .venv/bin/python bench/node_bench.py --quick --profile bench-org   # cProfile one node, print its top functions

It prints a report and writes ``bench/results/node.json`` (not with ``--profile``,
whose stats go to ``$TMPDIR/heliograph-node-bench.prof``). ``--quick`` takes
about 50 s, the default about 2-3 minutes.
It has no pass/fail targets; it always exits 0 when it ran.

Processes (all on 127.0.0.1; every child gets SIGTERM on exit, and dies with the bench)
-----------------------------------------------------------------------------------------
The federation is written by ``tests.support.procs.write_federation`` (keys,
roster signed by 2 of 3 authorities, real loopback ports, gateway configs with
an allow-all policy, 10^4/s per-origin rate limit, back-off 0.2-2 s). Started:

* gateways ``gw-eu`` and ``gw-af`` (``python -m node.cli gateway run``);
* nodes (``python -m node.cli node run``; product defaults except
  ``[node] kdf = "min"``): ``int-org`` (at gw-eu), ``fr-police`` (gw-eu),
  ``ke-police`` and ``ke-fiu`` (gw-af) for the end-to-end phase;
  ``bench-org`` (gw-eu) for the throughput phase; ``inbox-node`` (gw-af) for
  the inbox phase. Each has one ``officer`` account with an API token, made by
  opening ``node.accounts.AccountStore`` on its ``accounts.db`` before start.

In the roster only (never started): gateway ``gw-far`` and 100 agency nodes
``rcpt-000`` .. ``rcpt-099`` homed at it. They are the throughput phase's
recipients and the inbox phase's senders.

Phases (in this order, each starting from a quiet federation)
-------------------------------------------------------------
1. **End-to-end** (``int-org`` -> ``gw-eu`` -> ``gw-af`` -> ``ke-police``/``ke-fiu``,
   and ``int-org`` -> ``gw-eu`` -> ``fr-police``). Open loop: ``POST /v1/alerts``
   at ``--e2e-rate`` alerts/s (default 10) for ``--e2e-seconds`` (20), each a
   2 KiB alert with tiers ``action`` = fr-police (all sections) and ``inform``
   = ke-police, ke-fiu (summary). Arrival is observed through each recipient
   node's own ``GET /v1/events`` stream (an ``inbox`` event is published right
   after the inbox row and the node's ``accepted`` receipt commit, i.e. the
   moment the recipient is "delivered"), one long-lived stream per node: no
   polling load on the nodes. Latency = arrival (CLOCK_MONOTONIC, read by this
   process when the event line arrives) minus the *scheduled* send time (no
   coordinated omission). Reported: per copy, ``all`` (last of the 3 copies),
   and ``origin_knows``: when the receipts that make ``GET /v1/alerts/{id}``
   show every recipient ``delivered`` had reached ``int-org`` (its ``receipt``
   events, matched by digest to the timeline of ``GET /v1/alerts/{id}``, which is
   fetched once per alert after the run, when every alert must read delivered).
   A per-hop breakdown comes from the signed receipts' own ``time`` fields.
   Afterwards: ``GET /v1/alerts`` on ``int-org`` (its sent list, each alert's
   receipts verified) ``--alert-list-gets`` times, sequentially.
2. **Inbox** (``inbox-node``). 10,000 small alerts (headline, 200 B summary,
   details; precedence mix 5% FLASH, 15% IMMEDIATE, 30% PRIORITY, 50% ROUTINE;
   every 10th an ``update`` of the sender's previous alert) from the 100
   ``rcpt-*`` members are sealed in this process, then posted to the node's
   ``POST /v1/envelopes`` in batches of 100, signed as its home gateway
   ``gw-af`` (the real verify, decrypt, inbox-row and receipt path; every
   answer's receipt is verified to be ``accepted``). The node queues its
   receipts toward the senders' home gateway ``gw-far``, which is down, so they
   wait there with back-off (``receipts_queued_toward_gw_far``). The
   batches go in two steps so the listing is measured at 1,000 and at 10,000
   stored alerts. At each size, sequentially on one keep-alive connection:
   ``GET /v1/inbox`` (it returns at most 500 rows), ``GET /v1/inbox/{id}`` for
   random ids, and ``GET /healthz`` on the same node as the HTTP floor.
3. **Throughput** (``bench-org``). Closed loop, ``--concurrency`` (16)
   keep-alive connections posting the same ``POST /v1/alerts`` body (the node
   draws every message id itself) for 1, 10 and 100 recipients (``rcpt-*``),
   tiers as in ``bench/protocol_bench.py``: ``action`` = the first recipient
   (summary 200 B, details 1348 B, instructions 500 B), ``inform`` = the rest
   (summary). ``--rounds`` rounds (3), each running the three sizes in a
   seeded shuffled order for ``--duration`` s (4) or ``--max-alerts`` (3000),
   whichever comes first. ``accept`` = 201 answers per second of load: the
   node's answer means sealed, stored and queued (committed). After each phase
   the bench waits until ``bench-org``'s outbox toward ``gw-eu`` is empty;
   ``forwarded`` = the same alerts over load + drain time. ``gw-eu`` accepts
   them and queues one relay copy per alert toward ``gw-far`` (down), so the
   gateway does its real accept work but no per-recipient fan-out.

CPU: utime + stime from ``/proc/PID/stat`` per process over each phase, as
cores; for ``bench-org`` also its main thread (the rest are aiosqlite's
threads); ``other_processes`` is the machine's busy time (``/proc/stat``) that
no bench process used: anything above ~0.1 means another workload shared the 2
vCPUs and the run is noisy.

Baseline (same run, this process, before any server starts)
-----------------------------------------------------------
For each recipient count, ``protocol.envelope.seal`` of exactly what the node
seals (the tiers and plaintext sections that ``node.compose.parse_alert_request``
builds from the same JSON body, ``rng = nacl.utils.random`` as the node uses):
median of 7 repetitions. ``seal_per_s`` is one core's sealing rate; the ratio
``node accept / seal_per_s`` shows the node's overhead over sealing (the node
shares 2 vCPUs with the load process and the gateway; CPU per process is
reported). Also the JSON decode + ``parse_alert_request`` cost, and for the inbox
``verify_header`` + ``open_envelope`` of one inbox alert (what ingest must do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import _common  # noqa: E402 - bench/ is the script's own directory
import aiohttp  # noqa: E402
import gateway_bench as gb  # noqa: E402 - the minimal HTTP client, child process and CPU helpers

SCHEMA = "heliograph/bench/node/v1"
CLK = gb.CLK
RUNNING_GATEWAYS = ("gw-eu", "gw-af")
DOWN_GATEWAY = "gw-far"
E2E_ORIGIN = "int-org"
E2E_RECIPIENTS = ("fr-police", "ke-police", "ke-fiu")
THR_ORIGIN = "bench-org"
INBOX_NODE = "inbox-node"
DUMMIES = tuple(f"rcpt-{i:03d}" for i in range(100))
RUNNING_NODES = {E2E_ORIGIN: "gw-eu", "fr-police": "gw-eu", "ke-police": "gw-af", "ke-fiu": "gw-af", THR_ORIGIN: "gw-eu", INBOX_NODE: "gw-af"}
COUNTS = (1, 10, 100)
SECTION_SIZES = {"summary": 200, "details": 1348, "instructions": 500}
PASSWORD = "bench password, long enough"
INBOX_BATCH = 100
INBOX_STEPS = (1_000, 10_000)
PRIORITY_MIX = (("FLASH", 5), ("IMMEDIATE", 15), ("PRIORITY", 30), ("ROUTINE", 50))
TTL_MS = 6 * 3_600_000
PROFILE_OUT = Path(tempfile.gettempdir()) / "heliograph-node-bench.prof"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# =========================================================================== workload


def text(label: str, size: int) -> str:
    words = "Suspected coordinated transfer pattern across correspondent accounts; freeze and report. "
    return (label + ": " + words * (size // len(words) + 2))[:size]


def alert_body(
    recipients: tuple[str, ...], *, priority: str = "FLASH", headline: str = "Coordinated transfers under way", sizes: dict[str, int] | None = None
) -> dict[str, Any]:
    """A POST /v1/alerts body: tier action = first recipient (all sections), inform = the rest (summary)."""
    sizes = sizes or SECTION_SIZES
    tiers: list[dict[str, Any]] = [{"name": "action", "recipients": [recipients[0]], "sections": sorted(sizes)}]
    if len(recipients) > 1:
        tiers.append({"name": "inform", "recipients": list(recipients[1:]), "sections": ["summary"]})
    return {
        "category": "Security",
        "event": "Coordinated transfer pattern",
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Likely",
        "priority": priority,
        "tlp": "TLP:AMBER",
        "expires": {"ttl": "6h"},
        "sections": {"headline": headline, **{sid: text(sid, n) for sid, n in sizes.items()}},
        "tiers": tiers,
    }


def http_json(method: str, path: str, port: int, token: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("ascii") + body


def med_us(fn: Any, n: int, reps: int = 7) -> float:
    out = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        out.append((time.perf_counter_ns() - t) / n / 1000)
    return statistics.median(out)


def baselines(fed: Any, quick: bool) -> dict[str, Any]:
    """In-process costs of what the node does per alert: parse the body, seal; and per inbox alert: verify + open."""
    import nacl.utils

    from node.compose import parse_alert_request
    from protocol.envelope import open_envelope, seal, verify_header

    out: dict[str, Any] = {"seal": {}}
    for n in COUNTS:
        raw = json.dumps(alert_body(DUMMIES[:n])).encode()
        now = wall_ms()

        def parse(raw: bytes = raw, now: int = now) -> Any:
            return parse_alert_request(json.loads(raw), roster=fed.roster, me=THR_ORIGIN, now_ms=now, max_ttl_ms=7 * 86_400_000)

        req = parse()
        tiers = req.initial_tiers()
        sections = req.plaintext_sections(tiers)

        def do_seal(req: Any = req, tiers: Any = tiers, sections: Any = sections, now: int = now) -> Any:
            return seal(
                sender=fed.keys[THR_ORIGIN],
                roster=fed.roster,
                tiers=tiers,
                sections=sections,
                priority=req.priority,
                label=req.label,
                now=now,
                expires=req.expires_ms,
                rng=nacl.utils.random,
                kind=req.kind,
                refs=(),
            )

        reps = max(3, (300 if not quick else 100) // n)
        seal_us = med_us(do_seal, reps)
        parse_us = med_us(parse, reps)
        out["seal"][str(n)] = {
            "seal_us": round(seal_us, 1),
            "seal_per_s": round(1e6 / seal_us, 1),
            "json_and_parse_us": round(parse_us, 1),
            "parse_and_seal_per_s": round(1e6 / (seal_us + parse_us), 1),
            "envelope_bytes": len(do_seal().to_bytes()),
            "request_bytes": len(raw),
        }
    # One inbox alert: what ingest does per envelope (the hop's verify_header, then the node's open_envelope).
    env = seal_inbox(fed, 1, quick=True)[0][1]
    from protocol.header import Envelope

    now = wall_ms()
    parsed = Envelope.from_bytes(env)
    keys = fed.keys[INBOX_NODE]
    out["inbox_envelope"] = {
        "envelope_bytes": len(env),
        "parse_us": round(med_us(lambda: Envelope.from_bytes(env), 500), 1),
        "verify_header_us": round(med_us(lambda: verify_header(parsed, fed.roster, now), 500), 1),
        "open_envelope_us": round(med_us(lambda: open_envelope(parsed, keys, fed.roster, now), 500), 1),
    }
    return out


def seal_inbox(fed: Any, count: int, *, quick: bool = False) -> list[tuple[bytes, bytes]]:
    """``count`` small alerts for ``inbox-node`` from the 100 ``rcpt-*`` members: (message id, envelope bytes)."""
    from node.compose import parse_alert_request
    from protocol.envelope import seal

    rng = random.Random(7)
    weights = [w for _, w in PRIORITY_MIX]
    now = wall_ms()
    templates = {}
    for prio, _ in PRIORITY_MIX:
        body = alert_body((INBOX_NODE,), priority=prio, headline=f"{prio.title()} notice", sizes={"summary": 200, "details": 300})
        req = parse_alert_request(body, roster=fed.roster, me=DUMMIES[0], now_ms=now, max_ttl_ms=7 * 86_400_000)
        templates[prio] = (req, req.initial_tiers(), req.plaintext_sections(req.initial_tiers()))
    last: dict[str, bytes] = {}
    out = []
    for i in range(count):
        origin = DUMMIES[i % len(DUMMIES)]
        prio = rng.choices([p for p, _ in PRIORITY_MIX], weights)[0]
        req, tiers, sections = templates[prio]
        update = i % 10 == 9 and origin in last
        env = seal(
            sender=fed.keys[origin],
            roster=fed.roster,
            tiers=tiers,
            sections=sections,
            priority=prio,
            label="TLP:GREEN",
            now=now,
            expires=now + TTL_MS,
            rng=os.urandom,
            kind="update" if update else "alert",
            refs=(last[origin],) if update else (),
        )
        last[origin] = env.message_id
        out.append((env.message_id, env.to_bytes()))
    return out


# =========================================================================== processes


def write_node_config(workdir: Path, member: str, port: int, *, synchronous: str = "FULL") -> Path:
    path = workdir / f"{member}.toml"
    log_table = "" if synchronous == "FULL" else f'\n[log]\nsynchronous = "{synchronous}"\n'

    path.write_text(
        f"""[hop]
id = "{member}"
listen = "127.0.0.1:{port}"
data_dir = "data/{member}"
roster = "roster.bin"
key_file = "keys/{member}.key"

[node]
kdf = "min"
{log_table}""",
        encoding="utf-8",
    )
    return path


async def make_token(db: Path) -> str:
    from nacl.pwhash import argon2id

    from node.accounts import AccountStore

    db.parent.mkdir(parents=True, exist_ok=True)
    store = await AccountStore.open(db, opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
    try:
        await store.add_user("officer", "officer", PASSWORD, now_ms=wall_ms())
        return await store.create_token("officer", "bench", now_ms=wall_ms())
    finally:
        await store.close()


def start_all(children: list[gb.Child], timeout: float = 60.0) -> None:
    """Start every child at once (gb.Child.start waits for each in turn), then wait for every ready file."""
    for c in children:
        c.ready.unlink(missing_ok=True)
        with c.log.open("ab") as log:
            c.proc = subprocess.Popen(c.argv, cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=gb._die_with_parent)  # noqa: PLW1509
    deadline = time.monotonic() + timeout
    for c in children:
        while not c.ready.exists():
            assert c.proc is not None
            if c.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{c.name} did not start:\n{c.log.read_text()[-3000:]}")
            time.sleep(0.05)


# =========================================================================== measurement helpers


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores; /proc/stat user+nice+system+irq+softirq+steal)."""
    try:
        parts = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
    return (user + nice + system + irq + softirq + steal) / gb.TICK


def lat(ms: list[float]) -> dict[str, float | int]:
    return gb.lat_summary(ms)


def med(xs: list[float]) -> float:
    return round(statistics.median(xs), 1) if xs else 0.0


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    fed: Any
    ports: dict[str, int]
    tokens: dict[str, str]
    children: dict[str, gb.Child]
    session: aiohttp.ClientSession | None = None
    notes: list[str] = field(default_factory=list)

    def url(self, member: str) -> str:
        return f"http://127.0.0.1:{self.ports[member]}"

    def auth(self, member: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[member]}"}

    def cpu_snapshot(self) -> dict[str, float]:
        snap = {name: c.cpu() for name, c in self.children.items()}
        snap["load"] = time.process_time()
        snap["machine"] = machine_busy_s()
        return snap

    @staticmethod
    def cpu_used(a: dict[str, float], b: dict[str, float], wall_s: float, keys: tuple[str, ...]) -> dict[str, float]:
        """Cores used per process in ``keys``, plus ``other_processes``: the machine's busy time not used by any bench process (noise)."""
        out = {k: round((b[k] - a[k]) / wall_s, 3) for k in keys}
        ours = sum(b[k] - a[k] for k in a if k != "machine")
        out["other_processes"] = round(max(0.0, (b["machine"] - a["machine"]) - ours) / wall_s, 3)
        return out

    async def get_json(self, member: str, path: str) -> Any:
        assert self.session is not None
        async with self.session.get(self.url(member) + path, headers=self.auth(member)) as r:
            if r.status != 200:
                raise RuntimeError(f"GET {path} on {member}: HTTP {r.status}: {(await r.text())[:300]}")
            return await r.json()

    async def backlog(self, member: str, destination: str | None = None) -> int:
        doc = await self.get_json(member, "/v1/destinations")
        return sum(sum(d["backlog"].values()) for d in doc["destinations"] if destination is None or d["destination"] == destination)

    async def wait_backlog_zero(self, member: str, destination: str | None, timeout: float) -> tuple[bool, float]:
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if await self.backlog(member, destination) == 0:
                return True, time.monotonic() - t
            await asyncio.sleep(0.05)
        return False, time.monotonic() - t


# =========================================================================== SSE


class EventStream:
    """One ``GET /v1/events`` stream: (arrival time, kind, data) per event, read as it arrives."""

    def __init__(self, bench: Bench, member: str) -> None:
        self.bench, self.member = bench, member
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        assert self.bench.session is not None
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.bench.session.get(self.bench.url(self.member) + "/v1/events", headers=self.bench.auth(self.member), timeout=timeout) as resp:
            if resp.status != 200:
                raise RuntimeError(f"events on {self.member}: HTTP {resp.status}")
            kind = ""
            async for raw in resp.content:
                t = CLK()
                line = raw.rstrip(b"\r\n")
                if line.startswith(b": connected"):
                    self.connected.set()
                elif line.startswith(b"event: "):
                    kind = line[7:].decode()
                elif line.startswith(b"data: "):
                    self.events.append((t, kind, json.loads(line[6:])))
                elif not line:
                    kind = ""

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"events-{self.member}")
        waiter = asyncio.create_task(self.connected.wait())
        done, _ = await asyncio.wait({self.task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if self.task.done():
                self.task.result()
            raise RuntimeError(f"no event stream from {self.member}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self.task


# =========================================================================== phase 1: end to end


async def phase_e2e(b: Bench) -> dict[str, Any]:
    a = b.args
    n = max(1, int(a.e2e_rate * a.e2e_seconds))
    port = b.ports[E2E_ORIGIN]
    body = json.dumps(alert_body(E2E_RECIPIENTS)).encode()
    req = gb.Req(raw=http_json("POST", "/v1/alerts", port, b.tokens[E2E_ORIGIN], body), mids=())
    streams = {m: EventStream(b, m) for m in (*E2E_RECIPIENTS, E2E_ORIGIN)}
    for s in streams.values():
        await s.start()
    # Warm-up (untimed): a few alerts through the whole path, so connections and caches exist.
    warm = await gb.open_loop(port, [req] * 5, 5.0, 4)
    await asyncio.sleep(2.0)
    for s in streams.values():
        s.events.clear()
    before = b.cpu_snapshot()
    w0 = time.monotonic()
    run = await gb.open_loop(port, [req] * n, a.e2e_rate, 32)
    sent: dict[str, int] = {}
    answer_ms, bad = [], 0
    for shot in run.shots:
        answer_ms.append((shot.t_done - shot.t_sched) / 1e6)
        if shot.status == 201 and shot.body:
            sent[json.loads(shot.body)["message_id"]] = shot.t_sched
        else:
            bad += 1
    # Wait (bounded) until every recipient has every alert.
    deadline = time.monotonic() + a.drain_timeout
    arrivals: dict[str, dict[str, int]] = {}
    while True:
        arrivals = {m: {e[2]["message_id"]: e[0] for e in streams[m].events if e[1] == "inbox"} for m in E2E_RECIPIENTS}
        if all(set(sent) <= set(arr) for arr in arrivals.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    # Give the receipts saying so 1 s more to reach the origin (late ones count in origin_knows_missing);
    # only then read each alert's status, once.
    await asyncio.sleep(1.0)
    wall = time.monotonic() - w0
    after = b.cpu_snapshot()
    receipt_at = {e[2]["digest"]: e[0] for e in streams[E2E_ORIGIN].events if e[1] == "receipt"}
    for s in streams.values():
        await s.stop()
    copy_ms: list[float] = []
    all_ms: list[float] = []
    knows_ms: list[float] = []
    hop_ms: dict[str, list[float]] = {}
    states: dict[str, int] = {}
    missing_knows = 0
    sem = asyncio.Semaphore(4)

    async def status(mid: str) -> dict[str, Any]:
        async with sem:
            return await b.get_json(E2E_ORIGIN, f"/v1/alerts/{mid}")  # type: ignore[no-any-return]

    t_status = time.monotonic()
    docs = await asyncio.gather(*(status(mid) for mid in sent))
    status_s = time.monotonic() - t_status
    for doc in docs:
        mid, t0 = doc["message_id"], sent[doc["message_id"]]
        times = [arrivals[m].get(mid) for m in E2E_RECIPIENTS]
        copy_ms += [(t - t0) / 1e6 for t in times if t is not None]
        if all(t is not None for t in times):
            all_ms.append((max(t for t in times if t is not None) - t0) / 1e6)
        known = []
        pairs: set[str] = set()  # a hop pair shared by several recipients (int-org->gw-eu) counts once per alert
        for r in doc["recipients"]:
            states[r["state"]] = states.get(r["state"], 0) + 1
            marks = [
                e for e in r["timeline"] if (e["hop"] == r["member"] and e["event"] == "accepted") or (e["event"] == "delivered" and e["peer"] == r["member"])
            ]
            seen = [receipt_at[e["digest"]] for e in marks if e["digest"] in receipt_at]
            known.append(min(seen) if seen else None)
            # Per-hop breakdown from the signed receipts' own times (wall ms): each hop's 'accepted' minus the previous one's.
            acc = {e["hop"]: e["time"] for e in r["timeline"] if e["event"] == "accepted"}
            path = [E2E_ORIGIN, "gw-eu", *(["gw-af"] if RUNNING_NODES[r["member"]] == "gw-af" else []), r["member"]]
            for x, y in itertools.pairwise(path):
                if x in acc and y in acc and f"{x}->{y}" not in pairs:
                    pairs.add(f"{x}->{y}")
                    hop_ms.setdefault(f"{x}->{y}", []).append(float(acc[y] - acc[x]))
        if all(k is not None for k in known):
            knows_ms.append((max(k for k in known if k is not None) - t0) / 1e6)
        else:
            missing_knows += 1
    # GET /v1/alerts (the origin's sent list, at most 200, each with its verified receipts), sequentially.
    raw_list = http_json("GET", "/v1/alerts", port, b.tokens[E2E_ORIGIN])
    alerts_ms, alerts_status, alerts_last = await sequential_gets(port, [raw_list] * a.alert_list_gets, 20.0)
    alerts_listed = len(json.loads(alerts_last[0]).get("alerts", [])) if alerts_status and alerts_status[-1] == 200 else 0
    delivered_all = sum(1 for mid in sent if all(mid in arrivals[m] for m in E2E_RECIPIENTS))
    keys = (E2E_ORIGIN, *E2E_RECIPIENTS, *RUNNING_GATEWAYS, "load")
    return {
        "alerts_offered": n,
        "rate_per_s": a.e2e_rate,
        "warmup_ok": sum(1 for s in warm.shots if s.status == 201),
        "answered_201": len(sent),
        "errors": bad + run.errors,
        "delivered_to_all_3": delivered_all,
        "status_states_after": states,
        "origin_knows_missing": missing_knows,
        "latency_ms": {
            "answer": lat(answer_ms),
            "copy": lat(copy_ms),
            "all_recipients": lat(all_ms),
            "origin_knows_all_delivered": lat(knows_ms),
        },
        "per_recipient_p50_ms": {
            m: round(gb.pct([(arrivals[m][mid] - sent[mid]) / 1e6 for mid in sent if mid in arrivals[m]], 0.5), 2) for m in E2E_RECIPIENTS
        },
        "hop_receipt_time_ms": {k: lat(v) for k, v in hop_ms.items()},
        "cpu_cores": Bench.cpu_used(before, after, wall, keys),
        "receipts_at_origin_per_alert": round(len(receipt_at) / max(1, len(sent)), 2),
        "alerts_list": {"latency_ms": lat(alerts_ms), "statuses": sorted(set(alerts_status)), "alerts_returned": alerts_listed},
        "status_fetch_s": round(status_s, 2),
        "status_fetch_ms_per_alert": round(1000 * status_s / max(1, len(docs)), 1),
    }


# =========================================================================== phase 2: inbox


def inbox_requests(b: Bench, envs: list[tuple[bytes, bytes]]) -> list[gb.Req]:
    from protocol.batch import BatchItem, EnvelopeBatch
    from protocol.transport import sign_request

    port = b.ports[INBOX_NODE]
    home = RUNNING_NODES[INBOX_NODE]
    out = []
    for k in range(0, len(envs), INBOX_BATCH):
        chunk = envs[k : k + INBOX_BATCH]
        body = EnvelopeBatch(items=tuple(BatchItem(envelope=data, recipients=(INBOX_NODE,)) for _, data in chunk)).to_bytes()
        auth = sign_request(
            b.fed.keys[home], method="POST", path="/v1/envelopes", query="", destination=INBOX_NODE, body=body, now=wall_ms(), nonce=os.urandom(16)
        )
        out.append(gb.Req(raw=gb.http_request("/v1/envelopes", port, auth, body), mids=tuple(m for m, _ in chunk)))
    return out


def check_ingest(b: Bench, reqs: list[gb.Req], run: gb.LoadRun) -> dict[str, int]:
    from protocol.batch import BatchResults
    from protocol.receipts import SignedReceipt

    outcomes: dict[str, int] = {}
    for shot in run.shots:
        req = reqs[shot.index]
        if shot.status != 200 or shot.body is None:
            key = f"http_{shot.status}:{(shot.body or b'')[:80].decode('utf-8', 'replace')}"
            outcomes[key] = outcomes.get(key, 0) + len(req.mids)
            continue
        for mid, raw in zip(req.mids, BatchResults.from_bytes(shot.body).results, strict=True):
            r = SignedReceipt.from_bytes(raw).verify(b.fed.roster)
            key = "accepted" if (r.event == "accepted" and r.hop == INBOX_NODE and r.message_id == mid) else f"{r.event}:{r.reason}"
            outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


async def sequential_gets(port: int, raws: list[bytes], budget_s: float) -> tuple[list[float], list[int], list[bytes]]:
    """GET each raw request in turn on one keep-alive connection, stopping after ``budget_s``; (ms, statuses, last body)."""
    conn = await gb.connect(port)
    ms, statuses, bodies = [], [], []
    t_end = time.monotonic() + budget_s
    try:
        for raw in raws:
            t = CLK()
            status, body = await conn.request(raw)
            ms.append((CLK() - t) / 1e6)
            statuses.append(status)
            bodies = [body]
            if time.monotonic() > t_end:
                break
    finally:
        conn.close()
    return ms, statuses, bodies


async def measure_inbox(b: Bench, stored: list[bytes]) -> dict[str, Any]:
    a = b.args
    port, token = b.ports[INBOX_NODE], b.tokens[INBOX_NODE]
    rng = random.Random(11)
    before = b.cpu_snapshot()
    w0 = time.monotonic()
    floor_ms, _, _ = await sequential_gets(port, [f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()] * a.floor_gets, 10)
    list_ms, list_status, last = await sequential_gets(port, [http_json("GET", "/v1/inbox", port, token)] * a.list_gets, a.list_budget)
    list_wall = time.monotonic() - w0
    mid_list = after_list = b.cpu_snapshot()
    ids = [rng.choice(stored).hex() for _ in range(a.item_gets)]
    item_ms, item_status, item_last = await sequential_gets(port, [http_json("GET", f"/v1/inbox/{i}", port, token) for i in ids], a.item_budget)
    after = b.cpu_snapshot()
    item_wall = time.monotonic() - w0 - list_wall
    doc = json.loads(last[0]) if last and list_status and list_status[-1] == 200 else {}
    items = doc.get("inbox", [])
    keys = (INBOX_NODE, "load")
    return {
        "stored": len(stored),
        "healthz_floor_ms": lat(floor_ms),
        "list": {
            "latency_ms": lat(list_ms),
            "statuses": sorted(set(list_status)),
            "rows_returned": len(items),
            "response_bytes": len(last[0]) if last else 0,
            "superseded_links": sum(len(i.get("superseded_by", [])) for i in items),
            "first_priority": items[0]["priority"] if items else None,
            "cpu_cores": Bench.cpu_used(before, mid_list, list_wall, keys),
        },
        "item": {
            "latency_ms": lat(item_ms),
            "statuses": sorted(set(item_status)),
            "response_bytes": len(item_last[0]) if item_last else 0,
            "cpu_cores": Bench.cpu_used(after_list, after, max(item_wall, 1e-3), keys),
        },
    }


async def phase_inbox(b: Bench) -> dict[str, Any]:
    a = b.args
    t = time.perf_counter()
    envs = seal_inbox(b.fed, INBOX_STEPS[-1])
    seal_s = time.perf_counter() - t
    out: dict[str, Any] = {"sealed": len(envs), "client_seal_s": round(seal_s, 2), "steps": []}
    done = 0
    for target in INBOX_STEPS:
        chunk = envs[done:target]
        reqs = inbox_requests(b, chunk)
        before = b.cpu_snapshot()
        run = await gb.closed_loop(b.ports[INBOX_NODE], reqs, a.ingest_concurrency, 600.0, cycle=False, keep=True)
        load_s = (run.t_end - run.t0) / 1e9
        after = b.cpu_snapshot()
        outcomes = check_ingest(b, reqs, run)
        done = target
        step = {
            "ingest": {
                "envelopes": len(chunk),
                "outcomes": outcomes,
                "env_per_s": round(outcomes.get("accepted", 0) / load_s, 1),
                "request_ms": lat([(s.t_done - s.t_send) / 1e6 for s in run.shots]),
                "cpu_cores": Bench.cpu_used(before, after, load_s, (INBOX_NODE, "gw-af", "load")),
                "receipts_queued_toward_gw_far": await b.backlog(INBOX_NODE, DOWN_GATEWAY),
            }
        }
        step.update(await measure_inbox(b, [m for m, _ in envs[:done]]))
        out["steps"].append(step)
        print(
            f"  inbox {done:6d} stored: ingest {step['ingest']['env_per_s']:7.0f} env/s  list p50/p99 {step['list']['latency_ms'].get('p50', 0):8.1f}/"
            f"{step['list']['latency_ms'].get('p99', 0):8.1f} ms ({step['list']['rows_returned']} rows, n={step['list']['latency_ms'].get('n')})"
            f"  item p50/p99 {step['item']['latency_ms'].get('p50', 0):6.1f}/{step['item']['latency_ms'].get('p99', 0):6.1f} ms"
            f"  healthz p50 {step['healthz_floor_ms'].get('p50', 0):.2f} ms",
            flush=True,
        )
    return out


# =========================================================================== phase 3: throughput


async def phase_throughput(b: Bench) -> dict[str, Any]:
    a = b.args
    port = b.ports[THR_ORIGIN]
    counts = a.counts
    reqs = {n: gb.Req(raw=http_json("POST", "/v1/alerts", port, b.tokens[THR_ORIGIN], json.dumps(alert_body(DUMMIES[:n])).encode()), mids=()) for n in counts}
    # Warm-up (untimed): every size once briefly.
    for n in counts:
        await gb.closed_loop(port, [reqs[n]] * 60, a.concurrency, 2.0, cycle=False, keep=False)
    await b.wait_backlog_zero(THR_ORIGIN, "gw-eu", a.drain_timeout)
    phases: list[dict[str, Any]] = []
    order_rng = random.Random(a.seed)
    started = time.monotonic()
    for rnd in range(a.rounds):
        if rnd and time.monotonic() - started > a.budget:
            b.notes.append(f"throughput: stopped after {rnd} rounds (budget {a.budget} s)")
            break
        order = list(counts)
        order_rng.shuffle(order)
        for n in order:
            before = b.cpu_snapshot()
            before_main = b.children[THR_ORIGIN].main_thread_cpu()
            w0 = time.monotonic()
            run = await gb.closed_loop(port, [reqs[n]] * a.max_alerts, a.concurrency, a.duration, cycle=False, keep=False)
            load_s = (run.t_end - run.t0) / 1e9
            mid_snap = b.cpu_snapshot()
            mid_main = b.children[THR_ORIGIN].main_thread_cpu()
            drained, drain_s = await b.wait_backlog_zero(THR_ORIGIN, "gw-eu", a.drain_timeout)
            after = b.cpu_snapshot()
            ok = sum(1 for s in run.shots if s.status == 201)
            statuses: dict[str, int] = {}
            for s in run.shots:
                statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
            keys = (THR_ORIGIN, "gw-eu", "load")
            p = {
                "round": rnd,
                "recipients": n,
                "alerts": ok,
                "statuses": statuses,
                "errors": run.errors,
                "load_s": round(load_s, 3),
                "accept_per_s": round(ok / load_s, 1),
                "forwarded_per_s": round(ok / (load_s + drain_s), 1),
                "drained": drained,
                "drain_s": round(drain_s, 2),
                "answer_ms": lat([(s.t_done - s.t_send) / 1e6 for s in run.shots]),
                "cpu_cores_load": Bench.cpu_used(before, mid_snap, load_s, keys) | {f"{THR_ORIGIN}_main_thread": round((mid_main - before_main) / load_s, 3)},
                "cpu_cores_with_drain": Bench.cpu_used(before, after, time.monotonic() - w0, keys),
                "node_cpu_ms_per_alert": round(1000 * (mid_snap[THR_ORIGIN] - before[THR_ORIGIN]) / max(1, ok), 2),
            }
            phases.append(p)
            c = p["cpu_cores_load"]
            print(
                f"  round {rnd} {n:3d} recipients: accept {p['accept_per_s']:7.1f}/s  forwarded {p['forwarded_per_s']:7.1f}/s"
                f"  answer p50/p99 {p['answer_ms'].get('p50', 0):6.1f}/{p['answer_ms'].get('p99', 0):6.1f} ms"
                f"  cpu node {c[THR_ORIGIN]:.2f} (main {c[THR_ORIGIN + '_main_thread']:.2f}) gw-eu {c['gw-eu']:.2f}"
                f" load {c['load']:.2f} others {c['other_processes']:.2f}"
                f"  {p['node_cpu_ms_per_alert']:.2f} node-CPU ms/alert",
                flush=True,
            )
    return {"phases": phases}


def summarize_throughput(thr: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in COUNTS:
        ps = [p for p in thr["phases"] if p["recipients"] == n]
        if not ps:
            continue
        acc = [p["accept_per_s"] for p in ps]
        fwd = [p["forwarded_per_s"] for p in ps]
        seal_rate = base["seal"][str(n)]["seal_per_s"]
        out[str(n)] = {
            "accept_per_s": {"median": med(acc), "min": min(acc, default=0), "max": max(acc, default=0)},
            "forwarded_per_s": {"median": med(fwd), "min": min(fwd, default=0), "max": max(fwd, default=0)},
            "baseline_seal_per_s": seal_rate,
            "ratio_accept_to_seal": round(med(acc) / seal_rate, 4) if seal_rate else None,
            "node_cpu_ms_per_alert_median": med([p["node_cpu_ms_per_alert"] for p in ps]),
            "node_cores_median": round(statistics.median([p["cpu_cores_load"][THR_ORIGIN] for p in ps]), 2),
            "other_processes_cores_median": round(statistics.median([p["cpu_cores_load"]["other_processes"] for p in ps]), 2),
            "seal_ms": round(base["seal"][str(n)]["seal_us"] / 1000, 3),
            "answer_p50_ms_median": med([p["answer_ms"].get("p50", 0) for p in ps]),
            "answer_p99_ms_median": med([p["answer_ms"].get("p99", 0) for p in ps]),
        }
    return out


# =========================================================================== report


def print_report(r: dict[str, Any]) -> None:
    base = r["baseline"]
    print(f"\nThroughput: POST /v1/alerts on bench-org, closed loop, C={r['config']['concurrency']} (median over rounds [min-max])")
    print(
        f"  {'recipients':>10} {'accept/s':>22} {'forwarded/s':>22} {'seal/s (1 core)':>16} {'ratio':>7}"
        f" {'node CPU ms/alert':>18} {'seal ms':>8} {'answer p50/p99 ms':>18}"
    )
    for n in COUNTS:
        s = r["throughput"]["summary"][str(n)]
        acc, fwd = s["accept_per_s"], s["forwarded_per_s"]
        print(
            f"  {n:>10} {acc['median']:8.1f} [{acc['min']:.0f}-{acc['max']:.0f}]{'':>3} {fwd['median']:8.1f} [{fwd['min']:.0f}-{fwd['max']:.0f}]{'':>3}"
            f" {s['baseline_seal_per_s']:16.0f} {s['ratio_accept_to_seal']:7.1%} {s['node_cpu_ms_per_alert_median']:18.2f} {s['seal_ms']:8.2f}"
            f" {s['answer_p50_ms_median']:8.1f}/{s['answer_p99_ms_median']:.1f}"
        )
    print(
        "  (ratio = node accept/s over one core's seal/s of the same alert; JSON decode + parse_alert_request per alert: "
        + ", ".join(f"{n}: {base['seal'][str(n)]['json_and_parse_us']:.0f} µs" for n in COUNTS)
        + ")"
    )
    inbox = r["inbox"]
    print("\nInbox (inbox-node; sequential GETs on one connection; ms)")
    print(
        f"  {'stored':>7} {'ingest env/s':>13} {'list p50':>9} {'list p99':>9} {'rows':>5} {'list KiB':>9}"
        f" {'item p50':>9} {'item p99':>9} {'healthz p50':>12}  cores node/others (list)"
    )
    for s in inbox["steps"]:
        li, it = s["list"], s["item"]
        print(
            f"  {s['stored']:>7} {s['ingest']['env_per_s']:13.0f} {li['latency_ms'].get('p50', 0):9.1f} {li['latency_ms'].get('p99', 0):9.1f}"
            f" {li['rows_returned']:>5} {li['response_bytes'] / 1024:9.0f} {it['latency_ms'].get('p50', 0):9.2f} {it['latency_ms'].get('p99', 0):9.2f}"
            f" {s['healthz_floor_ms'].get('p50', 0):12.2f}"
            f"  {li['cpu_cores'][INBOX_NODE]:.2f}/{li['cpu_cores']['other_processes']:.2f}"
        )
    ie = base["inbox_envelope"]
    print(
        f"  (in-process per inbox envelope: parse {ie['parse_us']:.0f} µs, verify_header {ie['verify_header_us']:.0f} µs,"
        f" open_envelope {ie['open_envelope_us']:.0f} µs -> at most {1e6 / (ie['parse_us'] + ie['verify_header_us'] + ie['open_envelope_us']):.0f}"
        " env/s per core before storage; the list returns at most 500 rows)"
    )
    e = r["e2e"]
    L = e["latency_ms"]
    print(
        f"\nEnd to end: {e['answered_201']} alerts at {e['rate_per_s']:.0f}/s from int-org to fr-police (gw-eu) and ke-police, ke-fiu"
        " (gw-eu -> gw-af); ms from scheduled send"
    )
    for k in ("answer", "copy", "all_recipients", "origin_knows_all_delivered"):
        x = L[k]
        print(f"  {k:28} n={x.get('n', 0):5}  p50 {x.get('p50', 0):8.1f}  p90 {x.get('p90', 0):8.1f}  p99 {x.get('p99', 0):8.1f}  max {x.get('max', 0):8.1f}")
    print("  per recipient p50: " + ", ".join(f"{m} {v:.1f}" for m, v in e["per_recipient_p50_ms"].items()))
    print(
        "  per hop (receipt times, ms p50/p99): " + ", ".join(f"{k} {v.get('p50', 0):.0f}/{v.get('p99', 0):.0f}" for k, v in e["hop_receipt_time_ms"].items())
    )
    print(
        f"  delivered to all 3: {e['delivered_to_all_3']}/{e['answered_201']}; states at the origin afterwards: {e['status_states_after']};"
        f" GET /v1/alerts/{{id}} took {e['status_fetch_ms_per_alert']:.1f} ms per alert"
    )
    al = e["alerts_list"]
    print(
        f"  receipts reaching int-org per alert: {e['receipts_at_origin_per_alert']:.1f}; GET /v1/alerts ({al['alerts_returned']} alerts)"
        f" p50/p99 {al['latency_ms'].get('p50', 0):.0f}/{al['latency_ms'].get('p99', 0):.0f} ms"
    )
    print("  cpu cores: " + ", ".join(f"{k} {v:.2f}" for k, v in e["cpu_cores"].items()))
    for note in r["notes"]:
        print("NOTE: " + note)


# =========================================================================== main


def machine_info(tmpdir: str) -> dict[str, Any]:
    import aiosqlite

    return _common.machine_info(
        sqlite=sqlite3.sqlite_version,
        aiohttp=aiohttp.__version__,
        aiosqlite=aiosqlite.__version__,
        tempdir=tmpdir,
        tempdir_fs=_common.filesystem_of(tmpdir),
        git_dirty_node_gateway_protocol=_common.git_dirty("node", "gateway", "protocol"),
        code_sha256_16=_common.code_hashes(sorted((ROOT / "node").glob("*.py"))),
    )


async def run_phases(b: Bench) -> dict[str, Any]:
    b.session = aiohttp.ClientSession()
    try:
        out: dict[str, Any] = {}
        if "e2e" in b.args.phases:
            print("phase: end to end", flush=True)
            out["e2e"] = await phase_e2e(b)
            e = out["e2e"]["latency_ms"]
            print(
                f"  copy p50/p99 {e['copy'].get('p50', 0):.1f}/{e['copy'].get('p99', 0):.1f} ms, all 3 {e['all_recipients'].get('p50', 0):.1f}/"
                f"{e['all_recipients'].get('p99', 0):.1f} ms, origin knows {e['origin_knows_all_delivered'].get('p50', 0):.1f}/"
                f"{e['origin_knows_all_delivered'].get('p99', 0):.1f} ms",
                flush=True,
            )
        if "inbox" in b.args.phases:
            print("phase: inbox", flush=True)
            out["inbox"] = await phase_inbox(b)
        if "throughput" in b.args.phases:
            print("phase: throughput", flush=True)
            out["throughput"] = await phase_throughput(b)
        return out
    finally:
        await b.session.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 throughput round of 2 s, 6 s of end-to-end, fewer GETs")
    p.add_argument("--rounds", type=int, help="throughput rounds (3; --quick 1)")
    p.add_argument("--duration", type=float, help="seconds per closed-loop throughput phase (4; --quick 2)")
    p.add_argument("--max-alerts", type=int, default=3000, help="cap on alerts per throughput phase")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--budget", type=float, default=120.0, help="no new throughput round starts after this many seconds")
    p.add_argument("--e2e-rate", type=float, default=10.0)
    p.add_argument("--e2e-seconds", type=float, help="open-loop seconds (20; --quick 6)")
    p.add_argument("--ingest-concurrency", type=int, default=2)
    p.add_argument("--list-gets", type=int, help="GET /v1/inbox requests per inbox size (30; --quick 8)")
    p.add_argument("--list-budget", type=float, default=30.0, help="stop listing after this many seconds")
    p.add_argument("--item-gets", type=int, help="GET /v1/inbox/{id} requests per inbox size (300; --quick 60)")
    p.add_argument("--item-budget", type=float, default=20.0)
    p.add_argument("--alert-list-gets", type=int, default=10, help="GET /v1/alerts requests on int-org after the end-to-end phase")
    p.add_argument("--floor-gets", type=int, help="GET /healthz requests per inbox size (300; --quick 100)")
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument("--phases", default="e2e,inbox,throughput")
    p.add_argument("--counts", default=",".join(map(str, COUNTS)), help="diagnostic: throughput recipient counts (subset of 1,10,100)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--node-synchronous", choices=("FULL", "NORMAL"), default="FULL", help="diagnostic: the nodes' [log] synchronous (product default FULL)")
    p.add_argument("--profile", choices=sorted(RUNNING_NODES), help="run this node under cProfile and print its top functions (nothing is written to --out)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "node.json")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs and databases)")
    args = p.parse_args()
    defaults = {"rounds": (3, 1), "duration": (4.0, 2.0), "e2e_seconds": (20.0, 6.0), "list_gets": (30, 8), "item_gets": (300, 60), "floor_gets": (300, 100)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.phases = tuple(x.strip() for x in args.phases.split(","))
    args.counts = tuple(int(x) for x in args.counts.split(","))
    if not set(args.counts) <= set(COUNTS):
        p.error(f"--counts must be a subset of {COUNTS}")

    from gateway.keyfile import write_secret_keys
    from tests.support.procs import write_federation

    started = time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    workdir = Path(tempfile.mkdtemp(prefix="heliograph-nodebench-"))
    machine = machine_info(str(workdir))
    print("machine: " + ", ".join(f"{k}={machine[k]}" for k in ("cpu_model", "cpu_count", "python", "sqlite", "aiohttp", "tempdir_fs", "git_rev")))
    nodes = (*RUNNING_NODES.items(), *((d, DOWN_GATEWAY) for d in DUMMIES))
    fed, ports = write_federation(workdir, "node-bench", nodes=nodes, gateways=(*RUNNING_GATEWAYS, DOWN_GATEWAY))
    base = baselines(fed, args.quick)
    print(f"baselines done at {time.monotonic() - started:.0f} s", flush=True)
    print("baseline seal (1 core): " + ", ".join(f"{n} rcpt {base['seal'][str(n)]['seal_us'] / 1000:.2f} ms" for n in COUNTS), flush=True)
    tokens = {}
    for m in RUNNING_NODES:
        write_secret_keys(workdir / "keys" / f"{m}.key", fed.keys[m])
        write_node_config(workdir, m, ports[m], synchronous=args.node_synchronous)
        tokens[m] = asyncio.run(make_token(workdir / "data" / m / "accounts.db"))
    py = sys.executable
    children: dict[str, gb.Child] = {}
    for gw in RUNNING_GATEWAYS:
        children[gw] = gb.Child(
            gw, [py, "-m", "node.cli", "gateway", "run", "--config", str(workdir / f"{gw}.toml"), "--ready-file", str(workdir / f"{gw}.ready")], workdir
        )
    prof = workdir / "node.prof"
    for m in RUNNING_NODES:
        argv = [py, "-m", "node.cli", "node", "run", "--config", str(workdir / f"{m}.toml"), "--ready-file", str(workdir / f"{m}.ready")]
        if args.profile == m:
            argv = [py, "-m", "cProfile", "-o", str(prof), *argv[1:]]
        children[m] = gb.Child(m, argv, workdir)
    bench = Bench(args=args, workdir=workdir, fed=fed, ports=ports, tokens=tokens, children=children)
    exits: dict[str, int | None] = {}
    try:
        t = time.monotonic()
        start_all(list(children.values()))
        print(f"started {len(children)} processes in {time.monotonic() - t:.1f} s; workdir {workdir}", flush=True)
        results = asyncio.run(run_phases(bench))
        print(f"phases done at {time.monotonic() - started:.0f} s", flush=True)
        dead = [c.name for c in children.values() if not c.alive()]
        if dead:
            raise RuntimeError(f"{dead} died during the run:\n{children[dead[0]].log.read_text()[-3000:]}")
    finally:
        t_stop = time.monotonic()
        order = [*RUNNING_NODES, *RUNNING_GATEWAYS]
        for name in order:  # SIGTERM to all at once (each finishes its commits), then wait for each
            c = children[name]
            if c.alive():
                assert c.proc is not None
                c.proc.send_signal(signal.SIGTERM)
        for name in order:  # wait without a second SIGTERM: one arriving after the event loop closed would kill the process
            c = children[name]
            if c.proc is None:
                continue
            try:
                exits[name] = c.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                exits[name] = c.proc.wait(timeout=30)
                bench.notes.append(f"{name} did not exit within 60 s of SIGTERM and was killed")
        stop_s = time.monotonic() - t_stop
        print(f"stopped every process in {stop_s:.1f} s", flush=True)
        db_bytes = {m: sum(f.stat().st_size for f in (workdir / "data" / m).glob("hop.db*")) for m in children if (workdir / "data" / m).exists()}
        if args.profile and prof.exists():
            shutil.copy(prof, PROFILE_OUT)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    total_s = time.monotonic() - started

    result: dict[str, Any] = {
        "schema": SCHEMA,
        "machine": machine,
        "config": {
            "quick": args.quick,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "max_alerts": args.max_alerts,
            "concurrency": args.concurrency,
            "e2e_rate_per_s": args.e2e_rate,
            "e2e_seconds": args.e2e_seconds,
            "ingest_concurrency": args.ingest_concurrency,
            "inbox_batch": INBOX_BATCH,
            "inbox_steps": list(INBOX_STEPS),
            "alert_plaintext_bytes": sum(SECTION_SIZES.values()),
            "nodes": {"kdf": "min", "log.synchronous": args.node_synchronous, "everything else": "product defaults"},
            "gateways": "tests.support.procs.write_federation (allow-all, 10^4/s per origin, back-off 0.2-2 s)",
            "seed": args.seed,
            "profiled": args.profile,
        },
        "baseline": base,
        "notes": bench.notes,
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "exit_codes": exits,
        "stop_s": round(stop_s, 1),
        "db_bytes_at_end": db_bytes,
        "total_s": round(total_s, 1),
    }
    if "e2e" in results:
        result["e2e"] = results["e2e"]
    if "inbox" in results:
        result["inbox"] = results["inbox"]
    if "throughput" in results:
        result["throughput"] = {"summary": summarize_throughput(results["throughput"], base), "phases": results["throughput"]["phases"]}
    if {"e2e", "inbox", "throughput"} <= set(results) and len(args.counts) == len(COUNTS):
        print_report(result)
    print(f"\nexit codes {exits}; total {total_s:.0f} s")
    if args.profile:
        import pstats

        print(f"\ncProfile of {args.profile}: {PROFILE_OUT}")
        st = pstats.Stats(str(PROFILE_OUT))
        st.sort_stats("tottime").print_stats(30)
        st.sort_stats("cumulative").print_stats(40)
        return 0
    _common.write_results(args.out, result)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
