"""Forged and replayed traffic against a real gateway process, each refused with its code and visible to the operator.

The attacker is its own process (tests/support/rogue.py) holding a member's key:
a member whose key the roster revoked, a replayed request, and a member sending
outside the routing policy (TLP:RED is denied).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from gateway.keyfile import write_secret_keys
from tests.support.procs import ROOT, GatewayProcess, write_federation


def rogue(tmp: Path, member: str, url: str, *extra: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.rogue", "--key", str(tmp / "keys" / f"{member}.key"), "--roster", str(tmp / "roster.bin"), "--url", url,
         "--to", "fr-police", "--gateway", "gw-eu", *extra],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_revoked_replayed_and_out_of_policy_traffic_is_refused_and_visible(tmp_path: Path) -> None:
    fed, ports = write_federation(
        tmp_path, "forged", nodes=(("int-org", "gw-eu"), ("fr-police", "gw-eu"), ("ke-police", "gw-eu")), revoked=("ke-police",), deny_labels=("TLP:RED",)
    )
    for member in ("int-org", "ke-police"):
        write_secret_keys(tmp_path / "keys" / f"{member}.key", fed.keys[member])
    gw = GatewayProcess(tmp_path, "gw-eu")
    gw.start()
    url = f"http://127.0.0.1:{ports['gw-eu']}"
    try:
        (revoked,) = rogue(tmp_path, "ke-police", url)
        assert revoked["status"] == 403 and revoked["code"] == "E_REVOKED"
        first, second = rogue(tmp_path, "int-org", url, "--replay")
        assert first["status"] == 200 and first["receipts"] == [{"event": "accepted", "reason": None}]
        assert second["status"] == 401 and second["code"] == "E_REPLAY"
        (red,) = rogue(tmp_path, "int-org", url, "--label", "TLP:RED")
        assert red["status"] == 200 and red["receipts"] == [{"event": "rejected", "reason": "E_POLICY_DENIED"}]
        # The operator sees every refusal: in /metrics by code, and in the JSON log.
        with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert 'heliograph_requests_refused_total{code="E_REVOKED"} 1.0' in metrics
        assert 'heliograph_requests_refused_total{code="E_REPLAY"} 1.0' in metrics
        assert 'heliograph_envelopes_rejected_total{code="E_POLICY_DENIED"} 1.0' in metrics
    finally:
        assert gw.stop() == 0
    logged = [json.loads(line) for line in gw.log.read_text().splitlines() if line.startswith("{")]
    codes = {e.get("code") for e in logged if e.get("event") in ("peer_request_refused", "envelope_rejected")}
    assert {"E_REVOKED", "E_REPLAY", "E_POLICY_DENIED"} <= codes
    assert all("rogue traffic" not in json.dumps(e) for e in logged), "no plaintext in the logs"
