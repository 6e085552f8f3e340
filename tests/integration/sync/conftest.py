"""Fixtures: a home wired to a running emulator, on SQLite and PostgreSQL with the home
folder as storage, and on SQLite with a bucket of a real S3-compatible server (moto) as
the shared storage (``sqlite-s3``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(params=["sqlite", "postgres", "sqlite-s3"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The control database: SQLite in the home folder (twice: home or bucket storage) or
    PostgreSQL."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_schema_url")
        return url
    return None


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, request: pytest.FixtureRequest) -> Settings:
    storage: dict[str, str] = {}
    if request.node.callspec.params.get("database_url") == "sqlite-s3":
        storage = request.getfixturevalue("s3_settings")
    return Settings(
        home=tmp_path / "home", database_url=database_url, secret_key=None, user=None, **storage
    )


@pytest.fixture
def ctx(settings: Settings, emulator: EmulatorHandle) -> Iterator[Context]:
    """An initialised home pointed at the emulator, on each control database and storage."""
    context = _initialised(emulator_settings(settings, emulator))
    yield context
    context.close()


#: Modules whose bucket variant runs in ``make test``: the snapshot on the bucket, whole
#: runs, kills and replaces, readings. The others' bucket variants run with
#: AUDIENCESYNC_TEST_S3_ALL=1 (``make test-storage``): the whole suite twice costs ~15 min
#: more than CI's budget allows.
S3_IN_MAKE_TEST = frozenset(
    {"test_snapshot", "test_runs", "test_resilience", "test_resilience_replace",
     "test_audience_readings", "test_many_machines"}
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("AUDIENCESYNC_TEST_S3_ALL") == "1":
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("database_url") != "sqlite-s3":
            continue
        if Path(str(item.fspath)).stem not in S3_IN_MAKE_TEST:
            item.add_marker(
                pytest.mark.skip(
                    reason="the bucket variant of this module runs in `make test-storage` "
                    "(AUDIENCESYNC_TEST_S3_ALL=1); make test runs it for the snapshot, runs, "
                    "kills, replaces and readings"
                )
            )
