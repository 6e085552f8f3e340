"""``audiencesync profiles ...``: import, refresh, list, schema, show, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audiencesync.cli.common import actor, console, opened
from audiencesync.profiles import linked, store
from audiencesync.profiles.formats import parse_format

app = typer.Typer(help="Import and inspect customer profile datasets.", no_args_is_help=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet, JSON or NDJSON file.")],
    key: Annotated[str, typer.Option("--key", help="Column that identifies a profile.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Dataset name (default: from the file name).")
    ] = None,
    file_format: Annotated[
        str | None,
        typer.Option("--format", help="csv, parquet, json or ndjson (default: by extension)."),
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", help="CSV delimiter (default: sniffed).")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="CSV encoding (default: utf-8).")
    ] = None,
    on_duplicate_key: Annotated[
        str, typer.Option("--on-duplicate-key", help="error, first or last.")
    ] = "error",
) -> None:
    """Import a file as a profile dataset, replacing its previous version atomically."""
    policy = store.parse_on_duplicate_key(on_duplicate_key)
    if delimiter == "\\t":
        delimiter = "\t"
    with opened() as ctx:
        view = store.import_file(
            ctx,
            actor(ctx),
            file,
            key=key,
            name=name,
            file_format=parse_format(file_format) if file_format else None,
            delimiter=delimiter,
            encoding=encoding,
            on_duplicate_key=policy,
        )
    dropped = view.options.get("on_duplicate_key") != "error"
    console.print(
        f"Imported {view.row_count:,} profiles into dataset {view.name!r} "
        f"({len(view.columns)} columns, key {view.key_column!r})"
        + (" keeping one row per key." if dropped else ".")
    )


@app.command("link")
def link(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    url: Annotated[
        str, typer.Option("--url", help="Database URL, such as postgresql://user:pw@host/db.")
    ],
    table: Annotated[str, typer.Option("--table", help="Table (or schema.table) of profiles.")],
    key: Annotated[str, typer.Option("--key", help="Column that identifies a profile.")],
) -> None:
    """Use a table in PostgreSQL (or another engine) as a dataset, where it lives."""
    with opened() as ctx:
        view = linked.link(ctx, actor(ctx), name, url=url, table=table, key=key)
    console.print(
        f"Linked dataset {view.name!r} to {view.source} "
        f"({view.row_count:,} profiles, {len(view.columns)} columns, key {view.key_column!r}).",
        markup=False,
    )


@app.command("refresh")
def refresh(
    name: Annotated[str | None, typer.Argument(help="Dataset to refresh (default: all).")] = None,
) -> None:
    """Re-import datasets from the files they came from."""
    with opened() as ctx:
        who = actor(ctx)
        views = [store.refresh(ctx, who, name)] if name else store.refresh_all(ctx, who)
    for view in views:
        console.print(f"Refreshed {view.name!r}: {view.row_count:,} profiles.")
    if not views:
        console.print("No imported datasets to refresh.")


@app.command("list")
def list_() -> None:
    """List datasets: name, rows, columns, imported at, source."""
    with opened() as ctx:
        views = store.list_datasets(ctx, actor(ctx))
    table = Table("name", "rows", "columns", "imported (UTC)", "source")
    for v in views:
        when = v.imported_at.strftime("%Y-%m-%d %H:%M") if v.imported_at else ""
        table.add_row(v.name, f"{v.row_count:,}", str(len(v.columns)), when, v.source)
    console.print(table)


@app.command("schema")
def schema(name: str) -> None:
    """Show a dataset's columns and types."""
    with opened() as ctx:
        view = store.get_dataset(ctx, actor(ctx), name)
    table = Table("column", "type", "key")
    for column in view.columns:
        table.add_row(column.name, column.type, "yes" if column.name == view.key_column else "")
    console.print(table)


@app.command("show")
def show(
    name: str,
    limit: Annotated[int, typer.Option("--limit", help="How many rows.")] = 20,
) -> None:
    """Show the first rows of a dataset."""
    with opened() as ctx:
        rows = store.sample(ctx, actor(ctx), name, limit=limit)
    table = Table(*rows.column_names)
    for record in rows.to_pylist():
        table.add_row(*("" if v is None else str(v) for v in record.values()))
    console.print(table)
    console.print(f"{rows.num_rows} row(s) shown.")


@app.command("remove")
def remove(name: str) -> None:
    """Remove a dataset and its data."""
    with opened() as ctx:
        store.remove(ctx, actor(ctx), name)
    console.print(f"Removed dataset {name!r}.")
