"""Write a federation to disk and run real ``heliograph gateway run`` processes (e2e tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from gateway.keyfile import write_secret_keys
from protocol.roster import Member, SignedRoster
from tests.support.federation import Federation, build_federation
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def write_federation(
    tmp: Path,
    seed: str,
    nodes: tuple[tuple[str, str], ...],
    gateways: tuple[str, ...] = ("gw-eu",),
    *,
    revoked: tuple[str, ...] = (),
    deny_labels: tuple[str, ...] = (),
) -> tuple[Federation, dict[str, int]]:
    """Keys, a re-signed roster with real loopback ports, and one TOML config per gateway.

    ``revoked`` members have their signing keys revoked a minute before now; ``deny_labels``
    adds a deny rule for those handling labels to every gateway's policy.
    """
    ports = {name: free_port() for name in (*gateways, *(n for n, _ in nodes))}
    now = wall_ms()
    fed = build_federation(seed, gateways=gateways, nodes=nodes, t0=now)

    def adjust(m: Member) -> Member:
        m = replace(m, endpoint=f"http://127.0.0.1:{ports[m.id]}")
        if m.id in revoked:
            m = replace(m, signing_keys=tuple(replace(k, revoked_at=now - 60_000) for k in m.signing_keys))
        return m

    fed.roster = replace(fed.roster, members=tuple(adjust(m) for m in fed.roster.members))
    deny = "".join(f'\n[[policy.rules]]\nname = "deny-{label}"\naction = "deny"\nlabels = ["{label}"]\n' for label in deny_labels)
    fed.signed = SignedRoster.sign(fed.roster, fed.authority_keys[:2])
    (tmp / "keys").mkdir(parents=True, exist_ok=True)
    (tmp / "roster.bin").write_bytes(fed.signed.to_bytes())
    for gw in gateways:
        write_secret_keys(tmp / "keys" / f"{gw}.key", fed.keys[gw])
        (tmp / f"{gw}.toml").write_text(
            f"""[hop]
id = "{gw}"
listen = "127.0.0.1:{ports[gw]}"
data_dir = "data/{gw}"
roster = "roster.bin"
key_file = "keys/{gw}.key"

[queue]
sweep_interval_s = 0.2
backoff_base_ms = 200
backoff_cap_ms = 2000

[policy]
max_ttl_ms = 86400000

[[policy.rules]]
action = "allow"
origins = ["*"]
{deny}
[policy.rate_limits]
default = {{ rate = 10000.0, burst = 10000 }}
""",
            encoding="utf-8",
        )
    return fed, ports


class GatewayProcess:
    """``heliograph gateway run`` as a child process."""

    def __init__(self, tmp: Path, member: str) -> None:
        self.tmp = tmp
        self.member = member
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / f"{member}.log"

    def start(self, timeout: float = 30.0) -> None:
        ready = self.tmp / f"{self.member}.ready"
        ready.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "gateway", "run", "--config", str(self.tmp / f"{self.member}.toml"), "--ready-file", str(ready)],
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.member} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)
