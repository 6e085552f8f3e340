"""Spark as a source: a local session over a warehouse folder (PySpark in local mode).

The same people are imported into the Parquet store (read by DuckDB) and written as a
Parquet table folder in a Spark warehouse linked as ``spark://local``; counts, previews
and members must agree, members must come through Parquet Spark writes (never the
driver), and an export over the Spark dataset must leave the emulator audience exact.
One SparkSession serves the whole module (it takes seconds to start).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audiencesync.control.context import Context
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.errors import UserInputError
from audiencesync.identifiers import hash_value
from audiencesync.profiles import linked
from audiencesync.segments import (
    KEY_COLUMN,
    count_segment,
    create_segment,
    explain_segment,
    load_rules_text,
    preview_segment,
    stream_members,
)
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.conftest import _initialised
from tests.integration.segments.conftest import NOW, admin_of, import_people, people_table
from tests.snap_helpers import connect, emulator_settings

pytestmark = pytest.mark.slow

RULES = {
    "us_or_gb": ("{field: country, op: in, value: [US, GB]}", {1, 2, 5, 7}),
    "adults": ("{field: age, op: '>=', value: 18}", {1, 2, 4, 6, 7, 8}),
    "recent": ("{field: last_order, op: in the last, value: 90 days}", {1, 2, 5, 8}),
    "vip_or_old": (
        "{any: [{field: age, op: '>', value: 60}, {field: vip, op: '=', value: true}]}",
        {1, 4, 6},
    ),
    "adult_uk": ("{all: [{segment: adults}, {field: country, op: '=', value: GB}]}", {2, 7}),
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("warehouse")
    (folder / "people").mkdir()
    pq.write_table(people_table(), folder / "people" / "part-00000.parquet")
    return folder


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


@pytest.fixture(scope="module")
def spark_home(
    tmp_path_factory: pytest.TempPathFactory, warehouse: Path, emulator: EmulatorHandle
) -> Iterator[Context]:
    from audiencesync.settings import Settings

    folder = tmp_path_factory.mktemp("spark-home")
    settings = Settings(
        home=folder / "home", database_url=None, secret_key=None, user=None,
        spark_warehouse=warehouse,
    )  # fmt: skip
    ctx = _initialised(emulator_settings(settings, emulator))
    admin = admin_of(ctx)
    import_people(ctx, admin, folder, name="file_people")
    linked.link_url(ctx, admin, "spark_people", url="spark://local", table="people", key="id")
    for dataset in ("file_people", "spark_people"):
        for name, (rules, _) in RULES.items():
            text = rules.replace("segment: adults", f"segment: adults_{dataset}")
            create_segment(
                ctx, admin, f"{name}_{dataset}", dataset=dataset, rules=load_rules_text(text)
            )
    yield ctx
    ctx.close()


def _keys(ctx: Context, names: list[str]) -> tuple[pa.Table, set[int]]:
    fields = [n for n in people_table().column_names if n != "id"]
    with stream_members(ctx, names, fields, batch_rows=3, now=NOW) as stream:
        table = pa.Table.from_batches(list(stream), schema=stream.schema)
    return table, set(table.column(KEY_COLUMN).to_pylist())


def test_link_reads_the_warehouse_table_columns_and_rows(spark_home: Context) -> None:
    view = linked.refresh_link(spark_home, admin_of(spark_home), "spark_people")
    assert view.row_count == 8
    assert view.column_names == people_table().column_names


@pytest.mark.parametrize("name", sorted(RULES))
def test_counts_previews_and_members_match_the_file_dataset(spark_home: Context, name: str) -> None:
    admin = admin_of(spark_home)
    expected = RULES[name][1]
    spark_count = count_segment(spark_home, admin, f"{name}_spark_people", now=NOW)
    file_count = count_segment(spark_home, admin, f"{name}_file_people", now=NOW)
    assert spark_count.engine == "pyspark"
    assert spark_count.size == file_count.size == len(expected)
    preview = preview_segment(spark_home, admin, f"{name}_spark_people", limit=2, now=NOW)
    assert preview.rows.column("id").to_pylist() == sorted(expected)[:2]
    spark_rows, spark_keys = _keys(spark_home, [f"{name}_spark_people"])
    file_rows, file_keys = _keys(spark_home, [f"{name}_file_people"])
    assert spark_keys == file_keys == expected
    assert _rows(spark_rows) == _rows(file_rows)


def _rows(table: pa.Table) -> list[dict[str, object]]:
    """Rows by key; instants as naive UTC (Ibis types Spark's TIMESTAMP without a zone,
    though Spark keeps it as a UTC instant, which is what the session's zone makes it)."""
    rows = table.sort_by(KEY_COLUMN).to_pylist()
    for row in rows:
        for name, value in row.items():
            if isinstance(value, datetime) and value.tzinfo is not None:
                row[name] = value.astimezone(UTC).replace(tzinfo=None)
    return rows


def test_explain_counts_each_rule_in_spark(spark_home: Context) -> None:
    tree = explain_segment(spark_home, admin_of(spark_home), "vip_or_old_spark_people", now=NOW)
    assert tree.count == 3
    assert sorted(child.count for child in tree.children) == [1, 3]


def test_union_members_come_through_parquet_and_leave_no_scratch(spark_home: Context) -> None:
    names = ["us_or_gb_spark_people", "vip_or_old_spark_people"]
    _, keys = _keys(spark_home, names)
    assert keys == {1, 2, 4, 5, 6, 7}
    exchange = spark_home.settings.resolved_home / "scratch" / "spark"
    assert exchange.is_dir()
    assert list(exchange.iterdir()) == []  # each result folder is removed once read


def test_a_new_table_in_the_warehouse_is_seen_without_restarting(
    spark_home: Context, warehouse: Path
) -> None:
    (warehouse / "later").mkdir()
    pq.write_table(people_table().slice(0, 3), warehouse / "later" / "part-0.parquet")
    view = linked.link_url(
        spark_home, admin_of(spark_home), "later", url="spark://local", table="later", key="id"
    )
    assert view.row_count == 3


def test_a_missing_table_or_a_bad_spark_url_is_one_sentence(spark_home: Context) -> None:
    admin = admin_of(spark_home)
    with pytest.raises(UserInputError, match="no table 'nothing'"):
        linked.link_url(spark_home, admin, "nope", url="spark://local", table="nothing", key="id")
    with pytest.raises(UserInputError, match=r"must be spark://local"):
        linked.link_url(spark_home, admin, "nope2", url="spark://elsewhere", table="x", key="id")


def test_export_of_a_spark_dataset_leaves_the_audience_exact(
    spark_home: Context, emulator: EmulatorHandle
) -> None:
    admin = admin_of(spark_home)
    connect(spark_home, admin, "Snap", share=True)
    audience = str(emulator.create_segment_directly("Spark people")["id"])
    exports.add_export(
        spark_home, admin,
        ExportSpec(name="spark", connection="Snap", segments=("us_or_gb_spark_people",),
                   email_field="email", audience_id=audience),
    )  # fmt: skip
    view = runs.run_now(spark_home, admin, "spark")
    assert view.status == "succeeded", view.error
    emails = [r["email"] for r in people_table().to_pylist() if r["id"] in {1, 2, 5, 7}]
    expected = {hash_value(IdentifierType.EMAIL, e) for e in emails}
    assert emulator.members(audience, "EMAIL_SHA256") == expected
    again = runs.run_now(spark_home, admin, "spark")
    assert again.status == "succeeded", again.error
    assert again.counts["planned_adds"] == {}
    assert again.counts["planned_removes"] == {}
