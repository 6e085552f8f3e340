"""Shared fixtures: a home folder on SQLite or PostgreSQL, users of each role, the CLI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.control.db import Database
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.settings import Settings
from tests.s3_server import S3Server, running_s3

POSTGRES_URL = os.environ.get("AUDIENCESYNC_TEST_DATABASE_URL")
REQUIRE_POSTGRES = os.environ.get("AUDIENCESYNC_TEST_REQUIRE_POSTGRES") == "1"
PASSWORD = "correct horse battery"


def postgres_url_or_skip() -> str:
    """The test PostgreSQL URL; skip (or fail in CI) with a reason when none is set."""
    if POSTGRES_URL:
        return POSTGRES_URL
    reason = (
        "PostgreSQL tests need AUDIENCESYNC_TEST_DATABASE_URL=postgresql://user@host:port/db "
        "(.ci/run sets it up)"
    )
    if REQUIRE_POSTGRES:
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def own_postgres_database(prefix: str = "as_src_") -> Iterator[str]:
    """A PostgreSQL database of its own on the test server, dropped afterwards: where a
    test keeps a table it links as a profile source. Not a schema of the test database,
    since the link check refuses a database holding an audiencesync control schema, and
    under ``pytest -n`` other workers' control schemas live there."""
    base = postgres_url_or_skip()
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        base.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield base.split("?", 1)[0].rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    base = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base else "?"
    try:
        # application_name: a test can tell its own connections in pg_stat_activity.
        yield f"{base}{separator}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server, once per session (skips with a reason without moto)."""
    with running_s3() as server:
        yield server


@pytest.fixture
def s3_settings(s3_server: S3Server) -> dict[str, str]:
    """Settings fields for a fresh prefix of the test bucket (the credentials are in the
    environment while the server runs)."""
    return {"storage_url": s3_server.url(), "storage_endpoint_url": s3_server.endpoint}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None (SQLite in the home folder) or a PostgreSQL URL: control-layer tests run on both."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        secret_key=None,
        user=None,
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on SQLite only, for tests whose subject is not the control database."""
    return Settings(home=tmp_path / "home", database_url=None, secret_key=None, user=None)


def _initialised(settings: Settings) -> Context:
    settings.resolved_home.mkdir(parents=True, exist_ok=True)
    database = Database(settings.control_database_url)
    database.migrate()
    database.dispose()
    ctx = Context.open(settings)
    users.create_first_admin(ctx, "admin", PASSWORD)
    return ctx


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    """An initialised home (SQLite and PostgreSQL) with the first admin."""
    context = _initialised(settings)
    yield context
    context.close()


@pytest.fixture
def sqlite_ctx(sqlite_settings: Settings) -> Iterator[Context]:
    """An initialised home on SQLite with the first admin."""
    context = _initialised(sqlite_settings)
    yield context
    context.close()


def make_actors(context: Context) -> dict[Role, Actor]:
    admin = users.resolve_actor(context, "admin")
    users.add_user(context, admin, "carol", Role.CONTRIBUTOR, PASSWORD)
    users.add_user(context, admin, "victor", Role.VIEWER, PASSWORD)
    return {
        Role.ADMIN: admin,
        Role.CONTRIBUTOR: users.resolve_actor(context, "carol"),
        Role.VIEWER: users.resolve_actor(context, "victor"),
    }


@pytest.fixture
def actors(ctx: Context) -> dict[Role, Actor]:
    """admin (admin), carol (contributor), victor (viewer)."""
    return make_actors(ctx)


@pytest.fixture
def sqlite_actors(sqlite_ctx: Context) -> dict[Role, Actor]:
    return make_actors(sqlite_ctx)
