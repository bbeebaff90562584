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


def test_node_init_writes_0600_keys_a_valid_commented_config_and_the_member_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from node.config import load_node_config

    d = tmp_path / "ke-police"
    assert main(["node", "init", "--id", "ke-police", "--dir", str(d), "--url", "http://127.0.0.1:7311", "--home-gateway", "gw-af"]) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE((d / "keys" / "ke-police.key").stat().st_mode) == 0o600
    entry = json.loads(out[out.index("{") :])
    assert entry["id"] == "ke-police" and entry["home_gateway"] == "gw-af" and entry["log_vkey"].startswith("heliograph/ke-police+")
    assert "roster add-member" in entry["roster_command"]
    secret = json.loads((d / "keys" / "ke-police.key").read_text())
    assert all(str(v) not in out for k, v in secret.items() if "seed" in k or "secret" in k)
    config = load_node_config(d / "node.toml")
    assert config.hop.member_id == "ke-police" and config.hop.port == 7311 and config.hop.key_file == d / "keys" / "ke-police.key"
    assert "#" in (d / "node.toml").read_text(), "commented"
    # A second init refuses to overwrite the keys.
    assert main(["node", "init", "--id", "ke-police", "--dir", str(d)]) == 1
    assert "E_KEY_FILE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("snippet", "key"),
    [('[node]\nretention = "forever"\n', "node.retention"), ('[node]\nkdf = "weak"\n', "node.kdf"), ("[node]\nbogus = 1\n", "node.bogus")],
)
def test_node_config_errors_name_the_key(tmp_path: Path, snippet: str, key: str) -> None:
    from node.config import load_node_config
    from protocol.errors import ConfigError

    base = '[hop]\nid = "ke-police"\nlisten = "127.0.0.1:7200"\ndata_dir = "d"\nroster = "r"\nkey_file = "k"\n'
    (tmp_path / "n.toml").write_text(base + snippet)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_node_config(tmp_path / "n.toml")


def test_node_user_commands_find_the_accounts_db_from_the_node_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    d = tmp_path / "fr-police"
    assert main(["node", "init", "--id", "fr-police", "--dir", str(d)]) == 0
    text = (d / "node.toml").read_text().replace('kdf = "moderate"', 'kdf = "min"')
    (d / "node.toml").write_text(text)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    capsys.readouterr()
    status = main(["node", "user", "add", "--config", str(d / "node.toml"), "--username", "duty-1", "--role", "officer", "--password-stdin"])
    assert status == 0, capsys.readouterr().err
    assert (d / "data" / "accounts.db").exists()
    assert main(["node", "user", "list", "--config", str(d / "node.toml")]) == 0
    assert "duty-1" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["node", "user", "list"])  # one of --config / --db is required
    assert info.value.code == 2


def test_node_config_secure_cookies_and_evidence_witnesses(tmp_path: Path) -> None:
    from node.config import load_node_config
    from protocol.errors import ConfigError

    base = '[hop]\nid = "ke-police"\nlisten = "127.0.0.1:7200"\ndata_dir = "d"\nroster = "r"\nkey_file = "k"\n'
    witnesses = 'evidence_witnesses = [{ url = "http://w", vkey = "w+1+A" }]\n'
    (tmp_path / "n.toml").write_text(base + "[node]\nsecure_cookies = true\n" + witnesses + "evidence_require = 1\n")
    config = load_node_config(tmp_path / "n.toml")
    assert config.secure_cookies is True and config.evidence_witnesses == (("http://w", "w+1+A"),) and config.evidence_require == 1
    (tmp_path / "n.toml").write_text(base + "[node]\nevidence_require = 1\n")
    with pytest.raises(ConfigError, match=r"node\.evidence_require"):
        load_node_config(tmp_path / "n.toml")
    (tmp_path / "n.toml").write_text(base + '[node]\nsecure_cookies = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"node\.secure_cookies"):
        load_node_config(tmp_path / "n.toml")
