"""``audiencesync demo``: the whole path, end to end, in a temporary home."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from audiencesync.cli.common import console
from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.control.db import Database
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.settings import Settings


def demo(
    profiles: Annotated[
        int, typer.Option("--profiles", help="How many synthetic profiles.")
    ] = 5000,
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Use this folder as the home and keep it.")
    ] = None,
) -> None:
    """Run the whole path on synthetic profiles in a temporary home."""
    with tempfile.TemporaryDirectory(prefix="audiencesync-demo-") as scratch:
        home = keep or Path(scratch) / "home"
        settings = Settings(home=home, database_url=None)
        home.mkdir(parents=True, exist_ok=True)
        database = Database(settings.control_database_url)
        database.migrate()
        database.dispose()
        ctx = Context.open(settings)
        try:
            console.rule("1. Set up a home and the first administrator")
            if not users.has_users(ctx):
                users.create_first_admin(ctx, "admin", secrets.token_urlsafe(12))
            admin = users.resolve_actor(ctx, "admin")
            console.print(f"home: {home}")

            console.rule("2. Import customer profiles")
            source = write_profiles(Path(scratch) / "customers.csv", profiles)
            view = store.import_file(ctx, admin, source, key="customer_id", name="customers")
            console.print(
                f"imported {view.row_count:,} profiles, columns: {', '.join(view.column_names)}"
            )
            sample = store.sample(ctx, admin, "customers", limit=5)
            for record in sample.to_pylist():
                console.print(
                    f"  {record['customer_id']}  {record['country']}  age {record['age']}"
                )
        finally:
            ctx.close()
    console.rule("Next")
    console.print(
        "Segments, the Snapchat connection and exports are being built (issues 4-6); "
        "this demo grows with them."
    )
