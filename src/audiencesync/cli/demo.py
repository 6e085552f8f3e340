"""``audiencesync demo``: the whole path, end to end, on the local emulator."""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from audiencesync.cli.common import console, rule
from audiencesync.cli.runs import summary_lines
from audiencesync.cli.walkthrough import connect_through_emulator, emulator_home, open_new_home
from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import start_emulator_process
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.consent import CONSENT_VERSION
from audiencesync.sync.engine import RunOutcome
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.runs import RunView

SEGMENTS: dict[str, object] = {
    "uk_customers": {"field": "country", "op": "=", "value": "GB"},
    "recent_buyers": {
        "all": [
            {"field": "orders_90d", "op": ">=", "value": 2},
            {"field": "last_order_date", "op": "in the last", "value": "90 days"},
        ]
    },
}
EXPORT = "demo-snapchat"


def _run(ctx: Context, admin: Actor, show_command: str) -> RunView:
    with Progress(
        TextColumn("{task.fields[phase]:<26}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("run", total=None, phase="starting")

        def report(outcome: RunOutcome) -> None:
            progress.update(
                task, completed=outcome.sent, total=outcome.to_send or None, phase=outcome.phase
            )

        view = runs.run_now(ctx, admin, EXPORT, reporter=report)
    console.print("\n".join(summary_lines(view, show_command=show_command)), markup=False)
    return view


def demo(
    profiles: Annotated[
        int, typer.Option("--profiles", help="How many synthetic profiles.")
    ] = 20_000,
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Use this (new) folder as the home and keep it.")
    ] = None,
) -> None:
    """Run the whole path on synthetic profiles and the local Snapchat emulator."""
    scratch = Path(tempfile.mkdtemp(prefix="audiencesync-demo-"))
    home = keep or scratch / "home"
    if home.exists() and any(home.iterdir()):
        raise typer.BadParameter(f"{home} is not empty: give --keep a new folder.")
    with start_emulator_process("--auto-approve", "--processing-seconds", "2") as emulator:
        settings = emulator_home(home, emulator)
        ctx, admin, password = open_new_home(settings)
        try:
            _walk(
                ctx,
                admin,
                emulator.api_url,
                profiles,
                scratch,
                _in_home(home, "exports", "show", EXPORT),
            )
            audience = exports.get_export(ctx, admin, EXPORT).audience_id
            counts = emulator.member_counts(audience)
        finally:
            ctx.close()
    rule("Explore")
    console.print(
        f"The emulator's audience {audience} held {held_in_words(counts)} when it stopped."
    )
    console.print(
        "The emulator has stopped; these read what the demo's home recorded (admin's "
        f"password there: {password}):\n"
        f"  {_in_home(home, 'runs', 'list')}\n"
        f"  {_in_home(home, 'exports', 'show', EXPORT)}\n"
        "To click through the same path in a browser, with an emulator and a sample home of "
        f"its own (it prints where to sign in):\n  {shlex.quote(str(_program()))} try",
        markup=False,
    )


def _program() -> Path:
    return Path(sys.executable).with_name("audiencesync")


def _in_home(home: Path, *arguments: str) -> str:
    """A command on the demo's home, as a shell runs it when pasted."""
    words = [str(_program()), *arguments]
    return f"AUDIENCESYNC_HOME={shlex.quote(str(home))} " + shlex.join(words)


SCHEMA_WORDS = {
    "EMAIL_SHA256": "email",
    "PHONE_SHA256": "phone",
    "MOBILE_AD_ID_SHA256": "mobile ad id",
}


def held_in_words(counts: dict[str, int]) -> str:
    """``{"EMAIL_SHA256": 6577, ...}`` as "6,577 emails, ..."; "nothing" when empty."""
    parts = []
    for schema, count in counts.items():
        noun = SCHEMA_WORDS.get(schema, schema.lower())
        parts.append(f"{count:,} {noun}{'' if count == 1 else 's'}")
    return ", ".join(parts) or "nothing"


def _walk(
    ctx: Context, admin: Actor, api_url: str, profiles: int, scratch: Path, show_command: str
) -> None:
    rule("1. Customer profiles")
    source = write_profiles(scratch / "customers.csv", profiles)
    view = store.import_file(ctx, admin, source, key="customer_id", name="customers")
    console.print(
        f"Imported {view.row_count:,} profiles with messy identifiers "
        f"(padded mixed-case emails, phones in many formats, some invalid): "
        f"{', '.join(view.column_names)}"
    )

    rule("2. Segments")
    for name, rules in SEGMENTS.items():
        segments.create_segment(ctx, admin, name, dataset="customers", rules=parse_rules(rules))
        size = segments.count_segment(ctx, admin, name).size
        console.print(f"{name}: {size:,} profiles")

    rule("3. Admin > Connections > Add connection > Snapchat")
    connection = connect_through_emulator(ctx, admin, "Snapchat (emulator)")
    console.print(
        f"Display name {connection.name!r}; usable by administrators and contributors; "
        f"privacy text agreed (version {CONSENT_VERSION}); authenticated with Snapchat at "
        f"{api_url} as {connection.platform_user_name!r}; export user {connection.export_user}; "
        "saved."
    )

    rule("4. Data > Exports > Add destination")
    export = exports.add_export(
        ctx, admin,
        ExportSpec(
            name=EXPORT, connection=connection.name, segments=tuple(SEGMENTS),
            email_field="email", phone_field="phone", maid_field="mobile_ad_id",
            default_country="GB", create_audience=True, audience_name="audiencesync demo",
        ),
    )  # fmt: skip
    console.print(
        f"Export {export.name!r}: segments {', '.join(export.segments)} -> new customer list "
        f"{export.audience_id}, mode {export.mode}; saving did not run it."
    )

    rule("5. First run: everyone is added")
    _run(ctx, admin, show_command)

    rule("6. The data changes; the second run sends only the difference")
    write_profiles(scratch / "customers.csv", profiles, churn_from=max(1, profiles // 20))
    refreshed = store.refresh(ctx, admin, "customers")
    console.print(f"Refreshed 'customers': {refreshed.row_count:,} profiles, 5% replaced.")
    _run(ctx, admin, show_command)
