"""Importing profile files: formats, every bad input, and atomic replacement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import func, select

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import AuditEntry, Dataset, Role
from audiencesync.control.permissions import Actor
from audiencesync.errors import NotFoundError, PermissionDeniedError, UserInputError
from audiencesync.profiles import store
from audiencesync.profiles.formats import FileFormat
from audiencesync.wording import for_cli, for_web

CSV = "customer_id,email,phone,age\n1,Ann@Example.com ,+44 7700 900123,34\n2,bob@example.org,,51\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def rows(ctx: Context, name: str) -> list[tuple[object, ...]]:
    with duckdb.connect() as con:
        scan = ctx.storage.scan(con, store.parquet_key(ctx, name))
        return con.execute(f"SELECT * FROM {scan} ORDER BY 1").fetchall()


def snapshot_control(ctx: Context) -> tuple[list[tuple[object, ...]], int]:
    with ctx.db.session() as session:
        datasets = [
            (d.name, d.data_path, d.version, d.row_count, str(d.columns))
            for d in session.scalars(select(Dataset).order_by(Dataset.name))
        ]
        entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    return datasets, entries


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


def test_csv_import_lands_as_parquet_with_its_schema(
    ctx: Context, admin: Actor, tmp_path: Path
) -> None:
    view = store.import_file(ctx, admin, write(tmp_path / "Customers.csv", CSV), key="customer_id")
    assert view.name == "customers"
    assert view.row_count == 2
    assert view.column_names == ["customer_id", "email", "phone", "age"]
    assert store.parquet_key(ctx, "customers").endswith(".parquet")
    assert rows(ctx, "customers")[1] == (2, "bob@example.org", None, 51)
    listed = store.list_datasets(ctx, admin)
    assert [(d.name, d.row_count, d.source) for d in listed] == [
        ("customers", 2, str(tmp_path / "Customers.csv"))
    ]
    assert audit.list_entries(ctx, admin, target="dataset:customers")[0].action == "dataset.import"


@pytest.mark.parametrize(
    ("file_name", "content", "fmt"),
    [
        ("p.json", json.dumps([{"k": "a", "v": 1}, {"k": "b", "v": 2}]), None),
        ("p.ndjson", '{"k": "a", "v": 1}\n{"k": "b", "v": 2}\n', None),
        ("p.jsonl", '{"k": "a", "v": 1}\n{"k": "b", "v": 2}\n', None),
        ("p.data", "k;v\na;1\nb;2\n", FileFormat.CSV),
    ],
)
def test_formats_by_extension_or_flag(
    ctx: Context, admin: Actor, tmp_path: Path, file_name: str, content: str, fmt: FileFormat | None
) -> None:
    store.import_file(
        ctx, admin, write(tmp_path / file_name, content), key="k", name="p", file_format=fmt
    )
    assert rows(ctx, "p") == [("a", 1), ("b", 2)]


def test_parquet_import(ctx: Context, admin: Actor, tmp_path: Path) -> None:
    source = tmp_path / "p.parquet"
    duckdb.sql("SELECT 'a' AS k, 1 AS v UNION ALL SELECT 'b', 2").write_parquet(str(source))
    store.import_file(ctx, admin, source, key="k")
    assert rows(ctx, "p") == [("a", 1), ("b", 2)]


def test_delimiter_and_encoding(ctx: Context, admin: Actor, tmp_path: Path) -> None:
    latin = write(tmp_path / "l.csv", "id|name\n1|Zoë\n2|Åsa\n", encoding="cp1252")
    store.import_file(ctx, admin, latin, key="id", delimiter="|", encoding="cp1252")
    assert rows(ctx, "l") == [(1, "Zoë"), (2, "Åsa")]
    latin1 = write(tmp_path / "l1.csv", "id,name\n1,Zoë\n", encoding="latin-1")
    store.import_file(ctx, admin, latin1, key="id", encoding="latin-1")
    assert rows(ctx, "l1") == [(1, "Zoë")]


BAD_INPUTS = [
    ("missing", None, "does not exist: check the path"),
    ("empty.csv", "", "is empty"),
    ("header.csv", "customer_id,email\n", "has column names but no rows"),
    ("notes.xlsx", "x", "cannot tell the format of notes.xlsx"),
    ("nokey.csv", "id,email\n1,a@b.c\n", "has no column 'customer_id' to use as the key"),
    ("nulls.csv", "customer_id,email\n1,a@b.c\n,b@b.c\n", "1 row(s) of nulls.csv have no value"),
    (
        "dups.csv",
        "customer_id,email\n1,a@b.c\n2,b@b.c\n1,c@b.c\n3,d@b.c\n3,e@b.c\n",
        "2 key value(s) in column 'customer_id' appear on more than one row "
        "(for example data rows 1 and 3; 4 and 5)",
    ),
    ("reserved.csv", "customer_id,_as_key\n1,2\n", "uses a name audiencesync reserves"),
    ("reserved2.csv", "customer_id,file_row_number\n1,2\n", "uses a name audiencesync reserves"),
    ("latin.csv", "customer_id,name\n1,Zo\xeb\n".encode("latin-1"), "use --encoding"),
    ("broken.json", '[{"customer_id": 1,', "could not be read as json"),
]


@pytest.mark.parametrize(("file_name", "content", "message"), BAD_INPUTS)
def test_bad_input_gets_one_sentence_and_changes_nothing(
    ctx: Context,
    admin: Actor,
    tmp_path: Path,
    file_name: str,
    content: str | bytes | None,
    message: str,
) -> None:
    store.import_file(
        ctx, admin, write(tmp_path / "good.csv", CSV), key="customer_id", name="people"
    )
    before_rows = rows(ctx, "people")
    before_control = snapshot_control(ctx)
    files_before = sorted(p.name for p in (ctx.home / "profiles" / "people").iterdir())

    source = tmp_path / file_name
    if isinstance(content, bytes):
        source.write_bytes(content)
    elif content is not None:
        write(source, content)
    with pytest.raises(UserInputError) as raised:
        store.import_file(ctx, admin, source, key="customer_id", name="people")

    assert message in for_cli(raised.value)  # the command line names the flag of the field
    assert "--" not in for_web(raised.value)  # the web names fields, never flags
    assert "\n" not in raised.value.message
    assert rows(ctx, "people") == before_rows
    assert snapshot_control(ctx) == before_control
    assert sorted(p.name for p in (ctx.home / "profiles" / "people").iterdir()) == files_before


def test_duplicate_keys_keep_first_or_last_row_in_file_order(
    ctx: Context, admin: Actor, tmp_path: Path
) -> None:
    source = write(tmp_path / "d.csv", "id,v\n1,first\n2,only\n1,last\n")
    first = store.import_file(
        ctx, admin, source, key="id", on_duplicate_key=store.OnDuplicateKey.FIRST
    )
    assert first.row_count == 2
    assert rows(ctx, "d") == [(1, "first"), (2, "only")]
    store.import_file(ctx, admin, source, key="id", on_duplicate_key=store.OnDuplicateKey.LAST)
    assert rows(ctx, "d") == [(1, "last"), (2, "only")]


def test_reimport_replaces_and_refresh_rereads_the_source(
    ctx: Context, admin: Actor, tmp_path: Path
) -> None:
    source = write(tmp_path / "c.csv", "id,v\n1,a\n")
    store.import_file(ctx, admin, source, key="id")
    write(source, "id,v\n1,a\n2,b\n")
    view = store.refresh(ctx, admin, "c")
    assert view.row_count == 2
    assert rows(ctx, "c") == [(1, "a"), (2, "b")]
    # Superseded versions stay a while for readers in other processes, then go; the
    # previous version always stays.
    folder = ctx.home / "profiles" / "c"
    for old in folder.glob("*.parquet"):
        os.utime(old, (0, 0))
    write(source, "id,v\n3,c\n")
    store.refresh(ctx, admin, "c")
    assert len(list(folder.glob("*.parquet"))) == 2
    assert rows(ctx, "c") == [(3, "c")]


def test_refresh_of_a_vanished_source_keeps_the_data(
    ctx: Context, admin: Actor, tmp_path: Path
) -> None:
    source = write(tmp_path / "c.csv", "id,v\n1,a\n")
    store.import_file(ctx, admin, source, key="id")
    source.unlink()
    with pytest.raises(UserInputError, match="does not exist"):
        store.refresh(ctx, admin, "c")
    assert rows(ctx, "c") == [(1, "a")]


def test_remove_deletes_the_dataset_and_its_files(
    ctx: Context, admin: Actor, tmp_path: Path
) -> None:
    store.import_file(ctx, admin, write(tmp_path / "c.csv", "id\n1\n"), key="id")
    store.remove(ctx, admin, "c")
    assert not (ctx.home / "profiles" / "c").exists()
    with pytest.raises(NotFoundError, match="no profile dataset named 'c'"):
        store.get_dataset(ctx, admin, "c")


def test_viewers_read_but_do_not_import(
    ctx: Context, actors: dict[Role, Actor], tmp_path: Path
) -> None:
    source = write(tmp_path / "c.csv", "id\n1\n")
    with pytest.raises(PermissionDeniedError, match="victor is a viewer and cannot import"):
        store.import_file(ctx, actors[Role.VIEWER], source, key="id")
    store.import_file(ctx, actors[Role.CONTRIBUTOR], source, key="id")
    assert store.sample(ctx, actors[Role.VIEWER], "c").num_rows == 1
