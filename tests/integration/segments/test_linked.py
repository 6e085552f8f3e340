"""Linked PostgreSQL tables as datasets: link, checks, secrets, sample, refresh, remove."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from audiencesync.control.audit import list_entries
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Role, Source
from audiencesync.control.permissions import Actor
from audiencesync.errors import ConflictError, PermissionDeniedError, UserInputError
from audiencesync.profiles import linked, store
from audiencesync.segments import count_segment, create_segment, load_rules_text
from tests.integration.segments.conftest import NOW, search_path_url


def with_password(url: str, password: str) -> str:
    # The test server trusts local connections, so any password is accepted (and ignored).
    scheme, rest = url.split("://", 1)
    user, at, host = rest.partition("@")
    return f"{scheme}://{user}:{password}@{host}" if at else url


@pytest.fixture
def admin(sqlite_actors: dict[Role, Actor]) -> Actor:
    return sqlite_actors[Role.ADMIN]


def test_a_link_is_a_dataset_whose_url_is_kept_secret(
    sqlite_ctx: Context, admin: Actor, pg_base_url: str, pg_schema: str
) -> None:
    url = with_password(search_path_url(pg_base_url, pg_schema), "s3cret-pw")
    view = linked.link_url(sqlite_ctx, admin, "crm", url=url, table="people", key="id")
    assert (view.kind, view.key_column, view.row_count) == ("link", "id", 8)
    assert view.column_names[:3] == ["id", "age", "score"]
    types = {c.name: c.type for c in view.columns}
    assert types["country"] == "VARCHAR"
    assert types["signed_up"] == "TIMESTAMPTZ"
    assert "s3cret-pw" not in view.source
    assert view.source == "source crm table people"
    with sqlite_ctx.db.session() as session:
        row = session.scalar(select(Source).where(Source.name == "crm"))
        assert row is not None
        assert "s3cret-pw" not in row.url_encrypted + row.location
        assert sqlite_ctx.secrets.decrypt(row.url_encrypted) == url
    for entry in list_entries(sqlite_ctx, admin, target="dataset:crm"):
        assert "s3cret-pw" not in str(entry.before) + str(entry.after)
    assert [d.kind for d in store.list_datasets(sqlite_ctx, admin)] == ["link"]
    assert store.get_dataset(sqlite_ctx, admin, "crm").source == view.source


def test_schema_qualified_tables_sample_refresh_and_remove(
    sqlite_ctx: Context, admin: Actor, pg_base_url: str, pg_schema: str
) -> None:
    linked.link_url(
        sqlite_ctx, admin, "crm", url=pg_base_url, table=f"{pg_schema}.people", key="id"
    )
    sample = store.sample(sqlite_ctx, admin, "crm", limit=3)
    assert sample.column("id").to_pylist() == [1, 2, 3]
    with psycopg.connect(pg_base_url, autocommit=True) as connection:
        connection.execute(f"INSERT INTO {pg_schema}.people (id, age) VALUES (9, 70)")
        connection.execute(f"ALTER TABLE {pg_schema}.people ADD COLUMN tier text")
    refreshed = store.refresh(sqlite_ctx, admin, "crm")
    assert refreshed.row_count == 9
    assert refreshed.column_names[-1] == "tier"
    store.remove(sqlite_ctx, admin, "crm")
    assert store.list_datasets(sqlite_ctx, admin) == []


def test_columns_are_read_again_on_use(
    sqlite_ctx: Context, admin: Actor, pg_base_url: str, pg_schema: str
) -> None:
    linked.link_url(
        sqlite_ctx,
        admin,
        "crm",
        url=search_path_url(pg_base_url, pg_schema),
        table="people",
        key="id",
    )
    with psycopg.connect(pg_base_url, autocommit=True) as connection:
        connection.execute(f"ALTER TABLE {pg_schema}.people ADD COLUMN tier text")
        connection.execute(f"UPDATE {pg_schema}.people SET tier = 'gold' WHERE id IN (2, 4)")
    rules = load_rules_text("{field: tier, op: '=', value: gold}")
    create_segment(sqlite_ctx, admin, "gold", dataset="crm", rules=rules)
    assert count_segment(sqlite_ctx, admin, "gold", now=NOW).size == 2
    assert "tier" in store.get_dataset(sqlite_ctx, admin, "crm").column_names
    with pytest.raises(ConflictError, match=r"dataset 'crm' is used by segment\(s\) gold"):
        store.remove(sqlite_ctx, admin, "crm")


def test_link_checks_each_say_what_to_do(
    sqlite_ctx: Context, admin: Actor, pg_base_url: str, pg_schema: str, tmp_path: Path
) -> None:
    url = search_path_url(pg_base_url, pg_schema)
    with pytest.raises(
        UserInputError, match=r"there is no table 'peeple' in that source; did you mean people"
    ):
        linked.link_url(sqlite_ctx, admin, "crm", url=url, table="peeple", key="id")
    with pytest.raises(
        UserInputError, match=r"table 'people' has no column 'idd'; did you mean id"
    ):
        linked.link_url(sqlite_ctx, admin, "crm", url=url, table="people", key="idd")
    with pytest.raises(UserInputError) as caught:
        linked.link_url(sqlite_ctx, admin, "crm", url=url, table="people", key="country")
    assert caught.value.message == (
        "1 row(s) of table 'people' have no value in key column 'country': choose a key that "
        "is never empty."
    )
    with psycopg.connect(pg_base_url, autocommit=True) as connection:
        connection.execute(
            f"CREATE TABLE {pg_schema}.dupes AS SELECT * FROM (VALUES (1), (1), (2)) v(k)"
        )
    with pytest.raises(UserInputError) as caught:
        linked.link_url(sqlite_ctx, admin, "crm", url=url, table="dupes", key="k")
    assert caught.value.message == (
        "1 row(s) of table 'dupes' repeat a value of key column 'k': choose a column that "
        "identifies one profile per row."
    )
    with pytest.raises(UserInputError) as caught:
        linked.link_url(
            sqlite_ctx, admin, "crm", url="postgresql://me:pw-123@127.0.0.1:1/x", table="t", key="k"
        )
    # The backend and host/database only, as source lists show: no URL, user or password.
    assert caught.value.message.startswith("cannot connect to postgresql 127.0.0.1:1/x: ")
    assert "pw-123" not in caught.value.message
    assert "me:" not in caught.value.message
    with pytest.raises(UserInputError, match=r"sources may be PostgreSQL, SQLite or DuckDB"):
        linked.link_url(sqlite_ctx, admin, "crm", url="nosuch://h/d", table="t", key="k")
    csv = tmp_path / "people.csv"
    csv.write_text("id,age\n1,3\n", encoding="utf-8")
    store.import_file(sqlite_ctx, admin, csv, key="id")
    with pytest.raises(ConflictError, match=r"'people' is an imported dataset"):
        linked.link_url(sqlite_ctx, admin, "people", url=url, table="people", key="id")
    with sqlite_ctx.db.session() as session:
        assert [d.name for d in session.scalars(select(Dataset))] == ["people"]


def test_viewers_cannot_link(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], pg_base_url: str
) -> None:
    with pytest.raises(PermissionDeniedError):
        linked.link_url(
            sqlite_ctx, sqlite_actors[Role.VIEWER], "crm", url=pg_base_url, table="t", key="k"
        )
