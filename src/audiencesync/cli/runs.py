"""``audiencesync exports run|clear`` and ``audiencesync runs ...``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audiencesync.api.models import RunPublic
from audiencesync.cli.common import JsonOption, actor, console, opened, print_json
from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.sync import exports as export_service
from audiencesync.sync import runs as service
from audiencesync.sync.engine import RunOutcome
from audiencesync.sync.runs import NEEDS_APPROVAL, RunView
from audiencesync.wording import for_cli

app = typer.Typer(help="Inspect and cancel export runs.", no_args_is_help=True)

#: ``exports run`` / ``runs approve``: a run ended failed, cancelled, interrupted or only
#: partly succeeded (docs/sync.md, "CLI exit codes").
EXIT_RUN_FAILED = 9
#: ``exports run``: every run succeeded but one holds removals for approval.
EXIT_NEEDS_APPROVAL = 11


def summary_lines(view: RunView, *, show_command: str | None = None) -> list[str]:
    """A run's summary in plain words (shared by the CLI and the demo).

    Each figure is one entry of ``Run.counts`` (docs/sync.md, "Numbers"); a dry run shows
    what it would add and remove, and no sent figures. ``show_command``: the command that
    shows the export later, as printed (the demo's names its home); by default
    ``audiencesync exports show NAME``.
    """
    c = service.display_counts(view.counts)
    lines = [f"run {view.id} of export {view.export!r}: {view.status}"
             + (f" in {view.seconds:.2f}s" if view.seconds is not None else "")]  # fmt: skip
    if view.dry_run:
        lines[0] += " (dry run: nothing sent)"
    if view.approves_run is not None:
        lines[0] += f" (sends the removals held by run {view.approves_run})"
    if c.get("older_version"):
        lines.append("  (recorded by an older version: figures it did not record are left out)")
    if "members" in c and view.approves_run is None:
        # An approval sends held removals; it does not read or count members.
        lines.append(
            f"  members: {c.get('members', 0):,}"
            + (
                f"; without any usable identifier: {c['members_without_identifier']:,}"
                if "members_without_identifier" in c
                else ""
            )
        )
    for kind in sorted(c.get("values_present", {})):
        rejected = c.get("rejected", {}).get(kind, {})
        why = ", ".join(f"{reason} {n:,}" for reason, n in sorted(rejected.items()))
        lines.append(
            f"  {kind}: {c['values_present'][kind]:,} present, {c.get('empty', {}).get(kind, 0):,}"
            f" empty; {c.get('accepted', {}).get(kind, 0):,} accepted, "
            f"{sum(rejected.values()):,} invalid" + (f" ({why})" if why else "")
        )
    lines.extend(privacy_lines(c))
    adds, removes = c.get("planned_adds", {}), c.get("planned_removes", {})
    # A --full run's already-confirmed identifiers are re-sent, never counted as adds.
    resends = c.get("planned_resends") or {}
    again = "; " + ("would re-send " if view.dry_run else "re-send ") + _per_type(resends)
    if view.dry_run:
        lines.append(
            "  would add " + _per_type(adds) + "; would remove " + _per_type(removes)
            + (again if resends else "")
        )  # fmt: skip
    elif c:
        lines.append(
            "  plan: add " + _per_type(adds) + "; remove " + _per_type(removes)
            + (again if resends else "")
        )  # fmt: skip
        added, removed = c.get("added", {}), c.get("removed", {})
        lines.append(
            "  sent: "
            + (f"emptied the audience{_was_held(c)}, then " if c.get("emptied") else "")
            + f"added {_per_type(added)}; removed {_per_type(removed)}; "
            f"{c.get('requests', 0)} request(s), {c.get('bytes_sent', 0):,} bytes"
            + (f"; {c['retries']:,} retried" if c.get("retries") else "")
            + (f"; {c['throttled']:,} throttled (429)" if c.get("throttled") else "")
            + (f"; re-sent {c['resent']:,}" if c.get("resent") else "")
            + (f"; not sent {c['failed']:,}" if c.get("failed") else "")
        )
    if c.get("confirmed") is not None and "members" in c:
        lines.append(f"  confirmed in the audience: {_per_type(c.get('confirmed', {}))}")
    if view.message:
        lines.append(f"  {view.message}")
        if view.status == NEEDS_APPROVAL:
            lines.append(
                f"  approve: `audiencesync runs approve {view.id}`; "
                f"dismiss: `audiencesync runs dismiss {view.id}`"
            )
    if c.get("seconds"):
        phases = ", ".join(
            f"{name.replace('_', ' ')} {sec:.2f}s" for name, sec in c["seconds"].items()
        )
        lines.append(f"  time: {phases}")
    if view.audience:
        lines.append("  audience: " + _read_back(view, show_command))
    lines.extend(f"  error: {e}" for e in view.errors)
    return lines


def privacy_lines(c: dict[str, Any]) -> list[str]:
    """The privacy figures of a run: members without consent, identifiers suppressed, and
    the removals they caused (docs/privacy.md)."""
    lines = []
    if "no_consent" in c:
        lines.append(f"  without consent (not sent): {c['no_consent']:,} member(s)")
    if c.get("suppressed"):
        lines.append("  suppressed (lists and erasures, not sent): " + _per_type(c["suppressed"]))
    if c.get("privacy_removes"):
        lines.append(
            "  removals for privacy (suppressed, erased or without consent): "
            + _per_type(c["privacy_removes"])
        )
    return lines


def _was_held(c: dict[str, object]) -> str:
    held = c.get("emptied_held")
    return f" (it held {held:,} identifiers)" if isinstance(held, int) else ""


def _read_back(view: RunView, show_command: str | None = None) -> str:
    """The audience as read at the end of the run, never a matched size Snapchat has not
    computed yet (while it matches, the figure it reports is stale)."""
    a = view.audience
    status = a.get("upload_status")
    if status != "COMPLETE":
        return (
            f"matched size pending (Snapchat upload {status}); audiencesync reads it again "
            f"in a minute and after: `{show_command or f'audiencesync exports show {view.export}'}`"
        )
    matched = a.get("approximate_number_users") or 0
    return (
        f"about {matched:,} matched users, upload {status}, targetable {a.get('targetable_status')}"
    )


def _per_type(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    return ", ".join(f"{n:,} {kind}" for kind, n in sorted(counts.items()))


def run_export(
    name: Annotated[str | None, typer.Argument(help="Export to run.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute and show the plan; send nothing.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Re-send every current member and known removal.")
    ] = False,
    run_all: Annotated[bool, typer.Option("--all", help="Run every enabled export.")] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Empty the audience first, then upload every current member (repairs "
            "an audience that drifted; a killed replace is finished by the next run).",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="With --replace: do not ask for confirmation.")
    ] = False,
) -> None:
    """Run an export now, with a progress bar, and print the summary."""
    if bool(name) == run_all:
        raise UserInputError("name one export to run, or pass --all (not both).")
    if replace and not dry_run and not yes:
        what = "every enabled export" if run_all else f"export {name!r}"
        yes = typer.confirm(
            f"Empty the Snapchat audience of {what} before uploading every member?",
            default=False,
        )
    failed = held = False
    with opened() as ctx:
        who = actor(ctx)
        names = (
            [v.name for v in export_service.list_exports(ctx, who) if v.enabled and v.connection]
            if run_all
            else [name or ""]
        )
        for export_name in names:
            try:
                view = _run_with_progress(
                    ctx, who, export_name, dry_run=dry_run, full=full, replace=replace,
                    confirm=yes,
                )  # fmt: skip
            except AudiencesyncError as error:
                if not run_all:
                    raise
                console.print(f"export {export_name!r}: {for_cli(error)}", markup=False)
                failed = True
                continue
            console.print("\n".join(summary_lines(view)), markup=False)
            held = held or view.status == NEEDS_APPROVAL
            failed = failed or view.status not in ("succeeded", NEEDS_APPROVAL)
    if failed:
        raise typer.Exit(EXIT_RUN_FAILED)
    if held:
        raise typer.Exit(EXIT_NEEDS_APPROVAL)


def _run_with_progress(
    ctx: Context,
    who: Actor,
    export_name: str,
    *,
    dry_run: bool,
    full: bool,
    replace: bool,
    confirm: bool,
) -> RunView:
    # A dry run sends nothing: no "0 of N sent" count, only its phase.
    columns = (
        (TextColumn("[bold]{task.fields[phase]}"), TimeElapsedColumn())
        if dry_run
        else (
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(export_name, total=None, phase="starting")

        def report(outcome: RunOutcome) -> None:
            if dry_run:
                progress.update(task, phase=outcome.phase)
                return
            total = outcome.to_send or None
            progress.update(task, completed=outcome.sent, total=total, phase=outcome.phase)

        return service.run_now(
            ctx, who, export_name, dry_run=dry_run, full=full, replace=replace,
            confirm=confirm, reporter=report,
        )  # fmt: skip


def clear_export(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Empty the export's Snapchat audience and reset its snapshot."""
    if not yes:
        yes = typer.confirm(
            f"Remove every member of the Snapchat audience of export {name!r}?", default=False
        )
    with opened() as ctx:
        service.clear_audience(ctx, actor(ctx), name, confirm=yes)
    console.print(f"Audience of export {name!r} emptied; the next run sends every member.")


@app.command("list")
def list_(
    export: Annotated[str | None, typer.Option("--export", help="Only this export.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first (a dry run's columns say what it would add and remove)."""
    with opened() as ctx:
        views = service.list_runs(ctx, actor(ctx), export=export, limit=limit)
    if as_json:
        print_json([RunPublic.of(v) for v in views])
        return
    table = Table("id", "export", "trigger", "by", "status", "started (UTC)", "secs",
                  "members", "added", "removed")  # fmt: skip
    for v in views:
        c = v.counts
        if v.dry_run:
            added = f"would add {sum(c.get('planned_adds', {}).values()):,}"
            removed = f"would remove {sum(c.get('planned_removes', {}).values()):,}"
        else:
            added = f"{sum(c.get('added', {}).values()):,}"
            removed = f"{sum(c.get('removed', {}).values()):,}"
        table.add_row(
            str(v.id), v.export, v.trigger + (" (dry)" if v.dry_run else ""), v.requested_by,
            v.status, f"{v.started_at:%Y-%m-%d %H:%M:%S}" if v.started_at else "",
            f"{v.seconds:.1f}" if v.seconds is not None else "",
            f"{c.get('members', 0):,}", added, removed,
        )  # fmt: skip
    console.print(table)


@app.command("show")
def show(run_id: int, as_json: JsonOption = False) -> None:
    """Show one run: counts, errors, progress, the audience read back."""
    with opened() as ctx:
        view = service.get_run(ctx, actor(ctx), run_id)
    if as_json:
        print_json(RunPublic.of(view))
        return
    console.print("\n".join(summary_lines(view)), markup=False)
    if view.status == "running":
        p = view.progress
        console.print(f"  progress: {p.get('phase')} {p.get('done', 0):,}/{p.get('total', 0):,}")
    for reason, samples in sorted(view.reject_samples.items()):
        keys = ", ".join(str(s[0]) for s in samples[:5])
        console.print(f"  sample profiles rejected for {reason}: {keys}", markup=False)
    if view.reject_samples:
        console.print(f"  all samples as CSV: `audiencesync runs rejects {view.id}`")


@app.command("rejects")
def rejects(run_id: int) -> None:
    """Print a run's reject samples (profile key, identifier type, reason) as CSV."""
    with opened() as ctx:
        text = service.reject_samples_csv(ctx, actor(ctx), run_id)
    sys.stdout.write(text)


@app.command("approve")
def approve(run_id: int) -> None:
    """Send the removals a run held for approval (needs_approval), now, in this process."""
    with opened() as ctx:
        who = actor(ctx)
        with Progress(
            TextColumn("[bold]{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("approval", total=None, phase="starting")

            def report(outcome: RunOutcome) -> None:
                total = outcome.to_send or None
                progress.update(task, completed=outcome.sent, total=total, phase=outcome.phase)

            view = service.approve_now(ctx, who, run_id, reporter=report)
        held = service.get_run(ctx, who, run_id)
    console.print("\n".join(summary_lines(view)), markup=False)
    if held.status != service.APPROVED:
        console.print(
            f"Run {run_id} still waits for approval: approve it again to send the rest.",
            markup=False,
        )
        raise typer.Exit(EXIT_RUN_FAILED)
    console.print(f"Run {run_id} approved: its held removals were sent.")


@app.command("dismiss")
def dismiss(run_id: int) -> None:
    """Forget the removals a run held for approval; they are never sent."""
    with opened() as ctx:
        view = service.dismiss_run(ctx, actor(ctx), run_id)
    console.print(
        f"Run {view.id} dismissed: its held removals were not sent; the export's next run "
        "plans again."
    )


@app.command("cancel")
def cancel(run_id: int) -> None:
    """Stop a queued or running run (it stops between batches)."""
    with opened() as ctx:
        view = service.cancel_run(ctx, actor(ctx), run_id)
    console.print(f"Run {view.id} cancellation requested ({view.status}).")
