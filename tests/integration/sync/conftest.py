"""Fixtures: a home (SQLite and PostgreSQL) wired to a running emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audiencesync.control.context import Context
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.settings import Settings
from tests.conftest import _initialised
from tests.snap_helpers import emulator_settings


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def ctx(settings: Settings, emulator: EmulatorHandle) -> Iterator[Context]:
    """An initialised home pointed at the emulator, on SQLite and on PostgreSQL."""
    context = _initialised(emulator_settings(settings, emulator))
    yield context
    context.close()
