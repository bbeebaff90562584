"""Fixtures for the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.forwarder import ForwarderConfig
from tests.support.net import Net, start_net


@pytest.fixture
async def quiet_net(tmp_path: Path) -> AsyncIterator[Net]:
    """Two gateways and stand-in nodes whose sweep never fires on its own: the test drives it (net.drain)."""
    n = await start_net(tmp_path, queue=ForwarderConfig(sweep_interval_s=3600.0))
    try:
        yield n
    finally:
        await n.close()
