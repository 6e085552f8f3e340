"""``audiencesync exports ...``: add, edit, list and show exports (runs: issue 6)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer
from rich.table import Table

from audiencesync.cli import runs
from audiencesync.cli.common import actor, console, opened
from audiencesync.sync import exports as service
from audiencesync.sync.exports import ExportSpec, ExportView

app = typer.Typer(help="Send segments to Snapchat audiences.", no_args_is_help=True)
app.command("run", help="Run an export now, with a progress bar, and print the summary.")(
    runs.run_export
)
app.command("clear", help="Empty the export's Snapchat audience and reset its snapshot.")(
    runs.clear_export
)

Segments = Annotated[
    list[str] | None, typer.Option("--segment", help="Segment to export (repeatable).")
]
EmailField = Annotated[str | None, typer.Option("--email-field", help="Field with the email.")]
PhoneField = Annotated[str | None, typer.Option("--phone-field", help="Field with the phone.")]
MaidField = Annotated[
    str | None, typer.Option("--maid-field", help="Field with the mobile ad id (IDFA/GAID).")
]
Country = Annotated[
    str | None,
    typer.Option("--default-country", help="Country of phones written without a country code."),
]
Mode = Annotated[str | None, typer.Option("--mode", help="mirror (default) or add-only.")]
Schedule = Annotated[
    str | None,
    typer.Option("--schedule", help="system (default), manual, or a cron expression."),
]
Timezone = Annotated[str | None, typer.Option("--timezone", help="Time zone of a cron schedule.")]


@app.command("add")
def add(
    name: str,
    connection: Annotated[str, typer.Option("--connection", help="Connection to send through.")],
    segment: Segments = None,
    audience_id: Annotated[
        str | None, typer.Option("--audience-id", help="Snapchat audience (segment) id.")
    ] = None,
    create_audience: Annotated[
        bool, typer.Option("--create-audience", help="Create a new customer-list audience.")
    ] = False,
    audience_name: Annotated[
        str | None, typer.Option("--audience-name", help="Name of the created audience.")
    ] = None,
    retention_days: Annotated[
        int, typer.Option("--retention-days", help="Retention of the created audience.")
    ] = 9999,
    ad_account: Annotated[
        str | None, typer.Option("--ad-account", help="Ad account of the created audience.")
    ] = None,
    email_field: EmailField = None,
    phone_field: PhoneField = None,
    maid_field: MaidField = None,
    default_country: Country = None,
    mode: Mode = None,
    schedule: Schedule = None,
    timezone: Timezone = None,
) -> None:
    """Add an export; it is checked against Snapchat and the data, and not run."""
    spec = ExportSpec(
        name=name,
        connection=connection,
        segments=tuple(segment or ()),
        email_field=email_field,
        phone_field=phone_field,
        maid_field=maid_field,
        default_country=default_country,
        audience_id=audience_id,
        create_audience=create_audience,
        audience_name=audience_name,
        retention_days=retention_days,
        ad_account_id=ad_account,
        mode=mode or "mirror",
        schedule=schedule or "system",
        timezone=timezone or "UTC",
    )
    with opened() as ctx:
        view = service.add_export(ctx, actor(ctx), spec)
    _print_saved(view, "Added")


def _print_saved(view: ExportView, verb: str) -> None:
    console.print(
        f"{verb} export {view.name!r}: segments {', '.join(view.segments)} of dataset "
        f"{view.dataset!r} -> Snapchat audience {view.audience_id} ({view.audience_name}), "
        f"mode {view.mode}. Not run yet: `audiencesync exports run {view.name}`."
    )
    shares = view.validation.get("rejected_share", {})
    for kind, share in shares.items():
        if share:
            console.print(f"  note: {share:.1%} of sampled {kind} values would be rejected.")


@app.command("update")
def update(
    name: str,
    connection: Annotated[str | None, typer.Option("--connection")] = None,
    segment: Segments = None,
    audience_id: Annotated[str | None, typer.Option("--audience-id")] = None,
    email_field: EmailField = None,
    phone_field: PhoneField = None,
    maid_field: MaidField = None,
    default_country: Country = None,
    mode: Mode = None,
    schedule: Schedule = None,
    timezone: Timezone = None,
    rename: Annotated[str | None, typer.Option("--rename", help="New name.")] = None,
) -> None:
    """Change an export; only the options given change."""
    with opened() as ctx:
        who = actor(ctx)
        current = service.spec_of(service.get_export(ctx, who, name))
        spec = replace(
            current,
            name=rename or current.name,
            connection=connection or current.connection,
            segments=tuple(segment) if segment else current.segments,
            audience_id=audience_id or current.audience_id,
            email_field=email_field or current.email_field,
            phone_field=phone_field or current.phone_field,
            maid_field=maid_field or current.maid_field,
            default_country=default_country or current.default_country,
            mode=mode or current.mode,
            schedule=schedule or current.schedule,
            timezone=timezone or current.timezone,
        )
        view = service.update_export(ctx, who, name, spec)
    _print_saved(view, "Updated")


@app.command("duplicate")
def duplicate(name: str, new_name: str) -> None:
    """Copy an export under a new name (disabled until you enable it)."""
    with opened() as ctx:
        view = service.duplicate_export(ctx, actor(ctx), name, new_name)
    console.print(f"Duplicated {name!r} as {view.name!r} (disabled).")


@app.command("enable")
def enable(name: str) -> None:
    """Enable an export (it runs on its schedule again)."""
    with opened() as ctx:
        service.set_enabled(ctx, actor(ctx), name, enabled=True)
    console.print(f"Export {name!r} enabled.")


@app.command("disable")
def disable(name: str) -> None:
    """Disable an export (no scheduled runs)."""
    with opened() as ctx:
        service.set_enabled(ctx, actor(ctx), name, enabled=False)
    console.print(f"Export {name!r} disabled.")


@app.command("remove")
def remove(name: str) -> None:
    """Remove an export and its run history (the Snapchat audience is kept)."""
    with opened() as ctx:
        service.remove_export(ctx, actor(ctx), name)
    console.print(f"Removed export {name!r}.")


@app.command("list")
def list_() -> None:
    """List exports: connection, audience, segments, mode, schedule, last and next run."""
    with opened() as ctx:
        views = service.list_exports(ctx, actor(ctx))
    table = Table("name", "connection", "audience", "segments", "mode", "schedule", "state",
                  "last run", "next run")  # fmt: skip
    for v in views:
        last = f"{v.last_run_status} {v.last_run_at:%Y-%m-%d %H:%M}" if v.last_run_at else ""
        table.add_row(
            v.name,
            v.connection or "(detached)",
            v.audience_id,
            ", ".join(v.segments),
            v.mode,
            v.schedule,
            v.state,
            last,
            f"{v.next_run_at:%Y-%m-%d %H:%M %Z}" if v.next_run_at else "",
        )
    console.print(table)


@app.command("show")
def show(name: str) -> None:
    """Show an export's definition and state."""
    with opened() as ctx:
        v = service.get_export(ctx, actor(ctx), name)
    fields = ", ".join(f"{k.value}={f}" for k, f in service.identifier_fields(v).items())
    lines = [
        f"name: {v.name}",
        f"state: {v.state}",
        f"connection: {v.connection or '(detached)'}",
        f"audience: {v.audience_id} ({v.audience_name}) in ad account {v.ad_account_id}",
        f"dataset: {v.dataset}",
        f"segments: {', '.join(v.segments)}",
        f"data matching: {fields}"
        + (f", default country {v.default_country}" if v.default_country else ""),
        f"mode: {v.mode}",
        f"schedule: {v.schedule}"
        + (f" ({v.timezone})" if v.schedule not in ("system", "manual") else ""),
        f"created: by {v.created_by} at {v.created_at:%Y-%m-%d %H:%M} UTC",
        f"last run: {v.last_run_status or 'never'}",
    ]
    console.print("\n".join(lines), markup=False)
