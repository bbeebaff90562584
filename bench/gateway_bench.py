"""Gateway benchmark: a real ``heliograph gateway run`` process against a bare aiohttp floor.

Run from the repository root (``make bench``)::

    .venv/bin/python bench/gateway_bench.py [--quick] [--rounds N] [--duration S] [--out PATH]
    .venv/bin/python bench/gateway_bench.py --profile bench/results/gateway.prof   # cProfile the gateway

It prints a report and writes ``bench/results/gateway.json``. It always exits 0
when it ran: a missed target is reported (PASS/MISS), it is not a failure.

Processes (all on 127.0.0.1, all children are killed on exit)
--------------------------------------------------------------
* **gateway**: ``python -m node.cli gateway run --config gw-eu.toml`` (the
  product, started like ``tests/support/procs.py`` does), data directory in a
  fresh temporary directory on a real disk (``machine.tempdir_fs``), with the
  product defaults (``log.synchronous = "FULL"``, ``log.batch_max = 1000``,
  ``log.batch_wait_s = 0``, ``queue.batch_max = 50``, ``sweep_interval_s = 1``)
  except a per-origin rate limit of 10^6/s (burst 10^6) so the limiter never
  throttles.
* **sink**: this script re-invoked with ``--serve sink``: one aiohttp process
  that stands in for the five recipient nodes ``rcpt-0`` .. ``rcpt-4`` and for
  the origin node ``int-org``. Each of those six members has its own roster
  endpoint (port); the sink listens on all six and knows which member it is
  from the local port. ``POST /v1/envelopes``: record the arrival time
  (``CLOCK_MONOTONIC``, shared by every process on the machine) keyed by
  (member, message id), authenticate the gateway's request
  (``verify_request``: one Ed25519 verify per request), parse each envelope
  frame for its message id and header digest, and answer one signed
  ``accepted`` receipt per item (the gateway verifies them). It does *not* open
  (decrypt) envelopes: that is the recipient application's cost, not the hop's.
  ``POST /v1/receipts`` (receipts travelling back to ``int-org``):
  authenticate, count, acknowledge.
* **floor**: this script re-invoked with ``--serve floor``: a bare aiohttp
  handler, ``await request.read()`` then an empty 200, in its own process.
* **load** (this process): one asyncio event loop, a minimal HTTP/1.1
  keep-alive client written on ``asyncio.Protocol`` (prebuilt request bytes,
  Content-Length framing) so the client costs a fraction of an aiohttp
  ``ClientSession`` request and measures the server, not itself. The machine
  has 2 vCPUs: load, gateway and sink share them, so the load process and the
  sink take CPU from the gateway (and the load process from the floor). The CPU
  each process used in each phase is reported so this can be judged.

Workload
--------
* Federation: ``tests.support.procs.write_federation`` (keys, re-signed roster
  with loopback ports): gateway ``gw-eu``; origin ``int-org`` and recipients
  ``rcpt-0`` .. ``rcpt-4``, all homed at ``gw-eu``. So every accepted envelope
  is split into five next hops (one per recipient node) and ``gw-eu`` delivers
  five copies to the sink, verifies five node receipts, signs five
  ``delivered`` receipts, and sends 11 receipts per envelope back to the
  origin node (its own ``accepted``, and per copy the node's receipt and its
  ``delivered``). This is the gateway's whole job for a local delivery, which
  is why it was chosen over relaying to a second gateway.
* The alert is the 2 KiB alert of ``bench/protocol_bench.py``: 3 sections,
  ``summary`` 200 B, ``details`` 1348 B, ``instructions`` 500 B (2048 B of
  plaintext); tier ``action`` = ``rcpt-0`` (all sections), tier ``inform`` =
  ``rcpt-1`` .. ``rcpt-4`` (``summary`` only), FLASH, TLP:AMBER, 1 h TTL. Five
  recipients' key stanzas add about 2 KiB of wire overhead (a 5-recipient
  envelope with a 1-byte alert is already 2.1 KiB), so a "2 KiB envelope" is
  read as a 2 KiB alert; the wire size is reported (``envelope_bytes``).
* Envelopes are sealed and requests signed (``sign_request``, fresh ``ts``,
  16 random nonce bytes) in this process *before* each phase starts; signing
  is client work. Every envelope and every nonce is used once.
* Request shapes: ``single`` = one envelope per ``POST /v1/envelopes``;
  ``batch`` = 20 envelopes per request.

Phases
------
* Warm-up (untimed, not reported): each server gets a short closed-loop burst
  (300 single / 600 batched envelopes); it also estimates the gateway's accept
  rate per shape, which sizes the next phase's pre-sealed pool.
* ``--rounds`` rounds (default 3). Each round runs four closed-loop phases in a
  freshly shuffled order (seeded): floor/single, gateway/single, floor/batch,
  gateway/batch. Closed loop: C connections (32 for single, 8 for batch), each
  sending its next request as soon as the previous answer arrives. A floor
  phase lasts ``--duration`` seconds (default 4) and gets the very same request
  bytes as the gateway (it ignores them). A gateway phase stops at
  ``--duration`` seconds or after ``--max-envelopes`` envelopes (default 1000),
  whichever comes first: the gateway accepts faster than it forwards, and the
  count cap bounds the drain. After a gateway phase the bench waits (at most
  ``--drain-timeout`` s) until the sink has every copy and the gateway's
  outboxes are empty (receipts to the origin included), so each phase starts
  idle; ``drained`` says whether it did. No new round starts after
  ``--budget`` seconds (default 150); the whole run takes about 2-3 minutes.
* Half-rate (open loop): for single and for batch, requests at a fixed
  interval at 50% of that shape's median sustained rate, for ``2 x
  --duration`` seconds, over a pool of 64 connections. Latency is measured from
  the *scheduled* send time, so a stall cannot hide queued requests
  (no coordinated omission).

Metrics
-------
* ``accept``: envelopes answered with a verified, signed ``accepted`` receipt,
  per second of load (first send to last answer). Every answer is verified
  after the phase (signature against the roster, event, message id).
* ``delivered``: accepted envelopes whose five copies all reached the sink,
  divided by the time from the first send to the last copy's arrival. It
  includes the drain after the load stops, so a gateway that accepts faster
  than it forwards cannot look faster than it is.
* ``sustained`` (the headline): the same envelopes, divided by the time from
  the first send until the last copy *and* the last receipt travelling back to
  the origin reached the sink (11 receipts per envelope: the gateway's
  ``accepted``, and per copy the node's ``accepted`` and the gateway's
  ``delivered``; the count is checked, else the rate is reported as 0). Receipts
  are part of the hop's job; a rate at which they pile up is not sustainable.
* hop latency per copy: sink arrival time minus the send time of the request
  that carried the envelope (same machine clock); p50 and p99 over copies, and
  ``all5`` (the last of an envelope's five copies). ``answer``: POST to the
  gateway's 200.
* CPU: utime + stime from ``/proc/PID/stat`` per process over the phase
  (including the drain), as cores used; for the gateway also its main thread
  alone (``/proc/PID/task/PID/stat``; the rest are aiosqlite's threads).

Targets (from the issue)
------------------------
* throughput: gateway single sustained envelopes/s >= 40% of the floor's
  single requests/s, as the ratio of the medians over rounds (per-round range
  shown). For batch the ratio is per request, which equals per envelope
  (both sides carry the same 20 envelopes); also shown against the single
  floor for scale.
* latency: p99 per-copy hop latency < 50 ms in the half-rate single phase.

Context (not a target): Ed25519 sign and verify are timed in this process
before the servers start, and the report shows how many envelopes/s one core
could handle on the gateway's signatures alone (7 verifies + 6 signs per
envelope; see :func:`crypto_bound`), as a share of the single floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
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
import msgpack  # noqa: E402
from aiohttp import web  # noqa: E402

SCHEMA = "heliograph/bench/gateway/v1"
GATEWAY = "gw-eu"
ORIGIN = "int-org"
RECIPIENTS = tuple(f"rcpt-{i}" for i in range(5))
SECTION_SIZES = {"summary": 200, "details": 1348, "instructions": 500}
BATCH = 20
CONC = {"single": 32, "batch": 8}
OPEN_POOL = 64
RECEIPTS_PER_ENVELOPE = 1 + 2 * len(RECIPIENTS)  # gw-eu's accepted; per copy the node's accepted and gw-eu's delivered
TTL_MS = 3_600_000
LAT_TARGET_MS = 50.0
RATIO_TARGET = 0.40
MSGPACK = "application/x-msgpack"
CLK = time.monotonic_ns  # CLOCK_MONOTONIC: one clock for every process on the machine


# =========================================================================== servers (child processes)


def _ready(path: str) -> None:
    Path(path).write_text("ok\n")


def serve_floor(port: int, ready: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    async def main() -> None:
        app = web.Application(client_max_size=16 << 20)
        app.router.add_post("/v1/envelopes", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        _ready(ready)
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_sink(workdir: str, ready: str) -> None:
    from gateway.keyfile import read_secret_keys
    from protocol.batch import BatchResults, EnvelopeBatch, ReceiptAck, ReceiptBatch
    from protocol.header import Envelope
    from protocol.receipts import Receipt
    from protocol.roster import SignedRoster
    from protocol.transport import verify_request

    wd = Path(workdir)
    roster = SignedRoster.from_bytes((wd / "roster.bin").read_bytes()).verify_trusted(time.time_ns() // 1_000_000)
    members = (ORIGIN, *RECIPIENTS)
    keys = {m: read_secret_keys(wd / "keys" / f"{m}.key") for m in members}
    by_port = {int(roster.member(m).endpoint.rsplit(":", 1)[1]): m for m in members}
    arrivals: dict[str, list[tuple[bytes, int]]] = {m: [] for m in RECIPIENTS}
    seen: set[tuple[str, bytes]] = set()
    receipt_log: list[tuple[int, int]] = []
    stats = {"copies": 0, "duplicates": 0, "receipts": 0, "requests": 0, "errors": 0}

    def me(request: web.Request) -> str:
        return by_port[request.transport.get_extra_info("sockname")[1]]  # type: ignore[union-attr]

    def auth(request: web.Request, body: bytes, member: str) -> None:
        verify_request(
            request.headers.get("Authorization", ""),
            method="POST",
            path=request.rel_url.raw_path,
            query=request.rel_url.raw_query_string,
            body=body,
            me=member,
            roster=roster,
            now=time.time_ns() // 1_000_000,
            max_skew_ms=300_000,
        )

    async def envelopes(request: web.Request) -> web.Response:
        body = await request.read()
        t = CLK()
        member = me(request)
        try:
            auth(request, body, member)
        except Exception as exc:  # the bench must notice, not the gateway
            stats["errors"] += 1
            return web.Response(status=401, text=str(exc))
        stats["requests"] += 1
        k = keys[member]
        results = []
        now = time.time_ns() // 1_000_000
        for item in EnvelopeBatch.from_bytes(body).items:
            env = Envelope.from_bytes(item.envelope)
            mid = env.message_id
            if (member, mid) in seen:
                stats["duplicates"] += 1
            else:
                seen.add((member, mid))
                arrivals[member].append((mid, t))
                stats["copies"] += 1
            receipt = Receipt(
                message_id=mid, header_digest=env.header_digest, hop=member, hop_key=k.signing_key_id, event="accepted", time=now, peer=GATEWAY, prev=item.prev
            )
            results.append(receipt.sign(k).to_bytes())
        return web.Response(body=BatchResults(results=tuple(results)).to_bytes(), content_type=MSGPACK)

    async def receipts(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            auth(request, body, me(request))
        except Exception as exc:
            stats["errors"] += 1
            return web.Response(status=401, text=str(exc))
        n = len(ReceiptBatch.from_bytes(body).receipts)
        stats["receipts"] += n
        receipt_log.append((CLK(), n))
        return web.Response(body=ReceiptAck(stored=n).to_bytes(), content_type=MSGPACK)

    async def get_stats(_request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def get_arrivals(request: web.Request) -> web.Response:
        doc = {"copies": {m: [[mid, t] for mid, t in rows] for m, rows in arrivals.items()}, "receipts": [list(r) for r in receipt_log]}
        if request.query.get("clear") == "1":
            for rows in arrivals.values():
                rows.clear()
            receipt_log.clear()
        return web.Response(body=msgpack.packb(doc, use_bin_type=True), content_type=MSGPACK)

    async def main() -> None:
        app = web.Application(client_max_size=16 << 20)
        app.router.add_post("/v1/envelopes", envelopes)
        app.router.add_post("/v1/receipts", receipts)
        app.router.add_get("/bench/stats", get_stats)
        app.router.add_get("/bench/arrivals", get_arrivals)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for port in by_port:
            await web.TCPSite(runner, "127.0.0.1", port).start()
        _ready(ready)
        await asyncio.Event().wait()

    asyncio.run(main())


# =========================================================================== child process management


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the bench dies, even by SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: str) -> float:
    try:
        text = Path(path).read_text()
    except OSError:
        return 0.0
    parts = text[text.rindex(")") + 2 :].split()
    return (int(parts[11]) + int(parts[12])) / TICK  # utime, stime (fields 14, 15)


class Child:
    """One server process; CPU seconds read from /proc."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = workdir / f"{name}.log"
        self.ready = workdir / f"{name}.ready"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.ready.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_die_with_parent)  # noqa: PLW1509 - started before any thread exists
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def cpu(self) -> float:
        return _stat_cpu(f"/proc/{self.proc.pid}/stat") if self.proc else 0.0

    def main_thread_cpu(self) -> float:
        return _stat_cpu(f"/proc/{self.proc.pid}/task/{self.proc.pid}/stat") if self.proc else 0.0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


# =========================================================================== load client


class HttpConn(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive client connection: one request at a time, Content-Length framing."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head_end = -1
        self.need = -1
        self.status = 0
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.head_end < 0:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            lines = bytes(self.buf[:i]).split(b"\r\n")
            self.status = int(lines[0].split(b" ", 2)[1])
            self.need = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self.need = int(value)
                elif name == b"transfer-encoding":
                    self._fail(RuntimeError("chunked responses are not supported by the bench client"))
                    return
            self.head_end = i + 4
        end = self.head_end + self.need
        if len(self.buf) >= end:
            body = bytes(self.buf[self.head_end : end])
            del self.buf[:end]
            self.head_end = self.need = -1
            w, self.waiter = self.waiter, None
            if w is not None and not w.done():
                w.set_result((self.status, body))

    def _fail(self, exc: BaseException) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(ConnectionError(f"connection lost: {exc}"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int) -> HttpConn:
    _, proto = await asyncio.get_running_loop().create_connection(HttpConn, "127.0.0.1", port)
    return proto


def http_request(path: str, port: int, auth: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth}\r\nContent-Type: {MSGPACK}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("ascii")
    return head + body


@dataclass
class Req:
    raw: bytes
    mids: tuple[bytes, ...]


@dataclass
class Shot:
    index: int
    t_sched: int
    t_send: int
    t_done: int
    status: int
    body: bytes | None


@dataclass
class LoadRun:
    t0: int
    t_end: int
    shots: list[Shot]
    errors: int = 0


async def closed_loop(port: int, reqs: list[Req], conc: int, duration: float, *, cycle: bool, keep: bool) -> LoadRun:
    conns = [await connect(port) for _ in range(conc)]
    shots: list[Shot] = []
    nxt = 0
    errors = 0
    t0 = CLK()
    deadline = t0 + int(duration * 1e9)

    async def worker(c: HttpConn) -> None:
        nonlocal nxt, errors
        while True:
            t = CLK()
            if t >= deadline or (not cycle and nxt >= len(reqs)):
                return
            i = nxt
            nxt += 1
            try:
                status, body = await c.request(reqs[i % len(reqs)].raw)
            except ConnectionError:
                errors += 1
                return
            shots.append(Shot(i, t, t, CLK(), status, body if keep else None))

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    return LoadRun(t0=t0, t_end=CLK(), shots=shots, errors=errors)


async def open_loop(port: int, reqs: list[Req], rate: float, pool: int) -> LoadRun:
    """Send reqs[i] at t0 + i / rate on any idle connection (waiting for one if none is idle)."""
    idle: asyncio.Queue[HttpConn] = asyncio.Queue()
    conns = [await connect(port) for _ in range(pool)]
    for c in conns:
        idle.put_nowait(c)
    shots: list[Shot] = []
    errors = 0
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int, t_sched: int) -> None:
        nonlocal errors
        c = await idle.get()
        t_send = CLK()
        try:
            status, body = await c.request(reqs[i].raw)
        except ConnectionError:
            errors += 1
            return
        shots.append(Shot(i, t_sched, t_send, CLK(), status, body))
        idle.put_nowait(c)

    period = 1e9 / rate
    t0 = CLK() + 1_000_000
    try:
        for i in range(len(reqs)):
            t_sched = t0 + int(i * period)
            delay = (t_sched - CLK()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, t_sched)))
        await asyncio.gather(*tasks)
    finally:
        for c in conns:
            c.close()
    return LoadRun(t0=t0, t_end=CLK(), shots=shots, errors=errors)


# =========================================================================== workload


def make_sections() -> dict[str, bytes]:
    words = b"Suspected coordinated transfer pattern across correspondent accounts; freeze and report. "
    return {sid: (sid.encode() + b": " + words * (size // len(words) + 2))[:size] for sid, size in SECTION_SIZES.items()}


class Workload:
    def __init__(self, fed: Any, gw_port: int) -> None:
        from protocol import envelope as env_mod

        self.env_mod = env_mod
        self.fed = fed
        self.gw_port = gw_port
        self.sections = make_sections()
        self.tiers = [
            env_mod.Tier(name="action", sections=tuple(sorted(SECTION_SIZES)), recipients=(RECIPIENTS[0],)),
            env_mod.Tier(name="inform", sections=("summary",), recipients=RECIPIENTS[1:]),
        ]
        self.counter = 0
        self.seal_s = 0.0
        self.sign_s = 0.0
        self.envelope_bytes = 0

    def seal(self, n: int) -> list[tuple[bytes, bytes]]:
        from tests.support.federation import SeededRng
        from tests.support.procs import wall_ms

        t = time.perf_counter()
        out = []
        now = wall_ms()
        for _ in range(n):
            self.counter += 1
            env = self.env_mod.seal(
                sender=self.fed.keys[ORIGIN],
                roster=self.fed.roster,
                tiers=self.tiers,
                sections=self.sections,
                priority="FLASH",
                label="TLP:AMBER",
                now=now,
                expires=now + TTL_MS,
                rng=SeededRng(f"gateway-bench-{self.counter}"),
            )
            data = env.to_bytes()
            self.envelope_bytes = len(data)
            out.append((env.message_id, data))
        self.seal_s += time.perf_counter() - t
        return out

    def requests(self, envs: list[tuple[bytes, bytes]], per_request: int) -> list[Req]:
        from protocol.batch import BatchItem, EnvelopeBatch
        from protocol.transport import sign_request
        from tests.support.procs import wall_ms

        t = time.perf_counter()
        out = []
        keys = self.fed.keys[ORIGIN]
        for k in range(0, len(envs) - per_request + 1, per_request):
            chunk = envs[k : k + per_request]
            body = EnvelopeBatch(items=tuple(BatchItem(envelope=data, recipients=RECIPIENTS) for _, data in chunk)).to_bytes()
            auth = sign_request(keys, method="POST", path="/v1/envelopes", query="", destination=GATEWAY, body=body, now=wall_ms(), nonce=os.urandom(16))
            out.append(Req(raw=http_request("/v1/envelopes", self.gw_port, auth, body), mids=tuple(m for m, _ in chunk)))
        self.sign_s += time.perf_counter() - t
        return out


# =========================================================================== statistics


pct = _common.pct


def lat_summary(ms: list[float]) -> dict[str, float | int]:
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": round(pct(ms, 0.5), 3), "p90": round(pct(ms, 0.9), 3), "p99": round(pct(ms, 0.99), 3), "max": round(max(ms), 3)}


# =========================================================================== crypto bound (context for the ratio)


def crypto_bound() -> dict[str, float]:
    """Ed25519 sign / verify medians on this machine, and the envelopes/s one core could do on them alone.

    Per envelope the gateway verifies the request signature (1 per request), the
    header (1), and each recipient node's receipt (5), and signs its accepted
    receipt (1) and one delivered receipt per copy (5); request signatures on
    its outgoing POSTs and the log checkpoint per commit are amortised over
    batches and left out. So: 7 verifies + 6 signs (6.05 + 6 with 20 per request).
    """
    import nacl.signing

    key = nacl.signing.SigningKey(bytes(range(32)))
    vk = key.verify_key
    msg = bytes(256)
    sm = key.sign(msg)

    def med_us(fn: Any, n: int = 400) -> float:
        out = []
        for _ in range(7):
            t = time.perf_counter_ns()
            for _ in range(n):
                fn()
            out.append((time.perf_counter_ns() - t) / n / 1000)
        return statistics.median(out)

    sign_us = med_us(lambda: key.sign(msg))
    verify_us = med_us(lambda: vk.verify(sm))
    single = 7 * verify_us + 6 * sign_us
    batch = (6 + 1 / BATCH) * verify_us + 6 * sign_us
    return {
        "ed25519_sign_us": round(sign_us, 1),
        "ed25519_verify_us": round(verify_us, 1),
        "crypto_us_per_envelope_single": round(single, 1),
        "crypto_us_per_envelope_batch": round(batch, 1),
        "crypto_only_env_per_s_one_core_single": round(1e6 / single, 0),
        "crypto_only_env_per_s_one_core_batch": round(1e6 / batch, 0),
    }


# =========================================================================== the bench


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    fed: Any
    ports: dict[str, int]
    gateway: Child
    sink: Child
    floor: Child
    floor_port: int
    work: Workload
    session: aiohttp.ClientSession | None = None
    started: float = 0.0
    copies_expected: int = 0
    accepted_total: int = 0
    phases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gw_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[GATEWAY]}"

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[ORIGIN]}"

    def cpu_snapshot(self) -> dict[str, float]:
        return {
            "gateway": self.gateway.cpu(),
            "gateway_main_thread": self.gateway.main_thread_cpu(),
            "sink": self.sink.cpu(),
            "floor": self.floor.cpu(),
            "load": time.process_time(),
        }

    @staticmethod
    def cpu_used(a: dict[str, float], b: dict[str, float], wall_s: float) -> dict[str, float]:
        return {k: round((b[k] - a[k]) / wall_s, 3) for k in a}

    async def sink_stats(self) -> dict[str, int]:
        assert self.session is not None
        async with self.session.get(self.sink_url + "/bench/stats") as r:
            return await r.json()  # type: ignore[no-any-return]

    async def gateway_backlog(self) -> int:
        assert self.session is not None
        async with self.session.get(self.gw_url + "/v1/destinations") as r:
            doc = await r.json()
        return sum(sum(d["backlog"].values()) for d in doc["destinations"])

    async def drain(self, timeout: float) -> tuple[bool, float]:
        """Wait until the sink has every copy and the gateway's outboxes are empty."""
        t = time.monotonic()
        deadline = t + timeout
        while time.monotonic() < deadline:
            stats = await self.sink_stats()
            if stats["copies"] >= self.copies_expected and await self.gateway_backlog() == 0:
                return True, time.monotonic() - t
            await asyncio.sleep(0.05)
        return False, time.monotonic() - t

    async def arrivals(self) -> tuple[dict[bytes, list[int]], list[tuple[int, int]]]:
        """Copy arrival times by message id, and (time, count) of each receipt batch, since the last call."""
        assert self.session is not None
        async with self.session.get(self.sink_url + "/bench/arrivals?clear=1") as r:
            doc = msgpack.unpackb(await r.read(), raw=False)
        out: dict[bytes, list[int]] = {}
        for rows in doc["copies"].values():
            for mid, t in rows:
                out.setdefault(bytes(mid), []).append(int(t))
        return out, [(int(t), int(n)) for t, n in doc["receipts"]]

    def check_answers(self, reqs: list[Req], run: LoadRun) -> tuple[set[bytes], dict[str, int]]:
        """Verify every answer: one signed, valid 'accepted' receipt per envelope, for the right message."""
        from protocol.batch import BatchResults
        from protocol.receipts import SignedReceipt

        accepted: set[bytes] = set()
        outcomes: dict[str, int] = {}
        for shot in run.shots:
            req = reqs[shot.index]
            if shot.status != 200 or shot.body is None:
                key = f"http_{shot.status}:{(shot.body or b'')[:80].decode('utf-8', 'replace')}"
                outcomes[key] = outcomes.get(key, 0) + len(req.mids)
                continue
            results = BatchResults.from_bytes(shot.body).results
            for mid, raw in zip(req.mids, results, strict=True):
                r = SignedReceipt.from_bytes(raw).verify(self.fed.roster)
                if r.event == "accepted" and r.message_id == mid and r.hop == GATEWAY:
                    accepted.add(mid)
                    key = "accepted"
                else:
                    key = f"{r.event}:{r.reason}"
                outcomes[key] = outcomes.get(key, 0) + 1
        return accepted, outcomes

    async def gateway_phase(self, shape: str, reqs: list[Req], *, label: str, rate: float | None = None) -> dict[str, Any]:
        per = BATCH if shape == "batch" else 1
        before = self.cpu_snapshot()
        w0 = time.monotonic()
        if rate is None:
            run = await closed_loop(self.ports[GATEWAY], reqs, CONC[shape], self.args.duration, cycle=False, keep=True)
        else:
            run = await open_loop(self.ports[GATEWAY], reqs, rate, OPEN_POOL)
        load_s = (run.t_end - run.t0) / 1e9
        accepted_count_guess = sum(len(reqs[s.index].mids) for s in run.shots if s.status == 200)
        self.copies_expected += accepted_count_guess * len(RECIPIENTS)
        drained, drain_s = await self.drain(self.args.drain_timeout)
        wall = time.monotonic() - w0
        after = self.cpu_snapshot()
        arrivals, receipt_log = await self.arrivals()
        accepted, outcomes = self.check_answers(reqs, run)
        self.accepted_total += len(accepted)
        if len(accepted) != accepted_count_guess:
            self.copies_expected += (len(accepted) - accepted_count_guess) * len(RECIPIENTS)
        copy_ms: list[float] = []
        all5_ms: list[float] = []
        answer_ms: list[float] = []
        complete = 0
        last_arrival = run.t_end
        for shot in run.shots:
            answer_ms.append((shot.t_done - shot.t_sched) / 1e6)
            for mid in reqs[shot.index].mids:
                if mid not in accepted:
                    continue
                times = arrivals.get(mid, [])
                copy_ms.extend((t - shot.t_sched) / 1e6 for t in times)
                if len(times) == len(RECIPIENTS):
                    complete += 1
                    all5_ms.append((max(times) - shot.t_sched) / 1e6)
                    last_arrival = max(last_arrival, *times)
        delivered_s = (last_arrival - run.t0) / 1e9
        receipts_in = sum(n for _, n in receipt_log)
        last_receipt = max((t for t, _ in receipt_log), default=run.t_end)
        sustained_s = (max(last_arrival, last_receipt) - run.t0) / 1e9
        requests_done = sum(1 for s in run.shots if s.status == 200)
        result = {
            "label": label,
            "target": "gateway",
            "shape": shape,
            "mode": "open" if rate is not None else "closed",
            "offered_env_per_s": round(rate * per, 1) if rate is not None else None,
            "concurrency": OPEN_POOL if rate is not None else CONC[shape],
            "requests_sent": len(run.shots),
            "requests_ok": requests_done,
            "envelopes_accepted": len(accepted),
            "envelopes_complete": complete,
            "outcomes": outcomes,
            "client_errors": run.errors,
            "load_s": round(load_s, 3),
            "delivered_s": round(delivered_s, 3),
            "sustained_s": round(sustained_s, 3),
            "receipts_at_origin": receipts_in,
            "receipts_expected": RECEIPTS_PER_ENVELOPE * len(accepted),
            "drained": drained,
            "drain_wait_s": round(drain_s, 3),
            "req_per_s": round(requests_done / load_s, 1),
            "accept_env_per_s": round(len(accepted) / load_s, 1),
            "delivered_env_per_s": round(complete / delivered_s, 1) if delivered_s > 0 else 0.0,
            "sustained_env_per_s": round(complete / sustained_s, 1) if sustained_s > 0 and receipts_in >= RECEIPTS_PER_ENVELOPE * len(accepted) else 0.0,
            "copy_latency_ms": lat_summary(copy_ms),
            "all5_latency_ms": lat_summary(all5_ms),
            "answer_latency_ms": lat_summary(answer_ms),
            "cpu_cores": self.cpu_used(before, after, wall),
        }
        self.phases.append(result)
        return result

    async def floor_phase(self, shape: str, reqs: list[Req], *, label: str) -> dict[str, Any]:
        per = BATCH if shape == "batch" else 1
        before = self.cpu_snapshot()
        w0 = time.monotonic()
        run = await closed_loop(self.floor_port, reqs, CONC[shape], self.args.duration, cycle=True, keep=False)
        wall = time.monotonic() - w0
        after = self.cpu_snapshot()
        load_s = (run.t_end - run.t0) / 1e9
        ok = sum(1 for s in run.shots if s.status == 200)
        result = {
            "label": label,
            "target": "floor",
            "shape": shape,
            "mode": "closed",
            "concurrency": CONC[shape],
            "requests_sent": len(run.shots),
            "requests_ok": ok,
            "client_errors": run.errors,
            "load_s": round(load_s, 3),
            "req_per_s": round(ok / load_s, 1),
            "env_per_s": round(ok * per / load_s, 1),
            "answer_latency_ms": lat_summary([(s.t_done - s.t_send) / 1e6 for s in run.shots]),
            "cpu_cores": self.cpu_used(before, after, wall),
        }
        self.phases.append(result)
        return result

    def gateway_requests(self, shape: str, envelopes: int) -> list[Req]:
        per = BATCH if shape == "batch" else 1
        n = max(per, envelopes - envelopes % per)
        return self.work.requests(self.work.seal(n), per)


def machine_info(tmpdir: str) -> dict[str, Any]:
    import aiosqlite

    return _common.machine_info(
        sqlite=sqlite3.sqlite_version,
        aiohttp=aiohttp.__version__,
        aiosqlite=aiosqlite.__version__,
        tempdir=tmpdir,
        tempdir_fs=_common.filesystem_of(tmpdir),
        git_dirty_gateway_protocol=_common.git_dirty("gateway", "protocol"),
        code_sha256_16=_common.code_hashes(sorted((ROOT / "gateway").glob("*.py"))),
    )


def write_gateway_config(workdir: Path, port: int) -> None:
    (workdir / f"{GATEWAY}.toml").write_text(
        f"""[hop]
id = "{GATEWAY}"
listen = "127.0.0.1:{port}"
data_dir = "data/{GATEWAY}"
roster = "roster.bin"
key_file = "keys/{GATEWAY}.key"

[limits]
max_batch = 100

[queue]
batch_max = 50
sweep_interval_s = 1.0

[log]
batch_max = 1000
batch_wait_s = 0.0
synchronous = "FULL"

[policy]
max_ttl_ms = 86400000

[[policy.rules]]
action = "allow"
origins = ["*"]

[policy.rate_limits]
default = {{ rate = 1000000.0, burst = 1000000 }}
""",
        encoding="utf-8",
    )


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def run_bench(b: Bench) -> dict[str, Any]:
    args = b.args
    rng = random.Random(args.seed)
    b.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        # ---- warm-up (untimed, not reported): imports, caches, sqlite pages, connection pools. It also
        # gives a first estimate of each shape's accept rate, used to size the next phase's pre-sealed pool.
        floor_reqs: dict[str, list[Req]] = {}
        est: dict[str, float] = {}
        for shape in ("single", "batch"):
            reqs = floor_reqs[shape] = b.gateway_requests(shape, 300 if shape == "single" else 600)
            await closed_loop(b.floor_port, reqs, CONC[shape], 1.0, cycle=True, keep=False)
            t = time.monotonic()
            run = await closed_loop(b.ports[GATEWAY], reqs, CONC[shape], 10.0, cycle=False, keep=True)
            acc, _ = b.check_answers(reqs, run)
            b.copies_expected += len(acc) * len(RECIPIENTS)
            est[shape] = max(50.0, len(acc) / max(1e-3, (run.t_end - run.t0) / 1e9))
            ok, _ = await b.drain(args.drain_timeout)
            await b.arrivals()
            print(f"  warm-up {shape}: ~{est[shape]:.0f} envelopes/s accepted ({time.monotonic() - t:.1f} s incl. drain, drained={ok})", flush=True)
        # The floor reuses these already-used request bytes in every floor phase (it ignores their content).

        # ---- interleaved saturation rounds
        order = [("floor", "single"), ("gateway", "single"), ("floor", "batch"), ("gateway", "batch")]
        for rnd in range(args.rounds):
            if rnd and time.monotonic() - b.started > args.budget:
                print(f"  (time budget of {args.budget:.0f} s spent: stopping after {rnd} rounds)")
                break
            rng.shuffle(order)
            for target, shape in order:
                label = f"r{rnd}.{target}.{shape}"
                if target == "floor":
                    res = await b.floor_phase(shape, floor_reqs[shape], label=label)
                    print(f"  {label:22} {res['req_per_s']:9.0f} req/s  {res['env_per_s']:9.0f} env/s   cpu {res['cpu_cores']}", flush=True)
                else:
                    budget = min(args.max_envelopes, int(est[shape] * args.duration * 1.6) + 4 * BATCH)
                    reqs = b.gateway_requests(shape, budget)
                    res = await b.gateway_phase(shape, reqs, label=label)
                    if res["requests_sent"] >= len(reqs):
                        print(
                            f"  (note: {label} reached its count cap of {len(reqs) * (BATCH if shape == 'batch' else 1)} envelopes after {res['load_s']:.1f} s)"
                        )
                    est[shape] = max(est[shape], res["accept_env_per_s"])
                    print(
                        f"  {label:22} {res['req_per_s']:9.0f} req/s  accept {res['accept_env_per_s']:7.0f}  delivered {res['delivered_env_per_s']:6.0f}"
                        f"  sustained {res['sustained_env_per_s']:6.0f} env/s"
                        f"  copy p50/p99 {res['copy_latency_ms'].get('p50', 0):.1f}/{res['copy_latency_ms'].get('p99', 0):.1f} ms"
                        f"  drained={res['drained']} ({res['drain_wait_s']:.1f} s)  cpu {res['cpu_cores']}",
                        flush=True,
                    )

        # ---- half-rate open loop
        half: dict[str, dict[str, Any]] = {}
        for shape in ("single", "batch"):
            per = BATCH if shape == "batch" else 1
            sat = med([p["sustained_env_per_s"] for p in b.phases if p["target"] == "gateway" and p["shape"] == shape and p["mode"] == "closed"])
            env_rate = 0.5 * sat
            n_env = min(args.max_envelopes, int(env_rate * args.duration * 2))
            reqs = b.gateway_requests(shape, max(per, n_env))
            res = await b.gateway_phase(shape, reqs, label=f"half.{shape}", rate=env_rate / per)
            half[shape] = res
            print(
                f"  half.{shape:17} offered {res['offered_env_per_s']:7.0f} env/s  accept {res['accept_env_per_s']:7.0f}"
                f"  copy p50/p99 {res['copy_latency_ms'].get('p50', 0):.1f}/{res['copy_latency_ms'].get('p99', 0):.1f} ms"
                f"  answer p50/p99 {res['answer_latency_ms'].get('p50', 0):.1f}/{res['answer_latency_ms'].get('p99', 0):.1f} ms  cpu {res['cpu_cores']}",
                flush=True,
            )
        final = await b.sink_stats()
        return {"half": half, "sink_final": final}
    finally:
        await b.session.close()


def summarize(b: Bench, extra: dict[str, Any]) -> dict[str, Any]:
    def sel(target: str, shape: str, key: str) -> list[float]:
        return [p[key] for p in b.phases if p["target"] == target and p["shape"] == shape and p["mode"] == "closed"]

    summary: dict[str, Any] = {}
    for shape in ("single", "batch"):
        per = BATCH if shape == "batch" else 1
        floor_req = sel("floor", shape, "req_per_s")
        gw_sus = sel("gateway", shape, "sustained_env_per_s")
        gw_acc = sel("gateway", shape, "accept_env_per_s")
        gw_del = sel("gateway", shape, "delivered_env_per_s")
        gw_req = sel("gateway", shape, "req_per_s")
        # Per-round ratio: the gateway phase and the floor phase of the same round.
        per_round = [g / (f * per) for g, f in zip(gw_sus, floor_req, strict=True) if f > 0]
        summary[shape] = {
            "floor_req_per_s": {"median": med(floor_req), "min": min(floor_req), "max": max(floor_req)},
            "floor_env_per_s_median": med(floor_req) * per,
            "gateway_req_per_s_median": med(gw_req),
            "gateway_accept_env_per_s": {"median": med(gw_acc), "min": min(gw_acc), "max": max(gw_acc)},
            "gateway_delivered_env_per_s": {"median": med(gw_del), "min": min(gw_del), "max": max(gw_del)},
            "gateway_sustained_env_per_s": {"median": med(gw_sus), "min": min(gw_sus), "max": max(gw_sus)},
            "ratio_delivered_to_floor": round(med(gw_del) / (med(floor_req) * per), 4),
            "ratio_sustained_to_floor": round(med(gw_sus) / (med(floor_req) * per), 4),
            "ratio_accept_to_floor": round(med(gw_acc) / (med(floor_req) * per), 4),
            "ratio_per_round": [round(x, 4) for x in per_round],
        }
    summary["batch"]["ratio_env_to_single_floor_req"] = round(
        summary["batch"]["gateway_sustained_env_per_s"]["median"] / summary["single"]["floor_req_per_s"]["median"], 4
    )
    half = extra["half"]
    targets = {
        "throughput_single": {
            "limit": f">= {RATIO_TARGET:.0%} of floor req/s",
            "value": summary["single"]["ratio_sustained_to_floor"],
            "pass": summary["single"]["ratio_sustained_to_floor"] >= RATIO_TARGET,
        },
        "throughput_batch": {
            "limit": f">= {RATIO_TARGET:.0%} of floor req/s (per request = per envelope)",
            "value": summary["batch"]["ratio_sustained_to_floor"],
            "pass": summary["batch"]["ratio_sustained_to_floor"] >= RATIO_TARGET,
        },
        "latency_half_rate_single": {
            "limit": f"copy p99 < {LAT_TARGET_MS:.0f} ms at 50% of saturation",
            "value": half["single"]["copy_latency_ms"].get("p99"),
            "pass": (half["single"]["copy_latency_ms"].get("p99") or 1e9) < LAT_TARGET_MS,
        },
        "latency_half_rate_batch_info": {
            "limit": f"(informational) copy p99 < {LAT_TARGET_MS:.0f} ms",
            "value": half["batch"]["copy_latency_ms"].get("p99"),
            "pass": (half["batch"]["copy_latency_ms"].get("p99") or 1e9) < LAT_TARGET_MS,
        },
    }
    return {"summary": summary, "targets": targets}


def print_report(result: dict[str, Any]) -> None:
    s = result["summary"]
    phases = result["phases"]
    print("\nThroughput (closed loop; median over rounds [min-max])")
    print("  accept = answered 'accepted' per second of load; delivered = all 5 copies at the sink; sustained = delivered and all 11 receipts")
    print("  back at the origin (the headline; ratio = sustained / floor, per request = per envelope for batch)")
    print(f"  {'':28} {'floor req/s':>20} {'accept env/s':>18} {'delivered env/s':>18} {'sustained env/s':>18} {'ratio':>7}  per-round")

    def rng(d: dict[str, float]) -> str:
        return f"{d['median']:6.0f} [{d['min']:.0f}-{d['max']:.0f}]"

    for shape in ("single", "batch"):
        x = s[shape]
        name = f"{shape} ({'1' if shape == 'single' else BATCH} env/request, C={CONC[shape]})"
        print(
            f"  {name:28} {rng(x['floor_req_per_s']):>20} {rng(x['gateway_accept_env_per_s']):>18} {rng(x['gateway_delivered_env_per_s']):>18}"
            f" {rng(x['gateway_sustained_env_per_s']):>18} {x['ratio_sustained_to_floor']:7.1%}  {', '.join(f'{r:.1%}' for r in x['ratio_per_round'])}"
        )
    print(
        f"  batch: gateway {s['batch']['gateway_req_per_s_median']:.0f} req/s x {BATCH}; floor {s['batch']['floor_env_per_s_median']:.0f} env/s;"
        f" gateway batched env/s / floor single req/s = {s['batch']['ratio_env_to_single_floor_req']:.1%}"
    )
    print("\nLatency (ms; copy = POST sent -> copy at the sink, all5 = last of the 5 copies, answer = POST -> 200)")
    print(
        f"  {'phase':18} {'env/s':>8} {'copy p50':>9} {'copy p99':>9} {'all5 p50':>9} {'all5 p99':>9} {'answer p50':>11} {'answer p99':>11}"
        "  cpu cores gw(main)/sink/load"
    )
    for p in phases:
        if p["target"] != "gateway":
            continue
        c, a5, an = p["copy_latency_ms"], p["all5_latency_ms"], p["answer_latency_ms"]
        rate = p["offered_env_per_s"] if p["mode"] == "open" else p["sustained_env_per_s"]
        cpu = p["cpu_cores"]
        print(
            f"  {p['label']:18} {rate:8.0f} {c.get('p50', 0):9.1f} {c.get('p99', 0):9.1f} {a5.get('p50', 0):9.1f} {a5.get('p99', 0):9.1f}"
            f" {an.get('p50', 0):11.1f} {an.get('p99', 0):11.1f}  {cpu['gateway']:.2f}({cpu['gateway_main_thread']:.2f})/{cpu['sink']:.2f}/{cpu['load']:.2f}"
        )
    cb = result["crypto_bound"]
    print(
        f"\nCrypto alone (context): Ed25519 sign {cb['ed25519_sign_us']:.0f} µs, verify {cb['ed25519_verify_us']:.0f} µs; the gateway's 7 verifies + 6 signs"
        f" per envelope = {cb['crypto_us_per_envelope_single']:.0f} µs, i.e. at most {cb['crypto_only_env_per_s_one_core_single']:.0f} env/s per core"
        f" = {cb['crypto_only_env_per_s_one_core_single'] / s['single']['floor_req_per_s']['median']:.1%} of the single floor,"
        " before any HTTP, SQLite or Python."
    )
    if not result["all_phases_drained"]:
        print("WARNING: a gateway phase did not drain within --drain-timeout; the phases after it overlapped its backlog.")
    print("\nTargets")
    for name, t in result["targets"].items():
        v = t["value"]
        shown = f"{v:.1%}" if name.startswith("throughput") else f"{v:.1f} ms"
        print(f"  {name:30} {t['limit']:48} {shown:>10}  {'PASS' if t['pass'] else 'MISS'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--serve", choices=("sink", "floor"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--ready", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0, help="seconds per closed-loop phase (half-rate phases run twice as long)")
    p.add_argument("--max-envelopes", type=int, default=1_000, help="cap on envelopes per gateway phase (bounds the drain after it)")
    p.add_argument("--budget", type=float, default=150.0, help="no new round starts after this many seconds")
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="1 round of 3 s phases")
    p.add_argument("--profile", type=Path, help="run the gateway under cProfile, write the stats here, print the top functions (not written to --out)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gateway.json")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (gateway log and database)")
    args = p.parse_args()
    if args.serve == "floor":
        serve_floor(args.port, args.ready)
        return 0
    if args.serve == "sink":
        serve_sink(args.dir, args.ready)
        return 0
    if args.quick:
        args.rounds, args.duration = 1, 3.0

    from gateway.keyfile import write_secret_keys
    from tests.support.net import free_port
    from tests.support.procs import write_federation

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="heliograph-gwbench-"))
    machine = machine_info(str(workdir))
    print("machine: " + ", ".join(f"{k}={machine[k]}" for k in ("cpu_model", "cpu_count", "python", "sqlite", "aiohttp", "tempdir_fs", "git_rev")))
    crypto = crypto_bound()
    fed, ports = write_federation(workdir, "gateway-bench", nodes=((ORIGIN, GATEWAY), *((r, GATEWAY) for r in RECIPIENTS)), gateways=(GATEWAY,))
    for m in (ORIGIN, *RECIPIENTS):
        write_secret_keys(workdir / "keys" / f"{m}.key", fed.keys[m])
    write_gateway_config(workdir, ports[GATEWAY])
    floor_port = free_port()
    py = sys.executable
    me = str(Path(__file__).resolve())
    gw_argv = [py, "-m", "node.cli", "gateway", "run", "--config", str(workdir / f"{GATEWAY}.toml"), "--ready-file", str(workdir / "gateway.ready")]
    if args.profile:
        gw_argv = [py, "-m", "cProfile", "-o", str(args.profile.resolve()), *gw_argv[1:]]
    children = [
        Child("sink", [py, me, "--serve", "sink", "--dir", str(workdir), "--ready", str(workdir / "sink.ready")], workdir),
        Child("floor", [py, me, "--serve", "floor", "--port", str(floor_port), "--ready", str(workdir / "floor.ready")], workdir),
        Child("gateway", gw_argv, workdir),
    ]
    sink, floor, gateway = children
    bench = Bench(
        args=args,
        workdir=workdir,
        fed=fed,
        ports=ports,
        gateway=gateway,
        sink=sink,
        floor=floor,
        floor_port=floor_port,
        work=Workload(fed, ports[GATEWAY]),
        started=started,
    )
    gw_exit: int | None = None
    try:
        for c in children:
            c.start()
        setup_s = time.monotonic() - started
        print(f"started gateway, sink and floor in {setup_s:.1f} s; workdir {workdir}", flush=True)
        extra = asyncio.run(run_bench(bench))
        for c in children:
            if not c.alive():
                raise RuntimeError(f"{c.name} died during the run:\n{c.log.read_text()[-3000:]}")
    finally:
        for c in reversed(children):  # gateway first: SIGTERM lets it finish its commits (and cProfile write its stats)
            code = c.stop()
            if c is gateway:
                gw_exit = code
        db = workdir / "data" / GATEWAY / "hop.db"
        db_bytes = sum(f.stat().st_size for f in db.parent.glob("hop.db*")) if db.parent.exists() else 0
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    total_s = time.monotonic() - started

    judged = summarize(bench, extra)
    envelopes_sealed = bench.work.counter
    result = {
        "schema": SCHEMA,
        "machine": machine,
        "config": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "half_rate_duration_s": 2 * args.duration,
            "concurrency": CONC,
            "open_loop_pool": OPEN_POOL,
            "batch": BATCH,
            "recipients": list(RECIPIENTS),
            "alert_plaintext_bytes": sum(SECTION_SIZES.values()),
            "envelope_bytes": bench.work.envelope_bytes,
            "gateway": {"log.synchronous": "FULL", "log.batch_max": 1000, "log.batch_wait_s": 0.0, "queue.batch_max": 50, "rate_limit": 1e6},
            "seed": args.seed,
            "profiled": bool(args.profile),
        },
        "summary": judged["summary"],
        "crypto_bound": crypto,
        "all_phases_drained": all(p.get("drained", True) for p in bench.phases),
        "targets": judged["targets"],
        "pass": {k: v["pass"] for k, v in judged["targets"].items()},
        "phases": bench.phases,
        "sink_final": extra["sink_final"],
        "receipts_per_envelope_at_origin": round(extra["sink_final"]["receipts"] * len(RECIPIENTS) / max(1, extra["sink_final"]["copies"]), 2),
        "envelopes_sealed": envelopes_sealed,
        "client_seal_s": round(bench.work.seal_s, 2),
        "client_sign_s": round(bench.work.sign_s, 2),
        "gateway_db_bytes_at_end": db_bytes,
        "gateway_exit_code": gw_exit,
        "total_s": round(total_s, 1),
    }
    print_report(result)
    print(
        f"\nsink: {extra['sink_final']}; envelope {bench.work.envelope_bytes} B on the wire; sealed {envelopes_sealed} envelopes"
        f" ({bench.work.seal_s:.1f} s) and signed requests ({bench.work.sign_s:.1f} s) outside the timed phases; gateway exit {gw_exit}; total {total_s:.0f} s"
    )
    if args.profile:
        import pstats

        print(f"\ncProfile of the gateway's main thread: {args.profile}")
        st = pstats.Stats(str(args.profile))
        st.sort_stats("tottime").print_stats(35)
        st.sort_stats("cumulative").print_stats(45)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(args.out)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
