"""Helpers shared by the benchmark scripts: machine description and result files."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import ssl
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(**extra: Any) -> dict[str, Any]:
    """Python, CPU, library versions and git revision; ``extra`` keys are added before the time stamp."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "pynacl": nacl.__version__,
        "openssl": ssl.OPENSSL_VERSION,
        "git_rev": _git("rev-parse", "--short", "HEAD").strip(),
    }
    info.update(extra)
    info["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return info


def git_dirty(*paths: str) -> bool:
    return bool(_git("status", "--porcelain", *paths).strip())


def filesystem_of(path: str) -> str:
    """The mount holding ``path``, as "kind on mountpoint (device)"."""
    fs, best = "", ""
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, kind = line.split()[:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fs = mnt, f"{kind} on {mnt} ({dev})"
    except (OSError, ValueError):
        pass
    return fs


def code_hashes(paths: Iterable[Path]) -> dict[str, str]:
    """Short SHA-256 of each measured source file, so results name the code they measured."""
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in paths}


def write_results(path: Path, result: dict[str, Any]) -> None:
    """Write the JSON results atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated; NaN for no values."""
    s = sorted(values)
    if not s:
        return float("nan")
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
