"""Fixtures of the security suite: the served app (tests/integration/api) with an import
folder listed in AUDIENCESYNC_IMPORT_FOLDERS, and a small SQLite database outside the
home to link from."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from audiencesync.settings import Settings
from tests.integration.api.conftest import api, ctx, emulator, profiles

__all__ = ["api", "ctx", "emulator", "profiles"]


@pytest.fixture
def import_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "allowed"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, import_folder: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        secret_key=None,
        user=None,
        import_folders=str(import_folder),
    )


@pytest.fixture
def crm_db(tmp_path: Path) -> Path:
    """A DuckDB file outside the home with table ``people`` (id, email)."""
    path = tmp_path / "crm.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute(
        "CREATE TABLE people (id INTEGER, email TEXT);"
        "INSERT INTO people VALUES (1, 'ann@example.com'), (2, 'bob@example.com');"
    )
    connection.close()
    return path


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    """A SQLite file outside the home with table ``people``."""
    path = tmp_path / "crm.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript("CREATE TABLE people (id INTEGER); INSERT INTO people VALUES (1);")
    connection.close()
    return path
