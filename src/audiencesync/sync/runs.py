"""Runs: queue, lease, execute, record. One run per export at a time.

A run is queued (on demand, by the scheduler, by the API), claimed by a worker that takes
the export's lease, executed by :mod:`audiencesync.sync.engine`, and finished with its
counts, errors and the audience read back. The lease expires when its worker dies, and
the run it covered is then marked ``interrupted``; the next run resumes from the
confirmed snapshot.

A mirror run whose removals the guard held back ends ``needs_approval``; approving it
(:func:`approve_now`, :func:`request_approval`) runs an ``approval`` run that sends the
held removals, after which the held run is ``approved``; dismissing it (:func:`dismiss_run`)
forgets them (``dismissed``). A later ordinary run supersedes a held one: it dismisses it
and plans again, so its own removals are guarded again.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import secrets
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
from audiencesync.control.sync_models import (
    ACTIVE_STATUSES,
    Connection,
    Export,
    ExportLease,
    Run,
)
from audiencesync.errors import (
    ActiveRunError,
    AudiencesyncError,
    ConflictError,
    DatabaseUnavailableError,
    DestinationError,
    Fix,
    NotFoundError,
    UserInputError,
)
from audiencesync.sync import alerts, audience, engine, erasing
from audiencesync.sync import snapshot as snapshot_module
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
NEEDS_APPROVAL = engine.NEEDS_APPROVAL
APPROVED = "approved"
DISMISSED = "dismissed"
APPROVAL_TRIGGER = "approval"
#: every status of a run that has ended (``needs_approval`` ended too: its adds are sent
#: and its removals wait; ``approved`` and ``dismissed`` are where it goes from there).
TERMINAL = frozenset(
    {
        "succeeded",
        "partially_succeeded",
        "failed",
        "cancelled",
        INTERRUPTED,
        NEEDS_APPROVAL,
        APPROVED,
        DISMISSED,
    }
)
#: every status, in the order the UI and the docs list them.
STATUSES = (
    QUEUED,
    RUNNING,
    "succeeded",
    "partially_succeeded",
    NEEDS_APPROVAL,
    APPROVED,
    DISMISSED,
    "failed",
    "cancelled",
    INTERRUPTED,
)
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
    replace: bool = False
    #: the run whose held removals this run sends (an approval run), else None.
    approves_run: int | None = None

    @property
    def message(self) -> str | None:
        """The removal guard's sentence, when it held (or a dry run would hold) removals."""
        guard = self.counts.get("guard")
        if isinstance(guard, dict) and "message" in guard:
            return str(guard["message"])
        skipped = self.counts.get("skipped_members")
        if isinstance(skipped, dict) and skipped:
            number = sum(int(n) for n in skipped.values())
            return (
                f"{number:,} held removal(s) were not sent: their profiles are members of "
                "the export's segments again."
            )
        return None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def _scrub_samples(samples: dict[str, Any]) -> dict[str, Any]:
    """Reject samples as shown: a key that looks like an identifier (a record written by
    an older version kept it) becomes a placeholder, as the engine writes it now."""
    salt = secrets.token_bytes(16)
    return {
        reason: [
            [
                key if str(key).startswith("withheld-") else engine.sample_key(key, [], salt),
                *rest,
            ]
            for key, *rest in rows
        ]
        for reason, rows in samples.items()
    }


def display_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """A run's counts for the pages: a record of an older layout (no ``version``: v1)
    mapped onto today's keys, ``older_version`` set, and no figure it did not record.

    v1 counted blank fields as ``rejected.<type>.empty`` and had no ``values_present``,
    ``accepted``, ``empty`` or ``confirmed``: its empties become ``empty``, the rest is
    left absent (shown "—"), never a 0 that was not measured.
    """
    if not counts or counts.get("version"):
        return counts
    result = {
        key: value
        for key, value in counts.items()
        if key not in ("identifiers", "rejected", "confirmed", "accepted", "values_present")
    }
    empty: dict[str, int] = {}
    rejected: dict[str, dict[str, int]] = {}
    for kind, reasons in (counts.get("rejected") or {}).items():
        reasons = dict(reasons or {})
        if "empty" in reasons:
            empty[kind] = int(reasons.pop("empty"))
        if reasons:
            rejected[kind] = reasons
    result.update(older_version=True, rejected=rejected)
    if empty:
        result["empty"] = empty
    return result


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
        reject_samples=_scrub_samples(run.reject_samples or {}),
        replace=bool(run.replace),
        approves_run=run.approves_run_id,
    )


def _check_runnable(session: Session, export: Export) -> Connection:
    if export.connection_id is None:
        raise ConflictError(
            f"export {export.name!r} has no connection (it was detached)",
            fix=Fix("set_connection", export.name),
        )
    connection = session.get(Connection, export.connection_id)
    assert connection is not None
    if connection.status == NEEDS_REAUTH:
        raise ConflictError(
            f"connection {connection.name!r} of export {export.name!r} needs "
            "re-authentication before the export can run",
            fix=Fix("reauthenticate", connection.name),
        )
    return connection


def _active_run_error(ctx: Context, export_name: str) -> ActiveRunError | None:
    """The error naming the export's active run, when it has one (None otherwise).

    The check before an insert answers the common case; when two requests both passed
    it, the unique index ``uq_runs_one_active`` refuses the second insert (its whole
    transaction rolls back) and this names the run that won.
    """
    with ctx.db.session() as session:
        export = session.scalar(select(Export).where(Export.name == export_name))
        if export is None:
            return None
        active = session.scalar(
            select(Run).where(Run.export_id == export.id, Run.status.in_(ACTIVE_STATUSES))
        )
        if active is None:
            return None
        return ActiveRunError(
            f"export {export.name!r} already has run {active.id} {active.status}: wait for it",
            run_id=active.id,
        )


def request_run(
    ctx: Context,
    actor: Actor | None,
    export_name: str,
    *,
    trigger: str = "on_demand",
    dry_run: bool = False,
    full: bool = False,
    replace: bool = False,
    confirm: bool = False,
    approves: int | None = None,
) -> int:
    """Queue a run of ``export_name``; its id. ``actor`` None means the scheduler.

    ``replace`` empties the audience first and uploads every current member; it needs
    ``confirm`` (like a clear). ``approves``: the id of a ``needs_approval`` run whose
    held removals this run sends.
    """
    _check_replace(dry_run=dry_run, replace=replace, confirm=confirm)
    mark_interrupted(ctx)
    return _one_active(
        ctx, export_name,
        lambda: _queue(
            ctx, actor, export_name, trigger=trigger, dry_run=dry_run, full=full,
            replace=replace, approves=approves,
        ),
    )  # fmt: skip


def _one_active(ctx: Context, export_name: str, create: Callable[[], int]) -> int:
    """``create()`` a run; when the one-active-run index refused it, ActiveRunError naming
    the run that holds the export (the loser of a race learns the winner's id)."""
    try:
        return create()
    except IntegrityError:
        active = _active_run_error(ctx, export_name)
        if active is None:
            raise
        raise active from None


def _queue(
    ctx: Context,
    actor: Actor | None,
    export_name: str,
    *,
    trigger: str,
    dry_run: bool,
    full: bool,
    replace: bool,
    approves: int | None,
) -> int:
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
            replace=replace,
            approves_run_id=approves,
            queued_at=utcnow(),
            counts={},
            reject_samples={},
            progress={},
            audience={},
            errors=[],
        )
        session.add(run)
        session.flush()
        if actor is not None and not dry_run and approves is None:
            audit.record(
                session, actor, "export.run", f"export:{export.name}",
                after={"run": run.id, "full": full, "replace": replace},
            )  # fmt: skip
        return run.id


def _check_replace(*, dry_run: bool, replace: bool, confirm: bool) -> None:
    if dry_run and replace:
        raise UserInputError(
            "a replace empties the audience and cannot be a dry run",
            field="dry_run",
            fix=Fix("drop_dry_run"),
        )
    if replace and not confirm:
        raise UserInputError(
            "a replace empties the Snapchat audience before uploading every member",
            field="confirm",
            fix=Fix("confirm"),
        )


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
    interrupted = session.execute(
        update(Run)
        .where(Run.id == lease.run_id, Run.status == RUNNING)
        .values(
            status=INTERRUPTED,
            finished_at=now,
            errors=[_INTERRUPTED],
        )
    )
    if _rowcount(interrupted) == 1:
        _note_interrupted(session, lease.run_id, now)
    return True


def _note_interrupted(session: Session, run_id: int, at: datetime) -> None:
    """A run died mid-way: what the audience holds is unknown until it is read again."""
    run = session.get(Run, run_id)
    if run is None or run.dry_run:
        return
    audience.note_change(session, run.export_id, held=None, run_id=run_id, at=at)


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
        #: a dry run's progress records no sent figures either.
        self.dry_run = False
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
                .values(progress=outcome.progress(), counts=outcome.counts(dry_run=self.dry_run))
            )

    def cancelled(self) -> bool:
        if self.lease_lost.is_set():
            return True
        with self._ctx.db.session() as session:
            return bool(session.scalar(select(Run.cancel_requested).where(Run.id == self._run_id)))


#: the removal guard's rolling window (docs/sync.md, "Removal guard").
GUARD_WINDOW = timedelta(hours=24)
#: triggers after which the window starts again: removals approved, or the audience emptied.
_WINDOW_BOUNDARIES = ("approval", "clear")


def recent_changes(
    session: Session, export_id: int, run_id: int, at: datetime
) -> tuple[tuple[tuple[int, int], ...], str]:
    """(removed, added) by each of the export's runs in the guard's window, newest first,
    and the window in words: runs that finished in the ``GUARD_WINDOW`` before ``at``, after the
    latest approval, clear or replace (those reset what the share is measured against).
    Dry runs sent nothing and are not counted.
    """
    since = at - GUARD_WINDOW
    rows = session.execute(
        select(Run.trigger, Run.counts, Run.replace, Run.finished_at)
        .where(
            Run.export_id == export_id,
            Run.id != run_id,
            Run.dry_run.is_(False),
            Run.finished_at.is_not(None),
            Run.finished_at >= since,
        )
        .order_by(Run.finished_at.desc(), Run.id.desc())
    ).all()
    changes: list[tuple[int, int]] = []
    window = "in the last 24 hours"
    for trigger, counts, replaced, _finished in rows:
        counts = counts or {}
        if trigger in _WINDOW_BOUNDARIES or replaced or counts.get("emptied"):
            window = "since the latest approval, clear or replace"
            break
        removed = sum(int(n) for n in (counts.get("removed") or {}).values())
        added = sum(int(n) for n in (counts.get("added") or {}).values())
        changes.append((removed, added))
    return tuple(changes), window


def _input(
    session: Session, run: Run, at: datetime | None = None
) -> tuple[engine.RunInput, Export]:
    export = session.get(Export, run.export_id)
    if export is None:
        raise NotFoundError(f"the export of run {run.id} was removed.")
    fields = identifier_fields(export)
    recent, window = recent_changes(session, export.id, run.id, at or utcnow())
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
            replace=bool(run.replace),
            max_removal_share=export.max_removal_share,
            recent=recent,
            window=window,
            consent_field=export.consent_field,
            consent_values=tuple(export.consent_values or ()),
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
            raise NotFoundError(f"there is no run {run_id}.", fix=Fix("list", "runs"))
        export_id = run.export_id
    recorder = _Recorder(ctx, run_id, reporter)
    stop_heartbeat = threading.Event()

    def heartbeat() -> None:
        interval = max(0.05, ctx.settings.run_lease_seconds / 3)
        failing = False
        while not stop_heartbeat.wait(interval):
            try:
                renewed = _renew(ctx, export_id, run_id, now)
            except Exception as error:  # noqa: BLE001 - a passing database error: retry
                if not failing:  # one line per outage, not one per beat
                    log.warning(
                        "run %d could not renew its lease (%s); retrying",
                        run_id, getattr(error, "message", type(error).__name__),
                    )  # fmt: skip
                failing = True
                continue
            if failing:
                log.info("run %d renews its lease again", run_id)
                failing = False
            if not renewed:
                log.warning("run %d lost its lease and stops", run_id)
                recorder.lease_lost.set()
                return

    beat = threading.Thread(target=heartbeat, name=f"lease-{run_id}", daemon=True)
    beat.start()
    destination = None
    approves: int | None = None
    erasure: int | None = None
    dry_run = False
    try:
        with ctx.db.session() as session:
            run = session.get(Run, run_id)
            assert run is not None
            run_input, export = _input(session, run, now())
            dry_run = recorder.dry_run = run.dry_run
            connection = None if run.dry_run else _check_runnable(session, export)
            approves = run.approves_run_id
            erasure = run.erasure_id
            if approves is None and erasure is None and not run.dry_run:
                _supersede_held(ctx, session, export, run_id)
        if connection is not None:
            # Alerts raised mid-run (a refused sign-in) are sent once the run has ended.
            destination = open_destination(ctx, connection, defer_alerts=True)
        if erasure is not None:
            assert destination is not None
            outcome = erasing.erase_run(
                ctx, run_id, erasure, run_input, destination,
                concurrency=ctx.settings.http_max_concurrency,
                report=recorder, cancelled=recorder.cancelled,
            )  # fmt: skip
        elif approves is not None:
            assert destination is not None
            outcome = engine.send_held(
                ctx, run_id, approves, run_input, destination,
                concurrency=ctx.settings.http_max_concurrency,
                report=recorder, cancelled=recorder.cancelled,
            )  # fmt: skip
        else:
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
    finished_at = now()
    view = _finish_when_reachable(
        ctx, run_id,
        status=outcome.status(), finished_at=finished_at, counts=outcome.counts(dry_run=dry_run),
        progress=outcome.progress(), reject_samples=outcome.reject_samples,
        audience=outcome.audience, errors=outcome.errors,
    )  # fmt: skip
    # Every held removal still confirmed was acknowledged (a failed read-back aside).
    if (
        approves is not None
        and view.status in ("succeeded", "partially_succeeded")
        and view.counts.get("removed") == view.counts.get("planned_removes")
        and not view.counts.get("failed")
    ):
        _approved(ctx, approves, run_id, view.requested_by)
    if not view.dry_run:
        _record_run_reading(ctx, view, outcome, at=finished_at)
    return view


def _record_run_reading(
    ctx: Context, view: RunView, outcome: engine.RunOutcome, *, at: datetime
) -> None:
    """The run's read-back as the export's latest reading; follow-ups start from here.

    Only a run that finished as itself (not one whose lease was lost) speaks for the
    audience; the drift check runs on a completed reading of a run that sent everything.
    A failed run leaves what is held unknown (a batch or a clear may have been carried out
    at Snapchat with its answer lost): the export shows "unknown", not the figure before,
    and the follow-up readings start a minute later.
    """
    if view.status in (RUNNING, INTERRUPTED):
        return
    held = None if view.status == "failed" else outcome.identifiers_held
    found = None
    with ctx.db.session() as session:
        export = session.scalar(select(Export).where(Export.name == view.export))
        if export is None:
            return
        audience.note_change(session, export.id, held=held, run_id=view.id, at=at)
        if view.replace and view.status == "succeeded":
            audience.clear_drift(session, export.id)
        read = outcome.audience
        if read:
            reading = audience.Reading(
                approximate_number_users=read.get("approximate_number_users"),
                upload_status=read.get("upload_status"),
                targetable_status=read.get("targetable_status"),
            )
        else:
            reading = audience.Reading(None, None, None, error=_UNREAD)
        _, found = audience.record_reading(
            session, export, reading, held=held, trigger="run", at=at,
            check_drift=view.status == "succeeded",
        )  # fmt: skip
    if found is not None:
        _announce_drift(ctx, view.export, found)


_UNREAD = "the audience was not read back at the end of the run; it is read again shortly."


def _announce_drift(ctx: Context, export_name: str, drift: audience.Drift) -> None:
    """Log the drift and alert the export's channels once per drifted reading."""
    try:
        audience.drift_detected(ctx, export_name, drift)
        with ctx.db.session() as session:
            export_id = session.scalar(select(Export.id).where(Export.name == export_name))
        if export_id is None:
            return
        figures: dict[str, Any] = {
            "Identifiers held": drift.identifiers_held,
            "Matched users reported": drift.approximate_number_users,
        }
        if drift.match_rate is not None:
            figures["Match rate"] = f"{drift.match_rate:.1%}"
        if drift.usual_match_rate is not None:
            figures["Usual match rate"] = f"{drift.usual_match_rate:.1%}"
        alerts.emit(
            ctx, export_id, alerts.AlertEvent.AUDIENCE_DRIFT,
            f"The audience of export {export_name!r} may have drifted: {drift.reason}",
            figures, dedupe_key=f"drift:{export_id}:{drift.reading_id}",
        )  # fmt: skip
    except Exception:
        log.exception("export %s: the drift notice failed", export_name)


def _supersede_held(ctx: Context, session: Session, export: Export, run_id: int) -> None:
    """Dismiss the export's runs still waiting for approval: ``run_id`` plans anew."""
    held = session.scalars(
        select(Run).where(Run.export_id == export.id, Run.status == NEEDS_APPROVAL)
    ).all()
    snapshot = Snapshot.of(ctx, export.id, export.audience_id)
    for row in held:
        row.status = DISMISSED
        row.errors = [
            *row.errors,
            f"superseded by run {run_id}, which planned again (its removals are guarded again).",
        ]
        snapshot.drop_held(row.id)


def _approved(ctx: Context, held_run_id: int, run_id: int, by: str) -> None:
    """The approval run ``run_id`` sent every removal ``held_run_id`` held: close it."""
    with ctx.db.session() as session:
        held = session.get(Run, held_run_id)
        if held is None or held.status != NEEDS_APPROVAL:
            return
        export = session.get(Export, held.export_id)
        assert export is not None
        held.status = APPROVED
        held.counts = {
            **held.counts,
            "approval": {"by": by, "run": run_id, "at": utcnow().isoformat()},
        }
        Snapshot.of(ctx, export.id, export.audience_id).drop_held(held_run_id)


#: Waits between attempts to record a run's end while the control database is away.
FINISH_RETRY_FIRST_SECONDS = 0.25
FINISH_RETRY_MAX_SECONDS = 10.0


def _finish_when_reachable(
    ctx: Context, run_id: int, *, sleep: Callable[[float], None] = time.sleep, **values: Any
) -> RunView:
    """:func:`_finish`, retried (exponential, capped) while the control database is away.

    A run that lost its database mid-way (its errors then say so) is recorded as soon as
    the database answers again, rather than left ``running`` until its lease expires. After
    a whole lease of trying, DatabaseUnavailableError: the lease then expires and the
    next worker or command marks the run interrupted.
    """
    wait = FINISH_RETRY_FIRST_SECONDS
    waited = 0.0
    while True:
        try:
            return _finish(ctx, run_id, **values)
        except DatabaseUnavailableError as error:
            if waited >= ctx.settings.run_lease_seconds:
                raise
            if waited == 0.0:
                log.warning(
                    "run %d ended but cannot be recorded: %s; retrying until it answers",
                    run_id, error.message,
                )  # fmt: skip
            sleep(wait)
            waited += wait
            wait = min(wait * 2, FINISH_RETRY_MAX_SECONDS)


def _finish(ctx: Context, run_id: int, **values: Any) -> RunView:
    """Write a run's end (``values``) if it is still running, and free its export's lease.

    Only a run still ours is finished here; a lost lease leaves it to its successor.
    """
    with ctx.db.session() as session:
        finished = session.execute(
            update(Run).where(Run.id == run_id, Run.status == RUNNING).values(**values)
        )
        run = session.get(Run, run_id)
        assert run is not None
        lease = session.get(ExportLease, run.export_id)
        if lease is not None and lease.run_id == run_id:
            session.delete(lease)
        session.refresh(run)
        view = _view(session, run)
    if _rowcount(finished) == 1:
        # After the outcome is committed: a broken alert channel cannot change it.
        alerts.after_run(ctx, run_id)
    return view


def _start_now(
    ctx: Context,
    actor: Actor,
    export_name: str,
    *,
    trigger: str,
    dry_run: bool,
    full: bool,
    replace: bool = False,
    confirm: bool = False,
    approves: int | None = None,
    erasure: int | None = None,
) -> int:
    """A run created already running, under the export's lease, in one transaction.

    No worker can pick it from the queue in between: on-demand runs, clears and erasure
    runs (``erasure``: the erasure whose identifiers it removes) start here.
    """
    _check_replace(dry_run=dry_run, replace=replace, confirm=confirm)
    mark_interrupted(ctx)
    return _one_active(
        ctx, export_name,
        lambda: _start(
            ctx, actor, export_name, trigger=trigger, dry_run=dry_run, full=full,
            replace=replace, approves=approves, erasure=erasure,
        ),
    )  # fmt: skip


def _start(
    ctx: Context,
    actor: Actor,
    export_name: str,
    *,
    trigger: str,
    dry_run: bool,
    full: bool,
    replace: bool,
    approves: int | None,
    erasure: int | None = None,
) -> int:
    worker = worker_name()
    with ctx.db.session() as session:
        export = get_row(session, export_name)
        require_export_access(session, actor, export)
        _check_runnable(session, export)
        refuse_while_running(session, export, "run")
        moment = utcnow()
        run = Run(
            export_id=export.id, trigger=trigger, requested_by=actor.name, status=RUNNING,
            dry_run=dry_run, full=full, replace=replace, queued_at=moment, started_at=moment,
            worker=worker,
            counts={}, reject_samples={}, progress={}, audience={}, errors=[],
            approves_run_id=approves, erasure_id=erasure,
        )  # fmt: skip
        session.add(run)
        session.flush()
        if not _take_lease(
            session, export.id, run.id, worker, moment, ctx.settings.run_lease_seconds
        ):
            raise ConflictError(
                f"export {export.name!r} is being run by another worker: wait for its run to end."
            )
        if not dry_run and approves is None and erasure is None:
            audit.record(
                session, actor, f"export.{trigger}" if trigger == "clear" else "export.run",
                f"export:{export.name}", after={"run": run.id, "full": full, "replace": replace},
            )  # fmt: skip
        return run.id


def start_erasure_run(ctx: Context, actor: Actor, export_name: str, erasure_id: int) -> int:
    """An erasure run of ``export_name`` (``sync.privacy``), created running under the
    export's lease; execute it with :func:`execute_claimed`."""
    return _start_now(
        ctx, actor, export_name, trigger="erasure", dry_run=False, full=False, erasure=erasure_id
    )


def run_now(
    ctx: Context,
    actor: Actor,
    export_name: str,
    *,
    dry_run: bool = False,
    full: bool = False,
    replace: bool = False,
    confirm: bool = False,
    trigger: str = "on_demand",
    reporter: engine.Reporter | None = None,
    now: Clock = utcnow,
) -> RunView:
    """Run an export in this process now (the CLI's ``exports run``); the finished run.

    ``replace`` (empty the audience first) needs ``confirm``.
    """
    run_id = _start_now(
        ctx, actor, export_name, trigger=trigger, dry_run=dry_run, full=full, replace=replace,
        confirm=confirm,
    )  # fmt: skip
    return execute_claimed(ctx, run_id, reporter=reporter, now=now)


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
                _note_interrupted(session, run_id, moment)
    return count


def cancel_run(ctx: Context, actor: Actor, run_id: int) -> RunView:
    """Ask a queued or running run to stop (between batches); its view."""
    with ctx.db.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"there is no run {run_id}.", fix=Fix("list", "runs"))
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
            raise NotFoundError(f"there is no run {run_id}.", fix=Fix("list", "runs"))
        return _view(session, run)


def clear_audience(ctx: Context, actor: Actor, export_name: str, *, confirm: bool) -> RunView:
    """Remove every member of the export's audience and reset its snapshot; the clear run.

    A marker written first makes the next run redo the clear if this one is killed
    between emptying the audience and resetting the snapshot.
    """
    if not confirm:
        raise UserInputError(
            "clearing empties the Snapchat audience",
            field="confirm",
            fix=Fix("confirm"),
        )
    run_id = _start_now(ctx, actor, export_name, trigger="clear", dry_run=False, full=False)
    errors: list[str] = []
    destination = None
    reading: audience.Reading | None = None
    emptied_held: int | None = None
    failure: AudiencesyncError | None = None
    marked = False
    try:
        with ctx.db.session() as session:
            export = get_row(session, export_name)
            connection = _check_runnable(session, export)
            snapshot = Snapshot.of(ctx, export.id, export.audience_id)
            audience_id = export.audience_id
            _supersede_held(ctx, session, export, run_id)
        emptied_held = sum(snapshot.held().values())
        snapshot.mark_clear_pending()
        marked = True
        destination = open_destination(ctx, connection, defer_alerts=True)
        destination.clear(audience_id)
        snapshot.reset()
        snapshot.clear_done()
        reading = _describe(destination, audience_id)
    except AudiencesyncError as error:
        errors.append(error.message)
        failure = error
    except Exception as error:
        # Recorded as failed (never as succeeded), then raised: a defect, not a user error.
        errors.append(f"unexpected error: {type(error).__name__}")
        raise
    finally:
        if destination is not None:
            destination.close()
        finished_at = utcnow()
        view = _finish_when_reachable(
            ctx, run_id,
            status="failed" if errors else "succeeded", finished_at=finished_at, errors=errors,
            counts={
                "cleared": not errors,
                **({"emptied": True, "emptied_held": emptied_held} if not errors else {}),
            },
        )  # fmt: skip
        with ctx.db.session() as session:
            export_id = session.scalar(select(Export.id).where(Export.name == export_name))
            if export_id is not None:
                audience.note_change(
                    session, export_id, held=None if errors else 0, run_id=run_id,
                    at=finished_at,
                )  # fmt: skip
                export_row = session.get(Export, export_id)
                if not errors and export_row is not None:
                    audience.clear_drift(session, export_id)
                    # The clear's own reading (held 0): no later figure is set beside
                    # the matched users of a reading taken before the audience was emptied.
                    audience.record_reading(
                        session, export_row, reading or audience.Reading(None, None, None, _UNREAD),
                        held=0, trigger="run", at=finished_at, check_drift=False,
                    )  # fmt: skip
    if failure is not None:
        if not marked:
            raise failure  # nothing was sent: the audience is as it was
        # Never "emptied" for a clear that failed: Snapchat may or may not have done it.
        raise DestinationError(
            f"the clear of export {export_name!r} (run {run_id}) failed: {failure.message} "
            "Snapchat may or may not have emptied the audience, so what it holds shows as "
            "unknown: clear again, or the next run finishes the clear."
        ) from failure
    return view


def _describe(destination: Any, audience_id: str) -> audience.Reading:
    """Read the audience at Snapchat; a failed read as a reading with its reason."""
    try:
        info = destination.describe_audience(audience_id)
    except AudiencesyncError as error:
        return audience.Reading(
            None, None, None, error=f"the audience could not be read: {error.message}"
        )
    return audience.Reading(
        info.approximate_number_users, info.upload_status, info.targetable_status
    )


def _take_reading(
    ctx: Context, export_id: int, *, trigger: str, at: datetime
) -> audience.ReadingView:
    """Read the audience at Snapchat now and store the reading with what is held.

    A failed read is stored too (with its reason), so the follow-ups go on. ConflictError
    when the export cannot reach Snapchat (detached, connection needs re-authentication).
    """
    with ctx.db.session() as session:
        export = session.get(Export, export_id)
        if export is None:
            raise NotFoundError("the export was removed.")
        connection = _check_runnable(session, export)
        audience_id, name = export.audience_id, export.name
        if _busy(session, export_id) is not None:
            raise ConflictError(_RUN_UNDER_WAY)
    try:
        held = audience.count_held(ctx, export_id, audience_id)
    except snapshot_module.SnapshotBusyError as error:
        raise ConflictError(_RUN_UNDER_WAY) from error
    except Exception as error:  # noqa: BLE001 - stored as a failed reading, in plain words
        log.warning(
            "export %s: the identifiers held could not be counted (%s)", name, type(error).__name__
        )
        held = None
        reading = audience.Reading(None, None, None, error=_uncountable(error))
    else:
        destination = open_destination(ctx, connection)
        try:
            reading = _describe(destination, audience_id)
        finally:
            destination.close()
    with ctx.db.session() as session:
        export = session.get(Export, export_id)
        if export is None:
            raise NotFoundError("the export was removed.")
        # A run that started meanwhile changes what is held while Snapchat is read: the
        # count is not of this moment (unknown), and there is no drift verdict.
        settled = _busy(session, export_id) is None and export.audience_id == audience_id
        view, found = audience.record_reading(
            session, export, reading, held=held if settled else None, trigger=trigger, at=at,
            check_drift=settled,
        )  # fmt: skip
    if found is not None:
        _announce_drift(ctx, name, found)
    return view


_RUN_UNDER_WAY = "a run is under way; the audience is read when it ends."


def _busy(session: Session, export_id: int) -> int | None:
    """The export's queued or running run, if any."""
    return session.scalar(
        select(Run.id).where(Run.export_id == export_id, Run.status.in_([QUEUED, RUNNING]))
    )


def _uncountable(error: Exception) -> str:
    return (
        "the identifiers held could not be counted from the export's snapshot "
        f"({type(error).__name__}): the next run rebuilds it (a full run, if that fails)."
    )


def read_audience(
    ctx: Context, actor: Actor, export_name: str, *, now: Clock = utcnow
) -> audience.ReadingView:
    """Read the export's audience from Snapchat now and store the reading; the reading.

    Refused for viewers (it calls Snapchat), and with one sentence when the export is
    detached, its connection needs re-authentication or a run is under way.
    """
    with ctx.db.session() as session:
        export = get_row(session, export_name)
        require_export_access(session, actor, export)
        export_id = export.id
    return _take_reading(ctx, export_id, trigger="on_demand", at=now())


def read_due_audiences(ctx: Context, now: datetime) -> tuple[list[str], list[str]]:
    """Take every reading due at ``now`` (the scheduler's step); (exports read, problems).

    An export with a run queued or running is left to that run's own reading.
    """
    read: list[str] = []
    problems: list[str] = []
    with ctx.db.session() as session:
        due = audience.due_exports(session, now)
    for export_id in due:
        with ctx.db.session() as session:
            export = session.get(Export, export_id)
            if export is None:
                continue
            name = export.name
            if _busy(session, export_id) is not None or not audience.claim_due(
                session, export_id, now
            ):
                continue
        try:
            _take_reading(ctx, export_id, trigger="follow_up", at=now)
            read.append(name)
        except AudiencesyncError as error:
            problems.append(f"export {name!r}: the audience was not read: {error.message}")
            with ctx.db.session() as session:
                audience.postpone(session, export_id, now + audience.DAILY)
        except Exception as error:  # noqa: BLE001 - one export's defect never stops the rest
            log.warning("export %s: the audience was not read (%s)", name, type(error).__name__)
            problems.append(
                f"export {name!r}: the audience was not read (unexpected error: "
                f"{type(error).__name__})."
            )
            with ctx.db.session() as session:
                audience.postpone(session, export_id, now + audience.DAILY)
    return read, problems


def export_readings(
    ctx: Context, actor: Actor, export_name: str, *, limit: int = 200
) -> list[audience.ReadingView]:
    """The export's readings, oldest first."""
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return audience.list_readings(session, get_row(session, export_name).id, limit=limit)


def _held_run(session: Session, actor: Actor, run_id: int) -> tuple[Run, Export]:
    """A run waiting for approval that ``actor`` may decide on: administrators, and
    contributors who may edit its export (its connection is shared with them)."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFoundError(f"there is no run {run_id}.", fix=Fix("list", "runs"))
    export = session.get(Export, run.export_id)
    assert export is not None
    require_export_access(session, actor, export)
    if run.status != NEEDS_APPROVAL:
        raise ConflictError(
            f"run {run_id} is {run.status}, not waiting for approval: only a run that ended "
            "needs_approval has removals to approve or dismiss."
        )
    return run, export


def _record_approval(ctx: Context, actor: Actor, run_id: int, approval_run: int) -> None:
    with ctx.db.session() as session:
        _run, export = _held_run(session, actor, run_id)
        audit.record(
            session, actor, "run.approve", f"export:{export.name}",
            after={"run": run_id, "approval_run": approval_run},
        )  # fmt: skip


def approve_now(
    ctx: Context, actor: Actor, run_id: int, *, reporter: engine.Reporter | None = None
) -> RunView:
    """Approve a held run's removals and send them in this process; the approval run.

    The held run becomes ``approved`` once every held removal is acknowledged; an
    approval that fails or is killed leaves it ``needs_approval``, and approving again
    sends what is still confirmed of the held removals.
    """
    with ctx.db.session() as session:
        _, export = _held_run(session, actor, run_id)
        name = export.name
    approval = _start_now(
        ctx, actor, name, trigger=APPROVAL_TRIGGER, dry_run=False, full=False, approves=run_id
    )
    _record_approval(ctx, actor, run_id, approval)
    return execute_claimed(ctx, approval, reporter=reporter)


def request_approval(ctx: Context, actor: Actor, run_id: int) -> int:
    """Approve a held run's removals; a worker sends them. The queued approval run's id."""
    with ctx.db.session() as session:
        _, export = _held_run(session, actor, run_id)
        name = export.name
    approval = request_run(ctx, actor, name, trigger=APPROVAL_TRIGGER, approves=run_id)
    _record_approval(ctx, actor, run_id, approval)
    return approval


def dismiss_run(ctx: Context, actor: Actor, run_id: int) -> RunView:
    """Forget a held run's removals (they are never sent); the run, now ``dismissed``."""
    with ctx.db.session() as session:
        run, export = _held_run(session, actor, run_id)
        refuse_while_running(session, export, "dismiss a held run of")
        run.status = DISMISSED
        run.errors = [*run.errors, f"dismissed by {actor.name}: its held removals were not sent."]
        Snapshot.of(ctx, export.id, export.audience_id).drop_held(run_id)
        audit.record(session, actor, "run.dismiss", f"export:{export.name}", after={"run": run_id})
        return _view(session, run)


#: first characters a spreadsheet reads as a formula: such a key is written with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def reject_samples_csv(ctx: Context, actor: Actor, run_id: int) -> str:
    """A run's reject samples as CSV: ``profile_key,identifier_type,reason`` per line.

    The keys are those the run recorded, a ``withheld-<digest>`` placeholder for a key
    that is a mapped identifier value or looks like one (``engine.sample_key``); no
    identifier value is ever among them. The web page and the API serve this text.
    """
    view = get_run(ctx, actor, run_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["profile_key", "identifier_type", "reason"])
    for reason, samples in sorted(view.reject_samples.items()):
        for sample in samples:
            key, kind = str(sample[0]), str(sample[1])
            if key.startswith(_FORMULA_START) and not _is_number(key):
                key = "'" + key
            writer.writerow([key, kind, reason])
    return out.getvalue()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
