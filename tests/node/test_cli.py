"""The heliograph CLI: --version, keys generate/show, errors with codes and hints."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("heliograph ")


def test_keys_generate_writes_0600_and_prints_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--id", "ke-police", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    secret = (tmp_path / "ke-police.key").read_text()
    assert stat.S_IMODE((tmp_path / "ke-police.key").stat().st_mode) == 0o600
    assert (tmp_path / "ke-police.pub.json").exists()
    import json

    for field in ("signing_seed", "encryption_secret", "log_seed"):
        assert json.loads(secret)[field] not in out
    assert "heliograph/ke-police+" in out
    assert main(["keys", "show", str(tmp_path / "ke-police.key")]) == 0
    assert "signing key id" in capsys.readouterr().out


def test_errors_have_codes_and_hints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--id", "ke-police", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["keys", "generate", "--id", "ke-police", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error [E_KEY_FILE]" in err and "hint: Pass --force" in err
    assert main(["keys", "generate", "--id", "Not Valid", "--out", str(tmp_path)]) == 1
    assert "E_MALFORMED" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["keys"]) == 2


def test_console_script_runs_as_a_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "node.cli", "--version"], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0 and "heliograph" in proc.stdout
