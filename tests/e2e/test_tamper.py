"""Tamper: one receipt edited in a running gateway's SQLite log on disk.

Both oversight tools, run as their own processes exactly as an oversight body
would (``heliograph witness run --once`` and ``heliograph log verify``), flag
that hop and that index.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

from protocol import envelope as env_mod
from protocol.batch import BatchItem, EnvelopeBatch
from protocol.transport import sign_request
from tests.support.federation import SeededRng
from tests.support.procs import ROOT, GatewayProcess, wall_ms, write_federation


def heliograph(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)


def test_an_edited_receipt_is_flagged_by_the_witness_and_log_verify(tmp_path: Path) -> None:
    fed, ports = write_federation(tmp_path, "tamper", nodes=(("int-org", "gw-eu"), ("fr-police", "gw-eu")))
    gw = GatewayProcess(tmp_path, "gw-eu")
    gw.start()
    url = f"http://127.0.0.1:{ports['gw-eu']}"
    vkey = fed.roster.member("gw-eu").log_vkey
    try:
        now = wall_ms()
        envs = [
            env_mod.seal(
                sender=fed.keys["int-org"],
                roster=fed.roster,
                tiers=[env_mod.Tier(name="all", sections=("summary",), recipients=("fr-police",))],
                sections={"summary": f"t{i}".encode()},
                priority="ROUTINE",
                label="TLP:GREEN",
                now=now,
                expires=now + 600_000,
                rng=SeededRng(f"t{i}"),
            )
            for i in range(6)
        ]
        body = EnvelopeBatch(items=tuple(BatchItem(envelope=e.to_bytes(), recipients=("fr-police",)) for e in envs)).to_bytes()
        auth = sign_request(fed.keys["int-org"], method="POST", path="/v1/envelopes", query="", destination="gw-eu", body=body, now=now, nonce=b"t" * 16)
        request = urllib.request.Request(url + "/v1/envelopes", data=body, headers={"Authorization": auth, "Content-Type": "application/x-msgpack"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200

        assert heliograph("witness", "keygen", "--name", "oversight.example/w1", "--out", str(tmp_path / "witness")).returncode == 0
        config = tmp_path / "witness.toml"
        config.write_text(
            f'[witness]\nname = "oversight.example/w1"\nkey_file = "witness/witness.key"\nstate_dir = "witness-state"\naudit = "full"\n'
            f'[[witness.logs]]\nvkey = "{vkey}"\nurl = "{url}"\n'
        )
        first = heliograph("witness", "run", "--config", str(config), "--once")
        assert first.returncode == 0, first.stdout + first.stderr
        assert heliograph("log", "verify", url, "--vkey", vkey).returncode == 0

        bad = 3
        with sqlite3.connect(tmp_path / "data" / "gw-eu" / "hop.db", timeout=10) as conn:
            (data,) = conn.execute("SELECT data FROM log_leaves WHERE idx = ?", (bad,)).fetchone()
            conn.execute("UPDATE log_leaves SET data = ? WHERE idx = ?", (data[:-1] + bytes([data[-1] ^ 0x01]), bad))

        second = heliograph("witness", "run", "--config", str(config), "--once")
        assert second.returncode == 1
        assert '"kind": "tampered_leaf"' in second.stderr and f'"index": {bad}' in second.stderr and "heliograph/gw-eu" in second.stderr
        verify = heliograph("log", "verify", url, "--vkey", vkey)
        assert verify.returncode == 1 and f"entry {bad}" in verify.stderr + verify.stdout
    finally:
        assert gw.stop() == 0
