"""Fixtures: a real emulator on loopback, and an API client holding a valid token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from tests.integration.emulator.helpers import bearer_client


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    """An emulator without the rate limit (tests that want it turn it on)."""
    with running_emulator(rate_limit=0) as handle:
        yield handle


@pytest.fixture
def api(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    """An httpx client with a fresh access token of the seeded user."""
    tokens = emulator.obtain_tokens()
    with bearer_client(emulator, tokens["access_token"]) as client:
        yield client
