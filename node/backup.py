"""Online backups of a gateway or node, and the check that a backup is whole and restorable.

A member's durable state is one or two SQLite files in its data directory:
``hop.db`` (the audit log, queues, receipts and, on a node, alerts, inbox and
escalation steps) and, on a node, ``accounts.db`` (officers, tokens,
sessions). ``heliograph backup create`` copies them **while the member runs**,
with SQLite's online backup API: each copy is one consistent snapshot taken in
a read transaction, which in WAL mode never blocks the running writer.

Each copy is written as a hidden partial file, checked, flushed to disk and
only then renamed into place; ``backup.json`` (the manifest) is written last,
so a directory without one is an interrupted backup, never a silently partial
one. The manifest records per file its size, SHA-256 and schema versions, and
for ``hop.db`` the log's size and signed checkpoint. Creating a backup checks
the copy exactly as ``backup check`` does later:

* every file is present with its recorded size and SHA-256;
* ``PRAGMA integrity_check`` answers ``ok``;
* the log's leaves, re-hashed from the first, reproduce the root of the signed
  checkpoint in ``log_head``, whose signature verifies under the member's log
  key (``--roster``: from a trusted roster; otherwise the key recorded in the
  manifest, which only proves self-consistency);
* every stored subtree hash (``log_nodes``, which serves proofs) equals the one
  recomputed from the leaves: an order-independent digest over
  ``(level, index, hash)`` and the count are compared, in constant memory.

Secret keys are never copied: they belong in the agency's key store, and a
backup medium holding them would let its holder act as the member. See
docs/OPERATIONS.md for restoring, and for why restoring an *old* backup makes
the witnesses raise a rollback alarm (by design).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import HopConfig, load_config, read_toml
from gateway.db import read_only_uri
from gateway.roster_watch import write_file_atomic
from protocol.checkpoint import NoteVerifier, open_checkpoint
from protocol.errors import ConfigError, HeliographError
from protocol.merkle import CompactRange, leaf_hash
from protocol.roster import SignedRoster

FORMAT = "heliograph-backup/v1"
MANIFEST = "backup.json"
_CHUNK = 1 << 20


class BackupError(HeliographError):
    """A backup cannot be written, or fails its check (a local result, never on the wire)."""

    code = "E_BACKUP"
    http_status = 500
    default_hint = "Take a new backup; keep the previous good one until the new one checks."


@dataclass(frozen=True, slots=True)
class LogSummary:
    size: int
    checkpoint: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _schema(conn: sqlite3.Connection) -> dict[str, int]:
    try:
        return {str(c): int(v) for c, v in conn.execute("SELECT component, version FROM schema_migrations")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"no schema versions: {exc}") from None


def _node_digest(level: int, index: int, digest: bytes) -> int:
    return int.from_bytes(hashlib.sha256(level.to_bytes(1, "big") + index.to_bytes(8, "big") + digest).digest(), "big")


def check_log(conn: sqlite3.Connection, name: str, verifier: NoteVerifier) -> LogSummary:
    """Check that a copied ``hop.db``'s log reproduces its signed head (module docstring).

    Raises:
        BackupError: Naming the first problem found.
    """
    row = conn.execute("SELECT size, checkpoint FROM log_head WHERE id = 1").fetchone()
    if row is None:
        raise BackupError(f"{name}: no log head")
    size, note = int(row[0]), str(row[1])
    try:
        checkpoint = open_checkpoint(note, verifier)
    except HeliographError as exc:
        raise BackupError(f"{name}: the log head's checkpoint does not verify under the log key: {exc.message}") from None
    if checkpoint.size != size:
        raise BackupError(f"{name}: the log head says size {size} but its checkpoint says {checkpoint.size}")
    tree, expected, count, next_index = CompactRange(), 0, 0, 0
    for index, data in conn.execute("SELECT idx, data FROM log_leaves WHERE idx < ? ORDER BY idx", (size,)):
        if index != next_index:
            raise BackupError(f"{name}: log leaf {next_index} is missing")
        for level, node_index, digest in tree.append(leaf_hash(bytes(data))):
            expected ^= _node_digest(level, node_index, digest)
            count += 1
        next_index += 1
    if next_index != size:
        raise BackupError(f"{name}: the log has {next_index} leaves, its checkpoint {size}")
    if tree.root() != checkpoint.root:
        raise BackupError(f"{name}: the log's leaves do not reproduce the root of its signed checkpoint")
    stored, stored_count = 0, 0
    for level, node_index, digest in conn.execute("SELECT level, idx, hash FROM log_nodes"):
        stored ^= _node_digest(int(level), int(node_index), bytes(digest))
        stored_count += 1
    if (stored, stored_count) != (expected, count):
        raise BackupError(f"{name}: stored subtree hashes differ from those recomputed from the leaves (proofs would be wrong)")
    return LogSummary(size=size, checkpoint=note)


def _check_file(path: Path, *, log_verifier: NoteVerifier | None) -> tuple[dict[str, int], LogSummary | None]:
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path.name}: cannot open: {exc}") from None
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        if result != [("ok",)]:
            raise BackupError(f"{path.name}: integrity_check failed: {'; '.join(str(r[0]) for r in result[:5])}")
        schema = _schema(conn)
        return schema, (check_log(conn, path.name, log_verifier) if log_verifier is not None else None)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path.name}: not a readable database: {exc}") from None
    finally:
        conn.close()


def _copy(source: Path, target: Path) -> None:
    """One consistent snapshot of the live database ``source`` into ``target`` (mode 0600), flushed to disk."""
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        src = sqlite3.connect(read_only_uri(source), uri=True, timeout=30)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            dst.execute("PRAGMA journal_mode = DELETE")  # a self-contained file: no -wal beside it
        finally:
            dst.close()
            src.close()
        with partial.open("rb+") as fh:
            os.fsync(fh.fileno())
        partial.replace(target)
    except (sqlite3.Error, OSError) as exc:  # e.g. the backup disk is full
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot copy {source}: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class _Member:
    id: str
    kind: str
    files: dict[str, Path]
    hop: HopConfig


def _member(config_path: Path) -> _Member:
    doc = read_toml(config_path)
    if "node" in doc:
        from node.config import load_node_config

        node = load_node_config(config_path)
        return _Member(node.hop.member_id, "node", {"hop.db": node.hop.db_path, "accounts.db": node.accounts_path}, node.hop)
    hop = load_config(config_path)
    return _Member(hop.member_id, "gateway", {"hop.db": hop.db_path}, hop)


def _log_vkey(roster_path: Path, member: str) -> str:
    """``member``'s log key from the roster file, whose authority signatures must meet its threshold.

    Its expiry is not checked: a backup is checked against the roster of its time, possibly years later.
    """
    try:
        signed = SignedRoster.from_bytes(roster_path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read roster {roster_path}: {exc.strerror}") from None
    return signed.verify_trusted(signed.roster.issued).member(member).log_vkey


def create(config_path: Path, out: Path, *, force: bool = False, now_ms: int) -> dict[str, Any]:
    """Back up the member configured in ``config_path`` into the directory ``out``; return the manifest.

    Raises:
        ConfigError: Bad config, or ``out`` holds files and ``force`` is not set.
        BackupError: A copy failed or does not check.
    """
    member = _member(config_path)
    for name, path in member.files.items():
        if not path.is_file():
            raise BackupError(f"{name}: {path} does not exist (has this member ever run?)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty", hint="Give a new directory, or --force to replace the backup in it.")
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        (out / MANIFEST).unlink(missing_ok=True)  # until the new manifest lands, this is an interrupted backup
    except OSError as exc:
        raise BackupError(f"cannot write to {out}: {exc.strerror}") from None
    vkey = _log_vkey(member.hop.roster_path, member.id)
    verifier = NoteVerifier.from_vkey(vkey)
    files = []
    log_summary: LogSummary | None = None
    for name, source in member.files.items():
        target = out / name
        _copy(source, target)
        schema, summary = _check_file(target, log_verifier=verifier if name == "hop.db" else None)
        log_summary = summary or log_summary
        files.append({"name": name, "bytes": target.stat().st_size, "sha256": _sha256(target), "schema": schema})
    assert log_summary is not None
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "member": member.id,
        "kind": member.kind,
        "created_ms": now_ms,
        "log_vkey": vkey,
        "log": {"size": log_summary.size, "checkpoint": log_summary.checkpoint},
        "files": files,
    }
    try:  # last, and with an fsync of the directory, which also makes the renamed copies durable
        write_file_atomic(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    except HeliographError as exc:
        raise BackupError(f"cannot write {out / MANIFEST}: {exc.message}") from None
    return manifest


def check(directory: Path, *, roster_path: Path | None = None) -> dict[str, Any]:
    """Check a backup directory (module docstring); return its manifest.

    Raises:
        BackupError: Naming the first problem found.
    """
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{directory}: no {MANIFEST}: not a backup, or an interrupted one") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{directory / MANIFEST}: unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{directory / MANIFEST}: not a {FORMAT} manifest")
    member = str(manifest.get("member"))
    verifier = NoteVerifier.from_vkey(_log_vkey(roster_path, member) if roster_path else str(manifest.get("log_vkey")))
    for entry in manifest["files"]:
        name = str(entry.get("name"))
        path = directory / Path(name).name
        if not path.is_file():
            raise BackupError(f"{name}: missing from the backup")
        if path.stat().st_size != entry.get("bytes") or _sha256(path) != entry.get("sha256"):
            raise BackupError(f"{name}: altered since the backup was taken (size or SHA-256 differs from the manifest)")
        schema, summary = _check_file(path, log_verifier=verifier if name == "hop.db" else None)
        if schema != entry.get("schema"):
            raise BackupError(f"{name}: schema versions differ from the manifest")
        if summary is not None and (summary.size, summary.checkpoint) != (manifest["log"]["size"], manifest["log"]["checkpoint"]):
            raise BackupError(f"{name}: the log head differs from the manifest")
    return manifest


def _print_manifest(manifest: dict[str, Any], verb: str) -> None:
    files = ", ".join(f"{f['name']} ({f['bytes']:,} bytes)" for f in manifest["files"])
    print(f"{verb}: {manifest['kind']} {manifest['member']}: {files}; log size {manifest['log']['size']}, checkpoint verified")


def cmd_create(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock

    manifest = create(Path(args.config), Path(args.out), force=args.force, now_ms=SystemClock().now_ms())
    _print_manifest(manifest, f"backup written to {args.out}")
    print("note: secret keys are not in the backup; keep them in your key store", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    manifest = check(Path(args.dir), roster_path=Path(args.roster) if args.roster else None)
    _print_manifest(manifest, f"backup {args.dir} is whole")
    if not args.roster:
        print("note: checked against the log key recorded in the backup; give --roster to check it against a trusted roster", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add ``heliograph backup create|check`` to the CLI."""
    backup = sub.add_parser("backup", help="online backups of a gateway or node, and checking them")
    backup_sub = backup.add_subparsers(dest="backup_command", metavar="SUBCOMMAND")
    make = backup_sub.add_parser("create", help="copy a running member's databases into a new directory, consistently, and check the copy")
    options: dict[str, dict[str, Any]] = {
        "--config": {"required": True, "help": "the member's gateway or node TOML config"},
        "--out": {"required": True, "help": "a new (or empty) directory for the backup"},
        "--force": {"action": "store_true", "help": "replace a backup already in --out"},
    }
    for flag, spec in options.items():
        make.add_argument(flag, **spec)
    make.set_defaults(handler=cmd_create)
    verify = backup_sub.add_parser("check", help="check a backup is whole: hashes, SQLite integrity, and the log against its signed checkpoint")
    verify.add_argument("dir")
    verify.add_argument("--roster", help="check the log key against this trusted roster instead of the one recorded in the backup")
    verify.set_defaults(handler=cmd_check)
