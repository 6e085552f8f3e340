"""``/exports``: export definitions; validate, run, dry run, clear; their runs."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import (
    ClearRequest,
    ExportCreate,
    ExportDuplicate,
    ExportPublic,
    ExportUpdate,
    Message,
    ReadingPublic,
    RunPublic,
    RunRequest,
)
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec

router = APIRouter(prefix="/exports", tags=["exports"])
API_TRIGGER = "api"


_TUPLES = ("segments", "alert_channels", "alert_events", "consent_values")


def _spec(fields: dict[str, Any]) -> ExportSpec:
    for key in _TUPLES:
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return ExportSpec(**fields)


@router.get("")
def list_exports(ctx: Ctx, actor: CurrentActor) -> list[ExportPublic]:
    """Every export with its state, last and next run."""
    return [ExportPublic.of(v) for v in exports.list_exports(ctx, actor)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(ctx: Ctx, actor: CurrentActor, body: ExportCreate) -> ExportPublic:
    """Check the export against Snapchat and the data, and save it. Does not run it."""
    return ExportPublic.of(exports.add_export(ctx, actor, _spec(body.model_dump())))


@router.get("/{name}")
def get(ctx: Ctx, actor: CurrentActor, name: str) -> ExportPublic:
    return ExportPublic.of(exports.get_export(ctx, actor, name))


@router.patch("/{name}")
def update(ctx: Ctx, actor: CurrentActor, name: str, body: ExportUpdate) -> ExportPublic:
    """Change some fields; the export is checked again as on create."""
    current = exports.spec_of(exports.get_export(ctx, actor, name))
    changes = body.model_dump(exclude_unset=True)
    if changes.get("create_audience"):
        changes.setdefault("audience_id", None)
    if changes.get("audience_id"):
        changes.setdefault("create_audience", False)
    updates: dict[str, Any] = {
        key: tuple(value) if key in _TUPLES and value is not None else value
        for key, value in changes.items()
    }
    spec = replace(current, **updates)
    return ExportPublic.of(exports.update_export(ctx, actor, name, spec))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove(ctx: Ctx, actor: CurrentActor, name: str) -> None:
    """Remove the export and its run history; the Snapchat audience itself is kept."""
    exports.remove_export(ctx, actor, name)


@router.post("/{name}/validate")
def validate(ctx: Ctx, actor: CurrentActor, name: str) -> ExportPublic:
    """Check the saved export again against Snapchat and the data (refreshes ``validation``)."""
    view = exports.get_export(ctx, actor, name)
    return ExportPublic.of(exports.update_export(ctx, actor, name, exports.spec_of(view)))


@router.post("/{name}/duplicate", status_code=status.HTTP_201_CREATED)
def duplicate(ctx: Ctx, actor: CurrentActor, name: str, body: ExportDuplicate) -> ExportPublic:
    """A disabled copy under a new name."""
    return ExportPublic.of(exports.duplicate_export(ctx, actor, name, body.new_name))


@router.post("/{name}/enable")
def enable(ctx: Ctx, actor: CurrentActor, name: str) -> ExportPublic:
    return ExportPublic.of(exports.set_enabled(ctx, actor, name, enabled=True))


@router.post("/{name}/disable")
def disable(ctx: Ctx, actor: CurrentActor, name: str) -> ExportPublic:
    return ExportPublic.of(exports.set_enabled(ctx, actor, name, enabled=False))


def _queue(
    ctx: Ctx,
    actor: CurrentActor,
    name: str,
    *,
    dry_run: bool,
    full: bool,
    replace: bool = False,
    confirm: bool = False,
) -> RunPublic:
    run_id = runs.request_run(
        ctx, actor, name, trigger=API_TRIGGER, dry_run=dry_run, full=full, replace=replace,
        confirm=confirm,
    )  # fmt: skip
    return RunPublic.of(runs.get_run(ctx, actor, run_id))


@router.post("/{name}/run", status_code=status.HTTP_202_ACCEPTED)
def run(ctx: Ctx, actor: CurrentActor, name: str, body: RunRequest | None = None) -> RunPublic:
    """Queue a run; a worker of ``audiencesync serve`` executes it. Poll ``/runs/{id}``.

    ``replace`` empties the audience first and uploads every current member (the repair
    of an audience that drifted); it needs ``"confirm": true`` (like a clear). A replace
    killed half way is finished by the next run.
    """
    return _queue(
        ctx, actor, name, dry_run=False,
        full=body.full if body else False, replace=body.replace if body else False,
        confirm=body.confirm if body else False,
    )  # fmt: skip


@router.post("/{name}/dry-run", status_code=status.HTTP_202_ACCEPTED)
def dry_run(ctx: Ctx, actor: CurrentActor, name: str) -> RunPublic:
    """Queue a run that computes the counts and sends nothing."""
    return _queue(ctx, actor, name, dry_run=True, full=False)


@router.post("/{name}/clear")
def clear(ctx: Ctx, actor: CurrentActor, name: str, body: ClearRequest) -> Message:
    """Empty the Snapchat audience and reset what the export has sent."""
    runs.clear_audience(ctx, actor, name, confirm=body.confirm)
    return Message(detail=f"the audience of export {name!r} was emptied.")


@router.get("/{name}/runs")
def list_runs(
    ctx: Ctx, actor: CurrentActor, name: str, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[RunPublic]:
    return [RunPublic.of(r) for r in runs.list_runs(ctx, actor, export=name, limit=limit)]


@router.post("/{name}/audience")
def read_audience(ctx: Ctx, actor: CurrentActor, name: str) -> ExportPublic:
    """Read the audience from Snapchat now and store the reading; the export with it."""
    runs.read_audience(ctx, actor, name)
    return ExportPublic.of(exports.get_export(ctx, actor, name))


@router.get("/{name}/readings")
def list_readings(
    ctx: Ctx, actor: CurrentActor, name: str, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[ReadingPublic]:
    """The audience's readings over time (oldest first): matched users, identifiers held."""
    return [ReadingPublic.of(r) for r in runs.export_readings(ctx, actor, name, limit=limit)]
