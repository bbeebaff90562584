"""``heliograph gateway run``: start a hop from its config and serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import nacl.utils
import structlog
from aiohttp import web

from gateway.app import create_app, open_hop
from gateway.clock import SystemClock
from gateway.config import HopConfig, load_config
from gateway.logs import configure_logging
from gateway.tls import CertificateReloader, TlsConfig

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
    """Serve a hop's ``app`` on its listen address until SIGTERM or SIGINT, then shut down cleanly."""

    def started() -> None:
        log.info("hop_started", member=config.member_id, listen=f"{config.tls.scheme}://{config.host}:{config.port}", data_dir=str(config.data_dir))

    await serve_until_signal(app, config.host, config.port, ready_file=ready_file, on_listening=started, tls=config.tls)
    log.info("hop_stopped", member=config.member_id)


async def serve_until_signal(
    app: web.Application,
    host: str,
    port: int,
    *,
    ready_file: Path | None = None,
    on_listening: Callable[[], None] = lambda: None,
    alongside: Coroutine[Any, Any, None] | None = None,
    tls: TlsConfig | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT, then stop listening and clean up.

    ``ready_file`` gets ``HOST:PORT`` once the socket listens (for supervisors and
    tests). ``alongside`` runs as a task next to the server (a witness's poll loop);
    if it ends first the server stops too and what ended it is re-raised.
    Cleanup lets in-flight requests finish their commits, then runs the app's
    cleanup hooks (a hop stops its forwarder and drains its log). With a
    ``tls`` listener context the socket speaks TLS only, and renewed certificate
    files are picked up while serving (:class:`gateway.tls.CertificateReloader`).
    """
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=30.0)
    await runner.setup()
    ssl_context = tls.server if tls is not None else None
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    on_listening()
    if ready_file is not None:
        ready_file.write_text(f"{host}:{port}\n", encoding="utf-8")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if alongside is not None:
        tasks.append(asyncio.create_task(alongside))
    if tls is not None and tls.server is not None:
        tasks.append(asyncio.create_task(CertificateReloader(tls).run(), name="tls-reload"))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping", listen=f"{host}:{port}")
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # re-raises what ended the ``alongside`` task, if it failed
        await runner.cleanup()
