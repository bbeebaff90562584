"""protocol/ is pure: no I/O, no clock, no global randomness, no upward imports."""

from __future__ import annotations

import ast
from pathlib import Path

import protocol

BANNED = {"asyncio", "aiohttp", "aiosqlite", "os", "time", "random", "sqlite3", "socket", "subprocess", "threading", "datetime", "secrets", "gateway", "node"}
ROOT = Path(protocol.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_protocol_has_no_io_clock_or_randomness_imports() -> None:
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) >= 8
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & BANNED) for f in files if _imports(f) & BANNED}
    assert offenders == {}


def test_the_purity_check_catches_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom time import time\nfrom asyncio import sleep\n", encoding="utf-8")
    assert _imports(bad) & BANNED == {"os", "time", "asyncio"}
