"""Fixtures shared across test packages."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.support.agencies import Agencies, start_agencies
from tests.support.fake_log import FakeLog

# Worker threads that exit by themselves at interpreter shutdown.
_POOL_THREADS = ("ThreadPoolExecutor", "asyncio_")
_exit_status: int = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status  # noqa: PLW0603 - the status is only known here, and only needed in unconfigure
    _exit_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Never let a leaked non-daemon thread (an unclosed aiosqlite connection, say) hang the run after it ends.

    Such a leak is a bug, and is reported (ResourceWarning is an error here); the
    process then exits with the session's status, or 3 if the session passed.
    """
    stray = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon or thread.name.startswith(_POOL_THREADS):
            continue
        thread.join(1.0)
        if thread.is_alive():
            stray.append(thread.name)
    if stray:
        sys.stdout.flush()
        sys.stderr.write(f"\nleaked non-daemon threads would hang the exit: {', '.join(stray)}\n")
        sys.stderr.flush()
        os._exit(_exit_status or 3)


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Agencies]:
    """Two gateways and four real agency nodes on 127.0.0.1 (tests/support/agencies.py), closed afterwards."""
    a = await start_agencies(tmp_path)
    try:
        yield a
    finally:
        await a.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeLog]:
    """A log read API on 127.0.0.1 that the test controls (tests/support/fake_log.py)."""
    log = FakeLog()
    server = TestServer(log.app(), host="127.0.0.1")
    await server.start_server()
    log.url = str(server.make_url("/"))
    try:
        yield log
    finally:
        await server.close()
