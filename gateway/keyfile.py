"""Key files on disk: secret keys written with mode 0600, public identities.

The formats are defined in :mod:`protocol.keys`; this module only does the file
I/O the pure core may not. Secret files are created with ``O_EXCL`` and mode
0600 from the start (never chmod-ed after the fact), written to a temporary
name and renamed into place so a crash never leaves half a key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from protocol.errors import HeliographError, MalformedError
from protocol.keys import MemberKeys, PublicIdentity


class KeyFileError(HeliographError):
    """A key file that cannot be read or written safely."""

    code = "E_KEY_FILE"
    http_status = 500


def write_secret_keys(path: Path, keys: MemberKeys, *, overwrite: bool = False) -> None:
    """Write ``keys`` to ``path`` with mode 0600.

    Raises:
        KeyFileError: The file exists (and ``overwrite`` is false) or cannot be written.
    """
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path} already exists", hint="Pass --force to replace it, after backing it up.")
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot create {tmp}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(keys.to_file_text())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write {path}: {exc.strerror}") from None


def read_secret_keys(path: Path) -> MemberKeys:
    """Read a secret key file, refusing one that others can read.

    Raises:
        KeyFileError: Missing, unreadable, or group/world accessible.
        MalformedError: Not a valid key file.
    """
    return MemberKeys.from_file_text(read_private_text(path))


def read_private_text(path: Path) -> str:
    """The text of a secret file, refusing one that group or others may access.

    Raises:
        KeyFileError: Missing, unreadable, or group/world accessible.
        MalformedError: Not text.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise MalformedError(f"{path} is not a text key file") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):o})", hint=f"Run: chmod 600 {path}")
    return text


def write_public_identity(path: Path, identity: PublicIdentity) -> None:
    """Write the shareable public identity file (mode 0644)."""
    path.write_text(identity.to_json(), encoding="utf-8")


def read_public_identity(path: Path) -> PublicIdentity:
    """Read a public identity file.

    Raises:
        KeyFileError: Unreadable.
        MalformedError: Not a valid public identity file.
    """
    try:
        return PublicIdentity.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
