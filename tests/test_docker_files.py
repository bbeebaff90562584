"""The container files can't be built here (no Docker engine); check what can be checked without one."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_copies_what_the_package_needs_and_runs_unprivileged() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in (p.rstrip("*") for p in packages):
        assert f"COPY {package} ./{package}" in text, package
        assert (ROOT / package).is_dir()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            source = line.split()[1]
            assert (ROOT / source).exists(), source
    assert "USER heliograph" in text and "STOPSIGNAL SIGTERM" in text and 'ENTRYPOINT ["heliograph"]' in text


def test_compose_commands_are_real_cli_commands() -> None:
    from node.cli import build_parser

    parser = build_parser()
    text = (ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8")
    commands = [line.split("command:", 1)[1].strip() for line in text.splitlines() if "command:" in line]
    assert commands
    for raw in commands:
        argv = [part.strip().strip('"') for part in raw.strip("[]").split(",")]
        parser.parse_args(argv)  # exits (SystemExit) on an unknown command or option
