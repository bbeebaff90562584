"""``user`` subcommands of the ``heliograph`` CLI: officer accounts and API tokens.

An operator manages accounts on the node's host, against the node's SQLite
file (``--db`` for now; the node's ``--config`` will map to the same path)::

    heliograph user add --db node.db --username alice --role officer   # prompts twice
    heliograph user add --db node.db --username ci --role officer --password-stdin < pw.txt
    heliograph user list --db node.db
    heliograph user disable --db node.db --username alice
    heliograph user token --db node.db --username ci --name deploy --ttl-days 90
    heliograph user revoke-token --db node.db --username ci --name deploy

``user token`` prints the token once on stdout (and nothing else there, so
scripts can capture it); only its SHA-256 is stored. Passwords are read with
``getpass`` or from one line of stdin, never from the command line where ``ps``
and shell history would see them. Handlers return the exit status and let
:class:`protocol.errors.HeliographError` propagate to ``node.cli.main``, which
prints ``error [CODE]: sentence`` plus the hint. The store's hashing limits,
the password prompt and the clock are parameters of :func:`register`, so tests
can use fast argon2 limits, scripted answers and a fake clock.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from nacl.pwhash import argon2id

from gateway.clock import Clock, SystemClock
from node.accounts import AccountStore, Role
from protocol.errors import ConfigError, NotFoundError, ValidationError

T = TypeVar("T")
PasswordReader = Callable[[str], str]
DAY_MS = 86_400_000


def _iso(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _with_store(args: argparse.Namespace, work: Callable[[AccountStore], Awaitable[T]], *, create: bool = False) -> T:
    """Open the accounts database named by ``args.db``, run ``work`` on it, close it.

    Raises:
        NotFoundError: The database does not exist and ``create`` is false.
    """
    db = _db_path(args)
    if not create and not db.exists():
        raise NotFoundError(f"no accounts database at {db}", hint="Create the first account with `heliograph node user add`.")
    if create:
        db.parent.mkdir(parents=True, exist_ok=True)

    async def run() -> T:
        store = await AccountStore.open(db, opslimit=args.kdf_opslimit, memlimit=args.kdf_memlimit)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _db_path(args: argparse.Namespace) -> Path:
    """``--db``, or the accounts database named by the node config given with ``--config``.

    Raises:
        ConfigError: Neither given, or the config is invalid.
    """
    if getattr(args, "config", None):
        from node.config import load_node_config

        return load_node_config(Path(args.config)).accounts_path
    if not getattr(args, "db", None):
        raise ConfigError("give --config NODE.toml or --db ACCOUNTS.db")
    return Path(args.db)


def _add_location(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="the node's config (its [node] accounts_db is used)")
    where.add_argument("--db", help="the accounts database file itself")


def _new_password(args: argparse.Namespace) -> str:
    """One line of stdin with ``--password-stdin``, else asked twice with the prompt.

    Raises:
        ValidationError: The two typed passwords differ.
    """
    if args.password_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    read: PasswordReader = args.read_password
    first = read(f"New password for {args.username}: ")
    if read("Repeat the password: ") != first:
        raise ValidationError({"password": "the two entries differ"})
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create an account (``user add``)."""
    password = _new_password(args)
    _with_store(args, lambda store: store.add_user(args.username, args.role, password, now_ms=args.clock.now_ms()), create=True)
    print(f"added user {args.username} ({args.role})")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    """Set a new password, ending the user's console sessions (``user passwd``)."""
    password = _new_password(args)
    _with_store(args, lambda store: store.set_password(args.username, password))
    print(f"password of {args.username} changed; their console sessions were ended")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    """Print every account as a table (``user list``)."""
    users = _with_store(args, lambda store: store.list_users())
    rows = [("USERNAME", "ROLE", "STATUS", "CREATED")]
    rows += [(u.username, str(u.role), "disabled" if u.disabled else "active", _iso(u.created_at)) for u in users]
    _print_table(rows)
    return 0


def cmd_user_set_disabled(args: argparse.Namespace) -> int:
    """Disable or re-enable an account (``user disable`` / ``user enable``)."""
    _with_store(args, lambda store: store.set_disabled(args.username, args.disabled))
    print(f"user {args.username} {'disabled; their sessions were ended' if args.disabled else 'enabled'}")
    return 0


def cmd_user_token(args: argparse.Namespace) -> int:
    """Issue an API token and print it once on stdout (``user token``)."""
    ttl_ms = None if args.ttl_days is None else args.ttl_days * DAY_MS
    token = _with_store(args, lambda store: store.create_token(args.username, args.name, now_ms=args.clock.now_ms(), ttl_ms=ttl_ms))
    expiry = "never expires" if ttl_ms is None else f"expires {_iso(args.clock.now_ms() + ttl_ms)}"
    print(f"API token {args.name!r} for {args.username} ({expiry}). It is shown only this once: store it now.", file=sys.stderr)
    print(token)
    return 0


def cmd_user_tokens(args: argparse.Namespace) -> int:
    """List a user's API tokens, without the tokens themselves (``user tokens``)."""
    tokens = _with_store(args, lambda store: store.list_tokens(args.username))
    rows = [("NAME", "STATUS", "CREATED", "EXPIRES")]
    now = args.clock.now_ms()
    for t in tokens:
        status = "revoked" if t.revoked else "expired" if t.expires_at is not None and now >= t.expires_at else "active"
        rows.append((t.name, status, _iso(t.created_at), _iso(t.expires_at)))
    _print_table(rows)
    return 0


def cmd_user_revoke_token(args: argparse.Namespace) -> int:
    """Revoke an API token by name (``user revoke-token``)."""
    _with_store(args, lambda store: store.revoke_token(args.username, args.name))
    print(f"revoked API token {args.name!r} of {args.username}")
    return 0


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    opslimit: int = argon2id.OPSLIMIT_MODERATE,
    memlimit: int = argon2id.MEMLIMIT_MODERATE,
    read_password: PasswordReader = getpass.getpass,
    clock: Clock | None = None,
) -> None:
    """Add the ``user`` command and its subcommands to ``subparsers``.

    Args:
        subparsers: The CLI's top-level ``add_subparsers()`` result.
        opslimit: Argon2id ops limit for new password hashes.
        memlimit: Argon2id memory limit (bytes) for new password hashes.
        read_password: Asks for a password without echo (``getpass.getpass``).
        clock: Where ``created_at`` and expiry times come from (the system clock).
    """
    injected = {"kdf_opslimit": opslimit, "kdf_memlimit": memlimit, "read_password": read_password, "clock": clock or SystemClock()}
    user = subparsers.add_parser("user", help="manage officer accounts and API tokens")
    user_sub = user.add_subparsers(dest="user_command", metavar="SUBCOMMAND")

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int], **defaults: object) -> argparse.ArgumentParser:
        parser = user_sub.add_parser(name, help=help_text)
        _add_location(parser)
        parser.add_argument("--username", required=True)
        parser.set_defaults(handler=handler, **injected, **defaults)
        return parser

    stdin_help = "read the password from one line of stdin instead of prompting"
    add = command("add", "create an account", cmd_user_add)
    add.add_argument("--role", required=True, choices=[str(r) for r in Role])
    add.add_argument("--password-stdin", action="store_true", help=stdin_help)
    passwd = command("passwd", "set a new password (ends the user's console sessions)", cmd_user_passwd)
    passwd.add_argument("--password-stdin", action="store_true", help=stdin_help)
    listing = user_sub.add_parser("list", help="list accounts")
    _add_location(listing)
    listing.set_defaults(handler=cmd_user_list, **injected)
    command("disable", "disable an account and end its sessions; its API tokens stop working", cmd_user_set_disabled, disabled=True)
    command("enable", "re-enable a disabled account", cmd_user_set_disabled, disabled=False)
    token = command("token", "issue an API token; printed once on stdout", cmd_user_token)
    token.add_argument("--name", required=True, help="a label to revoke it by, e.g. 'ci-deploy'")
    token.add_argument("--ttl-days", type=int, help="expire after this many days (default: never)")
    command("tokens", "list a user's API tokens (names and status only)", cmd_user_tokens)
    revoke = command("revoke-token", "revoke an API token by name", cmd_user_revoke_token)
    revoke.add_argument("--name", required=True)
