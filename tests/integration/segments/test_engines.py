"""Every operator and group kind gives the same members on DuckDB and on PostgreSQL.

The same rows are imported into the Parquet store (read by DuckDB) and loaded into a
PostgreSQL table linked as a dataset; each case is created as a segment over both and
must select exactly the expected profiles on each engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.segments import (
    KEY_COLUMN,
    AllGroup,
    AnyGroup,
    Condition,
    NotGroup,
    Operator,
    SegmentRef,
    count_segment,
    create_segment,
    load_rules_text,
    preview_segment,
    segment_sql,
    stream_members,
)
from audiencesync.segments.rules import walk
from tests.integration.segments.conftest import (
    NOW,
    admin_of,
    create_pg_schema,
    drop_pg_schema,
    import_people,
    link_people,
    new_home,
)


@dataclass(frozen=True)
class Case:
    id: str
    rules: str
    members: frozenset[int]


def case(id_: str, rules: str, *members: int) -> Case:
    return Case(id_, rules, frozenset(members))


CASES = [
    # Comparison operators on each type.
    case("eq_integer", "{field: age, op: '=', value: 35}", 2),
    case("eq_text_is_case_sensitive", "{field: country, op: '=', value: US}", 1, 5),
    case("eq_boolean", "{field: vip, op: '=', value: true}", 1, 4, 6),
    case("eq_date", "{field: birthday, op: '=', value: 1999-05-01}", 1),
    case("eq_decimal", "{field: price, op: '=', value: 19.99}", 2, 6),
    case("ne_text_skips_missing", "{field: country, op: '!=', value: US}", 2, 4, 6, 7, 8),
    case("ne_boolean", "{field: vip, op: '!=', value: true}", 2, 5, 8),
    case("lt_integer", "{field: age, op: '<', value: 30}", 1, 5),
    case("le_integer", "{field: age, op: '<=', value: 30}", 1, 5, 7),
    case("gt_float", "{field: score, op: '>', value: 2.5}", 4, 7, 8),
    case("ge_decimal", "{field: price, op: '>=', value: '19.99'}", 2, 5, 6),
    case("gt_timestamp", "{field: last_order, op: '>', value: '2026-11-01'}", 1, 2, 5, 7),
    case("lt_timestamptz", "{field: signed_up, op: '<', value: '2025-01-01T00:00:00Z'}", 4, 6),
    case("between_integer", "{field: age, op: between, value: [30, 50]}", 2, 4, 7, 8),
    case("between_float", "{field: score, op: between, value: [-2, 1.5]}", 1, 5, 6),
    case(
        "between_date", "{field: birthday, op: between, value: [1980-01-01, 2000-01-01]}", 1, 2, 7
    ),
    case("in_text", "{field: country, op: in, value: [US, GB]}", 1, 2, 5, 7),
    case("in_integer", "{field: age, op: in, value: [17, 64]}", 5, 6),
    case("in_date", "{field: renewal, op: in, value: [2026-11-20, 2026-11-28]}", 2, 4),
    case("not_in_text", "{field: country, op: not in, value: [US, GB]}", 4, 6, 8),
    case("not_in_integer", "{field: age, op: not in, value: [25, 35, 45]}", 4, 5, 6, 7),
    case("contains_ignores_case", "{field: email, op: contains, value: example}", 1, 4, 5, 7),
    case("starts_with_ignores_case", "{field: email, op: starts with, value: B}", 2),
    case("ends_with_ignores_case", "{field: email, op: ends with, value: .COM}", 1, 5, 7),
    case("contains_percent_is_literal", "{field: email, op: contains, value: '%'}"),
    case("is_null", "{field: vip, op: is null}", 3, 7),
    case("is_not_null", "{field: birthday, op: is not null}", 1, 2, 4, 5, 6, 7),
    # Relative dates, measured from NOW = 2026-11-28 12:00 UTC.
    case("in_the_last_days", "{field: last_order, op: in the last, value: 90 days}", 1, 2, 5, 8),
    case("in_the_last_hours", "{field: last_order, op: in the last, value: 12 hours}", 5),
    case("in_the_last_weeks", "{field: last_order, op: in the last, value: 2 weeks}", 1, 2, 5),
    case("in_the_last_timestamptz", "{field: signed_up, op: in the last, value: 30 days}", 1, 5),
    case("in_the_last_date", "{field: renewal, op: in the last, value: 7 days}", 1, 4),
    case("before_days_ago", "{field: last_order, op: before, value: 30 days ago}", 4, 6),
    case("before_days", "{field: last_order, op: before, value: 100 days}", 6),
    case("before_date", "{field: renewal, op: before, value: 1 week ago}", 2, 6),
    case("before_timestamptz", "{field: signed_up, op: before, value: 52 weeks}", 2, 4, 6),
    # Groups, nesting and references.
    case(
        "all",
        "{all: [{field: country, op: in, value: [US, GB]}, {field: age, op: '>=', value: 18}]}",
        1, 2, 7,
    ),
    case(
        "any",
        "{any: [{field: age, op: '>', value: 60}, {field: vip, op: '=', value: true}]}",
        1, 4, 6,
    ),
    case("not_includes_missing", "{not: {field: country, op: '=', value: US}}", 2, 3, 4, 6, 7, 8),
    case("not_not", "{not: {not: {field: country, op: '=', value: US}}}", 1, 5),
    case("segment", "{segment: adults_ENGINE}", 1, 2, 4, 6, 7, 8),
    case("union", "{any: [{segment: adults_ENGINE}, {segment: uk_ENGINE}]}", 1, 2, 4, 6, 7, 8),
    case("intersect", "{all: [{segment: adults_ENGINE}, {segment: uk_ENGINE}]}", 2, 7),
    case("except", "{all: [{segment: adults_ENGINE}, {not: {segment: uk_ENGINE}}]}", 1, 4, 6, 8),
    case("reference_of_reference", "{segment: adult_uk_ENGINE}", 2, 7),
    case(
        "issue_example",
        """
        any:
          - all:
              - {field: age, op: between, value: [30, 50]}
              - {field: country, op: in, value: [US, GB]}
          - all:
              - {field: last_order, op: in the last, value: 90 days}
              - not: {segment: uk_ENGINE}
        """,
        1, 2, 5, 7, 8,
    ),
]  # fmt: skip

BASE_SEGMENTS = {
    "adults": "{field: age, op: '>=', value: 18}",
    "uk": "{field: country, op: '=', value: GB}",
    "adult_uk": "{all: [{segment: adults_ENGINE}, {segment: uk_ENGINE}]}",
}


@dataclass
class Engines:
    ctx: Context
    admin: Actor
    datasets: dict[str, str]


def _add_base_segments(engines: Engines, engine: str) -> None:
    for name, rules in BASE_SEGMENTS.items():
        create_segment(
            engines.ctx,
            engines.admin,
            f"{name}_{engine}",
            dataset=engines.datasets[engine],
            rules=load_rules_text(rules.replace("ENGINE", engine)),
        )


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    folder = tmp_path_factory.mktemp("engines")
    ctx = new_home(folder)
    admin = admin_of(ctx)
    import_people(ctx, admin, folder)
    found = Engines(ctx, admin, {"duckdb": "people"})
    _add_base_segments(found, "duckdb")
    yield found
    ctx.close()


@pytest.fixture(scope="module")
def with_postgres(engines: Engines, pg_base_url: str) -> Iterator[Engines]:
    schema = create_pg_schema(pg_base_url)
    link_people(engines.ctx, engines.admin, pg_base_url, schema, "people_pg")
    engines.datasets["postgres"] = "people_pg"
    _add_base_segments(engines, "postgres")
    yield engines
    drop_pg_schema(pg_base_url, schema)


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest, engines: Engines) -> tuple[Engines, str]:
    if request.param == "postgres":
        request.getfixturevalue("with_postgres")
    return engines, str(request.param)


def members_of(ctx: Context, segment: str) -> frozenset[int]:
    with stream_members(ctx, [segment], [], now=NOW) as stream:
        keys = [k for batch in stream for k in batch.column(KEY_COLUMN).to_pylist()]
    assert len(keys) == len(set(keys))
    return frozenset(keys)


@pytest.mark.parametrize("spec", CASES, ids=[c.id for c in CASES])
def test_same_members_on_every_engine(spec: Case, engine: tuple[Engines, str]) -> None:
    engines, name = engine
    segment = f"{spec.id}_{name}"
    create_segment(
        engines.ctx,
        engines.admin,
        segment,
        dataset=engines.datasets[name],
        rules=load_rules_text(spec.rules.replace("ENGINE", name)),
    )
    assert members_of(engines.ctx, segment) == spec.members
    counted = count_segment(engines.ctx, engines.admin, segment, now=NOW)
    assert counted.size == len(spec.members)
    assert counted.engine == name
    preview = preview_segment(engines.ctx, engines.admin, segment, now=NOW, fields=["id"])
    assert preview.rows.column("id").to_pylist() == sorted(spec.members)


def test_every_operator_and_group_kind_is_covered() -> None:
    nodes = [n for c in CASES for _, n in walk(load_rules_text(c.rules.replace("ENGINE", "x")))]
    assert {n.op for n in nodes if isinstance(n, Condition)} == set(Operator)
    assert {type(n) for n in nodes} == {Condition, AllGroup, AnyGroup, NotGroup, SegmentRef}


def test_show_sql_speaks_each_engines_dialect(engine: tuple[Engines, str]) -> None:
    engines, name = engine
    sql = segment_sql(engines.ctx, engines.admin, f"adult_uk_{name}", now=NOW)
    assert sql.startswith("SELECT")
    assert '"age" >= 18' in sql
    assert "'GB'" in sql
    assert 'FROM "people"' in sql


def test_relative_dates_follow_the_injected_now(engines: Engines) -> None:
    create_segment(
        engines.ctx,
        engines.admin,
        "recent_shift",
        dataset="people",
        rules=load_rules_text("{field: last_order, op: in the last, value: 90 days}"),
    )
    later = datetime(2027, 2, 10, 12, 0, tzinfo=UTC)
    assert members_at(engines.ctx, "recent_shift", NOW) == {1, 2, 5, 8}
    # Seen from 2027-02-10 the window starts 2026-11-12: order 8 (2026-10-29) has left it
    # and order 7 (2026-11-30, in the future at NOW) has entered it.
    assert members_at(engines.ctx, "recent_shift", later) == {1, 2, 5, 7}


def members_at(ctx: Context, segment: str, now: datetime) -> set[int]:
    with stream_members(ctx, [segment], [], now=now) as stream:
        return {k for batch in stream for k in batch.column(KEY_COLUMN).to_pylist()}


def test_postgres_members_come_through_arrow_identical_to_the_file_path(
    with_postgres: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ibis.backends.postgres

    def tuple_by_tuple(*args: object, **kwargs: object) -> None:
        raise AssertionError("members were read through Ibis's fetchmany")

    # The file path (DuckDB) streams through Ibis; PostgreSQL must not.
    monkeypatch.setattr(ibis.backends.postgres.Backend, "to_pyarrow_batches", tuple_by_tuple)
    fields = ["email", "country", "age", "score", "price", "vip", "birthday", "last_order"]
    fields += ["signed_up"]
    rows = {}
    for name in ("duckdb", "postgres"):
        segments = [f"adults_{name}", f"uk_{name}"]
        with stream_members(with_postgres.ctx, segments, fields, batch_rows=2, now=NOW) as stream:
            table = pa.Table.from_batches(list(stream), schema=stream.schema)
        rows[name] = table.sort_by(KEY_COLUMN).to_pylist()
    assert [r[KEY_COLUMN] for r in rows["duckdb"]] == [1, 2, 4, 6, 7, 8]
    assert rows["postgres"] == rows["duckdb"]
