"""``audiencesync exports ...``: add, edit, list and show exports (runs: issue 6)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer
from rich.table import Table

from audiencesync.api.models import ExportPublic
from audiencesync.cli import runs
from audiencesync.cli.common import JsonOption, actor, console, opened, print_json
from audiencesync.sync import exports as service
from audiencesync.sync import runs as service_runs
from audiencesync.sync.audience import AudienceSummary
from audiencesync.sync.engine import DEFAULT_MAX_REMOVAL_SHARE
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
MaxRemovalShare = Annotated[
    float | None,
    typer.Option(
        "--max-removal-share",
        help="A mirror run removing more than this share of the audience (0 to 1, default "
        "0.2) waits for approval; so does one whose segments became empty.",
    ),
]
ConsentField = Annotated[
    str | None,
    typer.Option(
        "--consent-field",
        help="Field holding each profile's consent: only profiles with consent are sent; "
        "the others are removed from the audience (add-only too).",
    ),
]
ConsentValues = Annotated[
    str | None,
    typer.Option(
        "--consent-values",
        help="Values of the consent field that mean consent, comma-separated (any case), "
        "e.g. opted_in; without it the field must be true/false.",
    ),
]
Alert = Annotated[
    list[str] | None,
    typer.Option("--alert", help="Alert channel (repeatable; see `audiencesync alerts list`)."),
]
AlertOn = Annotated[
    str | None,
    typer.Option(
        "--alert-on",
        help="Events to alert, comma-separated (default: all): run_failed, "
        "run_partially_succeeded, needs_approval, needs_reauth, reject_share, audience_drift, "
        "recovered.",
    ),
]
AlertRejectShare = Annotated[
    float | None,
    typer.Option(
        "--alert-reject-share",
        min=0.0,
        max=1.0,
        help="Share of rejected identifier values that raises reject_share (default 0.2).",
    ),
]


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
    audience_description: Annotated[
        str | None,
        typer.Option("--audience-description", help="Description of the created audience."),
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
    max_removal_share: MaxRemovalShare = None,
    alert: Alert = None,
    alert_on: AlertOn = None,
    alert_reject_share: AlertRejectShare = None,
    consent_field: ConsentField = None,
    consent_values: ConsentValues = None,
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
        audience_description=audience_description,
        retention_days=retention_days,
        ad_account_id=ad_account,
        mode=mode or "mirror",
        schedule=schedule or "system",
        timezone=timezone or "UTC",
        max_removal_share=(
            DEFAULT_MAX_REMOVAL_SHARE if max_removal_share is None else max_removal_share
        ),
        alert_channels=tuple(alert) if alert else None,
        alert_events=(alert_on,) if alert_on else None,
        alert_reject_share=alert_reject_share,
        consent_field=consent_field,
        consent_values=_values(consent_values),
    )
    with opened() as ctx:
        view = service.add_export(ctx, actor(ctx), spec)
    _print_saved(view, "Added")


def _values(text: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


def _print_saved(view: ExportView, verb: str) -> None:
    console.print(
        f"{verb} export {view.name!r}: segments {', '.join(view.segments)} of dataset "
        f"{view.dataset!r} -> Snapchat audience {view.audience_id} ({view.audience_name}), "
        f"mode {view.mode}. Not run yet: `audiencesync exports run {view.name}`."
    )
    for note in service.validation_notes(view.validation):
        console.print(f"  checked at save: {note}.", markup=False)
    if view.consent_field:
        meaning = ", ".join(view.consent_values) if view.consent_values else "true"
        console.print(
            f"  consent: only profiles whose {view.consent_field!r} is {meaning} are sent.",
            markup=False,
        )
    if view.alerts.channels:
        console.print(
            f"  alerts: {', '.join(view.alerts.events)} -> {', '.join(view.alerts.channels)}",
            markup=False,
        )


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
    max_removal_share: MaxRemovalShare = None,
    alert: Alert = None,
    alert_on: AlertOn = None,
    alert_reject_share: AlertRejectShare = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Alert no channel any more.")
    ] = False,
    consent_field: ConsentField = None,
    consent_values: ConsentValues = None,
    no_consent_field: Annotated[
        bool, typer.Option("--no-consent-field", help="Send members without a consent check.")
    ] = False,
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
            max_removal_share=(
                current.max_removal_share if max_removal_share is None else max_removal_share
            ),
            alert_channels=() if no_alerts else tuple(alert) if alert else None,
            alert_events=(alert_on,) if alert_on else None,
            alert_reject_share=alert_reject_share,
            consent_field=None if no_consent_field else consent_field or current.consent_field,
            consent_values=(
                ()
                if no_consent_field
                else _values(consent_values)
                if consent_values is not None
                else current.consent_values
            ),
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
def list_(as_json: JsonOption = False) -> None:
    """List exports: connection, audience, segments, mode, schedule, last and next run."""
    with opened() as ctx:
        views = service.list_exports(ctx, actor(ctx))
    if as_json:
        print_json([ExportPublic.of(v) for v in views])
        return
    table = Table("name", "connection", "audience", "segments", "mode", "state", "last run",
                  "when it runs")  # fmt: skip
    for v in views:
        last = f"{v.last_run_status} {v.last_run_at:%Y-%m-%d %H:%M}" if v.last_run_at else ""
        table.add_row(
            v.name,
            v.connection or "(detached)",
            v.audience_id,
            ", ".join(v.segments),
            v.mode,
            v.state,
            last,
            v.schedule_words,
        )
    console.print(table)


@app.command("show")
def show(name: str, as_json: JsonOption = False) -> None:
    """Show an export's definition and state (--json: the API's fields, audience figures
    included)."""
    with opened() as ctx:
        v = service.get_export(ctx, actor(ctx), name)
    if as_json:
        print_json(ExportPublic.of(v))
        return
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
        f"mode: {v.mode}"
        + (
            f" (a run removing more than {v.max_removal_share:.0%} of the audience waits "
            "for approval)"
            if v.mode == "mirror"
            else ""
        ),
        "consent: "
        + (
            f"only profiles whose {v.consent_field!r} is "
            f"{', '.join(v.consent_values) if v.consent_values else 'true'} are sent"
            if v.consent_field
            else "not checked (every member is sent)"
        ),
        f"runs: {v.schedule_words}"
        + (f" (cron {v.schedule!r})" if v.schedule not in ("system", "manual") else ""),
        f"created: by {v.created_by} at {v.created_at:%Y-%m-%d %H:%M} UTC",
        f"last run: {v.last_run_status or 'never'}",
        *audience_lines(v.name, v.audience),
        *(f"checked at save: {note}" for note in service.validation_notes(v.validation)),
        "alerts: "
        + (
            f"{', '.join(v.alerts.events)} -> {', '.join(v.alerts.channels)}"
            if v.alerts.channels
            else "none"
        ),
    ]
    console.print("\n".join(lines), markup=False)


def audience_lines(name: str, a: AudienceSummary | None) -> list[str]:
    """What is held, the latest reading, match rate and drift, in plain words.

    The match rate is the latest reading's own (its matched users over what was held at
    that reading); when what is held has changed since, that held figure is named.
    """
    held = a.identifiers_held if a else None
    why = (a.held_unknown if a else None) or "no run yet"
    lines = [f"identifiers held: {f'unknown ({why})' if held is None else f'{held:,}'}"]
    latest = a.latest if a else None
    # Which figures are reported is the summary's decision (the API and pages read the
    # same properties): nothing of a reading older than an emptying still in progress.
    if a is None or latest is None:
        lines.append("audience: not read yet")
    elif a.stale:
        lines.append(
            "audience: matched size pending (the audience is being emptied; it is read "
            "again when that is finished)"
        )
    elif a.reading_error is not None:
        lines.append(f"audience: {a.reading_error} (at {latest.read_at:%Y-%m-%d %H:%M:%S} UTC)")
    elif a.pending:
        lines.append(
            f"audience: matched size pending, Snapchat upload {a.upload_status} "
            f"(read {latest.read_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    else:
        rate = a.match_rate
        matched = a.approximate_number_users
        size = "size not reported" if matched is None else f"about {matched:,} matched users"
        lines.append(
            f"audience: {size}, upload {a.upload_status}, targetable "
            f"{a.targetable_status} (read {latest.read_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
        if rate is None:
            lines.append("match rate: —")
        elif a.held_changed:
            lines.append(
                f"match rate: {rate:.1%} of the {latest.identifiers_held:,} identifiers held "
                "at that reading"
            )
        else:
            lines.append(f"match rate: {rate:.1%} of the identifiers held")
    if a is not None and a.next_reading_at is not None:
        lines.append(f"next reading: {a.next_reading_at:%Y-%m-%d %H:%M:%S} UTC")
    if a is not None and a.drift:
        lines.append(f"AUDIENCE MAY HAVE DRIFTED: {a.drift.get('reason')}")
        lines.append(f"  repair: `audiencesync exports run {name} --replace`")
    return lines


@app.command("audience")
def read_audience(name: str, as_json: JsonOption = False) -> None:
    """Read the export's audience from Snapchat now and store the reading (--json: the
    export as the API's ``POST /exports/{name}/audience`` returns it)."""
    with opened() as ctx:
        who = actor(ctx)
        service_runs.read_audience(ctx, who, name)
        view = service.get_export(ctx, who, name)
    if as_json:
        print_json(ExportPublic.of(view))
        return
    console.print("\n".join(audience_lines(name, view.audience)), markup=False)
