"""DuckDB's memory budget and threads follow the machine unless settings say otherwise."""

from __future__ import annotations

import os

import duckdb
import psutil
import pytest

from audiencesync import duck
from audiencesync.errors import UserInputError


def _setting(name: str) -> str:
    with duck.connect() as con:
        row = con.execute(f"SELECT current_setting('{name}')").fetchone()
    assert row is not None
    return str(row[0])


def test_the_budget_is_a_share_of_the_machine_and_threads_its_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUDIENCESYNC_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("AUDIENCESYNC_DUCKDB_THREADS", raising=False)
    total_mb = psutil.virtual_memory().total // 2**20
    expected_mb = min(1024, max(256, total_mb // 16))
    assert duck.memory_limit() == f"{expected_mb}MB"
    assert _setting("threads") == str(len(os.sched_getaffinity(0)))
    # The connection runs with that budget (DuckDB shows it in its own units).
    reference = duckdb.connect(config={"memory_limit": f"{expected_mb}MB"})
    shown = reference.execute("SELECT current_setting('memory_limit')").fetchone()
    reference.close()
    assert shown is not None
    assert _setting("memory_limit") == shown[0]


def test_settings_override_the_budget_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIENCESYNC_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("AUDIENCESYNC_DUCKDB_THREADS", "1")
    assert _setting("threads") == "1"
    assert _setting("memory_limit") in {"286.1 MiB", "300.0 MB"}


def test_a_bad_thread_count_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIENCESYNC_DUCKDB_THREADS", "many")
    with pytest.raises(UserInputError, match="AUDIENCESYNC_DUCKDB_THREADS must be a whole"):
        duck.config()
