"""Runs: queue, lease, execute, record. One run per export at a time.

A run is queued (on demand, by the scheduler, by the API), claimed by a worker that takes
the export's lease, executed by :mod:`audiencesync.sync.engine`, and finished with its
counts, errors and the audience read back. The lease expires when its worker dies, and
the run it covered is then marked ``interrupted``; the next run resumes from the
confirmed snapshot.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Connection, Export, ExportLease, Run
from audiencesync.errors import AudiencesyncError, ConflictError, NotFoundError, UserInputError
from audiencesync.sync import engine
from audiencesync.sync.destinations import NEEDS_REAUTH, open_destination
from audiencesync.sync.exports import (
    export_segment_names,
    get_row,
    identifier_fields,
    refuse_while_running,
    require_export_access,
)
from audiencesync.sync.snapshot import Snapshot

log = logging.getLogger(__name__)

QUEUED = "queued"
RUNNING = "running"
INTERRUPTED = "interrupted"
TERMINAL = frozenset({"succeeded", "partially_succeeded", "failed", "cancelled", INTERRUPTED})
PROGRESS_EVERY_SECONDS = 0.5
_INTERRUPTED = "the worker running this run stopped; the next run resumes from here."

Clock = Callable[[], datetime]


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0))


def worker_name() -> str:
    """A name for this process as a worker: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunView:
    id: int
    export: str
    trigger: str
    requested_by: str
    status: str
    dry_run: bool
    full: bool
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, Any]
    progress: dict[str, Any]
    audience: dict[str, Any]
    errors: tuple[str, ...]
    reject_samples: dict[str, Any]

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def _view(session: Session, run: Run) -> RunView:
    export_name = session.scalar(select(Export.name).where(Export.id == run.export_id)) or ""
    return RunView(
        id=run.id,
        export=export_name,
        trigger=run.trigger,
        requested_by=run.requested_by,
        status=run.status,
        dry_run=run.dry_run,
        full=run.full,
        queued_at=run.queued_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        counts=dict(run.counts or {}),
        progress=dict(run.progress or {}),
        audience=dict(run.audience or {}),
        errors=tuple(run.errors or ()),
        reject_samples=dict(run.reject_samples or {}),
    )


def _check_runnable(session: Session, export: Export) -> Connection:
    if export.connection_id is None:
        raise ConflictError(
            f"export {export.name!r} has no connection (it was detached): give it one with "
            f"`audiencesync exports update {export.name} --connection NAME`."
        )
    connection = session.get(Connection, export.connection_id)
    assert connection is not None
    if connection.status == NEEDS_REAUTH:
        raise ConflictError(
            f"connection {connection.name!r} of export {export.name!r} needs re-authentication: "
            f"an administrator must run `audiencesync connections reauth {connection.name}`."
        )
    return connection


def request_run(
    ctx: Context,
    actor: Actor | None,
    export_name: str,
    *,
    trigger: str = "on_demand",
    dry_run: bool = False,
    full: bool = False,
) -> int:
    """Queue a run of ``export_name``; its id. ``actor`` None means the scheduler."""
    mark_interrupted(ctx)
    with ctx.db.session() as session:
        export = get_row(session, export_name)
        if actor is not None:
            require_export_access(session, actor, export)
        _check_runnable(session, export)
        refuse_while_running(session, export, "run")
        run = Run(
            export_id=export.id,
            trigger=trigger,
            requested_by=actor.name if actor else "scheduler",
            status=QUEUED,
            dry_run=dry_run,
            full=full,
            queued_at=utcnow(),
            counts={},
            reject_samples={},
            progress={},
            audience={},
            errors=[],
        )
        session.add(run)
        session.flush()
        if actor is not None and not dry_run:
            audit.record(
                session, actor, "export.run", f"export:{export.name}",
                after={"run": run.id, "full": full},
            )  # fmt: skip
        return run.id


def _take_lease(
    session: Session, export_id: int, run_id: int, worker: str, now: datetime, seconds: float
) -> bool:
    expires = now + timedelta(seconds=seconds)
    lease = session.get(ExportLease, export_id)
    if lease is None:
        try:
            with session.begin_nested():
                session.add(
                    ExportLease(
                        export_id=export_id, run_id=run_id, worker=worker, expires_at=expires
                    )
                )
            return True
        except IntegrityError:
            return False
    taken = session.execute(
        update(ExportLease)
        .where(and_(ExportLease.export_id == export_id, ExportLease.expires_at < now))
        .values(run_id=run_id, worker=worker, expires_at=expires)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(
        update(Run)
        .where(Run.id == lease.run_id, Run.status == RUNNING)
        .values(
            status=INTERRUPTED,
            finished_at=now,
            errors=[_INTERRUPTED],
        )
    )
    return True


def claim(
    ctx: Context,
    worker: str,
    *,
    run_id: int | None = None,
    now: Clock = utcnow,
) -> int | None:
    """Take the lease of a queued run's export and mark the run running; its id or None."""
    lease_seconds = ctx.settings.run_lease_seconds
    with ctx.db.session() as session:
        query = select(Run).where(Run.status == QUEUED).order_by(Run.id)
        if run_id is not None:
            query = query.where(Run.id == run_id)
        for run in session.scalars(query).all():
            moment = now()
            if not _take_lease(session, run.export_id, run.id, worker, moment, lease_seconds):
                continue
            started = session.execute(
                update(Run)
                .where(Run.id == run.id, Run.status == QUEUED)
                .values(status=RUNNING, started_at=moment, worker=worker)
            )
            if started.rowcount == 1:  # type: ignore[attr-defined]
                return run.id
            session.execute(
                update(ExportLease)
                .where(ExportLease.export_id == run.export_id, ExportLease.run_id == run.id)
                .values(expires_at=moment)
            )
    return None


def _renew(ctx: Context, export_id: int, run_id: int, now: Clock) -> bool:
    with ctx.db.session() as session:
        renewed = session.execute(
            update(ExportLease)
            .where(ExportLease.export_id == export_id, ExportLease.run_id == run_id)
            .values(expires_at=now() + timedelta(seconds=ctx.settings.run_lease_seconds))
        )
        return _rowcount(renewed) == 1


class _Recorder:
    """Writes a run's progress to the control database, at most twice a second."""

    def __init__(self, ctx: Context, run_id: int, forward: engine.Reporter | None) -> None:
        self._ctx = ctx
        self._run_id = run_id
        self._forward = forward
        self._last = 0.0
        self._lock = threading.Lock()
        #: set by the heartbeat when another worker has taken the export's lease.
        self.lease_lost = threading.Event()

    def __call__(self, outcome: engine.RunOutcome) -> None:
        if self._forward is not None:
            self._forward(outcome)
        with self._lock:
            moment = time.monotonic()
            if moment - self._last < PROGRESS_EVERY_SECONDS:
                return
            self._last = moment
        with self._ctx.db.session() as session:
            session.execute(
                update(Run)
                .where(Run.id == self._run_id)
                .values(progress=outcome.progress(), counts=outcome.counts())
            )

    def cancelled(self) -> bool:
        if self.lease_lost.is_set():
            return True
        with self._ctx.db.session() as session:
            return bool(session.scalar(select(Run.cancel_requested).where(Run.id == self._run_id)))


def _input(session: Session, run: Run) -> tuple[engine.RunInput, Export]:
    export = session.get(Export, run.export_id)
    if export is None:
        raise NotFoundError(f"the export of run {run.id} was removed.")
    fields = identifier_fields(export)
    return (
        engine.RunInput(
            export_id=export.id,
            audience_id=export.audience_id,
            segments=tuple(export_segment_names(session, export.id)),
            fields=fields,
            default_country=export.default_country,
            mirror=export.mode == "mirror",
            dry_run=run.dry_run,
            full=run.full,
        ),
        export,
    )


def execute_claimed(
    ctx: Context,
    run_id: int,
    *,
    reporter: engine.Reporter | None = None,
    now: Clock = utcnow,
) -> RunView:
    """Execute a run this worker has claimed, renewing its lease; the finished run.

    If the lease is lost (the control database was unreachable for a whole lease, and
    another worker took over), the run stops between batches and leaves its record to
    the worker that took over.
    """
    with ctx.db.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"there is no run {run_id}: see `audiencesync runs list`.")
        export_id = run.export_id
    recorder = _Recorder(ctx, run_id, reporter)
    stop_heartbeat = threading.Event()

    def heartbeat() -> None:
        interval = max(0.05, ctx.settings.run_lease_seconds / 3)
        while not stop_heartbeat.wait(interval):
            try:
                renewed = _renew(ctx, export_id, run_id, now)
            except Exception:  # noqa: BLE001 - a passing database error: try again next beat
                log.warning("run %d could not renew its lease; retrying", run_id)
                continue
            if not renewed:
                log.warning("run %d lost its lease and stops", run_id)
                recorder.lease_lost.set()
                return

    beat = threading.Thread(target=heartbeat, name=f"lease-{run_id}", daemon=True)
    beat.start()
    destination = None
    try:
        with ctx.db.session() as session:
            run = session.get(Run, run_id)
            assert run is not None
            run_input, export = _input(session, run)
            connection = None if run.dry_run else _check_runnable(session, export)
        if connection is not None:
            destination = open_destination(ctx, connection)
        outcome = engine.execute(
            ctx, run_id, run_input, destination,
            concurrency=ctx.settings.http_max_concurrency,
            report=recorder, cancelled=recorder.cancelled,
        )  # fmt: skip
    except Exception as error:  # recorded on the run in plain words
        outcome = engine.RunOutcome(fatal=True)
        message = getattr(error, "message", None) or f"unexpected error: {type(error).__name__}"
        outcome.errors.append(message)
        if not isinstance(error, AudiencesyncError):
            log.exception("run %d failed", run_id)
    finally:
        stop_heartbeat.set()
        beat.join()
        if destination is not None:
            destination.close()
    return _finish(
        ctx, run_id,
        status=outcome.status(), finished_at=now(), counts=outcome.counts(),
        progress=outcome.progress(), reject_samples=outcome.reject_samples,
        audience=outcome.audience, errors=outcome.errors,
    )  # fmt: skip


def _finish(ctx: Context, run_id: int, **values: Any) -> RunView:
    """Write a run's end (``values``) if it is still running, and free its export's lease.

    Only a run still ours is finished here; a lost lease leaves it to its successor.
    """
    with ctx.db.session() as session:
        session.execute(update(Run).where(Run.id == run_id, Run.status == RUNNING).values(**values))
        run = session.get(Run, run_id)
        assert run is not None
        lease = session.get(ExportLease, run.export_id)
        if lease is not None and lease.run_id == run_id:
            session.delete(lease)
        session.refresh(run)
        return _view(session, run)


def _start_now(
    ctx: Context, actor: Actor, export_name: str, *, trigger: str, dry_run: bool, full: bool
) -> int:
    """A run created already running, under the export's lease, in one transaction.

    No worker can pick it from the queue in between: on-demand runs and clears start here.
    """
    mark_interrupted(ctx)
    worker = worker_name()
    with ctx.db.session() as session:
        export = get_row(session, export_name)
        require_export_access(session, actor, export)
        _check_runnable(session, export)
        refuse_while_running(session, export, "run")
        moment = utcnow()
        run = Run(
            export_id=export.id, trigger=trigger, requested_by=actor.name, status=RUNNING,
            dry_run=dry_run, full=full, queued_at=moment, started_at=moment, worker=worker,
            counts={}, reject_samples={}, progress={}, audience={}, errors=[],
        )  # fmt: skip
        session.add(run)
        session.flush()
        if not _take_lease(
            session, export.id, run.id, worker, moment, ctx.settings.run_lease_seconds
        ):
            raise ConflictError(
                f"export {export.name!r} is being run by another worker: "
                "see `audiencesync runs list`."
            )
        if not dry_run:
            audit.record(
                session, actor, f"export.{trigger}" if trigger == "clear" else "export.run",
                f"export:{export.name}", after={"run": run.id, "full": full},
            )  # fmt: skip
        return run.id


def run_now(
    ctx: Context,
    actor: Actor,
    export_name: str,
    *,
    dry_run: bool = False,
    full: bool = False,
    trigger: str = "on_demand",
    reporter: engine.Reporter | None = None,
) -> RunView:
    """Run an export in this process now (the CLI's ``exports run``); the finished run."""
    run_id = _start_now(ctx, actor, export_name, trigger=trigger, dry_run=dry_run, full=full)
    return execute_claimed(ctx, run_id, reporter=reporter)


def run_pending(ctx: Context, worker: str, *, now: Clock = utcnow) -> RunView | None:
    """Claim and execute the oldest runnable queued run (one worker loop step)."""
    mark_interrupted(ctx, now=now)
    run_id = claim(ctx, worker, now=now)
    if run_id is None:
        return None
    return execute_claimed(ctx, run_id, now=now)


def mark_interrupted(ctx: Context, *, now: Clock = utcnow) -> int:
    """Mark running runs whose lease expired (their worker died) as interrupted."""
    moment = now()
    count = 0
    with ctx.db.session() as session:
        running = session.scalars(select(Run.id).where(Run.status == RUNNING)).all()
    for run_id in running:
        with ctx.db.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                continue
            lease = session.get(ExportLease, run.export_id)
            if lease is not None and lease.run_id == run.id and lease.expires_at >= moment:
                continue
            # Conditional: a run that finished meanwhile keeps its own status.
            changed = session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == RUNNING)
                .values(
                    status=INTERRUPTED,
                    finished_at=moment,
                    errors=[*run.errors, _INTERRUPTED],
                )
            )
            if _rowcount(changed) == 1:
                count += 1
                if lease is not None and lease.run_id == run.id:
                    session.delete(lease)
    return count


def cancel_run(ctx: Context, actor: Actor, run_id: int) -> RunView:
    """Ask a queued or running run to stop (between batches); its view."""
    with ctx.db.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"there is no run {run_id}: see `audiencesync runs list`.")
        export = session.get(Export, run.export_id)
        assert export is not None
        require_export_access(session, actor, export)
        if run.status in TERMINAL:
            raise ConflictError(f"run {run_id} has already ended ({run.status}).")
        if run.status == QUEUED:
            run.status = "cancelled"
            run.finished_at = utcnow()
        run.cancel_requested = True
        audit.record(session, actor, "run.cancel", f"export:{export.name}", after={"run": run_id})
        return _view(session, run)


def list_runs(
    ctx: Context, actor: Actor, *, export: str | None = None, limit: int = 20
) -> list[RunView]:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if export is not None:
            query = query.where(Run.export_id == get_row(session, export).id)
        return [_view(session, r) for r in session.scalars(query)]


def get_run(ctx: Context, actor: Actor, run_id: int) -> RunView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"there is no run {run_id}: see `audiencesync runs list`.")
        return _view(session, run)


def clear_audience(ctx: Context, actor: Actor, export_name: str, *, confirm: bool) -> RunView:
    """Remove every member of the export's audience and reset its snapshot; the clear run.

    A marker written first makes the next run redo the clear if this one is killed
    between emptying the audience and resetting the snapshot.
    """
    if not confirm:
        raise UserInputError(
            "clearing empties the Snapchat audience: confirm with --yes (or answer yes)."
        )
    run_id = _start_now(ctx, actor, export_name, trigger="clear", dry_run=False, full=False)
    errors: list[str] = []
    destination = None
    try:
        with ctx.db.session() as session:
            export = get_row(session, export_name)
            connection = _check_runnable(session, export)
            snapshot = Snapshot(ctx.home, export.id, export.audience_id)
            audience_id = export.audience_id
        snapshot.mark_clear_pending()
        destination = open_destination(ctx, connection)
        destination.clear(audience_id)
        snapshot.reset()
        snapshot.clear_done()
    except AudiencesyncError as error:
        errors.append(error.message)
    except Exception as error:
        # Recorded as failed (never as succeeded), then raised: a defect, not a user error.
        errors.append(f"unexpected error: {type(error).__name__}")
        raise
    finally:
        if destination is not None:
            destination.close()
        view = _finish(
            ctx, run_id,
            status="failed" if errors else "succeeded", finished_at=utcnow(), errors=errors,
            counts={"cleared": not errors},
        )  # fmt: skip
    return view
