"""``/runs``: runs of exports: list, show, progress, cancel, approve, dismiss, rejects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from audiencesync.api.deps import Ctx, CurrentActor, RecordId
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
def get(ctx: Ctx, actor: CurrentActor, run_id: RecordId) -> RunPublic:
    return RunPublic.of(runs.get_run(ctx, actor, run_id))


@router.get("/{run_id}/progress")
def progress(ctx: Ctx, actor: CurrentActor, run_id: RecordId) -> ProgressPublic:
    """Phase and identifiers sent so far of a run."""
    return ProgressPublic.of(runs.get_run(ctx, actor, run_id))


@router.post("/{run_id}/cancel")
def cancel(ctx: Ctx, actor: CurrentActor, run_id: RecordId) -> RunPublic:
    """Ask a queued or running run to stop (a running one stops between batches)."""
    return RunPublic.of(runs.cancel_run(ctx, actor, run_id))


@router.post("/{run_id}/approve", status_code=status.HTTP_202_ACCEPTED)
def approve(ctx: Ctx, actor: CurrentActor, run_id: RecordId) -> RunPublic:
    """Approve the removals a ``needs_approval`` run held: a worker sends them.

    The answer is the queued approval run; the held run becomes ``approved`` once it has
    sent every held removal.
    """
    return RunPublic.of(runs.get_run(ctx, actor, runs.request_approval(ctx, actor, run_id)))


@router.post("/{run_id}/dismiss")
def dismiss(ctx: Ctx, actor: CurrentActor, run_id: RecordId) -> RunPublic:
    """Forget the removals a ``needs_approval`` run held; they are never sent."""
    return RunPublic.of(runs.dismiss_run(ctx, actor, run_id))


@router.get("/{run_id}/rejects.csv", response_class=Response)
def rejects_csv(ctx: Ctx, actor: CurrentActor, run_id: RecordId) -> Response:
    """The run's reject samples (profile key, identifier type, reason) as CSV."""
    return csv_response(runs.reject_samples_csv(ctx, actor, run_id), run_id)


def csv_response(text: str, run_id: int) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-rejects.csv"'},
    )
