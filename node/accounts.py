"""Officer accounts: users, API tokens and console sessions in SQLite.

An agency node serves its officers (issue 5) and its web console (issue 7).
This module answers "who is this?"; :mod:`node.officer_auth` puts it on HTTP
and holds the role matrix ("may they?"), :mod:`node.accounts_cli` administers it.

Storage (component ``accounts``, numbered migrations via :func:`gateway.db.migrate`):

* ``users``: username, :class:`Role`, an argon2id hash (``nacl.pwhash.argon2id.str``,
  salt and limits inside the string), a disabled flag, ``created_at``.
* ``api_tokens``: only the SHA-256 of each ``hgt_...`` token, a name unique among
  the user's unrevoked tokens, ``created_at``, ``expires_at`` (or NULL), a revoked flag.
* ``sessions``: the SHA-256 of each ``hgs_...`` console token, its CSRF token
  (useless without the session, so stored as is), ``created_at``, ``expires_at``.

Tokens carry 32 bytes from the injected ``rng``: a plain SHA-256 makes a stolen
database useless for logging in and keeps lookups to one indexed read. Argon2id
runs in a worker thread (``asyncio.to_thread``), at most ``kdf_concurrency`` at
once, so the event loop never blocks and a login burst cannot claim unbounded
memory; an unknown username is checked against a dummy hash with the same
limits. Every failure raises :class:`AuthFailure` (``E_UNAUTHENTICATED``; the
message never says which check failed, ``reason`` is for the server log only).
Token and session checks join the user row, so disabling a user or changing a
role applies at once. Time is a parameter (``now_ms`` from the caller's Clock).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import nacl.exceptions
import nacl.utils
from nacl.pwhash import argon2id

from gateway.db import migrate, open_db
from protocol.errors import ConflictError, NotFoundError, UnauthenticatedError, ValidationError

Rng = Callable[[int], bytes]
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
API_TOKEN_PREFIX = "hgt_"  # noqa: S105 - a prefix, not a secret
SESSION_TOKEN_PREFIX = "hgs_"  # noqa: S105 - a prefix, not a secret
TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"hg[ts]_[A-Za-z0-9_-]{43}")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
MAX_TOKEN_NAME_CHARS = 64
DENY_LOGIN = "unknown user or wrong password"
DENY_API_KEY = "invalid, expired or revoked API token"
DENY_SESSION = "session invalid or expired; log in again"

MIGRATIONS = (
    """CREATE TABLE users (username TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('officer', 'supervisor', 'auditor')),
  password_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)), created_at INTEGER NOT NULL);
CREATE TABLE api_tokens (id INTEGER PRIMARY KEY, token_sha256 BLOB NOT NULL UNIQUE, username TEXT NOT NULL REFERENCES users (username),
  name TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)));
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (username, name) WHERE revoked = 0;
CREATE TABLE sessions (session_sha256 BLOB PRIMARY KEY, username TEXT NOT NULL REFERENCES users (username), csrf_token TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX sessions_expiry ON sessions (expires_at)""",
)


class Role(StrEnum):
    """What an account is for; the permission table is :data:`node.officer_auth.GRANTS`."""

    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who is making a request, and how they proved it."""

    username: str
    role: Role
    via: Literal["password", "token", "session"]

    def __post_init__(self) -> None:
        if not USERNAME_RE.fullmatch(self.username) or not isinstance(self.role, Role) or self.via not in ("password", "token", "session"):
            raise ValueError("invalid principal")


class AuthFailure(UnauthenticatedError):
    """``E_UNAUTHENTICATED`` with a generic message; ``reason`` (e.g. ``unknown_user``) is for the server log only."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class UserInfo:
    """An account as listed by :meth:`AccountStore.list_users` (no hash)."""

    username: str
    role: Role
    disabled: bool
    created_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """An API token's metadata; the token itself is never kept."""

    name: str
    created_at: int
    expires_at: int | None
    revoked: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A console session: its owner, its bearer ``token`` and ``csrf_token`` (both secrets), its expiry."""

    principal: Principal
    token: str = field(repr=False)
    csrf_token: str = field(repr=False)
    expires_at: int


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # JSON can carry lone surrogates: hash them, never crash


def _sha256(token: str) -> bytes:
    return hashlib.sha256(_utf8(token)).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _password_problems(password: str) -> dict[str, str]:
    if not isinstance(password, str) or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        return {"password": f"must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"}
    return {}


class AccountStore:
    """Users, API tokens and sessions in one SQLite file. Create with :meth:`open`."""

    def __init__(self, conn: aiosqlite.Connection, *, rng: Rng, opslimit: int, memlimit: int, kdf_concurrency: int) -> None:
        self._db, self._rng = conn, rng
        self._opslimit, self._memlimit = opslimit, memlimit
        self._kdf_slots = asyncio.Semaphore(kdf_concurrency)
        self._write_lock = asyncio.Lock()
        self._dummy_hash: bytes | None = None

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        rng: Rng = nacl.utils.random,
        opslimit: int = argon2id.OPSLIMIT_MODERATE,
        memlimit: int = argon2id.MEMLIMIT_MODERATE,
        kdf_concurrency: int = 2,
    ) -> AccountStore:
        """Open (creating with mode 0600 if needed) the accounts tables at ``path``.

        Raises:
            StorageError: The database cannot be opened or migrated.
        """
        with contextlib.suppress(FileExistsError):  # password hashes: not world-readable
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        conn = await open_db(path)
        try:
            await migrate(conn, "accounts", MIGRATIONS)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, rng=rng, opslimit=opslimit, memlimit=memlimit, kdf_concurrency=kdf_concurrency)

    async def close(self) -> None:
        """Close the database connection."""
        await self._db.close()

    async def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._db.execute_fetchall(sql, params)]

    async def _find(self, token: str, prefix: str, sql: str, deny: str) -> tuple[Any, ...]:
        if not isinstance(token, str) or not token.startswith(prefix) or not _TOKEN_RE.fullmatch(token):
            raise AuthFailure(deny, reason="malformed")
        rows = await self._rows(sql, (_sha256(token),))
        if not rows:
            raise AuthFailure(deny, reason="unknown")
        return rows[0]

    async def _hash(self, password: str) -> bytes:
        async with self._kdf_slots:
            return bytes(await asyncio.to_thread(argon2id.str, _utf8(password), opslimit=self._opslimit, memlimit=self._memlimit))

    async def _verify(self, stored: bytes, password: str) -> bool:
        async with self._kdf_slots:
            try:
                return bool(await asyncio.to_thread(argon2id.verify, stored, _utf8(password)))
            except nacl.exceptions.CryptoError:  # wrong password (InvalidkeyError) or an unusable hash
                return False

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        # One connection is shared, so every write holds the lock: no other statement can join our transaction.
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def add_user(self, username: str, role: Role | str, password: str, *, now_ms: int) -> None:
        """Create an enabled account.

        Raises:
            ValidationError: Bad username, unknown role or a password outside 12..1024 characters.
            ConflictError: The username is taken.
        """
        fields = _password_problems(password)
        if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
            fields["username"] = "must be 2 to 32 of a-z 0-9 . _ - and start with a letter or digit"
        if role not in tuple(Role):
            fields["role"] = "must be one of " + ", ".join(Role)
        if fields:
            raise ValidationError(fields)
        hashed = await self._hash(password)
        try:
            async with self._transaction():
                await self._db.execute(
                    "INSERT INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)", (username, str(role), hashed.decode("ascii"), now_ms)
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"user {username!r} already exists") from None

    async def set_password(self, username: str, password: str) -> None:
        """Replace a user's password and end their console sessions (API tokens stay valid).

        Raises:
            ValidationError: The password is outside 12..1024 characters.
            NotFoundError: No such user.
        """
        if fields := _password_problems(password):
            raise ValidationError(fields)
        hashed = await self._hash(password)
        async with self._transaction():
            cur = await self._db.execute("UPDATE users SET password_hash = ? WHERE username = ?", (hashed.decode("ascii"), username))
            if cur.rowcount == 0:
                raise NotFoundError(f"no user {username!r}")
            await self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    async def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable (ending every session; tokens are refused) or re-enable an account.

        Raises:
            NotFoundError: No such user.
        """
        async with self._transaction():
            cur = await self._db.execute("UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username))
            if cur.rowcount == 0:
                raise NotFoundError(f"no user {username!r}")
            await self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    async def list_users(self) -> list[UserInfo]:
        """Every account, by username."""
        rows = await self._rows("SELECT username, role, disabled, created_at FROM users ORDER BY username")
        return [UserInfo(username=u, role=Role(r), disabled=bool(d), created_at=c) for u, r, d, c in rows]

    async def authenticate_password(self, username: str, password: str) -> Principal:
        """Check a username and password; always costs one argon2id verification.

        Raises:
            AuthFailure: Unknown or disabled user, or wrong password (one message for all).
        """
        known = USERNAME_RE.fullmatch(username) is not None
        rows = await self._rows("SELECT role, password_hash, disabled FROM users WHERE username = ?", (username,)) if known else []
        if not rows:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash("dummy password for unknown users")
            await self._verify(self._dummy_hash, password[:MAX_PASSWORD_CHARS])
            raise AuthFailure(DENY_LOGIN, reason="unknown_user")
        role, stored, disabled = rows[0]
        if not await self._verify(str(stored).encode("ascii"), password[:MAX_PASSWORD_CHARS]) or len(password) > MAX_PASSWORD_CHARS:
            raise AuthFailure(DENY_LOGIN, reason="bad_password")
        if disabled:
            raise AuthFailure(DENY_LOGIN, reason="disabled_user")
        return Principal(username=username, role=Role(role), via="password")

    async def create_token(self, username: str, name: str, *, now_ms: int, ttl_ms: int | None = None) -> str:
        """Issue an API token and return it; it is shown this once and only its hash is kept.

        Raises:
            ValidationError: Bad name (1..64 printable characters) or a non-positive ``ttl_ms``.
            NotFoundError: No such user.
            ConflictError: The user is disabled or already has an unrevoked token of that name.
        """
        fields: dict[str, str] = {}
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_TOKEN_NAME_CHARS or not name.isprintable() or name != name.strip():
            fields["name"] = f"must be 1 to {MAX_TOKEN_NAME_CHARS} printable characters without surrounding spaces"
        if ttl_ms is not None and ttl_ms <= 0:
            fields["ttl_ms"] = "must be positive, or absent for a token that does not expire"
        if fields:
            raise ValidationError(fields)
        token = API_TOKEN_PREFIX + _b64(self._rng(TOKEN_BYTES))
        async with self._transaction():
            rows = await self._rows("SELECT disabled FROM users WHERE username = ?", (username,))
            if not rows:
                raise NotFoundError(f"no user {username!r}")
            if rows[0][0]:
                raise ConflictError(f"user {username!r} is disabled")
            try:
                await self._db.execute(
                    "INSERT INTO api_tokens (token_sha256, username, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                    (_sha256(token), username, name, now_ms, None if ttl_ms is None else now_ms + ttl_ms),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"user {username!r} already has a token named {name!r}", hint="Revoke it first, or pick another name.") from None
        return token

    async def revoke_token(self, username: str, name: str) -> None:
        """Revoke the user's unrevoked token called ``name``.

        Raises:
            NotFoundError: No such unrevoked token.
        """
        async with self._transaction():
            cur = await self._db.execute("UPDATE api_tokens SET revoked = 1 WHERE username = ? AND name = ? AND revoked = 0", (username, name))
            if cur.rowcount == 0:
                raise NotFoundError(f"user {username!r} has no active token named {name!r}")

    async def list_tokens(self, username: str) -> list[TokenInfo]:
        """A user's tokens (revoked ones too), oldest first."""
        rows = await self._rows("SELECT name, created_at, expires_at, revoked FROM api_tokens WHERE username = ? ORDER BY id", (username,))
        return [TokenInfo(name=n, created_at=c, expires_at=e, revoked=bool(r)) for n, c, e, r in rows]

    async def authenticate_token(self, token: str, *, now_ms: int) -> Principal:
        """Check an ``hgt_`` API token.

        Raises:
            AuthFailure: Malformed, unknown, revoked or expired token, or a disabled user.
        """
        sql = "SELECT u.username, u.role, u.disabled, t.expires_at, t.revoked FROM api_tokens t JOIN users u USING (username) WHERE t.token_sha256 = ?"
        username, role, disabled, expires_at, revoked = await self._find(token, API_TOKEN_PREFIX, sql, DENY_API_KEY)
        if revoked:
            raise AuthFailure(DENY_API_KEY, reason="revoked_token")
        if expires_at is not None and now_ms >= expires_at:
            raise AuthFailure(DENY_API_KEY, reason="expired_token")
        if disabled:
            raise AuthFailure(DENY_API_KEY, reason="disabled_user")
        return Principal(username=username, role=Role(role), via="token")

    async def create_session(self, principal: Principal, *, now_ms: int, ttl_ms: int) -> Session:
        """Start a console session for ``principal``; expired sessions are swept on the way.

        Raises:
            ValueError: ``ttl_ms`` is not positive.
        """
        if ttl_ms <= 0:
            raise ValueError("session ttl_ms must be positive")
        token, csrf_token = SESSION_TOKEN_PREFIX + _b64(self._rng(TOKEN_BYTES)), _b64(self._rng(TOKEN_BYTES))
        new = Session(principal=replace(principal, via="session"), token=token, csrf_token=csrf_token, expires_at=now_ms + ttl_ms)
        async with self._transaction():
            await self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now_ms,))
            await self._db.execute(
                "INSERT INTO sessions (session_sha256, username, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (_sha256(new.token), principal.username, new.csrf_token, now_ms, new.expires_at),
            )
        return new

    async def authenticate_session(self, token: str, *, now_ms: int) -> Session:
        """Check an ``hgs_`` session token.

        Raises:
            AuthFailure: Malformed, unknown or expired session, or a disabled user.
        """
        sql = "SELECT u.username, u.role, u.disabled, s.csrf_token, s.expires_at FROM sessions s JOIN users u USING (username) WHERE s.session_sha256 = ?"
        username, role, disabled, csrf_token, expires_at = await self._find(token, SESSION_TOKEN_PREFIX, sql, DENY_SESSION)
        if now_ms >= expires_at:
            raise AuthFailure(DENY_SESSION, reason="expired_session")
        if disabled:
            raise AuthFailure(DENY_SESSION, reason="disabled_user")
        principal = Principal(username=username, role=Role(role), via="session")
        return Session(principal=principal, token=token, csrf_token=csrf_token, expires_at=expires_at)

    async def end_session(self, token: str) -> None:
        """Forget a session (log out); unknown tokens are ignored."""
        async with self._transaction():
            await self._db.execute("DELETE FROM sessions WHERE session_sha256 = ?", (_sha256(token),))
