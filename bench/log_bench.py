"""Audit-log benchmark: LogStore appends and proofs against the raw SHA-256 / sqlite3 floor.

Run from the repository root::

    .venv/bin/python bench/log_bench.py [--quick] [--proof-budget SECONDS] [--out PATH]

It prints a report and writes ``bench/results/log.json``. It always exits 0
when it ran: a missed target is reported (PASS/MISS), it is not a failure.

Workload
--------
* Leaves are 300 random-looking bytes. Leaf ``i`` lies in wave ``i // 5000``;
  a wave's bytes are ``random.Random(seed * 1_000_003 + wave).randbytes``, so
  every size's leaves are a prefix of the next size's, and every phase
  (hashing, raw inserts, the store) handles byte-identical leaves, regenerated
  wave by wave: the bench never holds more than one wave (1.5 MB), so the
  peak RSS it reports is the store's, not the bench's.
* The real ``gateway.log_store.LogStore`` (``tests.support.logs.open_store``:
  test origin and key), ``batch_max=1000``, ``batch_wait_s=0``, in a fresh
  temporary directory per log (``tempfile``, on the disk named in
  ``machine.tempdir_fs``). Appends go in waves: ``asyncio.gather`` of 5000
  ``store.append(leaf)`` calls, so the sequencer always finds a full queue and
  commits batches of 1000 (the mean batch size is reported and checked).

Phases, each in its own child process (the script re-invokes itself with
``--child``), so peak RSS (``ru_maxrss``) is per phase and the parent only
collects JSON:

* ``modes``: a fixed-size run of 50,000 leaves (20,000 with ``--quick``) per
  synchronous mode. Seven targets are built side by side, wave by wave, in a
  freshly shuffled order per wave: the store with ``synchronous=FULL`` and
  with ``NORMAL``, the raw leaves-table floor in both modes, the raw
  log-schema floor in both modes (informational, below) and raw SHA-256.
  This is repeated 3 times with fresh logs (once with ``--quick``) and the
  per-wave rates are pooled (30 waves per target). The append target is
  judged here, not on the size builds.
* ``size N`` for N in 10^4, 10^5, 10^6 (10^3, 10^4, 10^5 with ``--quick``):
  one store built to N leaves with ``synchronous=FULL`` (the product default),
  interleaved wave by wave with the raw leaves-table floor (FULL) and raw
  SHA-256 of the same leaves, so build throughput is reported at every size
  too. Then 1000 inclusion and 1000 consistency proof requests in one shuffled
  sequence through the store: ``await store.inclusion_proof(i, N)`` with
  uniform ``i`` in ``[0, N)`` and ``await store.consistency_proof(m, N)`` with
  uniform ``m`` in ``[1, N)``, timed one by one after 10 untimed warm-up
  requests of each kind. If the requests would outlast ``--proof-budget``
  seconds (default 60 per size), the sequence stops there and the report says
  how many were measured (at least 20 of each kind are always taken). Then the
  database size: ``.db`` + ``-wal`` + ``-shm`` while open, and the files left
  after ``store.close()`` (which checkpoints the WAL), with a per-table split
  from ``dbstat``. Peak RSS is read last.

Floors (what the ratios divide by)
----------------------------------
* ``sha256``: ``hashlib.sha256(leaf).digest()`` over each leaf of a wave.
* ``raw_insert`` (the target's floor): the plain ``sqlite3`` module, WAL, the
  same ``synchronous`` setting, ``BEGIN; executemany(1000 rows); COMMIT`` into
  ``leaves(idx INTEGER PRIMARY KEY, data BLOB NOT NULL)``, exactly the log's
  ``log_leaves`` table; rows prebuilt outside the timing.
* ``raw_schema`` (informational, ``modes`` only): the same, but each 1000-leaf
  transaction also inserts the leaf's ``log_nodes`` rows (the perfect subtrees
  it completes, precomputed with ``CompactRange`` outside the timing) into the
  log's exact ``log_nodes`` table. It is what the log's storage layout costs
  by itself, so ``append / raw_schema`` isolates the Python and asyncio cost.
* ``indexed_lookup`` (informational, per size): the same proofs as the store's
  requests, computed on the same file with plain ``sqlite3`` (no thread hop):
  ``protocol.merkle`` ranges, one ``SELECT`` of the needed subtrees that
  drives the ``log_nodes`` primary key from a ``VALUES`` list, and
  ``range_hash``. Checked byte-equal to the store's proofs.

Targets (from the issue)
------------------------
* append: store leaves/s >= 50% of ``raw_insert`` leaves/s, same synchronous
  mode, judged on the ratio of the median per-wave rates of the ``modes`` run,
  for FULL and for NORMAL. "borderline" marks a target inside the p10-p90
  band of the per-wave ratio.
* proofs grow as log n: at the largest size, the median latency is at most 2x
  the median at the smallest size, for inclusion and for consistency.
* memory: the largest size's peak RSS is at most 1.5x the smallest size's.
  Each child's RSS at start-up (interpreter plus imports, before any log
  exists) is reported too, with the growth over it, because an absolute 1.5x
  on top of a ~40 MB interpreter still allows ~20 MB of growth. (With
  ``--quick`` the 10^3 log is a single wave of 1000 appends, not 5000, so its
  RSS is lower for that reason alone: judge memory on the full run.)

Methodology
-----------
``time.perf_counter_ns``. Every timed piece of work (one wave of one target,
one proof request) runs with ``gc`` disabled, with a ``gc.collect()`` between
waves, as in ``bench/protocol_bench.py``. Targets are interleaved per wave in a
shuffled order (seeded), so machine noise hits the store and the floors alike.
Throughputs are leaves per second; we report the median per-wave rate with its
p10 and p90, and the aggregate (leaves / total timed seconds). Proof latencies
are reported as median and p99 (and p10, p90, max) over requests. Everything
runs on one event loop per child; the store's own aiosqlite threads are part of
what is measured. The temporary directory is on a real disk, so FULL pays a
real fsync per committed batch; NORMAL in WAL mode skips it except at
checkpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import math
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import _common  # noqa: E402 - bench/ is the script's own directory
import aiosqlite  # noqa: E402

from gateway.log_store import LogStore  # noqa: E402
from protocol.merkle import (  # noqa: E402
    CompactRange,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    range_hash,
    range_subtrees,
    verify_consistency,
    verify_inclusion,
)
from tests.support.logs import open_store, parse  # noqa: E402

SCHEMA = "heliograph/bench/log/v1"
LEAF_SIZE = 300
SIZES = [10_000, 100_000, 1_000_000]
SIZES_QUICK = [1_000, 10_000, 100_000]
MODES_LEAVES = 50_000
MODES_LEAVES_QUICK = 20_000
MODES_REPEATS = 3  # fresh logs each time; 1 with --quick
WAVE = 5000
BATCH_MAX = 1000
ROWS_PER_TXN = 1000
PROOF_REQUESTS = 1000  # per kind
PROOF_WARMUP = 10  # per kind, untimed
PROOF_MIN = 20  # per kind, always measured even past the budget
SYNC_MODES = ("FULL", "NORMAL")
TARGETS = {"append_vs_raw_insert_min": 0.5, "proof_growth_max": 2.0, "rss_growth_max": 1.5}
CHILD_TIMEOUT_S = 1800

RAW_LEAVES_DDL = "CREATE TABLE leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)"
RAW_NODES_DDL = "CREATE TABLE log_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID"


# --------------------------------------------------------------------------- helpers


pct = _common.pct


def rate_summary(rates: list[float], leaves: int, total_ns: int) -> dict[str, Any]:
    return {
        "median": round(statistics.median(rates)),
        "p10": round(pct(rates, 0.10)),
        "p90": round(pct(rates, 0.90)),
        "aggregate": round(leaves / (total_ns / 1e9)),
        "waves": len(rates),
    }


def latency_summary(samples_ns: list[int]) -> dict[str, Any]:
    us = [s / 1000 for s in samples_ns]
    return {
        "n": len(us),
        "median_us": round(statistics.median(us), 1),
        "p10_us": round(pct(us, 0.10), 1),
        "p90_us": round(pct(us, 0.90), 1),
        "p99_us": round(pct(us, 0.99), 1),
        "max_us": round(max(us), 1),
    }


def maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def wave_leaves(seed: int, wave: int, count: int) -> list[bytes]:
    blob = random.Random(seed * 1_000_003 + wave).randbytes(LEAF_SIZE * count)
    return [blob[i : i + LEAF_SIZE] for i in range(0, len(blob), LEAF_SIZE)]


def leaf_at(seed: int, index: int) -> bytes:
    return wave_leaves(seed, index // WAVE, WAVE)[index % WAVE]


def files_size(db: Path) -> dict[str, int]:
    out = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        out[suffix.lstrip("-") or "db"] = p.stat().st_size if p.exists() else 0
    return out


def timed(fn: Callable[[], object]) -> int:
    clock = time.perf_counter_ns
    gc.disable()
    try:
        t0 = clock()
        fn()
        return clock() - t0
    finally:
        gc.enable()


async def timed_async(coro_fn: Callable[[], Any]) -> tuple[int, Any]:
    clock = time.perf_counter_ns
    gc.disable()
    try:
        t0 = clock()
        result = await coro_fn()
        return clock() - t0, result
    finally:
        gc.enable()


class RawDb:
    """The raw floor: plain sqlite3, WAL, explicit transactions of ROWS_PER_TXN leaves."""

    def __init__(self, path: Path, synchronous: str, *, with_nodes: bool) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.conn.execute(RAW_LEAVES_DDL)
        self.with_nodes = with_nodes
        if with_nodes:
            self.conn.execute(RAW_NODES_DDL)
        self.path = path

    def insert(self, chunks: list[tuple[list[tuple[int, bytes]], list[tuple[int, int, bytes]]]]) -> None:
        conn = self.conn
        for leaves, nodes in chunks:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO leaves (idx, data) VALUES (?, ?)", leaves)
            if self.with_nodes:
                conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
            conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def raw_chunks(start: int, leaves: list[bytes], edge: CompactRange | None) -> list[tuple[list[tuple[int, bytes]], list[tuple[int, int, bytes]]]]:
    """Rows for RawDb.insert, ROWS_PER_TXN leaves per transaction (node rows only if ``edge``)."""
    out = []
    for off in range(0, len(leaves), ROWS_PER_TXN):
        chunk = leaves[off : off + ROWS_PER_TXN]
        rows = [(start + off + i, leaf) for i, leaf in enumerate(chunk)]
        nodes: list[tuple[int, int, bytes]] = []
        if edge is not None:
            for leaf in chunk:
                nodes.extend(edge.append(leaf_hash(leaf)))
        out.append((rows, nodes))
    return out


def sha_all(leaves: list[bytes]) -> Callable[[], None]:
    sha = hashlib.sha256

    def run() -> None:
        for leaf in leaves:
            sha(leaf).digest()

    return run


async def append_wave(store: LogStore, start: int, leaves: list[bytes]) -> int:
    ns, indexes = await timed_async(lambda: asyncio.gather(*(store.append(leaf) for leaf in leaves)))
    if indexes != list(range(start, start + len(leaves))):
        raise SystemExit("the store returned unexpected indexes; the bench's assumptions no longer hold")
    return ns


def dbstat(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {str(n): int(s) for n, s in rows}


# --------------------------------------------------------------------------- child: modes


async def child_modes(n: int, seed: int, repeats: int) -> dict[str, Any]:
    rss_start = maxrss_kib()
    shuffler = random.Random(seed ^ 0x5EED)
    keys = [f"append.{m}" for m in SYNC_MODES] + [f"raw_insert.{m}" for m in SYNC_MODES] + [f"raw_schema.{m}" for m in SYNC_MODES] + ["sha256"]
    rates: dict[str, list[float]] = {k: [] for k in keys}
    total_ns = dict.fromkeys(keys, 0)
    batches = dict.fromkeys(SYNC_MODES, 0)
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="heliograph-logbench-") as tmp:
            d = Path(tmp)
            stores = {m: await open_store(d / f"log-{m}.db", batch_max=BATCH_MAX, batch_wait_s=0.0, synchronous=m) for m in SYNC_MODES}
            raws = {m: RawDb(d / f"raw-{m}.db", m, with_nodes=False) for m in SYNC_MODES}
            schemas = {m: RawDb(d / f"schema-{m}.db", m, with_nodes=True) for m in SYNC_MODES}
            edge = CompactRange()
            start = 0
            for wave in range(math.ceil(n / WAVE)):
                count = min(WAVE, n - start)
                leaves = wave_leaves(seed, wave, count)
                plain = raw_chunks(start, leaves, None)
                with_nodes = raw_chunks(start, leaves, edge)
                order = list(keys)
                shuffler.shuffle(order)
                for key in order:
                    kind, _, mode = key.partition(".")
                    if kind == "append":
                        ns = await append_wave(stores[mode], start, leaves)
                    elif kind == "raw_insert":
                        ns = timed(lambda r=raws[mode], rows=plain: r.insert(rows))
                    elif kind == "raw_schema":
                        ns = timed(lambda r=schemas[mode], rows=with_nodes: r.insert(rows))
                    else:
                        ns = timed(sha_all(leaves))
                    rates[key].append(count / (ns / 1e9))
                    total_ns[key] += ns
                gc.collect()
                start += count
            for m, store in stores.items():
                if await store.size() != n:
                    raise SystemExit("store size mismatch after the modes run")
                batches[m] += len(await store.checkpoints()) - 1  # minus the size-0 checkpoint
                await store.close()
            for r in (*raws.values(), *schemas.values()):
                r.close()
    ratios = {}
    for m in SYNC_MODES:
        per_wave = [a / r for a, r in zip(rates[f"append.{m}"], rates[f"raw_insert.{m}"], strict=True)]
        per_wave_schema = [a / r for a, r in zip(rates[f"append.{m}"], rates[f"raw_schema.{m}"], strict=True)]
        ratios[m] = {
            "append_over_raw_insert": round(statistics.median(rates[f"append.{m}"]) / statistics.median(rates[f"raw_insert.{m}"]), 3),
            "per_wave_p10": round(pct(per_wave, 0.10), 3),
            "per_wave_p90": round(pct(per_wave, 0.90), 3),
            "raw_schema_over_raw_insert": round(statistics.median(rates[f"raw_schema.{m}"]) / statistics.median(rates[f"raw_insert.{m}"]), 3),
            "append_over_raw_schema": round(statistics.median(rates[f"append.{m}"]) / statistics.median(rates[f"raw_schema.{m}"]), 3),
            "schema_per_wave_p10": round(pct(per_wave_schema, 0.10), 3),
            "schema_per_wave_p90": round(pct(per_wave_schema, 0.90), 3),
        }
    return {
        "leaves": n,
        "repeats": repeats,
        "leaves_per_s": {k: rate_summary(rates[k], n * repeats, total_ns[k]) for k in keys},
        "ratios": ratios,
        "mean_batch": {m: round(n * repeats / b, 1) for m, b in batches.items()},
        "rss_kib": {"start": rss_start, "peak": maxrss_kib()},
    }


# --------------------------------------------------------------------------- child: one size


def indexed_proof(conn: sqlite3.Connection, ranges: list[tuple[int, int]]) -> list[bytes]:
    wanted = sorted({st for s, e in ranges for st in range_subtrees(s, e)})
    found: dict[tuple[int, int], bytes] = {}
    for off in range(0, len(wanted), 400):
        chunk = wanted[off : off + 400]
        values = ",".join("(?, ?)" for _ in chunk)
        params = [v for pair in chunk for v in pair]
        sql = f"SELECT n.level, n.idx, n.hash FROM (VALUES {values}) AS w CROSS JOIN log_nodes AS n ON n.level = w.column1 AND n.idx = w.column2"
        found.update({(lv, ix): bytes(h) for lv, ix, h in conn.execute(sql, params)})
    return [range_hash(s, e, lambda lv, ix: found[(lv, ix)]) for s, e in ranges]


async def child_size(n: int, seed: int, synchronous: str, proof_budget_s: float) -> dict[str, Any]:
    rss_start = maxrss_kib()
    shuffler = random.Random(seed + n)
    with tempfile.TemporaryDirectory(prefix="heliograph-logbench-") as tmp:
        d = Path(tmp)
        db = d / "log.db"
        store = await open_store(db, batch_max=BATCH_MAX, batch_wait_s=0.0, synchronous=synchronous)
        raw = RawDb(d / "raw.db", synchronous, with_nodes=False)
        keys = ["append", "raw_insert", "sha256"]
        rates: dict[str, list[float]] = {k: [] for k in keys}
        total_ns = dict.fromkeys(keys, 0)
        start = 0
        build_t0 = time.perf_counter()
        for wave in range(math.ceil(n / WAVE)):
            count = min(WAVE, n - start)
            leaves = wave_leaves(seed, wave, count)
            plain = raw_chunks(start, leaves, None)
            order = list(keys)
            shuffler.shuffle(order)
            for key in order:
                if key == "append":
                    ns = await append_wave(store, start, leaves)
                elif key == "raw_insert":
                    ns = timed(lambda rows=plain: raw.insert(rows))
                else:
                    ns = timed(sha_all(leaves))
                rates[key].append(count / (ns / 1e9))
                total_ns[key] += ns
            gc.collect()
            start += count
        build_wall_s = time.perf_counter() - build_t0
        rss_after_build = maxrss_kib()
        raw.close()
        raw_size = files_size(d / "raw.db")
        if await store.size() != n:
            raise SystemExit("store size mismatch after the build")
        batches = len(await store.checkpoints()) - 1

        # ---- proofs through the store
        requests = [("inclusion", shuffler.randrange(n)) for _ in range(PROOF_REQUESTS)]
        requests += [("consistency", shuffler.randrange(1, n)) for _ in range(PROOF_REQUESTS)]
        shuffler.shuffle(requests)

        def call(kind: str, arg: int) -> Any:
            return store.inclusion_proof(arg, n) if kind == "inclusion" else store.consistency_proof(arg, n)

        for kind in ("inclusion", "consistency"):
            for _ in range(PROOF_WARMUP):
                await call(kind, shuffler.randrange(1, n))
        samples: dict[str, list[int]] = {"inclusion": [], "consistency": []}
        proofs: list[tuple[str, int, list[bytes]]] = []
        deadline = time.perf_counter() + proof_budget_s
        proof_t0 = time.perf_counter()
        stopped_early = False
        for i, (kind, arg) in enumerate(requests):
            if time.perf_counter() > deadline and min(len(v) for v in samples.values()) >= PROOF_MIN:
                stopped_early = True
                break
            ns, proof = await timed_async(lambda k=kind, a=arg: call(k, a))
            samples[kind].append(ns)
            if len(proofs) < 200:
                proofs.append((kind, arg, proof))
            if i % 100 == 99:
                gc.collect()
        proof_wall_s = time.perf_counter() - proof_t0

        # ---- sanity: the proofs verify against the signed checkpoint
        head = parse(await store.checkpoint())
        if head.size != n:
            raise SystemExit("checkpoint size mismatch")
        cps = await store.checkpoints()
        for kind, arg, proof in proofs[:20]:
            if kind == "inclusion":
                verify_inclusion(arg, n, leaf_hash(leaf_at(seed, arg)), proof, head.root)
        for size_m, note in cps[1 : len(cps) - 1 : max(1, len(cps) // 10)]:
            verify_consistency(size_m, n, parse(note).root, head.root, await store.consistency_proof(size_m, n))

        # ---- informational floor: the same proofs with an indexed lookup, plain sqlite3, same file
        floor: dict[str, list[int]] = {"inclusion": [], "consistency": []}
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for j, (kind, arg) in enumerate(requests):
                ranges = inclusion_ranges(arg, n) if kind == "inclusion" else consistency_ranges(arg, n)
                ns = timed(lambda r=ranges: indexed_proof(conn, r))
                floor[kind].append(ns)
                if j < len(proofs) and indexed_proof(conn, ranges) != proofs[j][2]:
                    raise SystemExit("the indexed-lookup floor computes a different proof than the store")
        finally:
            conn.close()

        size_open = files_size(db)
        await store.close()
        size_closed = files_size(db)
        tables = dbstat(db)
    rss_peak = maxrss_kib()
    return {
        "leaves": n,
        "synchronous": synchronous,
        "leaves_per_s": {k: rate_summary(rates[k], n, total_ns[k]) for k in keys},
        "append_over_raw_insert": round(statistics.median(rates["append"]) / statistics.median(rates["raw_insert"]), 3),
        "append_rate_last_10pct": round(statistics.median(rates["append"][-max(1, len(rates["append"]) // 10) :])),
        "build_wall_s": round(build_wall_s, 1),
        "mean_batch": round(n / batches, 1),
        "proofs": {k: latency_summary(v) for k, v in samples.items()},
        "proofs_requested_per_kind": PROOF_REQUESTS,
        "proofs_stopped_by_budget": stopped_early,
        "proof_wall_s": round(proof_wall_s, 1),
        "indexed_lookup_floor": {k: latency_summary(v) for k, v in floor.items()},
        "db_bytes_open": size_open,
        "db_bytes_closed": size_closed,
        "db_bytes_per_leaf": round(sum(size_closed.values()) / n, 1),
        "db_bytes_per_leaf_open": round(sum(size_open.values()) / n, 1),
        "db_tables_bytes": tables,
        "raw_db_bytes_per_leaf": round(sum(raw_size.values()) / n, 1),
        "rss_kib": {"start": rss_start, "after_build": rss_after_build, "peak": rss_peak},
    }


# --------------------------------------------------------------------------- parent


def machine_info(tmpdir: str) -> dict[str, Any]:
    return _common.machine_info(
        sqlite=sqlite3.sqlite_version,
        aiosqlite=aiosqlite.__version__,
        tempdir=tmpdir,
        tempdir_fs=_common.filesystem_of(tmpdir),
        code_sha256_16=_common.code_hashes(ROOT / p for p in ("gateway/log_store.py", "gateway/db.py", "protocol/merkle.py")),
    )


def run_child(args: list[str], seed: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix="heliograph-logbench-", suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--seed", str(seed), "--child-out", str(out), "--child", *args]
        proc = subprocess.run(cmd, check=False, timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0:
            raise SystemExit(f"child {' '.join(args)} failed with exit code {proc.returncode}")
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def fmt_rate(v: float) -> str:
    return f"{v / 1000:,.1f}k"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 10^3, 10^4, 10^5, 20k-leaf modes run, 10 s proof budget")
    parser.add_argument("--proof-budget", type=float, default=None, help="seconds of proof requests per size (default 60, 10 with --quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "log.json")
    parser.add_argument("--seed", type=int, default=20261126, help="seed of the leaves, proof requests and wave order")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = args.proof_budget if args.proof_budget is not None else (10.0 if args.quick else 60.0)

    if args.child:
        kind = args.child[0]
        if kind == "modes":
            result = asyncio.run(child_modes(int(args.child[1]), args.seed, int(args.child[2])))
        else:
            result = asyncio.run(child_size(int(args.child[1]), args.seed, args.child[2], float(args.child[3])))
        args.child_out.write_text(json.dumps(result))
        return 0

    started = time.perf_counter()
    sizes = SIZES_QUICK if args.quick else SIZES
    modes_n = MODES_LEAVES_QUICK if args.quick else MODES_LEAVES
    repeats = 1 if args.quick else MODES_REPEATS
    machine = machine_info(tempfile.gettempdir())
    print("Heliograph audit-log benchmark" + (" (--quick)" if args.quick else ""))
    for k, v in machine.items():
        print(f"  {k:15} {v}")

    print(f"\n[modes] {modes_n:,} leaves per synchronous mode x {repeats} fresh logs, store and floors interleaved per wave ...", flush=True)
    t = time.perf_counter()
    modes = run_child(["modes", str(modes_n), str(repeats)], args.seed)
    print(f"        done in {time.perf_counter() - t:.1f} s", flush=True)
    per_size: dict[str, Any] = {}
    for n in sizes:
        print(f"[size {n:,}] build (FULL) + proofs, own process ...", flush=True)
        t = time.perf_counter()
        per_size[str(n)] = run_child(["size", str(n), "FULL", str(budget)], args.seed)
        print(f"        done in {time.perf_counter() - t:.1f} s", flush=True)
    total_s = time.perf_counter() - started

    # ---- targets
    small, large = per_size[str(sizes[0])], per_size[str(sizes[-1])]
    passes: dict[str, bool] = {}
    t_app = TARGETS["append_vs_raw_insert_min"]
    for m in SYNC_MODES:
        r = modes["ratios"][m]
        passes[f"append.{m}"] = r["append_over_raw_insert"] >= t_app
        r["borderline"] = r["per_wave_p10"] <= t_app <= r["per_wave_p90"]
    growth = {}
    for kind in ("inclusion", "consistency"):
        g = large["proofs"][kind]["median_us"] / small["proofs"][kind]["median_us"]
        growth[kind] = round(g, 2)
        passes[f"proof_growth.{kind}"] = g <= TARGETS["proof_growth_max"]
    rss_ratio = large["rss_kib"]["peak"] / small["rss_kib"]["peak"]
    passes["rss"] = rss_ratio <= TARGETS["rss_growth_max"]
    targets = {
        "append": {
            "rule": f"median per-wave store append rate >= {t_app:.0%} of the raw batched-insert rate, same synchronous mode ({modes_n:,}-leaf modes run)",
            "ratio": {m: modes["ratios"][m]["append_over_raw_insert"] for m in SYNC_MODES},
        },
        "proof_growth": {
            "rule": f"median latency at {sizes[-1]:,} leaves <= {TARGETS['proof_growth_max']}x the median at {sizes[0]:,}",
            "ratio": growth,
        },
        "rss": {
            "rule": f"peak RSS at {sizes[-1]:,} leaves <= {TARGETS['rss_growth_max']}x peak RSS at {sizes[0]:,}",
            "ratio": round(rss_ratio, 3),
            "growth_over_startup_kib": {str(n): r["rss_kib"]["peak"] - r["rss_kib"]["start"] for n, r in ((n, per_size[str(n)]) for n in sizes)},
        },
    }

    result = {
        "schema": SCHEMA,
        "description": "LogStore append throughput (leaves/s) and proof latency (µs) against raw SHA-256 / sqlite3 floors. See bench/log_bench.py docstring.",
        "machine": machine,
        "method": {
            "clock": "time.perf_counter_ns",
            "interleaving": "per wave of 5000 leaves, every target (store, floors) in a freshly shuffled order; gc disabled per timed unit",
            "child_processes": "one per phase (modes, each size): peak RSS is per phase",
            "leaf_bytes": LEAF_SIZE,
            "wave": WAVE,
            "batch_max": BATCH_MAX,
            "batch_wait_s": 0.0,
            "raw_rows_per_txn": ROWS_PER_TXN,
            "proof_requests_per_kind": PROOF_REQUESTS,
            "proof_budget_s_per_size": budget,
            "size_builds_synchronous": "FULL",
            "modes_leaves": modes_n,
            "modes_repeats": repeats,
            "seed": args.seed,
            "total_s": round(total_s, 1),
            "quick": args.quick,
        },
        "modes": modes,
        "sizes": per_size,
        "targets": targets,
        "pass": passes,
    }
    _common.write_results(args.out, result)

    # ---- report
    print(f"\ntotal {total_s:.1f} s")
    print(f"\nAppend throughput, {modes_n:,} leaves per mode x {repeats} fresh logs (leaves/s; median per-wave rate [p10-p90], aggregate)")
    ls = modes["leaves_per_s"]
    for key in ("append.FULL", "raw_insert.FULL", "raw_schema.FULL", "append.NORMAL", "raw_insert.NORMAL", "raw_schema.NORMAL", "sha256"):
        v = ls[key]
        print(f"  {key:20} {fmt_rate(v['median']):>10} [{fmt_rate(v['p10'])}-{fmt_rate(v['p90'])}]  aggregate {fmt_rate(v['aggregate'])}")
    print(f"  mean batch: {modes['mean_batch']}")
    for m in SYNC_MODES:
        r = modes["ratios"][m]
        verdict = "PASS" if passes[f"append.{m}"] else "MISS"
        print(
            f"  store/raw_insert {m:6} {r['append_over_raw_insert']:.2f}x [{r['per_wave_p10']:.2f}-{r['per_wave_p90']:.2f}]"
            f"  target >= {t_app:.2f}x {verdict}{' (borderline)' if r['borderline'] else ''}"
            f";  store/raw_schema {r['append_over_raw_schema']:.2f}x; raw_schema/raw_insert {r['raw_schema_over_raw_insert']:.2f}x"
        )

    print("\nPer size (synchronous=FULL builds; proofs through the store)")
    hdr = f"  {'leaves':>9} {'append/s':>9} {'raw/s':>9} {'ratio':>6} {'sha/s':>8} {'incl med':>9} {'incl p99':>9} {'cons med':>9} {'cons p99':>9}"
    hdr += f" {'n/kind':>7} {'B/leaf':>7} {'RSS MiB':>8}"
    print(hdr)
    for n in sizes:
        r = per_size[str(n)]
        a = r["leaves_per_s"]
        inc, con = r["proofs"]["inclusion"], r["proofs"]["consistency"]
        print(
            f"  {n:>9,} {fmt_rate(a['append']['median']):>9} {fmt_rate(a['raw_insert']['median']):>9} {r['append_over_raw_insert']:>5.2f}x"
            f" {fmt_rate(a['sha256']['median']):>8} {inc['median_us'] / 1000:>7.2f}ms {inc['p99_us'] / 1000:>7.2f}ms"
            f" {con['median_us'] / 1000:>7.2f}ms {con['p99_us'] / 1000:>7.2f}ms {min(inc['n'], con['n']):>7}"
            f" {r['db_bytes_per_leaf']:>7.1f} {r['rss_kib']['peak'] / 1024:>8.1f}"
        )
    print("\n  details per size:")
    for n in sizes:
        r = per_size[str(n)]
        fl = r["indexed_lookup_floor"]
        print(
            f"  {n:>9,}: build {r['build_wall_s']} s wall, mean batch {r['mean_batch']}, append rate over the last 10% of waves "
            f"{fmt_rate(r['append_rate_last_10pct'])}/s; proofs {r['proof_wall_s']} s"
            f"{' (stopped by the budget)' if r['proofs_stopped_by_budget'] else ''};"
            f" indexed-lookup floor median incl {fl['inclusion']['median_us']:.0f} µs, cons {fl['consistency']['median_us']:.0f} µs"
        )
        ob, cb = r["db_bytes_open"], r["db_bytes_closed"]
        main_tables = ("log_leaves", "log_nodes", "log_checkpoints")
        tb = r["db_tables_bytes"]
        other = sum(v for k, v in tb.items() if k not in main_tables)
        tables = ", ".join([*(f"{k} {tb.get(k, 0) / n:.1f}" for k in main_tables), f"other {other / n:.1f}"])
        print(
            f"             db open {ob['db'] / 1e6:.1f} MB + wal {ob['wal'] / 1e6:.1f} MB + shm {ob['shm'] / 1e6:.2f} MB;"
            f" after close {sum(cb.values()) / 1e6:.1f} MB"
            f" = {r['db_bytes_per_leaf']:.0f} B/leaf ({tables} B/leaf by table); raw leaves table {r['raw_db_bytes_per_leaf']:.0f} B/leaf"
        )
        rss = r["rss_kib"]
        print(
            f"             RSS start {rss['start'] / 1024:.1f} MiB, after build {rss['after_build'] / 1024:.1f} MiB, peak {rss['peak'] / 1024:.1f} MiB"
            f" (+{(rss['peak'] - rss['start']) / 1024:.1f} MiB)"
        )

    print("\nTargets")
    for m in SYNC_MODES:
        verdict = "PASS" if passes[f"append.{m}"] else "MISS"
        print(f"  append {m:6} >= {t_app:.0%} of raw insert   {verdict}  ({modes['ratios'][m]['append_over_raw_insert']:.2f}x)")
    for kind in ("inclusion", "consistency"):
        print(
            f"  {kind:11} median {sizes[-1]:,} / {sizes[0]:,} <= {TARGETS['proof_growth_max']:.0f}x   "
            f"{'PASS' if passes[f'proof_growth.{kind}'] else 'MISS'}  ({growth[kind]:.2f}x)"
        )
    grow_large = (large["rss_kib"]["peak"] - large["rss_kib"]["start"]) / 1024
    grow_small = (small["rss_kib"]["peak"] - small["rss_kib"]["start"]) / 1024
    print(
        f"  peak RSS {sizes[-1]:,} / {sizes[0]:,} <= {TARGETS['rss_growth_max']}x       {'PASS' if passes['rss'] else 'MISS'}  ({rss_ratio:.2f}x;"
        f" growth over start-up {grow_large:.1f} vs {grow_small:.1f} MiB)"
    )
    print("\nNoise: medians over waves/requests; FULL rates depend on the disk's fsync latency, compare ratios within one run only.")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
