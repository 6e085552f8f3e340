"""Fixtures for segments: a people dataset imported into Parquet and linked in PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.profiles import linked, store
from audiencesync.settings import Settings
from tests.conftest import _initialised, own_postgres_database

#: The instant every relative date in these tests is measured from.
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
_N = NOW.replace(tzinfo=None)

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("age", pa.int64()),
        ("score", pa.float64()),
        ("price", pa.decimal128(10, 2)),
        ("country", pa.string()),
        ("email", pa.string()),
        ("vip", pa.bool_()),
        ("birthday", pa.date32()),
        ("renewal", pa.date32()),
        ("last_order", pa.timestamp("us")),
        ("signed_up", pa.timestamp("us", tz="UTC")),
    ]
)


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _tz(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# id, age, score, price, country, email, vip, birthday, renewal, last_order, signed_up
PEOPLE: list[tuple[object, ...]] = [
    (1, 25, 1.5, Decimal("9.99"), "US", "Ann@Example.com", True, _d("1999-05-01"),
     _d("2026-11-21"), _N - timedelta(days=1), _tz("2026-11-20T00:00:00")),
    (2, 35, 2.5, Decimal("19.99"), "GB", "bob@mail.co.uk", False, _d("1989-02-10"),
     _d("2026-11-20"), _N - timedelta(days=10), _tz("2025-01-01T00:00:00")),
    (3, None, None, None, None, None, None, None, None, None, None),
    (4, 50, 3.0, Decimal("0.50"), "FR", "carol@example.org", True, _d("1976-12-31"),
     _d("2026-11-28"), _N - timedelta(days=100), _tz("2024-06-01T00:00:00")),
    (5, 17, 0.0, Decimal("100.00"), "US", "dave@EXAMPLE.com", False, _d("2009-01-01"),
     _d("2026-11-29"), _N - timedelta(hours=3), _tz("2026-11-28T06:00:00")),
    (6, 64, -1.25, Decimal("19.99"), "DE", "eve@web.de", True, _d("1962-07-04"),
     _d("2020-05-05"), datetime(2020, 1, 1), _tz("2019-01-01T00:00:00")),
    (7, 30, 10.0, Decimal("5.00"), "GB", "frank@example.com", None, _d("1996-11-25"),
     None, _N + timedelta(days=2), None),
    (8, 45, 5.5, None, "us", "grace@sample.net", False, None,
     None, _N - timedelta(days=30), _tz("2026-10-01T00:00:00")),
]  # fmt: skip

PG_COLUMNS = (
    "id bigint primary key, age bigint, score double precision, price numeric(10,2), "
    "country text, email text, vip boolean, birthday date, renewal date, "
    "last_order timestamp, signed_up timestamptz"
)


def people_table(rows: list[tuple[object, ...]] = PEOPLE) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table(
        {f.name: pa.array(list(c), f.type) for f, c in zip(SCHEMA, columns, strict=True)}
    )


def new_home(path: Path) -> Context:
    settings = Settings(home=path / "home", database_url=None, secret_key=None, user=None)
    return _initialised(settings)


def admin_of(ctx: Context) -> Actor:
    from audiencesync.control import users

    return users.resolve_actor(ctx, "admin")


def import_people(ctx: Context, actor: Actor, folder: Path, name: str = "people") -> None:
    path = folder / f"{name}.parquet"
    pq.write_table(people_table(), path)
    store.import_file(ctx, actor, path, key="id", name=name)


@pytest.fixture(scope="module")
def pg_base_url() -> Iterator[str]:
    """A database of the module's own for the linked tables (see own_postgres_database)."""
    with own_postgres_database("seg_") as url:
        yield url


def create_pg_schema(base_url: str, rows: list[tuple[object, ...]] = PEOPLE) -> str:
    """A fresh schema holding table ``people`` with ``rows``; returns the schema name."""
    schema = f"seg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(f"CREATE TABLE {schema}.people ({PG_COLUMNS})")
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {schema}.people VALUES ({', '.join(['%s'] * 11)})", rows
            )
    return schema


def drop_pg_schema(base_url: str, schema: str) -> None:
    with psycopg.connect(base_url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def search_path_url(base_url: str, schema: str) -> str:
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema(pg_base_url: str) -> Iterator[str]:
    schema = create_pg_schema(pg_base_url)
    yield schema
    drop_pg_schema(pg_base_url, schema)


@pytest.fixture
def home(sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], tmp_path: Path) -> Context:
    """A SQLite home with dataset ``people`` imported (and carol, victor)."""
    import_people(sqlite_ctx, sqlite_actors[Role.ADMIN], tmp_path)
    return sqlite_ctx


def link_people(ctx: Context, actor: Actor, base_url: str, schema: str, name: str) -> None:
    linked.link_url(
        ctx, actor, name, url=search_path_url(base_url, schema), table="people", key="id"
    )
