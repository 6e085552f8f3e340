"""``audiencesync privacy ...``: suppression lists, erasure, retention and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audiencesync import wording
from audiencesync.api.privacy_models import (
    ErasurePublic,
    PrivacyReportPublic,
    SuppressionListPublic,
    SweepPublic,
)
from audiencesync.cli.common import JsonOption, actor, console, opened, print_json
from audiencesync.errors import UserInputError
from audiencesync.sync import privacy as service
from audiencesync.sync import retention
from audiencesync.sync.privacy import ErasureView

app = typer.Typer(
    help="Consent, suppression lists, erasure and retention (administrators).",
    no_args_is_help=True,
)
suppress_app = typer.Typer(
    help="Suppression lists: identifiers never sent, removed where held.", no_args_is_help=True
)
erasures_app = typer.Typer(help="Erasures: list, show, resume.", no_args_is_help=True)
app.add_typer(suppress_app, name="suppress")
app.add_typer(erasures_app, name="erasures")


@suppress_app.command("add")
def suppress_add(
    name: str,
    kind: Annotated[str, typer.Option("--type", help="email, phone or maid.")],
    file: Annotated[
        Path | None,
        typer.Option("--file", help="CSV or text (one value a line), or Parquet."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Take the values from this dataset.")
    ] = None,
    column: Annotated[
        str | None,
        typer.Option("--column", help="Column holding the values (a dataset's, or a file's)."),
    ] = None,
    hashed: Annotated[
        bool, typer.Option("--hashed", help="The values are SHA-256 hashes already.")
    ] = False,
    exports: Annotated[
        str | None, typer.Option("--exports", help="Exports it applies to, comma-separated.")
    ] = None,
    all_exports: Annotated[bool, typer.Option("--all", help="Apply it to every export.")] = False,
    default_country: Annotated[
        str | None,
        typer.Option("--default-country", help="Country of phones written without a code."),
    ] = None,
) -> None:
    """Create a suppression list; only the hashes are kept."""
    names = [e.strip() for e in (exports or "").split(",") if e.strip()]
    with opened() as ctx:
        view = service.create_list(
            ctx, actor(ctx), name, kind=kind, file=file, column=column, dataset=dataset,
            hashed=hashed, exports=names, all_exports=all_exports,
            default_country=default_country,
        )  # fmt: skip
    applies = "every export" if view.all_exports else "exports " + ", ".join(view.exports)
    console.print(
        f"Suppression list {view.name!r}: {view.size:,} {view.kind} identifier(s), applies to "
        f"{applies}; the next run of each removes those its audience holds.",
        markup=False,
    )
    if view.rejected:
        why = ", ".join(f"{reason} {n:,}" for reason, n in sorted(view.rejected.items()))
        console.print(f"  values not usable (left out): {why}", markup=False)


@suppress_app.command("list")
def suppress_list(as_json: JsonOption = False) -> None:
    """List suppression lists (and the erased identifiers every export obeys)."""
    with opened() as ctx:
        who = actor(ctx)
        views = service.list_lists(ctx, who)
        erased = service.erased_summary(ctx)
    if as_json:
        print_json([SuppressionListPublic.of(v) for v in views])
        return
    table = Table("name", "type", "identifiers", "applies to", "origin", "created")
    for v in views:
        table.add_row(
            v.name, v.kind, f"{v.size:,}",
            "all exports" if v.all_exports else ", ".join(v.exports), v.origin,
            f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}",
        )  # fmt: skip
    for kind, number in sorted(erased.items()):
        table.add_row("(erased)", kind, f"{number:,}", "all exports", "privacy erase", "")
    console.print(table)


@suppress_app.command("show")
def suppress_show(name: str, as_json: JsonOption = False) -> None:
    """Show one suppression list (never its identifiers)."""
    with opened() as ctx:
        view = service.get_list(ctx, actor(ctx), name)
    if as_json:
        print_json(SuppressionListPublic.of(view))
        return
    applies = "every export" if view.all_exports else ", ".join(view.exports)
    for label, value in (
        ("name", view.name),
        ("type", view.kind),
        ("identifiers", f"{view.size:,}"),
        ("applies to", applies),
        ("origin", view.origin + (" (hashed values)" if view.hashed_input else "")),
        ("not usable", ", ".join(f"{k} {n:,}" for k, n in sorted(view.rejected.items())) or "0"),
        ("created", f"{view.created_at:%Y-%m-%d %H:%M} by {view.created_by}"),
    ):
        console.print(f"{label}: {value}", markup=False)


@suppress_app.command("remove")
def suppress_remove(
    name: str, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False
) -> None:
    """Remove a suppression list: later runs may send its identifiers again."""
    if not yes and not typer.confirm(
        f"Remove suppression list {name!r}? Later runs may send its identifiers again."
    ):
        raise typer.Exit(1)
    with opened() as ctx:
        service.remove_list(ctx, actor(ctx), name)
    console.print(f"Removed suppression list {name!r}.")


def _print_erasure(view: ErasureView) -> None:
    given = ", ".join(f"{n} {kind}" for kind, n in sorted(view.identifiers.items()))
    console.print(
        f"erasure {view.id}: {view.status}; {given} identifier(s) added to the erased list "
        "(no later run sends them).",
        markup=False,
    )
    if not view.exports:
        console.print("  no export has an audience to remove them from.")
    for name, item in sorted(wording.erasure_exports(view.exports, cli=True).items()):
        removed = ", ".join(f"{n} {k}" for k, n in sorted((item.get("removed") or {}).items()))
        held = ", ".join(f"{n} {k}" for k, n in sorted((item.get("held") or {}).items()))
        line = (
            f"  export {name!r}: {item.get('status')}; removal sent for {removed or '0'} "
            f"(held by its record of the audience: {held or '0'})"
        )
        if item.get("runs"):
            line += " (run " + ", ".join(str(r) for r in item["runs"]) + ")"
        if item.get("message") and item.get("status") != "done":
            line += f": {item['message']}"
        console.print(line, markup=False)
    if view.status != "succeeded":
        console.print(f"  finish it with `audiencesync privacy erasures resume {view.id}`.")


@app.command("erase")
def erase(
    email: Annotated[
        list[str] | None, typer.Option("--email", help="Email to erase (repeatable).")
    ] = None,
    phone: Annotated[
        list[str] | None, typer.Option("--phone", help="Phone to erase (repeatable).")
    ] = None,
    maid: Annotated[
        list[str] | None, typer.Option("--maid", help="Mobile ad id to erase (repeatable).")
    ] = None,
    default_country: Annotated[
        str | None,
        typer.Option("--default-country", help="Country of phones written without a code."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a person from every audience now, and keep them out of every later run."""
    if not (email or phone or maid):
        raise UserInputError("name the person to erase: --email, --phone or --maid.")
    with opened() as ctx:
        view = service.erase(
            ctx, actor(ctx), emails=email or [], phones=phone or [], maids=maid or [],
            default_country=default_country,
        )  # fmt: skip
        others = [n for n in service.unfinished_erasures(ctx) if n != view.id]
    if as_json:
        print_json(ErasurePublic.of(view))
        return
    _print_erasure(view)
    for other in others:
        console.print(
            f"  erasure {other} is not finished: `audiencesync privacy erasures resume {other}`.",
            markup=False,
        )


@erasures_app.command("list")
def erasures_list(as_json: JsonOption = False) -> None:
    """List erasures, newest first (counts only, never the identifiers)."""
    with opened() as ctx:
        views = service.list_erasures(ctx, actor(ctx))
    if as_json:
        print_json([ErasurePublic.of(v) for v in views])
        return
    table = Table("id", "requested", "by", "status", "identifiers", "exports")
    for v in views:
        table.add_row(
            str(v.id), f"{v.requested_at:%Y-%m-%d %H:%M}", v.requested_by, v.status,
            str(sum(v.identifiers.values())), str(len(v.exports)),
        )  # fmt: skip
    console.print(table)


@erasures_app.command("show")
def erasures_show(erasure_id: int, as_json: JsonOption = False) -> None:
    """Show one erasure: what each export removed."""
    with opened() as ctx:
        view = service.get_erasure(ctx, actor(ctx), erasure_id)
    if as_json:
        print_json(ErasurePublic.of(view))
        return
    _print_erasure(view)


@erasures_app.command("resume")
def erasures_resume(erasure_id: int, as_json: JsonOption = False) -> None:
    """Finish an erasure that was interrupted or left exports pending."""
    with opened() as ctx:
        view = service.resume_erasure(ctx, actor(ctx), erasure_id)
    if as_json:
        print_json(ErasurePublic.of(view))
        return
    _print_erasure(view)


def _size(number: int) -> str:
    value = float(number)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{number} B"  # pragma: no cover


@app.command("report")
def report(as_json: JsonOption = False) -> None:
    """What personal data audiencesync holds where, with sizes and ages."""
    with opened() as ctx:
        found = retention.report(ctx, actor(ctx))
    if as_json:
        print_json(PrivacyReportPublic.of(found))
        return
    table = Table("what", "name", "where", "holds", "items", "size", "oldest", "newest")
    for e in found.entries:
        table.add_row(
            e.category, e.name, e.location, e.holds,
            "" if e.items is None else f"{e.items:,}", _size(e.bytes),
            f"{e.oldest:%Y-%m-%d %H:%M}" if e.oldest else "",
            f"{e.newest:%Y-%m-%d %H:%M}" if e.newest else "",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"Reject samples are kept {found.reject_sample_retention_days} day(s) "
        "(AUDIENCESYNC_REJECT_SAMPLE_RETENTION_DAYS); unused uploads "
        f"{found.upload_retention_hours:g} hour(s) (AUDIENCESYNC_UPLOAD_RETENTION_HOURS). "
        "Only SHA-256 hashes of normalized identifiers are ever sent to Snapchat.",
        markup=False,
    )


@app.command("sweep")
def sweep(as_json: JsonOption = False) -> None:
    """Apply the retention settings now (the scheduler does it every hour)."""
    with opened() as ctx:
        service.require_admin(actor(ctx))
        result = retention.sweep(ctx)
    if as_json:
        print_json(SweepPublic.of(result))
        return
    console.print(
        f"Dropped the reject samples of {result.samples_dropped} run(s); removed "
        f"{result.uploads_removed} unused upload(s), {result.versions_removed} superseded "
        f"dataset version(s), {result.scratch_removed} scratch folder(s) of runs no longer "
        f"under way and {result.staging_removed} interrupted list upload(s).",
        markup=False,
    )
