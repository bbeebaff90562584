"""``heliograph demo``: the README's first command, run as a new user would, and ``--keep``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_demo_runs_every_step_and_exits_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "demo", "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=150, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in ("setup", "start", "send", "receipts", "inbox", "ack", "escalation", "update", "cancel", "oversight", "backup", "shutdown"):
        assert f"== {step}" in out, step
    assert "every step passed" in out and "witness  oversight.example/witness verified and cosigned 6 logs, no alarm" in out
    assert out.count("log      ") == 6 and "FAILED" not in out
    assert "za-fiu     tier inform  sees summary; withheld: details, instructions" in out
    assert "backup   node int-org: hop.db" in out and "checkpoint verified; no secret key in it" in out
    assert (tmp_path / "state" / "backup-int-org" / "backup.json").is_file()


def test_demo_keep_writes_federation_json_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "kept"
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "demo", "--keep", "--state-dir", str(state)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        for line in proc.stdout:
            if "federation kept running" in line or time.monotonic() > deadline:
                break
        doc = json.loads((state / "federation.json").read_text(encoding="utf-8"))
        assert Path(doc["roster"]).exists()
        kinds = sorted(m["kind"] for m in doc["members"])
        assert kinds == ["gateway"] * 2 + ["node"] * 4
        node = next(m for m in doc["members"] if m["id"] == "int-org")
        assert node["officer_api"]["url"] == node["url"] and node["officer_api"]["token"].startswith("hgt_")
        assert all(m["log_vkey"].startswith(f"heliograph/{m['id']}+") for m in doc["members"])
        (witness,) = doc["witnesses"]
        assert witness["cosigner_vkey"].startswith("oversight.example/witness+")
        # The federation is really up: the officer API answers with the token from federation.json.
        import urllib.request

        request = urllib.request.Request(node["url"] + "/v1/alerts", headers={"Authorization": f"Bearer {node['officer_api']['token']}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert len(json.loads(resp.read())["alerts"]) == 3
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, rest
        assert "every process stopped cleanly" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
