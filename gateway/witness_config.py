"""A witness's config: which logs it watches, how hard it audits them, and where it keeps its files.

A witness (:mod:`gateway.witness`, docs/WITNESS.md) reads one TOML file
(``configs/witness.example.toml``). :func:`load_witness_config` validates it into a
:class:`WitnessConfig` with errors that name the key; :func:`targets_for` then joins the
roster's logs with the config's own ``[[witness.logs]]`` entries into the :class:`LogTarget`
set the poll loop checks. The files the config points at (the cosigning key and the per-log
state) are :mod:`gateway.witness_store`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from gateway.config import config_value, read_toml
from gateway.tls import TlsConfig, parse_tls
from protocol.checkpoint import SIG_COSIGNATURE_V1, note_key_hash
from protocol.errors import ConfigError, MalformedError
from protocol.keys import log_origin, parse_vkey
from protocol.roster import Roster


class AuditMode(Enum):
    """How much of each log the witness downloads besides checkpoints and consistency proofs."""

    OFF = "off"
    """Checkpoints and consistency proofs only (a plain C2SP witness)."""
    NEW = "new"
    """Every entry once, as it appears: catches entries that never matched the signed tree."""
    FULL = "full"
    """Every entry every round, plus sampled inclusion proofs (``heliograph log verify``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogTarget:
    """One log the witness watches: its origin, the vkey from the roster and its hop's base URL."""

    origin: str
    vkey: str
    url: str

    def __post_init__(self) -> None:
        name, _ = parse_vkey(self.vkey)
        if name != self.origin:
            raise MalformedError(f"vkey is for {name!r}, not {self.origin!r}")
        if not self.url.startswith(("http://", "https://")):
            raise MalformedError(f"log {self.origin}: url must be http(s)")


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessConfig:
    """A witness's validated config; see ``configs/witness.example.toml``."""

    name: str
    key_file: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 7300
    poll_interval_s: float = 60.0
    request_timeout_s: float = 30.0
    audit: AuditMode = AuditMode.FULL
    audit_proofs: int = 64
    roster_path: Path | None = None
    logs: tuple[LogTarget, ...] = ()
    tls: TlsConfig = field(default_factory=TlsConfig)
    """The listener's certificate and the CAs that watched logs' ``https://`` URLs chain to (gateway.tls)."""


_WITNESS_KEYS = {"name", "key_file", "state_dir", "listen", "poll_interval_s", "request_timeout_s", "audit", "audit_proofs", "roster", "logs"}
_LOG_KEYS = {"origin", "vkey", "url"}


def _range(where: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{where}: expected {low:g}..{high:g}, got {value!r}")


def load_witness_config(path: Path) -> WitnessConfig:
    """Read and validate a witness's TOML config; relative paths are relative to the file.

    Raises:
        ConfigError: Unreadable file, bad TOML, unknown keys, wrong types or values; the message names the key.
    """
    return parse_witness_config(read_toml(path), base=path.parent)


def parse_witness_config(doc: dict[str, Any], *, base: Path) -> WitnessConfig:
    """Validate an already-parsed TOML document (see :func:`load_witness_config`).

    Raises:
        ConfigError: See :func:`load_witness_config`.
    """
    unknown = set(doc) - {"witness", "tls"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section (expected witness, tls)")
    if not isinstance(doc.get("tls", {}), dict):
        raise ConfigError("tls: expected a table")
    w = doc.get("witness")
    if not isinstance(w, dict):
        raise ConfigError("witness: required table")
    unknown = set(w) - _WITNESS_KEYS
    if unknown:
        raise ConfigError(f"witness.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(_WITNESS_KEYS))})")
    name = config_value(w, "witness", "name", str, required=True)
    try:
        note_key_hash(name, SIG_COSIGNATURE_V1, bytes(32))
    except MalformedError:
        raise ConfigError(f"witness.name: {name!r} is not a valid note key name (no spaces, no '+')") from None

    def path_of(key: str, default: str | None = None) -> Path:
        p = Path(config_value(w, "witness", key, str, default, required=default is None))
        return p if p.is_absolute() else base / p

    listen = config_value(w, "witness", "listen", str, "127.0.0.1:7300")
    host, _, port_text = listen.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        raise ConfigError(f"witness.listen: expected HOST:PORT, got {listen!r}")
    poll = config_value(w, "witness", "poll_interval_s", float, 60.0)
    _range("witness.poll_interval_s", poll, 1.0, 86_400.0)
    timeout = config_value(w, "witness", "request_timeout_s", float, 30.0)
    _range("witness.request_timeout_s", timeout, 0.1, 600.0)
    audit_text = config_value(w, "witness", "audit", str, "full")
    try:
        audit = AuditMode(audit_text)
    except ValueError:
        raise ConfigError(f"witness.audit: expected off, new or full, got {audit_text!r}") from None
    proofs = config_value(w, "witness", "audit_proofs", int, 64)
    _range("witness.audit_proofs", proofs, 0, 1_000_000)
    raw_logs = w.get("logs", [])
    if not isinstance(raw_logs, list):
        raise ConfigError("witness.logs: expected an array of tables ([[witness.logs]])")
    logs: dict[str, LogTarget] = {}
    for i, entry in enumerate(raw_logs):
        where = f"witness.logs[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table")
        if set(entry) - _LOG_KEYS:
            raise ConfigError(f"{where}.{sorted(set(entry) - _LOG_KEYS)[0]}: unknown key (expected origin, vkey, url)")
        vkey, url = config_value(entry, where, "vkey", str, required=True), config_value(entry, where, "url", str, required=True)
        try:
            vkey_name = parse_vkey(vkey)[0]
        except MalformedError as exc:
            raise ConfigError(f"{where}.vkey: {exc.message}") from None
        origin = config_value(entry, where, "origin", str, vkey_name)
        if origin != vkey_name:
            raise ConfigError(f"{where}.origin: {origin!r} is not the name of its vkey ({vkey_name!r})")
        if origin in logs:
            raise ConfigError(f"{where}.origin: {origin!r} is listed twice")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url: expected an http(s) URL, got {url!r}")
        logs[origin] = LogTarget(origin=origin, vkey=vkey, url=url)
    roster = path_of("roster") if "roster" in w else None
    if roster is None and not logs:
        raise ConfigError("witness: nothing to watch; set witness.roster or add [[witness.logs]] entries")
    return WitnessConfig(
        name=name,
        key_file=path_of("key_file"),
        state_dir=path_of("state_dir"),
        host=host,
        port=int(port_text),
        poll_interval_s=poll,
        request_timeout_s=timeout,
        audit=audit,
        audit_proofs=proofs,
        roster_path=roster,
        logs=tuple(logs.values()),
        tls=parse_tls(doc.get("tls", {}), base=base),
    )


def targets_for(config: WitnessConfig, roster: Roster | None) -> dict[str, LogTarget]:
    """Every log to watch: each roster member's log, then the config's own entries, which win."""
    targets: dict[str, LogTarget] = {}
    for member in roster.members if roster is not None else ():
        origin = log_origin(member.id)
        targets[origin] = LogTarget(origin=origin, vkey=member.log_vkey, url=member.endpoint)
    targets.update((t.origin, t) for t in config.logs)
    return targets
