"""``heliograph witness ...``: what an oversight body runs to witness the federation's logs.

::

    heliograph witness keygen --name witness.example/w1 --out keys/   # witness.key (0600) + witness.vkey
    heliograph witness run --config witness.toml                       # serve and poll until SIGTERM
    heliograph witness run --config witness.toml --once                # one round; exit 1 if any alarm
    heliograph witness status --url http://127.0.0.1:7300              # exit 1 if any log is in alarm
    heliograph witness clear --config witness.toml --log heliograph/gw-af [--reset]

docs/WITNESS.md walks through setting one up. Handlers return the exit status and let
:class:`protocol.errors.HeliographError` propagate to ``node.cli.main``, which prints
``error [CODE]: sentence`` and the hint. The clock and the randomness are parameters of
:func:`register`, so tests can pass a fake clock and a seeded rng.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils

from gateway.clock import Clock, SystemClock
from gateway.witness_store import WitnessKey, WitnessStore, load_witness_config, write_witness_key
from protocol.errors import NotFoundError, UnreachableError

Rng = Callable[[int], bytes]


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = WitnessKey(name=args.name, signer=nacl.signing.SigningKey(args.rng(32)))
    secret, public = out / "witness.key", out / "witness.vkey"
    write_witness_key(secret, key, overwrite=args.force)
    public.write_text(key.vkey + "\n", encoding="utf-8")
    print(f"wrote {secret} (secret, mode 0600) and {public} (public)")
    print("publish this cosigner vkey to the federation:")
    print(key.vkey)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.witness import serve_witness

    config = Path(args.config)
    configure_logging(member=load_witness_config(config).name)
    ready = Path(args.ready_file) if args.ready_file else None
    status = asyncio.run(serve_witness(config, clock=args.clock, once=args.once, ready_file=ready))
    if args.once:
        print("witness round done: " + ("ALARM, see the witness_alarm log lines" if status else "no alarm"))
    return status


def _fetch_status(url: str) -> dict[str, Any]:
    import aiohttp

    async def fetch() -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url.rstrip("/") + "/v1/witness/status") as resp:
            if resp.status != 200:
                raise UnreachableError(f"{url}/v1/witness/status answered {resp.status}")
            return dict(json.loads(await resp.text()))

    try:
        return asyncio.run(fetch())
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise UnreachableError(f"cannot fetch {url}/v1/witness/status: {type(exc).__name__}: {exc}") from None


def cmd_status(args: argparse.Namespace) -> int:
    doc = _fetch_status(args.url)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        now = int(doc["now"])
        print(f"witness {doc['witness']}  {doc['vkey']}")
        for entry in doc["logs"]:
            checked = "-" if entry["last_checked"] is None else f"{(now - entry['last_checked']) / 1000:.0f}s ago"
            size = "-" if entry["size"] is None else str(entry["size"])
            print(f"{entry['state'].upper():8} {entry['origin']}  size {size}  checked {checked}")
            if entry["warning"]:
                print(f"         warning {entry['warning']['kind']}: {entry['warning']['message']}")
            for alarm in entry["alarms"]:
                print(f"         ALARM {alarm['kind']}: {alarm['message']}")
    return 1 if any(entry["alarms"] for entry in doc["logs"]) else 0


def cmd_clear(args: argparse.Namespace) -> int:
    config = load_witness_config(Path(args.config))
    store = WitnessStore(config.state_dir)
    if args.log not in store.known_origins():
        raise NotFoundError(f"the witness has no state for {args.log!r} in {config.state_dir}", hint="Check the origin with `heliograph witness status`.")
    store.request_clear(args.log, reset=args.reset)
    what = "alarms cleared and checkpoint forgotten" if args.reset else "alarms cleared"
    if store.try_lock():  # no witness running: apply it now
        try:
            store.apply_clear(store.load(args.log))
        finally:
            store.unlock()
        print(f"{args.log}: {what}")
    else:
        print(f"{args.log}: the running witness will apply this at its next round ({what})")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *, clock: Clock | None = None, rng: Rng | None = None) -> None:
    """Add the ``witness`` command group to the ``heliograph`` parser.

    Args:
        subparsers: The top-level ``add_subparsers()`` result.
        clock: Where the witness reads the time (default: the system clock).
        rng: Randomness for new keys (default: ``nacl.utils.random``).
    """
    witness = subparsers.add_parser("witness", help="witness and monitor the federation's logs (for oversight bodies)")
    witness.set_defaults(clock=clock or SystemClock(), rng=rng or nacl.utils.random)
    sub = witness.add_subparsers(dest="witness_command", metavar="SUBCOMMAND")

    p = sub.add_parser("keygen", help="generate the witness's cosigning key; print its vkey for the federation")
    p.add_argument("--name", required=True, help="the witness's C2SP key name, e.g. witness.example/w1")
    p.add_argument("--out", default=".", help="directory for witness.key (secret, 0600) and witness.vkey (default: .)")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    p.set_defaults(handler=cmd_keygen)

    p = sub.add_parser("run", help="poll, verify and cosign every log; serve cosignatures until SIGTERM/SIGINT")
    p.add_argument("--config", required=True, help="TOML config (see configs/witness.example.toml)")
    p.add_argument("--once", action="store_true", help="one round, no HTTP server; exit 1 if any log is in alarm (for cron)")
    p.add_argument("--ready-file", help="write HOST:PORT here once listening (for supervisors and tests)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("status", help="every log's size, last check, warning and alarms; exit 1 if any alarm")
    p.add_argument("--url", default="http://127.0.0.1:7300", help="the witness's base URL")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("clear", help="clear a log's alarms after investigating, so the witness cosigns it again")
    p.add_argument("--config", required=True, help="the witness's TOML config")
    p.add_argument("--log", required=True, help="the log's origin, e.g. heliograph/gw-af")
    p.add_argument("--reset", action="store_true", help="also forget its last checkpoint: accept the log's current history afresh")
    p.set_defaults(handler=cmd_clear)
