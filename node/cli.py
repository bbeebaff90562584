"""The ``heliograph`` command line: one entry point, subcommands per concern.

Errors from the protocol hierarchy are printed as ``error [CODE]: sentence``
plus a hint, with exit status 1; usage errors exit 2. Secret key material is
never printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import nacl.utils

from gateway.keyfile import read_secret_keys, write_public_identity, write_secret_keys
from protocol.errors import HeliographError
from protocol.keys import MemberKeys

Handler = Callable[[argparse.Namespace], int]


def _version() -> str:
    try:
        return version("heliograph")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def _print_identity(keys: MemberKeys) -> None:
    ident = keys.public
    print(f"member:             {ident.member_id}")
    print(f"signing key id:     {ident.signing_key_id.hex()}")
    print(f"encryption key id:  {ident.encryption_key_id.hex()}")
    print(f"log vkey:           {ident.log_vkey}")


def cmd_keys_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = MemberKeys.generate(args.id, nacl.utils.random)
    secret = out / f"{args.id}.key"
    public = out / f"{args.id}.pub.json"
    write_secret_keys(secret, keys, overwrite=args.force)
    write_public_identity(public, keys.public)
    print(f"wrote {secret} (secret, mode 0600) and {public} (public)")
    _print_identity(keys)
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    _print_identity(read_secret_keys(Path(args.file)))
    return 0


def cmd_log_verify(args: argparse.Namespace) -> int:
    import asyncio

    import aiohttp

    from gateway.log_verifier import verify_log

    if args.proofs not in ("auto", "all") and not (args.proofs.isascii() and args.proofs.isdigit()):
        print("error: --proofs takes auto, all or a number", file=sys.stderr)
        return 2
    state = Path(args.state) if args.state else None
    from gateway.tls import trust

    tls = trust(args.ca)
    try:
        report = asyncio.run(verify_log(args.url, args.vkey.strip(), state=state, proofs=args.proofs, tls=tls))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # connection, protocol and URL errors
        print(f"error [E_UNREACHABLE]: cannot fetch from {args.url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"state file {state}" if state is not None and exc.filename == str(state) else args.url
        print(f"error [E_UNREACHABLE]: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for line in report.lines:
        print(f"ok  {line}")
    print("log verified")
    return 0


def cmd_gateway_run(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.service import serve

    asyncio.run(serve(Path(args.config), ready_file=Path(args.ready_file) if args.ready_file else None))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heliograph", description="Federated secure messaging and rapid-alert gateway.")
    parser.add_argument("--version", action="version", version=f"heliograph {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    keys = sub.add_parser("keys", help="generate and inspect member keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    gen = keys_sub.add_parser("generate", help="generate signing, encryption and log keys for a member")
    gen.add_argument("--id", required=True, help="member id, e.g. ke-police or gw-eu")
    gen.add_argument("--out", default=".", help="directory for ID.key (secret, 0600) and ID.pub.json (default: .)")
    gen.add_argument("--force", action="store_true", help="replace an existing secret key file")
    gen.set_defaults(handler=cmd_keys_generate)
    show = keys_sub.add_parser("show", help="print the public identity of a secret key file")
    show.add_argument("file")
    show.set_defaults(handler=cmd_keys_show)

    log_cmd = sub.add_parser("log", help="verify a hop's transparency log")
    log_sub = log_cmd.add_subparsers(dest="log_command", metavar="SUBCOMMAND")
    verify = log_sub.add_parser("verify", help="verify a log end to end, as an oversight body would")
    verify.add_argument("url", help="base URL of the hop, e.g. http://127.0.0.1:7100")
    verify.add_argument("--vkey", required=True, help="the log's C2SP verifier key, as listed for the member in the roster")
    verify.add_argument("--state", help="file with the last verified checkpoint; a consistency proof from it is demanded, then it is updated")
    verify.add_argument("--proofs", default="auto", help="inclusion proofs to audit: auto (all up to 4096 entries, else 256 sampled), all, or a number")
    verify.add_argument("--ca", help="CA certificates (PEM) an https:// URL must chain to, e.g. the federation's private CA")
    verify.set_defaults(handler=cmd_log_verify)

    from node.roster_cli import register as register_roster

    register_roster(sub)
    gw = sub.add_parser("gateway", help="run and inspect a federation gateway")
    gw_sub = gw.add_subparsers(dest="gateway_command", metavar="SUBCOMMAND")
    run = gw_sub.add_parser("run", help="run a gateway until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, help="TOML config (see configs/gateway.example.toml)")
    run.add_argument("--ready-file", help="write HOST:PORT here once listening (for supervisors and tests)")
    run.set_defaults(handler=cmd_gateway_run)
    from node.gateway_cli import register as register_gateway_tools

    register_gateway_tools(gw_sub)
    node_cmd = sub.add_parser("node", help="set up and run an agency node, and manage its officers")
    node_sub = node_cmd.add_subparsers(dest="node_command", metavar="SUBCOMMAND")
    init = node_sub.add_parser("init", help="generate keys and a commented config; print the member entry for the roster authorities")
    init.add_argument("--id", required=True, help="the node's member id, e.g. ke-police")
    init.add_argument("--dir", required=True, help="directory for keys/, node.toml and ID.pub.json")
    init.add_argument("--url", default="http://127.0.0.1:7200", help="the endpoint peers will reach (goes into the roster)")
    init.add_argument("--home-gateway", default="gw-eu", help="the gateway this node sends through")
    init.add_argument("--force", action="store_true", help="replace existing keys and config")
    init.set_defaults(handler=cmd_node_init)
    nrun = node_sub.add_parser("run", help="run a node until SIGTERM/SIGINT")
    nrun.add_argument("--config", required=True, help="TOML config (see configs/node.example.toml)")
    nrun.add_argument("--ready-file", help="write HOST:PORT here once listening (for supervisors and tests)")
    nrun.set_defaults(handler=cmd_node_run)
    from node.accounts_cli import register as register_users

    register_users(node_sub)
    from node.verify_cli import register as register_verify

    register_verify(sub)
    from node.witness_cli import register as register_witness

    register_witness(sub)
    from node.officer_cli import register as register_officer

    register_officer(sub)
    from node.backup import register as register_backup

    register_backup(sub)
    demo = sub.add_parser("demo", help="a small federation on loopback, every member its own process, with a narrated scenario")
    demo.add_argument("--keep", action="store_true", help="keep the federation running after the scenario, until SIGINT/SIGTERM")
    demo.add_argument("--state-dir", help="where keys, configs, databases and federation.json go (default: a temporary directory)")
    demo.add_argument("--base-port", type=int, help="use consecutive ports from here (default: free ports)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def cmd_demo(args: argparse.Namespace) -> int:
    from node.demo import run_demo

    return run_demo(keep=args.keep, state_dir=Path(args.state_dir) if args.state_dir else None, base_port=args.base_port)


def cmd_node_init(args: argparse.Namespace) -> int:
    from node.run import init_node, print_member_entry

    entry = init_node(args.id, Path(args.dir), url=args.url, home_gateway=args.home_gateway, force=args.force)
    print(f"wrote {args.dir}/keys/{args.id}.key (secret, mode 0600), {args.dir}/{args.id}.pub.json and {args.dir}/node.toml")
    print("send this member entry to the roster authorities:")
    print_member_entry(entry)
    return 0


def cmd_node_run(args: argparse.Namespace) -> int:
    import asyncio

    from node.run import serve_node

    asyncio.run(serve_node(Path(args.config), ready_file=Path(args.ready_file) if args.ready_file else None))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except HeliographError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
