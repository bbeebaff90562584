"""AccountStore: users, passwords, API tokens and sessions; nothing secret at rest; the ``user`` CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import itertools
import re
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from nacl.pwhash import argon2id

from node.accounts import DENY_API_KEY, DENY_LOGIN, DENY_SESSION, AccountStore, AuthFailure, Principal, Role
from node.accounts_cli import register
from protocol.errors import ConflictError, NotFoundError, UnauthenticatedError, ValidationError
from tests.support.clock import FakeClock

T0 = 1_800_000_000_000
HOUR = 3_600_000
PASSWORD = "correct horse battery staple"
FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
API_TOKEN = re.compile(r"hgt_[A-Za-z0-9_-]{43}")


def counter_rng() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AccountStore]:
    accounts = await AccountStore.open(tmp_path / "node.db", rng=counter_rng(), **FAST)
    await accounts.add_user("alice", Role.OFFICER, PASSWORD, now_ms=T0)
    yield accounts
    await accounts.close()


def _stored_hash(db: Path, username: str) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT password_hash FROM users WHERE username = ?", (username,)).fetchone()[0])


async def test_password_login(store: AccountStore) -> None:
    principal = await store.authenticate_password("alice", PASSWORD)
    assert principal == Principal(username="alice", role=Role.OFFICER, via="password")


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "wrong password entirely", "bad_password"),
        ("alice", PASSWORD + "x" * 2000, "bad_password"),
        ("mallory", PASSWORD, "unknown_user"),
        ("Alice", PASSWORD, "unknown_user"),
        ("carol", PASSWORD, "disabled_user"),
    ],
)
async def test_password_failures_look_alike(store: AccountStore, username: str, password: str, reason: str) -> None:
    await store.add_user("carol", "officer", PASSWORD, now_ms=T0)
    await store.set_disabled("carol", True)
    with pytest.raises(AuthFailure) as info:
        await store.authenticate_password(username, password)
    assert (info.value.code, info.value.http_status, info.value.message) == ("E_UNAUTHENTICATED", 401, DENY_LOGIN)
    assert isinstance(info.value, UnauthenticatedError)
    assert info.value.reason == reason


async def test_unknown_user_costs_a_verification_with_the_same_limits(store: AccountStore, tmp_path: Path) -> None:
    with pytest.raises(AuthFailure):
        await store.authenticate_password("nobody", PASSWORD)
    dummy = store._dummy_hash  # white-box: the dummy hash exists and has the real hashes' parameters
    assert dummy is not None
    params = re.compile(r"\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$")
    assert params.match(dummy.decode())[0] == params.match(_stored_hash(tmp_path / "node.db", "alice"))[0]  # type: ignore[index]


@pytest.mark.parametrize(
    ("username", "role", "password", "bad"),
    [
        ("a", "officer", PASSWORD, {"username"}),
        ("-bob", "officer", PASSWORD, {"username"}),
        ("bob\n", "officer", PASSWORD, {"username"}),
        ("Bob", "officer", PASSWORD, {"username"}),
        ("b" * 33, "officer", PASSWORD, {"username"}),
        ("bob", "admin", PASSWORD, {"role"}),
        ("bob", "officer", "short", {"password"}),
        ("bob", "officer", "x" * 1025, {"password"}),
        ("B", "root", "", {"username", "role", "password"}),
    ],
)
async def test_add_user_validates(store: AccountStore, username: str, role: str, password: str, bad: set[str]) -> None:
    with pytest.raises(ValidationError) as info:
        await store.add_user(username, role, password, now_ms=T0)
    assert set(info.value.fields) == bad


async def test_add_user_twice_conflicts_and_list(store: AccountStore) -> None:
    with pytest.raises(ConflictError):
        await store.add_user("alice", "auditor", PASSWORD, now_ms=T0)
    await store.add_user("a.b-c_9", "auditor", PASSWORD, now_ms=T0 + 1)
    users = await store.list_users()
    assert [(u.username, u.role, u.disabled, u.created_at) for u in users] == [("a.b-c_9", Role.AUDITOR, False, T0 + 1), ("alice", Role.OFFICER, False, T0)]


async def test_set_password_ends_sessions(store: AccountStore) -> None:
    session = await store.create_session(await store.authenticate_password("alice", PASSWORD), now_ms=T0, ttl_ms=HOUR)
    with pytest.raises(ValidationError):
        await store.set_password("alice", "short")
    await store.set_password("alice", "a brand new passphrase")
    with pytest.raises(AuthFailure):
        await store.authenticate_password("alice", PASSWORD)
    assert (await store.authenticate_password("alice", "a brand new passphrase")).username == "alice"
    with pytest.raises(AuthFailure, match="session invalid"):
        await store.authenticate_session(session.token, now_ms=T0)
    with pytest.raises(NotFoundError):
        await store.set_password("nobody", "a brand new passphrase")


async def test_disable_and_enable(store: AccountStore) -> None:
    token = await store.create_token("alice", "ci", now_ms=T0)
    session = await store.create_session(await store.authenticate_password("alice", PASSWORD), now_ms=T0, ttl_ms=HOUR)
    await store.set_disabled("alice", True)
    assert (await store.list_users())[0].disabled
    with pytest.raises(AuthFailure) as info:
        await store.authenticate_token(token, now_ms=T0)
    assert info.value.reason == "disabled_user"
    with pytest.raises(AuthFailure):
        await store.authenticate_session(session.token, now_ms=T0)
    with pytest.raises(ConflictError):
        await store.create_token("alice", "another", now_ms=T0)
    await store.set_disabled("alice", False)
    assert (await store.authenticate_token(token, now_ms=T0)).via == "token"
    with pytest.raises(NotFoundError):
        await store.set_disabled("nobody", True)


async def test_api_token_lifecycle(store: AccountStore) -> None:
    token = await store.create_token("alice", "ci", now_ms=T0, ttl_ms=HOUR)
    assert API_TOKEN.fullmatch(token)
    assert await store.authenticate_token(token, now_ms=T0 + HOUR - 1) == Principal(username="alice", role=Role.OFFICER, via="token")
    with pytest.raises(AuthFailure) as info:
        await store.authenticate_token(token, now_ms=T0 + HOUR)
    assert (info.value.message, info.value.reason) == (DENY_API_KEY, "expired_token")
    with pytest.raises(ConflictError):
        await store.create_token("alice", "ci", now_ms=T0)
    await store.revoke_token("alice", "ci")
    with pytest.raises(AuthFailure) as info:
        await store.authenticate_token(token, now_ms=T0)
    assert info.value.reason == "revoked_token"
    with pytest.raises(NotFoundError):
        await store.revoke_token("alice", "ci")
    forever = await store.create_token("alice", "ci", now_ms=T0 + 5)  # the name is free again
    assert (await store.authenticate_token(forever, now_ms=T0 + 10**12)).username == "alice"
    assert [(t.name, t.revoked, t.expires_at) for t in await store.list_tokens("alice")] == [("ci", True, T0 + HOUR), ("ci", False, None)]


@pytest.mark.parametrize("token", ["", "hgt_", "hgt_" + "A" * 42, "hgt_" + "A" * 43 + "\n", "Bearer hgt_" + "A" * 43, "hgs_" + "A" * 43, "hgt_" + "A" * 43])
async def test_bad_api_tokens(store: AccountStore, token: str) -> None:
    with pytest.raises(AuthFailure, match=re.escape(DENY_API_KEY)):
        await store.authenticate_token(token, now_ms=T0)


async def test_create_token_validates(store: AccountStore) -> None:
    with pytest.raises(NotFoundError):
        await store.create_token("nobody", "ci", now_ms=T0)
    for name, ttl in (("", None), (" ci", None), ("c\ni", None), ("x" * 65, None), ("ci", 0), ("ci", -5)):
        with pytest.raises(ValidationError):
            await store.create_token("alice", name, now_ms=T0, ttl_ms=ttl)


async def test_sessions(store: AccountStore, tmp_path: Path) -> None:
    principal = await store.authenticate_password("alice", PASSWORD)
    session = await store.create_session(principal, now_ms=T0, ttl_ms=HOUR)
    assert session.token.startswith("hgs_") and session.expires_at == T0 + HOUR and session.principal.via == "session"
    assert session.token not in repr(session) and session.csrf_token not in repr(session)
    found = await store.authenticate_session(session.token, now_ms=T0 + HOUR - 1)
    assert (found.principal, found.csrf_token, found.expires_at) == (session.principal, session.csrf_token, T0 + HOUR)
    with pytest.raises(AuthFailure) as info:
        await store.authenticate_session(session.token, now_ms=T0 + HOUR)
    assert (info.value.message, info.value.reason) == (DENY_SESSION, "expired_session")
    with pytest.raises(AuthFailure):
        await store.authenticate_session(await store.create_token("alice", "ci", now_ms=T0), now_ms=T0)
    await store.create_session(principal, now_ms=T0 + HOUR, ttl_ms=HOUR)  # sweeps the expired one
    with sqlite3.connect(tmp_path / "node.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    other = await store.create_session(principal, now_ms=T0, ttl_ms=HOUR)
    await store.end_session(other.token)
    await store.end_session(other.token)  # idempotent
    with pytest.raises(AuthFailure):
        await store.authenticate_session(other.token, now_ms=T0)
    with pytest.raises(ValueError):
        await store.create_session(principal, now_ms=T0, ttl_ms=0)


async def test_no_secret_at_rest_and_file_mode(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    accounts = await AccountStore.open(db, **FAST)  # the real rng
    await accounts.add_user("alice", "supervisor", PASSWORD, now_ms=T0)
    token = await accounts.create_token("alice", "ci", now_ms=T0)
    session = await accounts.create_session(await accounts.authenticate_password("alice", PASSWORD), now_ms=T0, ttl_ms=HOUR)
    files = sorted(tmp_path.glob("node.db*"))  # the WAL holds recent pages before a checkpoint
    at_rest = b"".join(f.read_bytes() for f in files)
    await accounts.close()
    at_rest += b"".join(f.read_bytes() for f in sorted(tmp_path.glob("node.db*")))
    assert hashlib.sha256(token.encode()).digest() in at_rest  # we are looking in the right place
    for secret in (PASSWORD, token, session.token, token.removeprefix("hgt_")):
        assert secret.encode() not in at_rest
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_reopen_keeps_accounts(tmp_path: Path) -> None:
    first = await AccountStore.open(tmp_path / "node.db", **FAST)
    await first.add_user("alice", "officer", PASSWORD, now_ms=T0)
    await first.close()
    second = await AccountStore.open(tmp_path / "node.db", **FAST)
    assert (await second.authenticate_password("alice", PASSWORD)).role is Role.OFFICER
    await second.close()


async def _ticks_while(work: Awaitable[object]) -> int:
    """How many times the event loop turned while ``work`` ran (its AuthFailure swallowed)."""

    async def run() -> None:
        with contextlib.suppress(AuthFailure):
            await work

    task = asyncio.create_task(run())
    ticks = 0
    while not task.done():
        await asyncio.sleep(0)
        ticks += 1
    await task
    return ticks


async def test_hashing_runs_off_the_event_loop(tmp_path: Path) -> None:
    accounts = await AccountStore.open(tmp_path / "node.db", opslimit=argon2id.OPSLIMIT_MIN, memlimit=32 * 1024 * 1024)
    try:
        # A malformed username costs no database read, only the dummy hash and verification:
        # done on the loop they would yield at most once; in a worker thread the loop keeps turning.
        assert await _ticks_while(accounts.authenticate_password("Not A Username", PASSWORD)) > 50
    finally:
        await accounts.close()


async def test_lone_surrogates_hash_rather_than_crash(store: AccountStore) -> None:
    await store.add_user("dora", "officer", "\ud800" * 12, now_ms=T0)
    assert (await store.authenticate_password("dora", "\ud800" * 12)).username == "dora"
    with pytest.raises(AuthFailure):
        await store.authenticate_password("dora", "\udc00" * 12)


def test_principal_validates() -> None:
    with pytest.raises(ValueError):
        Principal(username="alice", role="officer", via="password")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Principal(username="Alice", role=Role.OFFICER, via="password")
    with pytest.raises(ValueError):
        Principal(username="alice", role=Role.OFFICER, via="cookie")  # type: ignore[arg-type]


# -- the `user` CLI -----------------------------------------------------------------------------


class Cli:
    """The ``user`` commands on their own parser, with scripted password answers and a fake clock."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.answers: Iterator[str] = iter(())
        self.clock = FakeClock(T0)
        parser = argparse.ArgumentParser(prog="heliograph")
        register(parser.add_subparsers(), read_password=lambda prompt: next(self.answers), clock=self.clock, **FAST)
        self.parser = parser

    def __call__(self, *argv: str) -> int:
        args = self.parser.parse_args([argv[0], argv[1], "--db", str(self.db), *argv[2:]])
        return int(args.handler(args))

    def principal(self, token: str) -> Principal:
        async def check() -> Principal:
            store = await AccountStore.open(self.db, **FAST)
            try:
                return await store.authenticate_token(token, now_ms=self.clock.now_ms())
            finally:
                await store.close()

        return asyncio.run(check())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "node.db")


def test_cli_add_list_disable(cli: Cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cli.answers = iter([PASSWORD, PASSWORD])
    assert cli("user", "add", "--username", "alice", "--role", "officer") == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert cli("user", "add", "--username", "audrey", "--role", "auditor", "--password-stdin") == 0
    assert cli("user", "disable", "--username", "alice") == 0
    capsys.readouterr()
    assert cli("user", "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["USERNAME", "ROLE", "STATUS", "CREATED"]
    assert out[1].split()[:3] == ["alice", "officer", "disabled"] and out[2].split()[:3] == ["audrey", "auditor", "active"]
    assert "2027-01-15" in out[1]
    assert cli("user", "enable", "--username", "alice") == 0
    cli.answers = iter(["another long password", "another long password"])
    assert cli("user", "passwd", "--username", "alice") == 0
    assert PASSWORD not in capsys.readouterr().out


def test_cli_refuses_mismatch_and_missing_db(cli: Cli) -> None:
    cli.answers = iter([PASSWORD, PASSWORD + "!"])
    with pytest.raises(ValidationError):
        cli("user", "add", "--username", "alice", "--role", "officer")
    with pytest.raises(NotFoundError):
        cli("user", "list")
    assert not cli.db.exists()


def test_cli_tokens(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    cli.answers = iter([PASSWORD, PASSWORD])
    cli("user", "add", "--username", "ci", "--role", "officer")
    capsys.readouterr()
    assert cli("user", "token", "--username", "ci", "--name", "deploy", "--ttl-days", "90") == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert API_TOKEN.fullmatch(token)
    assert "shown only this once" in captured.err and token not in captured.err
    assert cli.principal(token).username == "ci"
    assert cli("user", "tokens", "--username", "ci") == 0
    listing = capsys.readouterr().out
    assert "deploy" in listing and "active" in listing and token not in listing
    assert cli("user", "revoke-token", "--username", "ci", "--name", "deploy") == 0
    with pytest.raises(AuthFailure):
        cli.principal(token)
    cli("user", "tokens", "--username", "ci")
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(NotFoundError):
        cli("user", "revoke-token", "--username", "ci", "--name", "deploy")
