"""``heliograph roster ...``: how roster authorities create, sign and publish roster versions.

An authority works at a terminal with files only, no network (docs/ROSTER.md walks
through it). A roster version passes through two kinds of file, both in the signed-roster
format of docs/PROTOCOL.md 5.6:

* a **draft**, made by ``init`` (version 1) or ``next`` (version N+1 of a published roster)
  and edited in place by ``add-member``, ``update-member``, ``remove-member``,
  ``rotate-key``, ``revoke-key`` and ``set-authorities``; then ``sign``-ed by authorities
  in turn, each adding one signature over the exact body bytes. Once anyone has signed,
  editing is refused unless the signatures are discarded, and a draft whose body no longer
  matches a signature on it is refused outright, by ``sign`` and by ``publish``;
* the **published** roster, written atomically by ``publish`` only once the draft verifies:
  against its own threshold for a trust anchor, and as an update of the previous version
  (a threshold of the previous authorities *and* of its own) otherwise. Hops pick the file
  up without a restart (:mod:`gateway.roster_watch`).

``show`` and ``verify`` read either kind. Times on the command line are unix milliseconds
or ISO 8601 with a zone (``2026-06-01T00:00:00Z``); durations are ``90s``, ``24h``,
``365d``. The current time comes from the clock given to :func:`register`. Only public
keys and key ids are ever printed; ``sign`` reads the authority's secret key file (mode
0600) and prints none of it.

This module holds the argument types and the argparse wiring; the command handlers are in
:mod:`node.roster_commands`.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from gateway.clock import Clock, SystemClock
from node.roster_commands import (
    cmd_add_member,
    cmd_init,
    cmd_next,
    cmd_publish,
    cmd_remove_member,
    cmd_revoke_key,
    cmd_rotate_key,
    cmd_set_authorities,
    cmd_show,
    cmd_sign,
    cmd_update_member,
    cmd_verify,
)
from protocol.roster import KIND_GATEWAY, KIND_NODE

DAY_MS = 24 * 3600 * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS}


# -- argument types ----------------------------------------------------------------------


def parse_time(text: str) -> int:
    """Unix milliseconds, or ISO 8601 with a zone, as unix milliseconds (an argparse type)."""
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither unix milliseconds nor ISO 8601") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z or +00:00")
    return (when - _EPOCH) // timedelta(milliseconds=1)


def parse_duration(text: str) -> int:
    """``0``, ``500ms``, ``90s``, ``15m``, ``24h`` or ``365d`` as milliseconds (an argparse type)."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", text)
    if match is None or (match[2] is None and match[1] != "0"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 24h or 365d")
    return int(match[1]) * _UNITS_MS[match[2] or "ms"]


# -- parser ------------------------------------------------------------------------------


def _draft_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--draft", required=True, help="the draft roster file, edited in place")
    p.add_argument("--out", help="write the edited draft here instead of in place")
    p.add_argument("--discard-signatures", action="store_true", help="edit a draft that authorities already signed, dropping their signatures")


def _key_window_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--not-before", type=parse_time, help="start of the keys' validity (default: now)")
    p.add_argument("--valid-for", type=parse_duration, default=365 * DAY_MS, help="how long the keys are valid (default: 365d)")


def _authority_files(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *, clock: Clock | None = None) -> None:
    """Add the ``roster`` command group to the ``heliograph`` parser.

    Args:
        subparsers: The top-level ``add_subparsers()`` result.
        clock: Where the commands read the current time (default: the system clock).
    """
    roster = subparsers.add_parser("roster", help="create, sign, publish and inspect roster versions (for roster authorities)")
    roster.set_defaults(clock=clock or SystemClock())
    sub = roster.add_subparsers(dest="roster_command", metavar="SUBCOMMAND")

    p = sub.add_parser("init", help="start a draft of version 1 of a new federation's roster")
    p.add_argument("--federation", required=True, help="the federation's name, e.g. east-africa-alerts")
    p.add_argument("--authorities", required=True, type=_authority_files, help="comma-separated public identity files (NAME.pub.json) of the authorities")
    p.add_argument("--threshold", required=True, type=int, help="how many authorities must sign each version")
    p.add_argument("--valid-for", type=parse_duration, default=365 * DAY_MS, help="how long the roster is valid from now (default: 365d)")
    p.add_argument("--out", required=True, help="the draft file to write")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("next", help="start a draft of version N+1 from the published version N")
    p.add_argument("--from", dest="source", required=True, help="the current published roster")
    p.add_argument("--valid-for", type=parse_duration, default=365 * DAY_MS, help="how long the new version is valid from now (default: 365d)")
    p.add_argument("--out", required=True, help="the draft file to write")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(handler=cmd_next)

    p = sub.add_parser("add-member", help="add a node or gateway from its public identity file")
    _draft_args(p)
    p.add_argument("--identity", required=True, help="the member's public identity file (ID.pub.json)")
    p.add_argument("--kind", required=True, choices=(KIND_NODE, KIND_GATEWAY))
    p.add_argument("--url", required=True, help="the member's http(s) endpoint")
    p.add_argument("--home-gateway", help="for a node: the gateway it connects through")
    p.add_argument("--display-name", default="", help="a human name, e.g. 'Kenya Police Service'")
    _key_window_args(p)
    p.set_defaults(handler=cmd_add_member)

    p = sub.add_parser("update-member", help="change a member's endpoint, home gateway or display name")
    _draft_args(p)
    p.add_argument("--member", required=True)
    p.add_argument("--url")
    p.add_argument("--home-gateway")
    p.add_argument("--display-name")
    p.set_defaults(handler=cmd_update_member)

    p = sub.add_parser("remove-member", help="remove a member")
    _draft_args(p)
    p.add_argument("--member", required=True)
    p.set_defaults(handler=cmd_remove_member)

    p = sub.add_parser("rotate-key", help="give a member new signing and encryption keys; the old ones expire after an overlap")
    _draft_args(p)
    p.add_argument("--member", required=True)
    p.add_argument("--identity", required=True, help="the member's new public identity file")
    p.add_argument("--overlap", type=parse_duration, default=24 * 3_600_000, help="how long the old keys stay valid from now (default: 24h)")
    p.add_argument("--log-key", choices=("keep", "replace"), help="required if the new identity's log key differs from the roster's")
    _key_window_args(p)
    p.set_defaults(handler=cmd_rotate_key)

    p = sub.add_parser("revoke-key", help="revoke one of a member's keys from a given time on")
    _draft_args(p)
    p.add_argument("--member", required=True)
    p.add_argument("--key-id", required=True, help="16 hex digits, as roster show lists them")
    p.add_argument("--at", type=parse_time, help="revoked from this time on (default: now); signatures made earlier stay valid")
    p.set_defaults(handler=cmd_revoke_key)

    p = sub.add_parser("set-authorities", help="add or remove roster authorities, or change the threshold")
    _draft_args(p)
    p.add_argument("--add", action="append", default=[], metavar="NAME.pub.json", help="an authority's public identity file (repeatable)")
    p.add_argument("--remove", action="append", default=[], metavar="ID", help="an authority id (repeatable)")
    p.add_argument("--threshold", type=int)
    p.set_defaults(handler=cmd_set_authorities)

    p = sub.add_parser("sign", help="add your authority signature to a draft")
    p.add_argument("--draft", required=True)
    p.add_argument("--key", required=True, help="your authority secret key file (mode 0600)")
    p.add_argument("--out", help="write the signed draft here instead of in place")
    p.add_argument("--previous", help="the published version this draft updates (needed to sign as an authority the draft removes)")
    p.set_defaults(handler=cmd_sign)

    p = sub.add_parser("publish", help="verify a signed draft and write the roster file hops read")
    p.add_argument("--draft", required=True)
    anchor = p.add_mutually_exclusive_group(required=True)
    anchor.add_argument("--previous", help="the published version this one updates")
    anchor.add_argument("--trust-anchor", action="store_true", help="publish a first version, pinned out of band")
    p.add_argument("--out", required=True, help="the roster file to write (atomically)")
    p.set_defaults(handler=cmd_publish)

    p = sub.add_parser("show", help="summarise a roster or draft: members, keys, revocations, signatures")
    p.add_argument("file")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("verify", help="verify a roster on its own, or as the update of --previous")
    p.add_argument("file")
    p.add_argument("--previous", help="the version it must update")
    p.set_defaults(handler=cmd_verify)
