"""Fixtures shared across test packages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.support.agencies import Agencies, start_agencies
from tests.support.fake_log import FakeLog


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
