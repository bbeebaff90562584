"""Node configuration: the hop's TOML (see gateway/config.py) plus a ``[node]`` table.

``configs/node.example.toml`` documents every key. A node needs no ``[policy]``
table: it only ever accepts copies addressed to itself from its home gateway,
so the default policy allows every roster member's messages, with a maximum TTL
of 7 days. Unknown keys are errors, as for gateways.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import HopConfig, parse_config, read_toml
from node.field_rules import FieldInvalid, parse_duration_ms
from protocol.errors import ConfigError

DEFAULT_NODE_POLICY: dict[str, Any] = {
    "max_ttl_ms": 7 * 86_400_000,
    "default": "deny",
    "rules": [{"name": "roster-members", "action": "allow", "origins": ["*"]}],
    "rate_limits": {"default": {"rate": 100.0, "burst": 1000}},
}
_NODE_KEYS = {"retention", "max_ttl", "session_ttl", "tick_s", "accounts_db", "kdf", "evidence_witnesses", "evidence_require", "secure_cookies"}


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """A validated node configuration."""

    hop: HopConfig
    retention_ms: int = 7 * 86_400_000
    """Content is purged this long after an alert's ``expires``."""
    max_ttl_ms: int = 7 * 86_400_000
    session_ttl_ms: int = 12 * 3_600_000
    tick_s: float = 1.0
    accounts_path: Path = Path("accounts.db")
    secure_cookies: bool | None = None
    """Session cookie ``Secure`` flag: None = when the node itself serves TLS; True behind a TLS-terminating proxy."""
    evidence_witnesses: tuple[tuple[str, str], ...] = ()
    """(url, vkey) of the witnesses whose cosignatures evidence bundles carry (docs/WITNESS.md)."""
    evidence_require: int = 0
    """Refuse to hand out an evidence bundle unless this many of those witnesses cosigned every checkpoint in it."""
    kdf: dict[str, int] = field(default_factory=dict)
    """Argon2id limits for officer passwords (``moderate`` by default; ``interactive`` or ``min`` for demos and tests)."""


def load_node_config(path: Path) -> NodeConfig:
    """Read and validate a node's TOML config; relative paths are relative to the file.

    Raises:
        ConfigError: The message names the key and what was expected.
    """
    return parse_node_config(read_toml(path), base=path.parent)


def _duration(table: dict[str, Any], key: str, default_ms: int, *, max_ms: int) -> int:
    if key not in table:
        return default_ms
    try:
        return parse_duration_ms(table[key], min_ms=1000, max_ms=max_ms)
    except FieldInvalid as exc:
        raise ConfigError(f"node.{key}: {exc}") from None


def parse_node_config(doc: dict[str, Any], *, base: Path) -> NodeConfig:
    """Validate an already-parsed node TOML document.

    Raises:
        ConfigError: See :func:`load_node_config`.
    """
    doc = dict(doc)
    node = doc.pop("node", {})
    if not isinstance(node, dict):
        raise ConfigError("node: expected a table")
    unknown = set(node) - _NODE_KEYS
    if unknown:
        raise ConfigError(f"node.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(_NODE_KEYS))})")
    doc.setdefault("policy", DEFAULT_NODE_POLICY)
    hop = parse_config(doc, base=base)
    year = 366 * 86_400_000
    tick = node.get("tick_s", 1.0)
    if type(tick) not in (int, float) or not 0.01 <= float(tick) <= 60:
        raise ConfigError("node.tick_s: expected a number of seconds between 0.01 and 60")
    kdf_name = node.get("kdf", "moderate")
    kdf = _KDF.get(kdf_name) if isinstance(kdf_name, str) else None
    if kdf is None:
        raise ConfigError(f"node.kdf: expected one of {', '.join(_KDF)}")
    accounts = Path(node.get("accounts_db", "accounts.db")) if isinstance(node.get("accounts_db", ""), str) else None
    if accounts is None:
        raise ConfigError("node.accounts_db: expected a path")
    witnesses = node.get("evidence_witnesses", [])
    if not isinstance(witnesses, list) or not all(
        isinstance(w, dict) and set(w) == {"url", "vkey"} and all(isinstance(v, str) and v for v in w.values()) for w in witnesses
    ):
        raise ConfigError('node.evidence_witnesses: expected a list of {url = "http://...", vkey = "..."} tables')
    require = node.get("evidence_require", 0)
    if type(require) is not int or not 0 <= require <= len(witnesses):
        raise ConfigError(f"node.evidence_require: expected a whole number from 0 to the number of evidence_witnesses ({len(witnesses)})")
    secure = node.get("secure_cookies", "auto")
    if secure not in ("auto", True, False):
        raise ConfigError('node.secure_cookies: expected "auto", true or false')
    return NodeConfig(
        hop=hop,
        secure_cookies=None if secure == "auto" else bool(secure),
        evidence_witnesses=tuple((w["url"], w["vkey"]) for w in witnesses),
        evidence_require=require,
        retention_ms=_duration(node, "retention", 7 * 86_400_000, max_ms=year),
        max_ttl_ms=_duration(node, "max_ttl", 7 * 86_400_000, max_ms=30 * 86_400_000),
        session_ttl_ms=_duration(node, "session_ttl", 12 * 3_600_000, max_ms=30 * 86_400_000),
        tick_s=float(tick),
        accounts_path=accounts if accounts.is_absolute() else hop.data_dir / accounts,
        kdf=kdf,
    )


def _kdf_limits() -> dict[str, dict[str, int]]:
    from nacl.pwhash import argon2id

    return {
        "moderate": {"opslimit": argon2id.OPSLIMIT_MODERATE, "memlimit": argon2id.MEMLIMIT_MODERATE},
        "interactive": {"opslimit": argon2id.OPSLIMIT_INTERACTIVE, "memlimit": argon2id.MEMLIMIT_INTERACTIVE},
        "min": {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN},
    }


_KDF = _kdf_limits()
