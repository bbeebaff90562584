"""Key files: mode 0600, no overwrite, refuse readable secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.keyfile import KeyFileError, read_public_identity, read_secret_keys, write_public_identity, write_secret_keys
from protocol.errors import MalformedError
from protocol.keys import MemberKeys
from tests.support.federation import SeededRng


def test_secret_file_is_0600_and_round_trips(tmp_path: Path) -> None:
    keys = MemberKeys.generate("ke-police", SeededRng("kf"))
    path = tmp_path / "ke-police.key"
    write_secret_keys(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret_keys(path) == keys
    assert not (tmp_path / "ke-police.key.tmp").exists()
    with pytest.raises(KeyFileError, match="already exists"):
        write_secret_keys(path, keys)
    write_secret_keys(path, MemberKeys.generate("ke-police", SeededRng("kf2")), overwrite=True)
    assert read_secret_keys(path) != keys


def test_readable_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_secret_keys(path, MemberKeys.generate("ke-police", SeededRng("kf")))
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="group or others") as info:
        read_secret_keys(path)
    assert "chmod 600" in info.value.hint


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        read_secret_keys(tmp_path / "missing.key")
    garbage = tmp_path / "g.key"
    garbage.write_bytes(b"\xff\xfe")
    garbage.chmod(0o600)
    with pytest.raises(MalformedError):
        read_secret_keys(garbage)
    with pytest.raises(KeyFileError):
        read_public_identity(tmp_path / "missing.pub.json")
    with pytest.raises(KeyFileError):
        write_secret_keys(tmp_path / "no" / "such" / "dir.key", MemberKeys.generate("a", SeededRng("x")))


def test_public_identity_file(tmp_path: Path) -> None:
    keys = MemberKeys.generate("gw-eu", SeededRng("pub"))
    path = tmp_path / "gw-eu.pub.json"
    write_public_identity(path, keys.public)
    assert read_public_identity(path) == keys.public
