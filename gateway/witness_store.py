"""What a witness keeps on disk: its config, its cosigning key and one state file per log.

A witness (:mod:`gateway.witness`, docs/WITNESS.md) is run by an oversight body. Everything it
needs to survive a restart lives in files an operator can read, back up and reason about:

* the TOML config (``configs/witness.example.toml``), validated by
  :func:`gateway.witness_config.load_witness_config` with errors that name the key;
* the Ed25519 cosigning key (``heliograph witness keygen``, :mod:`gateway.witness_key`): JSON
  with mode 0600, bound to the witness's C2SP key name, because a cosigner must never use one
  key under two names (docs/PROTOCOL.md 13.9);
* one JSON state file per log in ``state_dir``, replaced atomically after every check
  (:func:`gateway.roster_watch.write_file_atomic`): the last checkpoint verified, the latest
  cosigned note, the audited right edge of the tree, the last warning and every alarm. A state
  file that does not parse stops the witness: silently starting afresh would forget the
  checkpoint that a rollback or a fork must be compared with.

An operator clears an alarm with ``heliograph witness clear``, which only drops a *clear
request* next to the state file; the witness process, the only writer of state files, applies
it at its next round (or at once when no witness is running, :meth:`WitnessStore.try_lock`).

This module holds the per-log state and :class:`WitnessStore`; the config and key modules'
public names are re-exported here, so ``from gateway.witness_store import ...`` keeps working.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gateway.roster_watch import RosterFileError, write_file_atomic
from gateway.witness_config import AuditMode, LogTarget, WitnessConfig, load_witness_config, parse_witness_config, targets_for
from gateway.witness_key import KEY_FORMAT, WitnessKey, read_witness_key, write_witness_key
from protocol import fields
from protocol.checkpoint import Checkpoint, SignedNote
from protocol.errors import HeliographError, MalformedError
from protocol.merkle import CompactRange

STATE_FORMAT = "heliograph-witness-state"
MAX_ALARMS = 100
"""Alarms kept per log; the oldest are dropped first (the structlog stream has them all)."""


class WitnessStateError(HeliographError):
    """A witness state file that cannot be read, parsed or written."""

    code = "E_WITNESS_STATE"
    http_status = 500
    default_hint = "Restore the state directory from a backup; never delete a log's state to silence an alarm."


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


__all__ = [
    "KEY_FORMAT",
    "MAX_ALARMS",
    "STATE_FORMAT",
    "Alarm",
    "AlarmKind",
    "AuditMode",
    "Health",
    "LogState",
    "LogTarget",
    "Notice",
    "WarningKind",
    "WitnessConfig",
    "WitnessKey",
    "WitnessStateError",
    "WitnessStore",
    "load_witness_config",
    "parse_witness_config",
    "read_witness_key",
    "targets_for",
    "write_witness_key",
]
