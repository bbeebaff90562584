"""``heliograph demo``: a small federation on loopback, every member its own process, and a narrated scenario.

Setup, with the same tools an operator uses (so the demo exercises them):

* ``keys generate`` for 3 roster authorities; ``node init`` for 4 agency nodes;
  gateway configs for ``gw-eu`` and ``gw-af``;
* ``roster init`` (threshold 2), ``roster add-member`` for every member,
  ``roster sign`` by two authorities in turn, ``roster publish``;
* officer accounts and API tokens in each node's account store;
* every member started as ``heliograph gateway run`` / ``heliograph node run``.

Then the scenario (:mod:`node.demo_scenario`) talks only to the officer API and
the public log API, and the demo ends with the oversight checks. Every step is
named; the first one that fails ends the demo with a non-zero status and its
name. ``--keep`` leaves the federation running until SIGINT/SIGTERM and writes
``STATE/federation.json`` for people and scripts.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.clock import Clock, SystemClock
from gateway.ports import free_port

AUTHORITIES = ("auth-un", "auth-au", "auth-eu")
GATEWAYS = {"gw-eu": "Gateway Europe (The Hague)", "gw-af": "Gateway Africa (Nairobi)"}
NODES = {
    "int-org": ("gw-eu", "International Organisation (Lyon)"),
    "fr-police": ("gw-eu", "Police Nationale (France)"),
    "ke-police": ("gw-af", "Kenya Police Service"),
    "za-fiu": ("gw-af", "Financial Intelligence Centre (South Africa)"),
}
DEMO_PASSWORD = "heliograph-demo-password"  # noqa: S105 - published demo credential, loopback only
"""Console password of every demo account (demo only: the state dir is local and temporary)."""


class DemoFailure(Exception):
    """A named demo step failed."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step, self.detail = step, detail


def cli(*argv: str, step: str = "setup") -> str:
    """Run a ``heliograph`` subcommand in-process; return its stdout, raise on a non-zero status."""
    from node.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    if status != 0:
        raise DemoFailure(step, f"heliograph {' '.join(argv[:2])} failed: {(err.getvalue() or out.getvalue()).strip()[-600:]}")
    return out.getvalue()


@dataclass
class Member:
    id: str
    kind: str
    port: int
    config: Path
    home: str | None = None
    display: str = ""
    token: str = ""
    supervisor_token: str = ""
    auditor_token: str = ""
    process: subprocess.Popen[bytes] | None = None
    log_vkey: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Federation:
    state: Path
    roster: Path
    members: dict[str, Member] = field(default_factory=dict)

    def nodes(self) -> list[Member]:
        return [m for m in self.members.values() if m.kind == "node"]

    def hops(self) -> list[Member]:
        return [m for m in self.members.values() if m.kind in ("gateway", "node")]

    def describe(self) -> dict[str, Any]:
        members: list[dict[str, Any]] = []
        witnesses: list[dict[str, Any]] = []
        for m in self.members.values():
            if m.kind == "witness":  # not a roster member; listed apart so every member entry keeps the same shape
                witnesses.append({"name": m.display, "url": m.url, "cosigner_vkey": m.log_vkey})
                continue
            entry: dict[str, Any] = {"id": m.id, "kind": m.kind, "url": m.url, "log_vkey": m.log_vkey}
            if m.kind == "node":
                entry["officer_api"] = {"url": m.url, "token": m.token}
                entry["accounts"] = {role: f"{role}-{m.id}" for role in ("officer", "supervisor", "auditor")}
            members.append(entry)
        return {"roster": str(self.roster), "members": members, "witnesses": witnesses, "console_password": DEMO_PASSWORD}


def _gateway_config(gw: str, port: int) -> str:
    return f"""# Demo gateway {gw} (see configs/gateway.example.toml for every key)
[hop]
id = "{gw}"
listen = "127.0.0.1:{port}"
data_dir = "data"
roster = "../roster.bin"
key_file = "keys/{gw}.key"

[queue]
sweep_interval_s = 0.5
backoff_base_ms = 1000
backoff_cap_ms = 10000

[policy]
max_ttl_ms = 604800000
default = "deny"

[[policy.rules]]
name = "no-red-across-regions"
action = "deny"
labels = ["TLP:RED"]

[[policy.rules]]
name = "members"
action = "allow"
origins = ["*"]

[policy.rate_limits]
default = {{ rate = 50.0, burst = 500 }}
"""


WITNESS = "oversight.example/witness"


def _witness_config(port: int) -> str:
    return f"""# Demo witness of an oversight body (see configs/witness.example.toml and docs/WITNESS.md)
[witness]
name = "{WITNESS}"
key_file = "keys/witness.key"
state_dir = "state"
listen = "127.0.0.1:{port}"
poll_interval_s = 1.0
audit = "full"
roster = "../roster.bin"
"""


def build(state: Path, *, base_port: int | None, clock: Clock) -> Federation:
    """Generate keys, configs, the signed roster and officer accounts under ``state``."""
    names = [*GATEWAYS, *NODES, "witness"]
    ports = {name: (base_port + i if base_port else free_port()) for i, name in enumerate(names)}
    roster = state / "roster.bin"
    fed = Federation(state=state, roster=roster)
    auth_dir = state / "authorities"
    for a in AUTHORITIES:
        cli("keys", "generate", "--id", a, "--out", str(auth_dir))
    for gw, display in GATEWAYS.items():
        d = state / gw
        cli("keys", "generate", "--id", gw, "--out", str(d / "keys"))
        (d / "gateway.toml").write_text(_gateway_config(gw, ports[gw]), encoding="utf-8")
        fed.members[gw] = Member(id=gw, kind="gateway", port=ports[gw], config=d / "gateway.toml", display=display)
    for node, (home, display) in NODES.items():
        d = state / node
        cli("node", "init", "--id", node, "--dir", str(d), "--url", f"http://127.0.0.1:{ports[node]}", "--home-gateway", home)
        text = (d / "node.toml").read_text(encoding="utf-8")
        text = text.replace('roster = "roster.bin"', 'roster = "../roster.bin"').replace('kdf = "moderate"', 'kdf = "interactive"')
        text = text.replace("tick_s = 1.0", "tick_s = 0.25").replace("sweep_interval_s = 1.0", "sweep_interval_s = 0.5")
        (d / "node.toml").write_text(text, encoding="utf-8")
        fed.members[node] = Member(id=node, kind="node", port=ports[node], config=d / "node.toml", home=home, display=display)
    wdir = state / "witness"
    vkey = cli("witness", "keygen", "--name", WITNESS, "--out", str(wdir / "keys")).strip().splitlines()[-1]
    (wdir / "witness.toml").write_text(_witness_config(ports["witness"]), encoding="utf-8")
    fed.members["witness"] = Member(id="witness", kind="witness", port=ports["witness"], config=wdir / "witness.toml", display=WITNESS, log_vkey=vkey)
    # int-org hands out delivery evidence only with the witness's cosignature on every checkpoint.
    org = fed.members["int-org"].config
    witness_url = f"http://127.0.0.1:{ports['witness']}"
    org.write_text(
        org.read_text(encoding="utf-8").replace(
            "[node]\n", f'[node]\nevidence_witnesses = [{{ url = "{witness_url}", vkey = "{vkey}" }}]\nevidence_require = 1\n', 1
        ),
        encoding="utf-8",
    )
    draft = state / "roster.draft"
    authorities = ",".join(str(auth_dir / f"{a}.pub.json") for a in AUTHORITIES)
    cli("roster", "init", "--federation", "heliograph-demo", "--authorities", authorities, "--threshold", "2", "--out", str(draft), "--valid-for", "30d")
    for m in fed.members.values():
        if m.kind == "witness":
            continue  # not a roster member: it watches the members' logs
        identity = state / m.id / "keys" / f"{m.id}.pub.json" if m.kind == "gateway" else state / m.id / f"{m.id}.pub.json"
        extra = ["--home-gateway", m.home] if m.home else []
        cli("roster", "add-member", "--draft", str(draft), "--identity", str(identity), "--kind", m.kind, "--url", m.url, "--display-name", m.display, *extra)
        m.log_vkey = json.loads(identity.read_text(encoding="utf-8"))["log_vkey"]
    for a in AUTHORITIES[:2]:  # threshold 2 of 3: two authorities sign in turn
        cli("roster", "sign", "--draft", str(draft), "--key", str(auth_dir / f"{a}.key"))
    cli("roster", "publish", "--draft", str(draft), "--trust-anchor", "--out", str(roster))
    import asyncio

    asyncio.run(_accounts(fed, clock))
    return fed


async def _accounts(fed: Federation, clock: Clock) -> None:
    from nacl.pwhash import argon2id

    from node.accounts import AccountStore
    from node.config import load_node_config

    for m in fed.nodes():
        config = load_node_config(m.config)
        config.hop.data_dir.mkdir(parents=True, exist_ok=True)
        store = await AccountStore.open(config.accounts_path, opslimit=argon2id.OPSLIMIT_INTERACTIVE, memlimit=argon2id.MEMLIMIT_INTERACTIVE)
        try:
            now = clock.now_ms()
            for role in ("officer", "supervisor", "auditor"):
                await store.add_user(f"{role}-{m.id}", role, DEMO_PASSWORD, now_ms=now)
            m.token = await store.create_token(f"officer-{m.id}", "demo", now_ms=now)
            m.supervisor_token = await store.create_token(f"supervisor-{m.id}", "demo", now_ms=now)
            m.auditor_token = await store.create_token(f"auditor-{m.id}", "demo", now_ms=now)
        finally:
            await store.close()


def start(fed: Federation, clock: Clock, *, timeout_s: float = 60.0) -> None:
    """Start every member as its own process and wait until each is listening."""
    pause = threading.Event()
    for m in fed.members.values():
        ready = m.config.parent / "ready"
        ready.unlink(missing_ok=True)
        command = m.kind
        log = (m.config.parent / f"{m.id}.log").open("wb")
        m.process = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            [sys.executable, "-m", "node.cli", command, "run", "--config", str(m.config), "--ready-file", str(ready)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=m.config.parent,
        )
    deadline = clock.monotonic() + timeout_s
    for m in fed.members.values():
        ready = m.config.parent / "ready"
        while not ready.exists():
            assert m.process is not None
            if m.process.poll() is not None:
                raise DemoFailure("start", f"{m.id} exited with status {m.process.returncode}; see {m.config.parent / (m.id + '.log')}")
            if clock.monotonic() > deadline:
                raise DemoFailure("start", f"{m.id} not ready within {timeout_s:.0f} s")
            pause.wait(0.05)  # waiting for child processes, outside any event loop


def stop(fed: Federation, *, timeout_s: float = 30.0) -> list[str]:
    """SIGTERM every member, wait for each; return the ids that did not exit cleanly."""
    unclean = []
    for m in fed.members.values():
        if m.process is not None and m.process.poll() is None:
            m.process.send_signal(signal.SIGTERM)
    for m in fed.members.values():
        if m.process is None:
            continue
        try:
            status = m.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            m.process.kill()
            m.process.wait()
            status = -9
        if status != 0:
            unclean.append(f"{m.id} (status {status})")
    return unclean


def run_demo(*, keep: bool, state_dir: Path | None, base_port: int | None, out: Any = None) -> int:
    """The whole demo; returns the process exit status."""
    from node.demo_scenario import Narrator, play

    clock = SystemClock()
    narrator = Narrator(out or sys.stdout, clock)
    temp = None
    if state_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="heliograph-demo-")
        state_dir = Path(temp.name)
    state_dir.mkdir(parents=True, exist_ok=True)
    fed: Federation | None = None
    status = 0
    try:
        narrator.step("setup", f"keys, configs and a roster signed 2-of-3 under {state_dir}")
        fed = build(state_dir, base_port=base_port, clock=clock)
        narrator.step("start", f"{len(fed.members)} processes: " + ", ".join(f"{m.id} :{m.port}" for m in fed.members.values()))
        start(fed, clock)
        (state_dir / "federation.json").write_text(json.dumps(fed.describe(), indent=2) + "\n", encoding="utf-8")
        os.chmod(state_dir / "federation.json", 0o600)
        import asyncio

        asyncio.run(play(fed, narrator, clock))
        if keep:
            narrator.note(f"federation kept running; {state_dir / 'federation.json'} lists members, URLs and tokens.")
            narrator.note(f"console: {fed.members['int-org'].url}/  (user officer-int-org, password {DEMO_PASSWORD}); Ctrl-C stops everything")
            waiter = signal.sigwait if hasattr(signal, "sigwait") else None
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            if waiter is not None:
                waiter({signal.SIGINT, signal.SIGTERM})
    except DemoFailure as exc:
        narrator.fail(exc.step, exc.detail)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        if fed is not None:
            unclean = stop(fed)
            if unclean and status == 0:
                narrator.fail("shutdown", "did not exit cleanly: " + ", ".join(unclean))
                status = 1
            elif status == 0:
                narrator.step("shutdown", "every process stopped cleanly (SIGTERM)")
        if temp is not None:
            temp.cleanup()
    if status == 0:
        narrator.done()
    return status
