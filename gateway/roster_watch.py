"""Roster files on disk, and the watcher that lets a running hop pick up a new roster version.

Authorities publish each roster version as one signed-roster file (docs/PROTOCOL.md 5.6,
``heliograph roster publish``, docs/ROSTER.md) and operators copy it over the file their
hop reads. A node or gateway never restarts for that: a periodic task calls
:meth:`RosterWatcher.check`, which notices that the file changed (inode, mtime, size, then
the SHA-256 of the bytes), and adopts the new version only if it verifies as the *next*
version of the roster the watcher holds (:meth:`protocol.roster.SignedRoster.verify_update`:
a threshold of the held version's authorities and a threshold of its own). Anything else
(a forgery, a rollback, a different document for the same version, a version that skips
one, a half-copied file) is logged as ``roster_refused`` with its error code, and the
watcher keeps the roster it had. Refusals are remembered by content hash, so a bad file is
reported once, not on every poll.

The watcher reads no clock: ``now_ms`` is passed in by the caller, which takes it from the
injected :class:`gateway.clock.Clock`. File reads run in a worker thread
(:func:`asyncio.to_thread`) so a slow disk never stalls the event loop.

The module also holds the two file helpers the ``heliograph roster`` commands share:
:func:`read_signed_roster` (size-limited) and :func:`write_file_atomic` (temporary file,
fsync, rename, fsync of the directory), so a reader sees the old file or the new one,
never half of one.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.clock import Clock
from protocol.errors import HeliographError, RosterError
from protocol.roster import MAX_ROSTER_BYTES, Roster, SignedRoster

log = structlog.get_logger("heliograph.roster")

LocalCheck = Callable[[Roster], None]
"""A hop's own acceptance check on a verified roster; raises a HeliographError to refuse it."""

RACY_WINDOW_MS = 2_000
"""A file modified this recently may change again within the same mtime tick, so it is re-hashed on the next check."""


class RosterFileError(HeliographError):
    """A roster or draft file that cannot be read or written."""

    code = "E_ROSTER_FILE"
    http_status = 500


def read_roster_bytes(path: Path) -> bytes:
    """Read a roster file, refusing to load more than the roster size limit plus one byte.

    Raises:
        RosterFileError: Missing or unreadable.
    """
    return _read_with_stat(path)[1]


def read_signed_roster(path: Path) -> SignedRoster:
    """Read and parse a signed roster (or draft) file; signatures are not verified here.

    Raises:
        RosterFileError: Missing or unreadable.
        MalformedError: Not a valid signed roster (``E_TOO_LARGE`` over the size limit).
    """
    return SignedRoster.from_bytes(read_roster_bytes(path))


def write_file_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see either the old or the new file.

    Writes a temporary file in the same directory, fsyncs it, renames it over ``path`` and
    fsyncs the directory so the rename survives a crash.

    Raises:
        RosterFileError: The file cannot be written.
    """
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise RosterFileError(f"cannot create a temporary file next to {path}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RosterFileError(f"cannot write {path}: {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class _FileState:
    """What the watcher last saw of the file: its stat identity and the hash of its bytes."""

    stat_key: tuple[int, int, int, int]
    """(st_dev, st_ino, st_mtime_ns, st_size)"""
    digest: bytes
    settled: bool
    """False if the file was modified within RACY_WINDOW_MS of being read: hash it again next time."""


def _file_state(key: tuple[int, int, int, int], data: bytes, now_ms: int) -> _FileState:
    return _FileState(stat_key=key, digest=hashlib.sha256(data).digest(), settled=key[2] // 1_000_000 < now_ms - RACY_WINDOW_MS)


def _key_of(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    return _key_of(path.stat())


def _read_with_stat(path: Path) -> tuple[tuple[int, int, int, int], bytes]:
    """The bytes of ``path`` and the stat identity of the very file they were read from."""
    try:
        with path.open("rb") as fh:
            key = _key_of(os.fstat(fh.fileno()))
            return key, fh.read(MAX_ROSTER_BYTES + 1)  # one byte over, so the parser reports E_TOO_LARGE
    except OSError as exc:
        raise RosterFileError(f"cannot read {path}: {exc.strerror}") from None


class RosterWatcher:
    """Holds the trusted roster of a running hop and adopts verified new versions from its file.

    Not safe for concurrent :meth:`check` calls; run it from one periodic task.
    """

    def __init__(self, path: Path, current: SignedRoster, *, local_check: LocalCheck | None = None) -> None:
        """Watch ``path``, starting from ``current``, which the caller has already verified.

        Use :meth:`open` to read and verify the initial roster from the file itself.

        Args:
            path: The roster file.
            current: The verified roster the hop runs with now.
            local_check: Run on a new version after it verifies and before it is adopted; it
                raises a HeliographError to refuse it (e.g. this hop is no longer a member, or
                the roster's log key for it no longer matches its key file).
        """
        self._path = path
        self._local_check = local_check
        self._signed = current
        self._signed_bytes = current.to_bytes()
        self._roster = current.roster
        self._seen: _FileState | None = None
        self._last_problem: str | None = None

    @classmethod
    async def open(cls, path: Path, *, now_ms: int, local_check: LocalCheck | None = None) -> RosterWatcher:
        """Read the pinned roster at ``path``, verify it against its own authorities, and watch it.

        Raises:
            RosterFileError: The file cannot be read.
            MalformedError: The file is not a signed roster.
            RosterError: Fewer than its threshold of its own authorities signed it.
            ExpiredError: It has expired at ``now_ms``.
            HeliographError: Whatever ``local_check`` raises.
        """
        key, data = await asyncio.to_thread(_read_with_stat, path)
        signed = SignedRoster.from_bytes(data)
        roster = signed.verify_trusted(now_ms)
        if local_check is not None:
            local_check(roster)
        watcher = cls(path, signed, local_check=local_check)
        watcher._seen = _file_state(key, data, now_ms)
        return watcher

    @property
    def path(self) -> Path:
        return self._path

    @property
    def signed(self) -> SignedRoster:
        """The signed roster currently trusted."""
        return self._signed

    @property
    def roster(self) -> Roster:
        """The parsed body of :attr:`signed`."""
        return self._roster

    async def check(self, now_ms: int) -> SignedRoster | None:
        """Look at the file once; adopt the roster in it if it is the verified next version.

        Never raises for a bad or missing file: the problem is logged (``roster_refused`` or
        ``roster_unreadable``) and the current roster stays.

        Returns:
            The newly adopted signed roster, or None if nothing changed.
        """
        seen = self._seen
        try:
            if seen is not None and seen.settled and await asyncio.to_thread(_stat_key, self._path) == seen.stat_key:
                return None
            key, data = await asyncio.to_thread(_read_with_stat, self._path)
        except (OSError, RosterFileError) as exc:
            problem = exc.message if isinstance(exc, RosterFileError) else f"cannot read {self._path}: {exc.strerror}"
            if problem != self._last_problem:  # once per distinct problem, not once per poll
                log.warning("roster_unreadable", path=str(self._path), error=problem, version=self._roster.version)
                self._last_problem = problem
            self._seen = None
            return None
        self._last_problem = None
        self._seen = _file_state(key, data, now_ms)
        if seen is not None and self._seen.digest == seen.digest:
            return None  # touched or rewritten with the same bytes (or the same refused bytes)
        if data == self._signed_bytes:
            return None
        try:
            signed = self._verify(data, now_ms)
        except HeliographError as exc:
            log.warning("roster_refused", path=str(self._path), code=exc.code, error=exc.message, version=self._roster.version)
            return None
        old = self._roster.version
        self._signed, self._signed_bytes, self._roster = signed, data, signed.roster
        log.info("roster_updated", path=str(self._path), old_version=old, new_version=self._roster.version)
        return signed

    def _verify(self, data: bytes, now_ms: int) -> SignedRoster:
        signed = SignedRoster.from_bytes(data)
        new = signed.roster
        held = self._roster.version
        if new.version == held:
            raise RosterError(f"roster file holds a different document for v{held}, the version already trusted")
        if new.version < held:
            raise RosterError(f"roster file holds v{new.version}, older than the trusted v{held} (rollback)")
        roster = signed.verify_update(self._roster, now_ms)
        if self._local_check is not None:
            self._local_check(roster)
        return signed

    async def run(self, clock: Clock, *, interval_s: float, on_update: Callable[[SignedRoster], Awaitable[None]]) -> None:
        """Check every ``interval_s`` seconds until cancelled, awaiting ``on_update`` for each new version.

        Raises:
            Exception: Whatever ``on_update`` raises ends the loop (the new version is already held).
        """
        while True:
            await clock.sleep(interval_s)
            updated = await self.check(clock.now_ms())
            if updated is not None:
                await on_update(updated)
