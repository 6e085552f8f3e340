"""``audiencesync sources ...``: the databases linked datasets read from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from audiencesync.api.models import SourcePublic
from audiencesync.cli.common import JsonOption, actor, console, opened, print_json
from audiencesync.profiles import sources

app = typer.Typer(
    help="Databases and warehouses profile tables are linked from (administrators).",
    no_args_is_help=True,
)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Source name.")],
    url: Annotated[
        str,
        typer.Option(
            "--url", help="Database URL, such as postgresql://user:pw@host/db (kept encrypted)."
        ),
    ],
) -> None:
    """Add a source: the URL is checked, connected to once, and stored encrypted."""
    with opened() as ctx:
        view = sources.add_source(ctx, actor(ctx), name, url=url)
    console.print(f"Added source {view.name!r} ({view.backend}, {view.location}).", markup=False)


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List sources: name, engine, host/database, datasets linked through it."""
    with opened() as ctx:
        views = sources.list_sources(ctx, actor(ctx))
    if as_json:
        print_json([SourcePublic.of(v) for v in views])
        return
    table = Table("name", "backend", "location", "datasets", "added by")
    for v in views:
        table.add_row(v.name, v.backend, v.location, ", ".join(v.datasets), v.created_by or "")
    console.print(table)


@app.command("show")
def show(name: str, as_json: JsonOption = False) -> None:
    """Show one source (never its URL, user or password)."""
    with opened() as ctx:
        v = sources.get_source(ctx, actor(ctx), name)
    if as_json:
        print_json(SourcePublic.of(v))
        return
    console.print(f"source {v.name}", markup=False)
    console.print(f"  backend: {v.backend}", markup=False)
    console.print(f"  location: {v.location}", markup=False)
    console.print(f"  added by: {v.created_by or ''}", markup=False)
    console.print(f"  datasets: {', '.join(v.datasets) or 'none'}", markup=False)


@app.command("remove")
def remove(name: str) -> None:
    """Remove a source no dataset links through."""
    with opened() as ctx:
        sources.remove_source(ctx, actor(ctx), name)
    console.print(f"Removed source {name!r}.", markup=False)
