"""``audiencesync segments ...``: create, update, remove, list, show, count, preview, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from audiencesync import segments as service
from audiencesync.api.models import SegmentPublic
from audiencesync.cli.common import JsonOption, actor, console, opened, print_json
from audiencesync.errors import UserInputError

app = typer.Typer(
    help="Define segments of profiles and inspect their members.", no_args_is_help=True
)

RulesFile = Annotated[
    Path, typer.Option("--rules", help="YAML or JSON file holding the segment's rule.")
]


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else ""


@app.command("create")
def create(
    name: str,
    dataset: Annotated[
        str, typer.Option("--dataset", help="Profile dataset the rules select from.")
    ],
    rules: RulesFile,
    description: Annotated[
        str | None, typer.Option("--description", help="What the segment is for.")
    ] = None,
) -> None:
    """Create a segment from a rules file (checked against the dataset first)."""
    node = service.load_rules_file(rules)
    with opened() as ctx:
        view = service.create_segment(
            ctx, actor(ctx), name, dataset=dataset, rules=node, description=description
        )
    console.print(f"Created segment {view.name!r} over dataset {view.dataset!r}.")


@app.command("update")
def update(
    name: str,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="YAML or JSON file with the new rule.")
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="New description ('' clears it).")
    ] = None,
) -> None:
    """Replace a segment's rules and/or description."""
    if rules is None and description is None:
        raise UserInputError("nothing to update: pass --rules FILE and/or --description TEXT.")
    node = service.load_rules_file(rules) if rules is not None else None
    with opened() as ctx:
        view = service.update_segment(ctx, actor(ctx), name, rules=node, description=description)
    console.print(f"Updated segment {view.name!r}.")


@app.command("remove")
def remove(name: str) -> None:
    """Remove a segment (refused while a segment or an export uses it)."""
    with opened() as ctx:
        service.remove_segment(ctx, actor(ctx), name)
    console.print(f"Removed segment {name.strip().lower()!r}.")


@app.command("list")
def list_(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only the segments of this dataset.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List segments: name, dataset, last size and when it was measured."""
    with opened() as ctx:
        views = service.list_segments(ctx, actor(ctx), dataset=dataset)
    if as_json:
        print_json([SegmentPublic.of(v) for v in views])
        return
    table = Table("name", "dataset", "last size", "measured (UTC)", "uses", "updated by")
    for v in views:
        size = "" if v.last_size is None else f"{v.last_size:,}"
        uses = ", ".join(v.references)
        table.add_row(v.name, v.dataset, size, _when(v.last_evaluated_at), uses, v.updated_by)
    console.print(table)
    if not views:
        console.print("No segments yet: create one with `audiencesync segments create`.")


@app.command("show")
def show(
    name: str,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL that selects the members.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a segment's rules and recent sizes (or, with --sql, its SQL)."""
    with opened() as ctx:
        who = actor(ctx)
        if sql:
            console.print(service.segment_sql(ctx, who, name), markup=False)
            return
        view = service.get_segment(ctx, who, name)
        history = service.segment_history(ctx, who, name, limit=10)
    if as_json:
        print_json(SegmentPublic.of(view))
        return
    console.print(f"segment: {view.name}")
    console.print(f"dataset: {view.dataset}")
    if view.description:
        console.print(f"description: {view.description}", markup=False)
    console.print(f"updated: {_when(view.updated_at)} UTC by {view.updated_by}")
    console.print("rules:")
    console.print(service.rules_to_yaml(view.rules).rstrip(), markup=False)
    if history:
        console.print("size over time (newest first):")
        for e in history:
            console.print(f"  {_when(e.at)}  {e.size:>12,}  {e.kind:<8} {e.duration_ms:,} ms")
    else:
        console.print("not evaluated yet: run `audiencesync segments count NAME`.")


@app.command("history")
def history(
    name: str,
    limit: Annotated[int, typer.Option("--limit", help="How many evaluations.")] = 20,
) -> None:
    """Show a segment's size over time, newest first."""
    with opened() as ctx:
        entries = service.segment_history(ctx, actor(ctx), name, limit=limit)
    table = Table("evaluated (UTC)", "size", "how", "duration", "by")
    for e in entries:
        table.add_row(_when(e.at), f"{e.size:,}", e.kind, f"{e.duration_ms:,} ms", e.actor or "")
    console.print(table)


@app.command("count")
def count(name: str) -> None:
    """Count the segment's members now (the figure is kept in its history)."""
    with opened() as ctx:
        result = service.count_segment(ctx, actor(ctx), name)
    console.print(
        f"Segment {result.segment!r}: {result.size:,} members "
        f"({result.seconds:.2f}s on {result.engine})."
    )


@app.command("preview")
def preview(
    name: str,
    limit: Annotated[int, typer.Option("--limit", help="How many members to show.")] = 100,
    fields: Annotated[
        str | None, typer.Option("--fields", help="Comma-separated fields (default: all).")
    ] = None,
) -> None:
    """Show the first members of a segment, ordered by key."""
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    with opened() as ctx:
        result = service.preview_segment(ctx, actor(ctx), name, limit=limit, fields=chosen)
    table = Table(*result.rows.column_names)
    for record in result.rows.to_pylist():
        table.add_row(*(Text("" if v is None else str(v)) for v in record.values()))
    console.print(table)
    console.print(f"{result.rows.num_rows:,} of {result.size:,} members shown.")


@app.command("explain")
def explain(name: str) -> None:
    """Show how many profiles each rule and group selects, as a tree."""
    with opened() as ctx:
        root = service.explain_segment(ctx, actor(ctx), name)
    tree = Tree(_explain_label(root), highlight=False)
    _grow(tree, root)
    console.print(tree)
    console.print(f"Segment {name.strip().lower()!r}: {root.count:,} members.")


def _explain_label(node: service.ExplainNode) -> Text:
    return Text(f"{node.label}: {node.count:,}")


def _grow(tree: Tree, node: service.ExplainNode) -> None:
    for child in node.children:
        _grow(tree.add(_explain_label(child), highlight=False), child)


@app.command("rules-schema")
def rules_schema() -> None:
    """Print the JSON Schema of a rules file (for editors and tools)."""
    console.print_json(json.dumps(service.rules_json_schema()))
