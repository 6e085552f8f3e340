"""Membership as a stream of Arrow batches: union, each profile once, bounded batches."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import select

from audiencesync.control.context import Context
from audiencesync.control.models import Role, SegmentEvaluation
from audiencesync.control.permissions import Actor
from audiencesync.errors import NotFoundError, UserInputError
from audiencesync.profiles import store
from audiencesync.segments import (
    KEY_COLUMN,
    count_segment,
    create_segment,
    load_rules_text,
    members,
    segment_history,
    stream_members,
)
from tests.integration.segments.conftest import NOW


@pytest.fixture
def admin(home: Context, sqlite_actors: dict[Role, Actor]) -> Actor:
    actor = sqlite_actors[Role.ADMIN]
    for name, rules in {
        "adults": "{field: age, op: '>=', value: 18}",
        "uk": "{field: country, op: '=', value: GB}",
        "vips": "{field: vip, op: '=', value: true}",
    }.items():
        create_segment(home, actor, name, dataset="people", rules=load_rules_text(rules))
    return actor


def read_all(stream: object) -> pa.Table:
    assert hasattr(stream, "schema")
    batches = list(stream)  # type: ignore[call-overload]
    return pa.Table.from_batches(batches, schema=stream.schema)


def test_one_segment_streams_key_and_fields(home: Context, admin: Actor) -> None:
    with stream_members(home, ["uk"], ["email", "country"], now=NOW) as stream:
        assert stream.schema.names == [KEY_COLUMN, "email", "country"]
        table = read_all(stream)
    assert sorted(table.to_pylist(), key=lambda r: r[KEY_COLUMN]) == [
        {KEY_COLUMN: 2, "email": "bob@mail.co.uk", "country": "GB"},
        {KEY_COLUMN: 7, "email": "frank@example.com", "country": "GB"},
    ]
    assert [(h.kind, h.size, h.actor) for h in segment_history(home, admin, "uk")] == [
        ("stream", 2, None)
    ]


def test_a_union_has_each_profile_once_and_records_each_size(home: Context, admin: Actor) -> None:
    with stream_members(home, ["adults", "uk", "vips", "uk"], ["id"], now=NOW) as stream:
        table = read_all(stream)
    keys = table.column(KEY_COLUMN).to_pylist()
    assert sorted(keys) == [1, 2, 4, 6, 7, 8]
    assert table.column_names == [KEY_COLUMN, "id"]
    sizes = {n: segment_history(home, admin, n)[0].size for n in ("adults", "uk", "vips")}
    assert sizes == {"adults": 6, "uk": 2, "vips": 3}


def test_the_key_may_be_requested_as_a_field_too(home: Context, admin: Actor) -> None:
    with stream_members(home, ["uk"], ["id", "id"], now=NOW) as stream:
        assert stream.schema.names == [KEY_COLUMN, "id"]
        assert read_all(stream).num_rows == 2


def test_bad_requests_are_refused_before_streaming(
    home: Context, admin: Actor, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match=r"has no field 'emali'; did you mean email\?"):
        stream_members(home, ["uk"], ["emali"])
    with pytest.raises(UserInputError, match=r"has no field '_as_key'"):
        stream_members(home, ["uk"], ["_as_key"])
    with pytest.raises(NotFoundError, match=r"there is no segment named 'nope'"):
        stream_members(home, ["uk", "nope"], [])
    with pytest.raises(UserInputError, match=r"name at least one segment"):
        stream_members(home, [], [])
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,total\n1,5\n2,9\n", encoding="utf-8")
    store.import_file(home, admin, orders, key="order_id")
    create_segment(
        home,
        admin,
        "big",
        dataset="orders",
        rules=load_rules_text("{field: total, op: '>', value: 6}"),
    )
    with pytest.raises(UserInputError) as caught:
        stream_members(home, ["uk", "big"], [])
    assert caught.value.message == (
        "segments of different datasets cannot be combined (uk (people), big (orders)): "
        "pick segments of one dataset."
    )


def test_a_stream_closed_early_records_nothing(home: Context, admin: Actor) -> None:
    stream = stream_members(home, ["adults"], [], batch_rows=1, now=NOW)
    first = next(stream)
    assert first.num_rows == 1
    stream.close()
    stream.close()
    with home.db.session() as session:
        assert session.scalars(select(SegmentEvaluation)).all() == []


def test_members_checks_the_reader_may_read(
    home: Context, admin: Actor, sqlite_actors: dict[Role, Actor]
) -> None:
    with members(home, sqlite_actors[Role.VIEWER], ["vips"], ["email"], now=NOW) as stream:
        assert read_all(stream).num_rows == 3


def test_streaming_is_in_bounded_batches(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], tmp_path: Path
) -> None:
    """Keep this test: ibis 12 streams only with duckdb 1.5.x (2.0 breaks to_pyarrow_batches)."""
    admin = sqlite_actors[Role.ADMIN]
    path = tmp_path / "many.parquet"
    duckdb.sql(
        "SELECT range AS id, 'p' || range || '@example.com' AS email, range % 100 AS age "
        "FROM range(300000)"
    ).write_parquet(str(path))
    store.import_file(sqlite_ctx, admin, path, key="id", name="many")
    create_segment(
        sqlite_ctx,
        admin,
        "most",
        dataset="many",
        rules=load_rules_text("{field: age, op: '>=', value: 10}"),
    )
    create_segment(
        sqlite_ctx,
        admin,
        "few",
        dataset="many",
        rules=load_rules_text("{field: age, op: '<', value: 5}"),
    )
    expected = count_segment(sqlite_ctx, admin, "most").size
    assert expected == 270_000
    rows = 0
    batches = 0
    seen: set[int] = set()
    with stream_members(sqlite_ctx, ["most", "few"], ["email"], batch_rows=20_000) as stream:
        for batch in stream:
            assert batch.num_rows <= 20_000
            assert batch.schema.names == [KEY_COLUMN, "email"]
            seen.update(batch.column(KEY_COLUMN).to_pylist())
            rows += batch.num_rows
            batches += 1
    assert rows == len(seen) == 285_000
    assert batches >= 285_000 // 20_000
    assert segment_history(sqlite_ctx, admin, "most")[0].size == 270_000
    assert segment_history(sqlite_ctx, admin, "few")[0].size == 15_000
