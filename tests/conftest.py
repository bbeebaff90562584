"""Fixtures shared across test packages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.agencies import Agencies, start_agencies


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Agencies]:
    """Two gateways and four real agency nodes on 127.0.0.1 (tests/support/agencies.py), closed afterwards."""
    a = await start_agencies(tmp_path)
    try:
        yield a
    finally:
        await a.close()
