"""What a witness keeps on disk: its config, its cosigning key and one state file per log.

A witness (:mod:`gateway.witness`, docs/WITNESS.md) is run by an oversight body. Everything it
needs to survive a restart lives in files an operator can read, back up and reason about:

* the TOML config (``configs/witness.example.toml``), validated by
  :func:`load_witness_config` with errors that name the key;
* the Ed25519 cosigning key (``heliograph witness keygen``): JSON with mode 0600, bound to the
  witness's C2SP key name, because a cosigner must never use one key under two names
  (docs/PROTOCOL.md 13.9);
* one JSON state file per log in ``state_dir``, replaced atomically after every check
  (:func:`gateway.roster_watch.write_file_atomic`): the last checkpoint verified, the latest
  cosigned note, the audited right edge of the tree, the last warning and every alarm. A state
  file that does not parse stops the witness: silently starting afresh would forget the
  checkpoint that a rollback or a fork must be compared with.

An operator clears an alarm with ``heliograph witness clear``, which only drops a *clear
request* next to the state file; the witness process, the only writer of state files, applies
it at its next round (or at once when no witness is running, :meth:`WitnessStore.try_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nacl.signing

from gateway.config import read_toml
from gateway.keyfile import KeyFileError, read_private_text
from gateway.roster_watch import RosterFileError, write_file_atomic
from protocol import fields
from protocol.checkpoint import SIG_COSIGNATURE_V1, Checkpoint, SignedNote, format_cosigner_vkey, note_key_hash
from protocol.errors import ConfigError, HeliographError, MalformedError
from protocol.keys import log_origin, parse_vkey
from protocol.merkle import CompactRange
from protocol.roster import Roster

KEY_FORMAT = "heliograph-witness-key"
STATE_FORMAT = "heliograph-witness-state"
MAX_ALARMS = 100
"""Alarms kept per log; the oldest are dropped first (the structlog stream has them all)."""


class WitnessStateError(HeliographError):
    """A witness state file that cannot be read, parsed or written."""

    code = "E_WITNESS_STATE"
    http_status = 500
    default_hint = "Restore the state directory from a backup; never delete a log's state to silence an alarm."


# -- config ----------------------------------------------------------------------------------


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


_WITNESS_KEYS = {"name", "key_file", "state_dir", "listen", "poll_interval_s", "request_timeout_s", "audit", "audit_proofs", "roster", "logs"}
_LOG_KEYS = {"origin", "vkey", "url"}


def _get(table: dict[str, Any], where: str, key: str, kind: type, default: Any = None) -> Any:
    if key not in table:
        if default is None:
            raise ConfigError(f"{where}.{key}: required")
        return default
    value = table[key]
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


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
    unknown = set(doc) - {"witness"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section (expected witness)")
    w = doc.get("witness")
    if not isinstance(w, dict):
        raise ConfigError("witness: required table")
    unknown = set(w) - _WITNESS_KEYS
    if unknown:
        raise ConfigError(f"witness.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(_WITNESS_KEYS))})")
    name = _get(w, "witness", "name", str)
    try:
        note_key_hash(name, SIG_COSIGNATURE_V1, bytes(32))
    except MalformedError:
        raise ConfigError(f"witness.name: {name!r} is not a valid note key name (no spaces, no '+')") from None

    def path_of(key: str, default: str | None = None) -> Path:
        p = Path(_get(w, "witness", key, str, default))
        return p if p.is_absolute() else base / p

    listen = _get(w, "witness", "listen", str, "127.0.0.1:7300")
    host, _, port_text = listen.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
        raise ConfigError(f"witness.listen: expected HOST:PORT, got {listen!r}")
    poll = _get(w, "witness", "poll_interval_s", float, 60.0)
    _range("witness.poll_interval_s", poll, 1.0, 86_400.0)
    timeout = _get(w, "witness", "request_timeout_s", float, 30.0)
    _range("witness.request_timeout_s", timeout, 0.1, 600.0)
    audit_text = _get(w, "witness", "audit", str, "full")
    try:
        audit = AuditMode(audit_text)
    except ValueError:
        raise ConfigError(f"witness.audit: expected off, new or full, got {audit_text!r}") from None
    proofs = _get(w, "witness", "audit_proofs", int, 64)
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
        vkey, url = _get(entry, where, "vkey", str), _get(entry, where, "url", str)
        try:
            vkey_name = parse_vkey(vkey)[0]
        except MalformedError as exc:
            raise ConfigError(f"{where}.vkey: {exc.message}") from None
        origin = _get(entry, where, "origin", str, vkey_name)
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
    )


def targets_for(config: WitnessConfig, roster: Roster | None) -> dict[str, LogTarget]:
    """Every log to watch: each roster member's log, then the config's own entries, which win."""
    targets: dict[str, LogTarget] = {}
    for member in roster.members if roster is not None else ():
        origin = log_origin(member.id)
        targets[origin] = LogTarget(origin=origin, vkey=member.log_vkey, url=member.endpoint)
    targets.update((t.origin, t) for t in config.logs)
    return targets


# -- the cosigning key -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessKey:
    """The witness's Ed25519 cosigning key and the one C2SP name it is used under."""

    name: str
    signer: nacl.signing.SigningKey = field(repr=False)

    def __post_init__(self) -> None:
        note_key_hash(self.name, SIG_COSIGNATURE_V1, bytes(self.signer.verify_key))  # validates the name

    @property
    def vkey(self) -> str:
        """The cosigner vkey ``name+hash+base64(0x04 || public)`` to publish to the federation."""
        return format_cosigner_vkey(self.name, bytes(self.signer.verify_key))

    def to_file_text(self) -> str:
        doc = {"format": KEY_FORMAT, "version": 1, "name": self.name, "seed": fields.b64(bytes(self.signer))}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_file_text(cls, text: str) -> WitnessKey:
        """Parse a witness key file.

        Raises:
            MalformedError: Not a version 1 witness key file (the message never contains key material).
        """
        try:
            doc = json.loads(text)
        except ValueError:
            raise MalformedError("witness key file is not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT or type(doc.get("version")) is not int or doc["version"] != 1:
            raise MalformedError(f"not a version 1 {KEY_FORMAT} file")
        name = doc.get("name")
        if not isinstance(name, str):
            raise MalformedError("witness key file: name must be text")
        seed = fields.unb64("witness key file seed", doc.get("seed"))
        if len(seed) != 32:
            raise MalformedError("witness key file: seed must be 32 bytes")
        return cls(name=name, signer=nacl.signing.SigningKey(seed))


def write_witness_key(path: Path, key: WitnessKey, *, overwrite: bool = False) -> None:
    """Write the secret key file with mode 0600 (atomically; the temporary file is 0600 too).

    Raises:
        KeyFileError: The file exists (and ``overwrite`` is false) or cannot be written.
    """
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path} already exists", hint="Pass --force to replace it, after backing it up.")
    try:
        write_file_atomic(path, key.to_file_text().encode("utf-8"), mode=0o600)
    except RosterFileError as exc:
        raise KeyFileError(exc.message) from None


def read_witness_key(path: Path) -> WitnessKey:
    """Read the secret key file, refusing one that group or others may access.

    Raises:
        KeyFileError: Missing, unreadable, or group/world accessible.
        MalformedError: Not a witness key file.
    """
    return WitnessKey.from_file_text(read_private_text(path))


# -- per-log state ---------------------------------------------------------------------------


class AlarmKind(Enum):
    """Misbehaviour the witness proved; each stops cosigning for the log until an operator clears it."""

    FORK = "fork"
    ROLLBACK = "rollback"
    INCONSISTENT = "inconsistent"
    BAD_SIGNATURE = "bad_signature"
    TAMPERED_LEAF = "tampered_leaf"


class WarningKind(Enum):
    """A round that proved nothing either way; the witness retries next round."""

    UNREACHABLE = "unreachable"
    BAD_RESPONSE = "bad_response"


class Health(Enum):
    PENDING = "pending"
    """Never verified yet."""
    OK = "ok"
    ALARM = "alarm"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alarm:
    """One alarm: what, when (unix ms), the sizes and index involved, and the signed notes that prove it."""

    kind: AlarmKind
    time: int
    message: str
    old_size: int | None = None
    new_size: int | None = None
    index: int | None = None
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "time": self.time,
            "message": self.message,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "index": self.index,
            "evidence": list(self.evidence),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Alarm:
        return cls(
            kind=AlarmKind(doc["kind"]),
            time=doc["time"],
            message=doc["message"],
            old_size=doc["old_size"],
            new_size=doc["new_size"],
            index=doc["index"],
            evidence=tuple(doc["evidence"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """The last warning for a log (unreachable, bad response); cleared by the next good round."""

    kind: WarningKind
    time: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "time": self.time, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class LogState:
    """Everything the witness remembers about one log.

    ``checkpoint`` is the last note verified (as the log served it), ``cosigned`` the same note
    with this witness's latest cosignature; ``audited_*`` is the compact range of the entries
    already downloaded and checked (audit mode ``new``).
    """

    origin: str
    checkpoint: str | None = None
    cosigned: str | None = None
    audited_size: int = 0
    audited_hashes: tuple[bytes, ...] = ()
    last_checked: int | None = None
    warning: Notice | None = None
    alarms: tuple[Alarm, ...] = ()

    def __post_init__(self) -> None:
        CompactRange(size=self.audited_size, hashes=self.audited_hashes)  # validates
        if (self.checkpoint is None) != (self.cosigned is None):
            raise MalformedError("checkpoint and cosigned note go together")
        if self.checkpoint is not None and self.cosigned is not None:
            tree = self.tree()
            if tree is None or tree.origin != self.origin or SignedNote.from_text(self.cosigned).text != SignedNote.from_text(self.checkpoint).text:
                raise MalformedError(f"state checkpoint is not a checkpoint of {self.origin}")

    def tree(self) -> Checkpoint | None:
        """The last verified checkpoint, parsed (its signature was checked when it was saved)."""
        return None if self.checkpoint is None else Checkpoint.from_body(SignedNote.from_text(self.checkpoint).text)

    def audited(self) -> CompactRange:
        return CompactRange(size=self.audited_size, hashes=self.audited_hashes)

    @property
    def health(self) -> Health:
        return Health.ALARM if self.alarms else Health.PENDING if self.checkpoint is None else Health.OK

    def with_alarm(self, alarm: Alarm) -> LogState:
        return replace(self, alarms=(*self.alarms, alarm)[-MAX_ALARMS:], warning=None)

    def to_bytes(self) -> bytes:
        doc = {
            "format": STATE_FORMAT,
            "version": 1,
            "origin": self.origin,
            "checkpoint": self.checkpoint,
            "cosigned": self.cosigned,
            "audited_size": self.audited_size,
            "audited_hashes": [fields.b64(h) for h in self.audited_hashes],
            "last_checked": self.last_checked,
            "warning": self.warning.to_json() if self.warning else None,
            "alarms": [a.to_json() for a in self.alarms],
        }
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> LogState:
        """Parse a state file.

        Raises:
            MalformedError: Anything but a version 1 state file with a valid checkpoint.
        """
        try:
            doc = json.loads(data.decode("utf-8"))
            if doc["format"] != STATE_FORMAT or doc["version"] != 1:
                raise MalformedError(f"not a version 1 {STATE_FORMAT} file")
            w = doc["warning"]
            return cls(
                origin=doc["origin"],
                checkpoint=doc["checkpoint"],
                cosigned=doc["cosigned"],
                audited_size=doc["audited_size"],
                audited_hashes=tuple(fields.unb64("audited hash", h) for h in doc["audited_hashes"]),
                last_checked=doc["last_checked"],
                warning=None if w is None else Notice(kind=WarningKind(w["kind"]), time=w["time"], message=w["message"]),
                alarms=tuple(Alarm.from_json(a) for a in doc["alarms"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedError(f"witness state file is damaged: {type(exc).__name__}: {exc}") from None


class WitnessStore:
    """The state directory: ``ORIGIN.json`` per log (origin percent-encoded) and pending clear requests."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock_fd: int | None = None

    def _path(self, origin: str, suffix: str) -> Path:
        return self.state_dir / (quote(origin, safe="") + suffix)

    def try_lock(self) -> bool:
        """Take the directory's lock for this process's lifetime; False if another witness holds it.

        Raises:
            WitnessStateError: The directory or lock file cannot be created.
        """
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.state_dir / "witness.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise WitnessStateError(f"cannot open the lock in {self.state_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self, origin: str) -> LogState:
        """Read a log's state; a log never seen starts empty.

        Raises:
            WitnessStateError: Unreadable or damaged, or the state of another origin.
        """
        path = self._path(origin, ".json")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return LogState(origin=origin)
        except OSError as exc:
            raise WitnessStateError(f"cannot read {path}: {exc.strerror}") from None
        try:
            state = LogState.from_bytes(data)
        except HeliographError as exc:
            raise WitnessStateError(f"{path}: {exc.message}") from None
        if state.origin != origin:
            raise WitnessStateError(f"{path} holds the state of {state.origin!r}, not {origin!r}")
        return state

    def save(self, state: LogState) -> None:
        """Replace a log's state file atomically (temporary file, fsync, rename, fsync of the directory).

        Raises:
            WitnessStateError: The file cannot be written.
        """
        try:
            write_file_atomic(self._path(state.origin, ".json"), state.to_bytes())
        except RosterFileError as exc:
            raise WitnessStateError(exc.message) from None

    def known_origins(self) -> list[str]:
        """Origins that have a state file."""
        from urllib.parse import unquote

        return sorted(unquote(p.name[: -len(".json")]) for p in self.state_dir.glob("*.json"))

    def request_clear(self, origin: str, *, reset: bool) -> None:
        """Ask the witness to clear a log's alarms (and with ``reset`` to forget its checkpoint).

        Raises:
            WitnessStateError: The request cannot be written.
        """
        try:
            write_file_atomic(self._path(origin, ".clear"), json.dumps({"origin": origin, "reset": reset}).encode("ascii"))
        except RosterFileError as exc:
            raise WitnessStateError(exc.message) from None

    def take_clear(self, origin: str) -> bool | None:
        """Consume a pending clear request: None if there is none, else whether it asks for a reset."""
        path = self._path(origin, ".clear")
        try:
            doc = json.loads(path.read_text(encoding="ascii"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            doc = {}
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return bool(doc.get("reset", False)) if isinstance(doc, dict) else False

    def apply_clear(self, state: LogState) -> tuple[LogState, bool | None]:
        """Consume a pending clear request for ``state``'s log and save the result.

        Returns:
            The new state and whether the request asked for a reset (None: there was no request).

        Raises:
            WitnessStateError: The new state cannot be written.
        """
        reset = self.take_clear(state.origin)
        if reset is None:
            return state, None
        state = LogState(origin=state.origin) if reset else replace(state, alarms=(), warning=None)
        self.save(state)
        return state, reset

    def scratch(self, origin: str) -> Path:
        """A private scratch file for one log (the full audit's hand-over of checkpoints)."""
        return self._path(origin, ".audit")
