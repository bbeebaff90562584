"""``heliograph node run`` and ``heliograph node init``: start a node, or set one up from nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nacl.utils

from gateway.clock import SystemClock
from gateway.keyfile import write_public_identity, write_secret_keys
from gateway.logs import configure_logging
from gateway.service import run_until_signal
from node.app import create_node_app
from node.config import load_node_config
from node.service import Node
from protocol.errors import ConfigError
from protocol.keys import MemberKeys

_EXAMPLE_PLACES = (
    Path(__file__).resolve().parent.parent / "configs",  # a source checkout
    Path(sys.prefix) / "share" / "heliograph" / "configs",
    Path("/usr/share/heliograph/configs"),  # the container image (docker/Dockerfile)
)


def example_config() -> str:
    """The text of configs/node.example.toml, wherever this installation keeps it.

    Raises:
        ConfigError: No copy of the example was installed.
    """
    for place in _EXAMPLE_PLACES:
        path = place / "node.example.toml"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise ConfigError("configs/node.example.toml is not installed here", hint="Run from a source checkout or the container image.")


async def serve_node(config_path: Path, *, ready_file: Path | None = None) -> None:
    """Run the node at ``config_path`` until SIGTERM or SIGINT, then shut down cleanly.

    Raises:
        HeliographError: The config, keys, roster or stores do not allow a safe start.
    """
    config = load_node_config(config_path)
    configure_logging(member=config.hop.member_id)
    node = await Node.open(config, clock=SystemClock(), rng=nacl.utils.random)
    await run_until_signal(create_node_app(node), config.hop, ready_file=ready_file)


def node_config_text(member_id: str, *, listen: str = "127.0.0.1:7200", roster: str = "roster.bin", kdf: str = "moderate") -> str:
    """A commented node config for ``member_id`` (configs/node.example.toml with the id filled in)."""
    text = example_config()
    return (
        text.replace('id = "example-node"', f'id = "{member_id}"')
        .replace('listen = "127.0.0.1:7200"', f'listen = "{listen}"')
        .replace('roster = "roster.bin"', f'roster = "{roster}"')
        .replace('key_file = "keys/example-node.key"', f'key_file = "keys/{member_id}.key"')
        .replace('kdf = "moderate"', f'kdf = "{kdf}"')
    )


def init_node(member_id: str, directory: Path, *, url: str, home_gateway: str, force: bool = False) -> dict[str, object]:
    """Generate keys (0600) and a commented config in ``directory``; return the roster member entry.

    Raises:
        KeyFileError: The key file exists and ``force`` is not set.
    """
    (directory / "keys").mkdir(parents=True, exist_ok=True)
    keys = MemberKeys.generate(member_id, nacl.utils.random)
    write_secret_keys(directory / "keys" / f"{member_id}.key", keys, overwrite=force)
    write_public_identity(directory / f"{member_id}.pub.json", keys.public)
    config = directory / "node.toml"
    if force or not config.exists():
        listen = url.removeprefix("http://").removeprefix("https://").rstrip("/")
        config.write_text(node_config_text(member_id, listen=listen), encoding="utf-8")
    ident = keys.public
    return {
        "id": member_id,
        "kind": "node",
        "endpoint": url,
        "home_gateway": home_gateway,
        "identity_file": str(directory / f"{member_id}.pub.json"),
        "signing_key_id": ident.signing_key_id.hex(),
        "encryption_key_id": ident.encryption_key_id.hex(),
        "log_vkey": ident.log_vkey,
        "roster_command": f"heliograph roster add-member --draft DRAFT --identity {directory / f'{member_id}.pub.json'} --kind node"
        f" --home-gateway {home_gateway} --url {url}",
    }


def print_member_entry(entry: dict[str, object]) -> None:
    print(json.dumps(entry, indent=2))
