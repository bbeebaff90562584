"""``heliograph gateway run``: start a hop from its config and serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import nacl.utils
import structlog
from aiohttp import web

from gateway.app import create_app, open_hop
from gateway.clock import SystemClock
from gateway.config import HopConfig, load_config
from gateway.logs import configure_logging

log = structlog.get_logger("heliograph.service")


async def serve(config_path: Path, *, ready_file: Path | None = None) -> None:
    """Run the hop at ``config_path`` until a termination signal, then shut down cleanly.

    Raises:
        HeliographError: The config, keys, roster or stores do not allow a safe start.
    """
    config = load_config(config_path)
    configure_logging(member=config.member_id)
    hop = await open_hop(config, clock=SystemClock(), rng=nacl.utils.random)
    await run_until_signal(create_app(hop), config, ready_file=ready_file)


async def run_until_signal(app: web.Application, config: HopConfig, *, ready_file: Path | None = None) -> None:
    """Serve ``app`` on the hop's listen address until SIGTERM or SIGINT, then shut down cleanly."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=30.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    log.info("hop_started", member=config.member_id, listen=f"{config.host}:{config.port}", data_dir=str(config.data_dir))
    if ready_file is not None:
        ready_file.write_text(f"{config.host}:{config.port}\n", encoding="utf-8")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("hop_stopping", member=config.member_id)
    # Stop listening, let in-flight requests finish their commits, then stop the forwarder and drain the log.
    await runner.cleanup()
    log.info("hop_stopped", member=config.member_id)
