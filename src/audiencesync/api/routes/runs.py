"""``/runs``: runs of exports: list, show, progress, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import ProgressPublic, RunPublic
from audiencesync.sync import runs

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("")
def list_runs(
    ctx: Ctx,
    actor: CurrentActor,
    export: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[RunPublic]:
    """The newest runs, of one export when ``export`` is given."""
    return [RunPublic.of(r) for r in runs.list_runs(ctx, actor, export=export, limit=limit)]


@router.get("/{run_id}")
def get(ctx: Ctx, actor: CurrentActor, run_id: int) -> RunPublic:
    return RunPublic.of(runs.get_run(ctx, actor, run_id))


@router.get("/{run_id}/progress")
def progress(ctx: Ctx, actor: CurrentActor, run_id: int) -> ProgressPublic:
    """Phase and identifiers sent so far of a run."""
    return ProgressPublic.of(runs.get_run(ctx, actor, run_id))


@router.post("/{run_id}/cancel")
def cancel(ctx: Ctx, actor: CurrentActor, run_id: int) -> RunPublic:
    """Ask a queued or running run to stop (a running one stops between batches)."""
    return RunPublic.of(runs.cancel_run(ctx, actor, run_id))
