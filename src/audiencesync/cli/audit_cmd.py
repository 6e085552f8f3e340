"""``audiencesync audit``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from audiencesync.cli.common import actor, console, opened
from audiencesync.control import audit as service


def audit(
    limit: Annotated[int, typer.Option("--limit", help="How many entries.")] = 50,
    target: Annotated[
        str | None, typer.Option("--target", help="Only this target, e.g. dataset:customers.")
    ] = None,
) -> None:
    """Show who changed what, newest first."""
    with opened() as ctx:
        entries = service.list_entries(ctx, actor(ctx), limit=limit, target=target)
    table = Table("when (UTC)", "who", "action", "target", "before", "after")
    for e in entries:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            e.target,
            json.dumps(e.before, sort_keys=True) if e.before else "",
            json.dumps(e.after, sort_keys=True) if e.after else "",
        )
    console.print(table)
