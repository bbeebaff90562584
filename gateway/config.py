"""Hop configuration: one TOML file, validated at start-up with errors that name the key.

See ``configs/gateway.example.toml`` for every key with its default and meaning.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.forwarder import ForwarderConfig
from gateway.keyfile import read_private_text
from gateway.log_store import LogConfig
from gateway.tls import TlsConfig, parse_tls
from protocol import fields
from protocol.errors import ConfigError, HeliographError, MalformedError
from protocol.limits import Limits

_SECTIONS = {
    "hop": {"id", "listen", "data_dir", "roster", "key_file"},
    "limits": {"max_envelope_bytes", "max_recipients", "max_batch", "max_request_bytes", "max_clock_skew_ms"},
    "queue": {"batch_max", "receipt_batch_max", "sweep_interval_s", "backoff_base_ms", "backoff_cap_ms", "request_timeout_s"},
    "log": {"batch_max", "batch_wait_s", "synchronous"},
    "policy": None,  # validated by gateway.policy
    "tls": None,  # validated by gateway.tls
    "ops": {"token_file"},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HopConfig:
    """Everything a hop needs to start, already validated."""

    member_id: str
    host: str
    port: int
    data_dir: Path
    roster_path: Path
    key_file: Path
    limits: Limits = field(default_factory=Limits)
    max_batch: int = 100
    max_request_bytes: int = 16 << 20
    queue: ForwarderConfig = field(default_factory=ForwarderConfig)
    log: LogConfig = field(default_factory=LogConfig)
    policy: dict[str, Any] = field(default_factory=dict)
    tls: TlsConfig = field(default_factory=TlsConfig)
    ops_token: str | None = field(default=None, repr=False)
    """With ``[ops] token_file``: the bearer token /metrics, /v1/destinations and /v1/messages demand."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "hop.db"


def config_value(table: dict[str, Any], section: str, key: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
    """``table[key]`` checked to be a ``kind`` (an int is taken for a float; numbers finite and not negative).

    Raises:
        ConfigError: Missing while ``required``, of another type, or out of range; names ``section.key``.
    """
    if key not in table:
        if required:
            raise ConfigError(f"{section}.{key}: required")
        return default
    value = table[key]
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(f"{section}.{key}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{section}.{key}: must be a finite number")
    if isinstance(value, (int, float)) and value < 0:
        raise ConfigError(f"{section}.{key}: must not be negative")
    return value


def _positive(section: str, key: str, value: float, *, low: float, high: float = math.inf) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{section}.{key}: expected {low:g}..{high:g}, got {value!r}")


def load_config(path: Path) -> HopConfig:
    """Read and validate a hop's TOML config; relative paths are relative to the file.

    Raises:
        ConfigError: Unreadable file, bad TOML, unknown sections or keys, wrong
            types or values; the message names the key.
    """
    return parse_config(read_toml(path), base=path.parent)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file.

    Raises:
        ConfigError: Unreadable file or bad TOML.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def parse_config(doc: dict[str, Any], *, base: Path) -> HopConfig:
    """Validate an already-parsed TOML document (see :func:`load_config`).

    Raises:
        ConfigError: See :func:`load_config`.
    """
    for section, value in doc.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{section}: unknown section (expected one of {', '.join(_SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: expected a table")
        allowed = _SECTIONS[section]
        if allowed is not None:
            unknown = set(value) - allowed
            if unknown:
                raise ConfigError(f"{section}.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(allowed))})")
    hop = doc.get("hop")
    if hop is None:
        raise ConfigError("hop: required section")
    member_id = config_value(hop, "hop", "id", str, required=True)
    try:
        fields.member_id("hop.id", member_id)
    except MalformedError as exc:
        raise ConfigError(exc.message) from None
    listen = config_value(hop, "hop", "listen", str, "127.0.0.1:7100")
    host, _, port_text = listen.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port_text) or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"hop.listen: expected HOST:PORT, got {listen!r}")

    def path_of(key: str) -> Path:
        p = Path(config_value(hop, "hop", key, str, required=True))
        return p if p.is_absolute() else base / p

    lim = doc.get("limits", {})
    q = doc.get("queue", {})
    lg = doc.get("log", {})
    for key in ("max_envelope_bytes", "max_recipients", "max_clock_skew_ms"):
        _positive("limits", key, config_value(lim, "limits", key, int, 1), low=1)
    _positive("limits", "max_batch", config_value(lim, "limits", "max_batch", int, 100), low=1, high=256)
    _positive("limits", "max_request_bytes", config_value(lim, "limits", "max_request_bytes", int, 16 << 20), low=1024)
    _positive("queue", "sweep_interval_s", config_value(q, "queue", "sweep_interval_s", float, 1.0), low=0.01, high=3600)
    _positive("queue", "request_timeout_s", config_value(q, "queue", "request_timeout_s", float, 10.0), low=0.1, high=600)
    _positive("queue", "backoff_base_ms", config_value(q, "queue", "backoff_base_ms", int, 2_000), low=1)
    _positive("log", "batch_max", config_value(lg, "log", "batch_max", int, 1000), low=1, high=100_000)
    _positive("log", "batch_wait_s", config_value(lg, "log", "batch_wait_s", float, 0.0), low=0.0, high=0.2)
    try:
        limits = Limits(
            max_envelope_bytes=config_value(lim, "limits", "max_envelope_bytes", int, 1 << 20),
            max_recipients=config_value(lim, "limits", "max_recipients", int, 512),
            max_clock_skew_ms=config_value(lim, "limits", "max_clock_skew_ms", int, 300_000),
        )
        queue = ForwarderConfig(
            batch_max=config_value(q, "queue", "batch_max", int, 50),
            receipt_batch_max=config_value(q, "queue", "receipt_batch_max", int, 256),
            sweep_interval_s=config_value(q, "queue", "sweep_interval_s", float, 1.0),
            backoff_base_ms=config_value(q, "queue", "backoff_base_ms", int, 2_000),
            backoff_cap_ms=config_value(q, "queue", "backoff_cap_ms", int, 180_000),
            request_timeout_s=config_value(q, "queue", "request_timeout_s", float, 10.0),
        )
        log = LogConfig(
            batch_max=config_value(lg, "log", "batch_max", int, 1000),
            batch_wait_s=config_value(lg, "log", "batch_wait_s", float, 0.0),
            synchronous=config_value(lg, "log", "synchronous", str, "FULL"),
        )
    except ConfigError:
        raise
    except Exception as exc:  # model validation errors from Limits / LogConfig
        raise ConfigError(f"invalid limits: {getattr(exc, 'message', exc)}") from None
    if log.synchronous not in ("FULL", "NORMAL"):
        raise ConfigError("log.synchronous: expected FULL or NORMAL")
    if not 1 <= queue.batch_max <= 256:
        raise ConfigError("queue.batch_max: expected 1..256")
    if not 1 <= queue.receipt_batch_max <= 256:
        raise ConfigError("queue.receipt_batch_max: expected 1..256")
    if queue.backoff_base_ms < 1 or queue.backoff_cap_ms < queue.backoff_base_ms:
        raise ConfigError("queue.backoff_cap_ms: must be at least queue.backoff_base_ms (>= 1)")
    if "policy" not in doc:
        raise ConfigError("policy: required section (routing is fail-closed; see configs/gateway.example.toml)")
    from gateway.policy import Policy, RateLimits

    Policy.from_config(doc["policy"])  # validate now, naming the key, before anything is opened
    RateLimits.from_config(doc["policy"])
    return HopConfig(
        member_id=member_id,
        host=host,
        port=int(port_text),
        data_dir=path_of("data_dir"),
        roster_path=path_of("roster"),
        key_file=path_of("key_file"),
        limits=limits,
        max_batch=config_value(lim, "limits", "max_batch", int, 100),
        max_request_bytes=config_value(lim, "limits", "max_request_bytes", int, 16 << 20),
        queue=queue,
        log=log,
        policy=doc["policy"],
        tls=parse_tls(doc.get("tls", {}), base=base),
        ops_token=_ops_token(doc.get("ops", {}), base),
    )


def _ops_token(table: dict[str, Any], base: Path) -> str | None:
    """The operations token from ``[ops] token_file``: one line of at least 32 characters, in a file only its owner can read."""
    value = config_value(table, "ops", "token_file", str)
    if value is None:
        return None
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        token = read_private_text(path).strip()
    except HeliographError as exc:
        raise ConfigError(f"ops.token_file: {exc.message}", hint=exc.hint) from None
    if len(token) < 32 or not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError("ops.token_file: expected one line of at least 32 printable ASCII characters, no spaces")
    return token
