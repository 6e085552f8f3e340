"""``audiencesync exports run|clear`` and ``audiencesync runs ...``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audiencesync.cli.common import actor, console, opened
from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.sync import exports as export_service
from audiencesync.sync import runs as service
from audiencesync.sync.engine import RunOutcome
from audiencesync.sync.runs import RunView

app = typer.Typer(help="Inspect and cancel export runs.", no_args_is_help=True)


def summary_lines(view: RunView) -> list[str]:
    """A run's summary in plain words (shared by the CLI and the demo)."""
    c = view.counts
    lines = [f"run {view.id} of export {view.export!r}: {view.status}"
             + (f" in {view.seconds:.2f}s" if view.seconds is not None else "")]  # fmt: skip
    if view.dry_run:
        lines[0] += " (dry run: nothing sent)"
    if c:
        lines.append(f"  members: {c.get('members', 0):,}")
        for kind, number in sorted(c.get("identifiers", {}).items()):
            rejected = c.get("rejected", {}).get(kind, {})
            why = ", ".join(f"{reason} {n:,}" for reason, n in sorted(rejected.items()))
            lines.append(f"  {kind}: {number:,} hashed" + (f"; rejected: {why}" if why else ""))
        adds, removes = c.get("planned_adds", {}), c.get("planned_removes", {})
        added, removed = c.get("added", {}), c.get("removed", {})
        lines.append("  plan: add " + _per_type(adds) + "; remove " + _per_type(removes))
        if not view.dry_run:
            lines.append(
                f"  sent: added {_per_type(added)}; removed {_per_type(removed)}; "
                f"{c.get('requests', 0)} request(s), {c.get('bytes_sent', 0):,} bytes"
                + (f"; re-sent {c['resent']:,}" if c.get("resent") else "")
                + (f"; not sent {c['failed']:,}" if c.get("failed") else "")
            )
    if c.get("seconds"):
        phases = ", ".join(
            f"{name.replace('_', ' ')} {sec:.2f}s" for name, sec in c["seconds"].items()
        )
        lines.append(f"  time: {phases}")
    if view.audience:
        a = view.audience
        lines.append(
            f"  audience: about {a.get('approximate_number_users') or 0:,} matched users, "
            f"upload {a.get('upload_status')}, targetable {a.get('targetable_status')}"
        )
    lines.extend(f"  error: {e}" for e in view.errors)
    return lines


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
) -> None:
    """Run an export now, with a progress bar, and print the summary."""
    if bool(name) == run_all:
        raise UserInputError("name one export to run, or pass --all (not both).")
    failed = False
    with opened() as ctx:
        who = actor(ctx)
        names = (
            [v.name for v in export_service.list_exports(ctx, who) if v.enabled and v.connection]
            if run_all
            else [name or ""]
        )
        for export_name in names:
            try:
                view = _run_with_progress(ctx, who, export_name, dry_run=dry_run, full=full)
            except AudiencesyncError as error:
                if not run_all:
                    raise
                console.print(f"export {export_name!r}: {error.message}", markup=False)
                failed = True
                continue
            console.print("\n".join(summary_lines(view)), markup=False)
            failed = failed or view.status not in ("succeeded",)
    if failed:
        raise typer.Exit(9)


def _run_with_progress(
    ctx: Context, who: Actor, export_name: str, *, dry_run: bool, full: bool
) -> RunView:
    with Progress(
        TextColumn("[bold]{task.fields[phase]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(export_name, total=None, phase="starting")

        def report(outcome: RunOutcome) -> None:
            total = outcome.to_send or None
            progress.update(task, completed=outcome.sent, total=total, phase=outcome.phase)

        return service.run_now(ctx, who, export_name, dry_run=dry_run, full=full, reporter=report)


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
) -> None:
    """List runs, newest first."""
    with opened() as ctx:
        views = service.list_runs(ctx, actor(ctx), export=export, limit=limit)
    table = Table("id", "export", "trigger", "by", "status", "started (UTC)", "secs",
                  "members", "added", "removed")  # fmt: skip
    for v in views:
        c = v.counts
        table.add_row(
            str(v.id), v.export, v.trigger + (" (dry)" if v.dry_run else ""), v.requested_by,
            v.status, f"{v.started_at:%Y-%m-%d %H:%M:%S}" if v.started_at else "",
            f"{v.seconds:.1f}" if v.seconds is not None else "",
            f"{c.get('members', 0):,}", f"{sum(c.get('added', {}).values()):,}",
            f"{sum(c.get('removed', {}).values()):,}",
        )  # fmt: skip
    console.print(table)


@app.command("show")
def show(run_id: int) -> None:
    """Show one run: counts, errors, progress, the audience read back."""
    with opened() as ctx:
        view = service.get_run(ctx, actor(ctx), run_id)
    console.print("\n".join(summary_lines(view)), markup=False)
    if view.status == "running":
        p = view.progress
        console.print(f"  progress: {p.get('phase')} {p.get('done', 0):,}/{p.get('total', 0):,}")
    for reason, samples in sorted(view.reject_samples.items()):
        keys = ", ".join(str(s[0]) for s in samples[:5])
        console.print(f"  sample profiles rejected for {reason}: {keys}", markup=False)


@app.command("cancel")
def cancel(run_id: int) -> None:
    """Stop a queued or running run (it stops between batches)."""
    with opened() as ctx:
        view = service.cancel_run(ctx, actor(ctx), run_id)
    console.print(f"Run {view.id} cancellation requested ({view.status}).")
