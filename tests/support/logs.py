"""Helpers for audit-log tests: a fixed log key and an opened store."""

from __future__ import annotations

from pathlib import Path

import nacl.signing

from gateway.log_store import LogConfig, LogStore
from protocol.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from protocol.keys import format_vkey

ORIGIN = "heliograph/gw-test"
LOG_KEY = nacl.signing.SigningKey(b"\x11" * 32)
VKEY = format_vkey(ORIGIN, bytes(LOG_KEY.verify_key))
VERIFIER = NoteVerifier.from_vkey(VKEY)


async def open_store(path: Path, **config: object) -> LogStore:
    return await LogStore.open(path, origin=ORIGIN, signer=LOG_KEY, config=LogConfig(**config))  # type: ignore[arg-type]


def parse(note: str) -> Checkpoint:
    return open_checkpoint(note, VERIFIER)
