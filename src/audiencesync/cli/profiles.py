"""``audiencesync profiles ...``: import, refresh, list, schema, show, remove; unify
several datasets into one person per profile (unify, unifications, unified-stats,
explain-unified, unified-links, bench-unify)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audiencesync.api.models import (
    DatasetPublic,
    Sample,
    UnificationPublic,
    UnifiedExplanationPublic,
)
from audiencesync.cli.bench_unify import bench_unify
from audiencesync.cli.common import JsonOption, actor, console, opened, print_json
from audiencesync.errors import UserInputError
from audiencesync.profiles import linked, store
from audiencesync.profiles.formats import parse_format
from audiencesync.profiles.unify import service as unification
from audiencesync.profiles.unify.rules import load_unification_file

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
    table: Annotated[str, typer.Option("--table", help="Table (or schema.table) of profiles.")],
    key: Annotated[str, typer.Option("--key", help="Column that identifies a profile.")],
    source: Annotated[
        str | None, typer.Option("--source", help="Source to read from (`sources list`).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Administrators: add a source named like the dataset from this URL, "
            "then link through it.",
        ),
    ] = None,
) -> None:
    """Use a table of a source (a database an administrator added) as a dataset."""
    if (source is None) == (url is None):
        raise UserInputError(
            "give --source NAME (see `audiencesync sources list`), or --url to add a source "
            "named like the dataset (administrators)."
        )
    with opened() as ctx:
        who = actor(ctx)
        if url is not None:
            view = linked.link_url(ctx, who, name, url=url, table=table, key=key)
        else:
            assert source is not None
            view = linked.link(ctx, who, name, source=source, table=table, key=key)
    console.print(
        f"Linked dataset {view.name!r} to {view.source} "
        f"({view.row_count:,} profiles, {len(view.columns)} columns, key {view.key_column!r}).",
        markup=False,
    )


@app.command("refresh")
def refresh(
    name: Annotated[str | None, typer.Argument(help="Dataset to refresh (default: all).")] = None,
) -> None:
    """Re-import datasets from the files they came from (unified datasets: match again)."""
    with opened() as ctx:
        who = actor(ctx)
        views = [store.refresh(ctx, who, name)] if name else store.refresh_all(ctx, who)
    for view in views:
        console.print(f"Refreshed {view.name!r}: {view.row_count:,} profiles.")
    if not views:
        console.print("No imported datasets to refresh.")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List datasets: name, rows, columns, imported at, source."""
    with opened() as ctx:
        views = store.list_datasets(ctx, actor(ctx))
    if as_json:
        print_json([DatasetPublic.of(v) for v in views])
        return
    table = Table("name", "rows", "columns", "imported (UTC)", "source")
    for v in views:
        when = v.imported_at.strftime("%Y-%m-%d %H:%M") if v.imported_at else ""
        table.add_row(v.name, f"{v.row_count:,}", str(len(v.columns)), when, v.source)
    console.print(table)


@app.command("schema")
def schema(name: str, as_json: JsonOption = False) -> None:
    """Show a dataset's columns and types."""
    with opened() as ctx:
        view = store.get_dataset(ctx, actor(ctx), name)
    if as_json:
        print_json(DatasetPublic.of(view))
        return
    table = Table("column", "type", "key")
    for column in view.columns:
        table.add_row(column.name, column.type, "yes" if column.name == view.key_column else "")
    console.print(table)


@app.command("show")
def show(
    name: str,
    limit: Annotated[int, typer.Option("--limit", help="How many rows.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show the first rows of a dataset."""
    with opened() as ctx:
        rows = store.sample(ctx, actor(ctx), name, limit=limit)
    if as_json:
        print_json(Sample(columns=list(rows.column_names), rows=list(rows.to_pylist())))
        return
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


@app.command("unify")
def unify(
    name: Annotated[str, typer.Argument(help="Name of the unification and of its dataset.")],
    sources: Annotated[
        list[str],
        typer.Option("--from", help="DATASET:KEY, once per source, highest priority first."),
    ],
    rules: Annotated[Path, typer.Option("--rules", help="YAML or JSON rules file.")],
) -> None:
    """Match several datasets into one person per profile (a dataset named NAME)."""
    parsed = load_unification_file(rules)
    specs = [unification.parse_source(s) for s in sources]
    with opened() as ctx:
        view = unification.unify(ctx, actor(ctx), name, sources=specs, rules=parsed)
    _print_summary(view)


def _print_summary(view: unification.UnificationView) -> None:
    stats = view.stats
    refused = stats.get("refused_keys", {})
    console.print(
        f"Unified {stats.get('source_records_total', 0):,} records of "
        f"{len(view.sources)} source(s) into {stats.get('unified_profiles', 0):,} profiles "
        f"(dataset {view.name!r}, key 'unified_id'); {int(refused.get('keys', 0)):,} key(s) "
        f"shared by too many records refused, {len(stats.get('oversized_clusters', [])):,} "
        "oversized cluster(s) kept apart.",
        markup=False,
    )


@app.command("unifications")
def unifications(as_json: JsonOption = False) -> None:
    """List unifications: sources, profiles, last refresh."""
    with opened() as ctx:
        views = unification.list_unifications(ctx, actor(ctx))
    if as_json:
        print_json([UnificationPublic.of(v) for v in views])
        return
    table = Table("name", "sources", "records", "profiles", "refreshed (UTC)")
    for v in views:
        when = v.refreshed_at.strftime("%Y-%m-%d %H:%M") if v.refreshed_at else ""
        table.add_row(
            v.name,
            ", ".join(f"{s.dataset}:{s.key}" for s in v.sources),
            f"{v.stats.get('source_records_total', 0):,}",
            f"{v.stats.get('unified_profiles', 0):,}",
            when,
        )
    console.print(table)


@app.command("unified-stats")
def unified_stats(name: str, as_json: JsonOption = False) -> None:
    """Figures of a unification's latest refresh: records, profiles, clusters, refusals."""
    with opened() as ctx:
        view = unification.get_unification(ctx, actor(ctx), name)
    if as_json:
        print_json(UnificationPublic.of(view))
        return
    stats = view.stats
    per = stats.get("records_per_profile", {})
    lines = [
        f"Unification {view.name!r} (version {view.version}):",
        "  source records: "
        + ", ".join(f"{d} {n:,}" for d, n in stats.get("source_records", {}).items())
        + f" (total {stats.get('source_records_total', 0):,})",
        f"  unified profiles: {stats.get('unified_profiles', 0):,}",
        f"  records per profile: mean {per.get('mean', 0)}, max {per.get('max', 0)}; "
        + ", ".join(f"{k}: {v:,}" for k, v in per.get("distribution", {}).items()),
        "  records linked by rule: "
        + ", ".join(f"{k} {v:,}" for k, v in stats.get("records_linked_by_rule", {}).items()),
    ]
    refused = stats.get("refused_keys", {})
    lines.append(
        f"  refused keys (shared by more than "
        f"{stats.get('limits', {}).get('max_records_per_key')} records): "
        f"{refused.get('keys', 0):,} key(s), {refused.get('records', 0):,} record(s)"
    )
    for item in refused.get("largest", []):
        example = item["example"]
        lines.append(
            f"    - {item['rule']}: shared by {item['records']:,} records "
            f"(for example {example['dataset']}:{example['key']})"
        )
    for item in stats.get("oversized_clusters", []):
        lines.append(
            f"  oversized cluster of {item['records']:,} records kept apart "
            f"(for example {item['example']['dataset']}:{item['example']['key']})"
        )
    lines.append("  largest clusters:")
    for item in stats.get("largest_clusters", []):
        parts = ", ".join(f"{d} {n}" for d, n in item["by_source"].items())
        lines.append(f"    - {item['unified_id']}: {item['records']} records ({parts})")
    history = stats.get("history", {})
    lines.append(
        "  since the previous version: " + ", ".join(f"{k} {v:,}" for k, v in history.items())
    )
    console.print("\n".join(lines), markup=False)


@app.command("explain-unified")
def explain_unified(
    name: str,
    unified_id: Annotated[int, typer.Argument(help="A unified_id of the unified dataset.")],
    as_json: JsonOption = False,
) -> None:
    """Show one unified profile's source records and the rules that joined them."""
    with opened() as ctx:
        found = unification.explain(ctx, actor(ctx), name, unified_id)
    if as_json:
        print_json(UnifiedExplanationPublic.of(found))
        return
    console.print(
        f"Profile {found.unified_id} of {found.name!r}: {found.record_count} source record(s).",
        markup=False,
    )
    names = sorted({f for r in found.records for f in r.fields})
    table = Table("source", "key", "joined by", *names)
    for record in found.records:
        table.add_row(
            record.dataset,
            record.key,
            record.joined_by or "(alone)",
            *("" if record.fields.get(f) is None else str(record.fields[f]) for f in names),
        )
    console.print(table)
    for link in found.links:
        who = ", ".join(f"{d}:{k}" for d, k in link.records)
        if link.refused:
            console.print(
                f"not used: a {link.rule} key held by {who} is shared by {link.shared_by:,} "
                "records, more than the limit.",
                markup=False,
            )
        elif link.kept_apart:
            console.print(
                f"kept apart: a {link.rule} key held by {who} is shared by {link.shared_by:,} "
                "records in all; their group was larger than the cluster limit, so its "
                "records were not merged (see the unification's oversized clusters).",
                markup=False,
            )
        else:
            console.print(f"{link.rule}: {who}", markup=False)
    for event in found.history:
        console.print(
            f"history: {event['event']} (id {event['unified_id']}, previous "
            f"{event['previous_id']})",
            markup=False,
        )


@app.command("unified-links")
def unified_links(
    name: str,
    output: Annotated[Path, typer.Option("--output", help="A .parquet or .csv file.")],
) -> None:
    """Write the link table (unified_id, dataset, source_key) to a file."""
    with opened() as ctx:
        rows = unification.export_links(ctx, actor(ctx), name, output)
    console.print(f"Wrote {rows:,} links to {output}.", markup=False)


app.command("bench-unify", help="Time a unification of three synthetic sources (JSON).")(
    bench_unify
)
