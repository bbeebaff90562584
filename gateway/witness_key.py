"""A witness's cosigning key: the Ed25519 key file and the one C2SP name it is used under.

``heliograph witness keygen`` writes the key (:func:`write_witness_key`) as JSON with mode
0600; :class:`gateway.witness.Witness` reads it at start-up (:func:`read_witness_key`). The
file binds the seed to the witness's key name, because a cosigner must never use one key under
two names (docs/PROTOCOL.md 13.9). The rest of what a witness keeps on disk is in
:mod:`gateway.witness_store`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing

from gateway.keyfile import KeyFileError, read_private_text
from gateway.roster_watch import RosterFileError, write_file_atomic
from protocol import fields
from protocol.checkpoint import SIG_COSIGNATURE_V1, format_cosigner_vkey, note_key_hash
from protocol.errors import MalformedError

KEY_FORMAT = "heliograph-witness-key"


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
