"""Split view: a hop serves two different checkpoints for the same size (a test double of its log API).

The witness runs as its own process (``heliograph witness run --once``, as a cron
job would): it cosigns the first view, refuses to cosign the second, raises the
alarm (exit status 1, an error-level ``witness_alarm`` log line naming the log
and ``fork``), and stays in alarm on the next round.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.support.fake_log import FakeLog, leaves, note_for
from tests.support.logs import ORIGIN, VKEY
from tests.support.procs import ROOT


async def heliograph(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_witness_refuses_a_split_view_and_raises_the_alarm(fake: FakeLog, tmp_path: Path) -> None:
    fake.leaves = leaves(4)
    code, _, _ = await heliograph("witness", "keygen", "--name", "oversight.example/split", "--out", str(tmp_path / "keys"))
    assert code == 0
    config = tmp_path / "witness.toml"
    config.write_text(
        '[witness]\nname = "oversight.example/split"\nkey_file = "keys/witness.key"\nstate_dir = "state"\naudit = "off"\n'
        f'[[witness.logs]]\nvkey = "{VKEY}"\nurl = "{fake.url}"\n'
    )
    code, out, err = await heliograph("witness", "run", "--config", str(config), "--once")
    assert code == 0, out + err
    state_file = next((tmp_path / "state").glob("*.json"))
    cosigned = json.loads(state_file.read_text())
    honest = note_for(fake.leaves)

    fake.notes = [note_for(leaves(4, "R"))]  # same size, another root: the view shown to this witness now
    code, out, err = await heliograph("witness", "run", "--config", str(config), "--once")
    assert code == 1 and "ALARM" in out
    alarms = [json.loads(line) for line in err.splitlines() if line.startswith("{") and '"witness_alarm"' in line]
    assert [(a["kind"], a["origin"], a.get("level", a.get("log_level"))) for a in alarms] == [("fork", ORIGIN, "error")]
    after = json.loads(state_file.read_text())
    assert json.dumps(after).count(honest.splitlines()[2]) >= 1, "the verified checkpoint is kept as evidence"
    assert after != cosigned and after.get("alarms"), "the alarm is persisted"

    code, out, _ = await heliograph("witness", "run", "--config", str(config), "--once")
    assert code == 1, "still in alarm: nothing is cosigned until an operator clears it"
