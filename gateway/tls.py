"""TLS for a member's listener and for its calls to peers: the ``[tls]`` config table.

Envelopes are end-to-end encrypted and every hop-to-hop request is signed, so
TLS is not what keeps alert content secret or peers honest. It hides what the
signed requests carry in clear: who sends to whom, priorities and handling
labels, receipts. On a node it also protects the officer API and console, where
passwords, session cookies and decrypted alerts travel. A member serves TLS
itself with ``cert`` and ``key``, or sits behind a TLS-terminating proxy (then
see ``[node] secure_cookies``). ``ca`` names the certificate authorities that
peers' ``https://`` endpoints must chain to (a federation's private CA);
without it the system's trust store is used. Peers are always verified.

Everything is loaded when the config is read, so a missing file, a key that
does not match its certificate, or a key file that others can read stops the
start with ``E_CONFIG`` naming the key, not the first connection.
"""

from __future__ import annotations

import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import ConfigError

TLS_KEYS = frozenset({"cert", "key", "ca"})


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The validated ``[tls]`` table: paths, and the contexts built from them."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    server: ssl.SSLContext | None = None
    """For the listener; None: plain HTTP (loopback, or behind a TLS proxy)."""
    client: ssl.SSLContext | None = None
    """For calls to peers when ``ca`` is set; None: the system's trust store."""

    @property
    def scheme(self) -> str:
        return "https" if self.server is not None else "http"


def _path(table: dict[str, Any], key: str, base: Path) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"tls.{key}: expected a file path")
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        raise ConfigError(f"tls.{key}: {path} is not a readable file")
    return path


def parse_tls(table: dict[str, Any], *, base: Path) -> TlsConfig:
    """Validate a ``[tls]`` table and build its SSL contexts.

    Raises:
        ConfigError: Unknown keys, ``cert`` without ``key`` (or the reverse), unreadable or
            unusable files, or a private key readable by group or others.
    """
    unknown = set(table) - TLS_KEYS
    if unknown:
        raise ConfigError(f"tls.{sorted(unknown)[0]}: unknown key (expected one of {', '.join(sorted(TLS_KEYS))})")
    cert, key, ca = (_path(table, k, base) for k in ("cert", "key", "ca"))
    if (cert is None) != (key is None):
        raise ConfigError("tls.cert and tls.key: give both, or neither")
    server = None
    if cert is not None and key is not None:
        if key.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"tls.key: {key} is accessible by group or others", hint=f"chmod 600 {key}")
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            server.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"tls.cert/tls.key: cannot load {cert} with {key}: {exc}") from None
    client = None
    if ca is not None:
        try:
            client = ssl.create_default_context(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"tls.ca: cannot load {ca}: {exc}") from None
        client.minimum_version = ssl.TLSVersion.TLSv1_2
    return TlsConfig(cert=cert, key=key, ca=ca, server=server, client=client)
