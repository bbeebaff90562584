"""Shared fixtures for the protocol tests: one seeded federation and a sealing helper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from protocol import envelope as env_mod
from protocol.header import Envelope
from tests.support.federation import T0, Federation, SeededRng, build_federation

HOUR = 3600 * 1000
SECTIONS = {"summary": b"Suspect vehicle heading north.", "details": b"Plate KDA 123X, two occupants.", "instructions": b"Hold and notify."}
TIERS = (
    env_mod.Tier(name="action", sections=("summary", "details", "instructions"), recipients=("ke-police",)),
    env_mod.Tier(name="inform", sections=("summary",), recipients=("fr-police", "ke-fiu")),
)


@pytest.fixture(scope="session")
def fed() -> Federation:
    return build_federation()


@pytest.fixture
def seal(fed: Federation) -> Callable[..., Envelope]:
    def _seal(**overrides: Any) -> Envelope:
        args: dict[str, Any] = {
            "sender": fed.keys["int-org"],
            "roster": fed.roster,
            "tiers": TIERS,
            "sections": SECTIONS,
            "priority": "FLASH",
            "label": "TLP:AMBER",
            "now": T0,
            "expires": T0 + HOUR,
            "rng": SeededRng("seal"),
        }
        args.update(overrides)
        return env_mod.seal(**args)

    return _seal
