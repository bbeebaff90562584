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

Renewed certificates are picked up without a restart: :class:`CertificateReloader`
notices that ``cert`` or ``key`` changed (inode, size, mtime), loads the pair into
a scratch context first, and only if that works into the live one, so new
handshakes use the new certificate and connections already open are untouched.
A pair that does not load (a half-copied file, a key that does not match, a key
others can read) is logged as ``tls_reload_failed`` and the old certificate stays.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from gateway.keyfile import read_private_text
from protocol.errors import ConfigError, HeliographError

log = structlog.get_logger("heliograph.tls")

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


RELOAD_INTERVAL_S = 30.0


def trust(ca: str | None) -> ssl.SSLContext | None:
    """A command's ``--ca FILE`` as the client context for ``https://`` URLs (None: the system's trust store).

    Raises:
        ConfigError: The file is missing or holds no usable certificate.
    """
    return parse_tls({"ca": ca}, base=Path.cwd()).client if ca else None


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    try:
        read_private_text(key)  # refuses a key file that group or others may read
    except HeliographError as exc:
        raise ConfigError(f"tls.key: {exc.message}", hint=exc.hint) from None
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        server.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"tls.cert/tls.key: cannot load {cert} with {key}: {exc}") from None
    return server


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
    server = _server_context(cert, key) if cert is not None and key is not None else None
    client = None
    if ca is not None:
        try:
            client = ssl.create_default_context(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"tls.ca: cannot load {ca}: {exc}") from None
        client.minimum_version = ssl.TLSVersion.TLSv1_2
    return TlsConfig(cert=cert, key=key, ca=ca, server=server, client=client)


class CertificateReloader:
    """Keeps a listener's certificate current as its files are renewed (module docstring)."""

    def __init__(self, tls: TlsConfig) -> None:
        if tls.server is None or tls.cert is None or tls.key is None:
            raise ValueError("no TLS listener to reload")
        self._context, self._cert, self._key = tls.server, tls.cert, tls.key
        self._seen = self._stamp()

    def _stamp(self) -> tuple[tuple[int, int, int], ...] | None:
        try:
            return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in (self._cert.stat(), self._key.stat()))
        except OSError:
            return None

    def check(self) -> bool:
        """Reload if the files changed and the new pair loads; True when the live certificate was replaced."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False
        self._seen = stamp  # a pair that fails is reported once, until the files change again
        try:
            _server_context(self._cert, self._key)  # the whole pair must load on its own first
            self._context.load_cert_chain(self._cert, self._key)
        except (ConfigError, ssl.SSLError, OSError) as exc:
            log.error("tls_reload_failed", cert=str(self._cert), error=getattr(exc, "message", str(exc)))
            return False
        log.info("tls_reloaded", cert=str(self._cert))
        return True

    async def run(self, interval_s: float = RELOAD_INTERVAL_S) -> None:
        """Check every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.check()
            except Exception:  # never let a reload bug stop the listener it serves
                log.exception("tls_reload_failed", cert=str(self._cert))
