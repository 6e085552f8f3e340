"""The scheduler and the worker loops that ``audiencesync serve`` and ``worker`` run.

:func:`tick` decides, for one instant, what is due: the system refresh (datasets, then
segments, then exports following it) and exports with their own cron schedule. Time is
injected, so tests fire schedules without waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from audiencesync.control.context import Context
from audiencesync.control.models import Role, utcnow
from audiencesync.control.permissions import Actor
from audiencesync.control.sync_models import Export
from audiencesync.errors import AudiencesyncError
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.sync import runs
from audiencesync.sync.schedule import last_fire, row

log = logging.getLogger(__name__)

#: The scheduler acts with administrator rights, recorded in the audit log by this name.
SCHEDULER = Actor(id=0, name="scheduler", role=Role.ADMIN)

Clock = Callable[[], datetime]


@dataclass
class TickResult:
    system_fired: bool = False
    refreshed: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _queue(ctx: Context, name: str, result: TickResult) -> None:
    try:
        runs.request_run(ctx, None, name, trigger="schedule")
        result.queued.append(name)
    except AudiencesyncError as error:
        result.problems.append(f"export {name!r}: {error.message}")


def _system_refresh(ctx: Context, result: TickResult) -> None:
    for dataset in store.list_datasets(ctx, SCHEDULER):
        if dataset.kind != "file":
            continue
        try:
            store.refresh(ctx, SCHEDULER, dataset.name)
            result.refreshed.append(dataset.name)
        except AudiencesyncError as error:
            result.problems.append(f"dataset {dataset.name!r}: {error.message}")
    for segment in segments.list_segments(ctx, SCHEDULER):
        try:
            segments.count_segment(ctx, SCHEDULER, segment.name)
            result.evaluated.append(segment.name)
        except AudiencesyncError as error:
            result.problems.append(f"segment {segment.name!r}: {error.message}")
    with ctx.db.session() as session:
        names = list(
            session.scalars(
                select(Export.name).where(
                    Export.enabled.is_(True),
                    Export.schedule == "system",
                    Export.connection_id.is_not(None),
                )
            )
        )
    for name in names:
        _queue(ctx, name, result)


def tick(ctx: Context, now: datetime | None = None) -> TickResult:
    """Fire whatever is due at ``now``: the system refresh, then exports' own schedules."""
    moment = now or utcnow()
    result = TickResult()
    with ctx.db.session() as session:
        schedule = row(session)
        system_due = schedule.enabled and (
            schedule.last_fired_at is None
            or schedule.last_fired_at < last_fire(schedule.cron, schedule.timezone, moment)
        )
        if system_due:
            schedule.last_fired_at = moment
    if system_due:
        result.system_fired = True
        _system_refresh(ctx, result)
    with ctx.db.session() as session:
        own = session.scalars(
            select(Export).where(
                Export.enabled.is_(True),
                Export.schedule.not_in(["system", "manual"]),
                Export.connection_id.is_not(None),
            )
        ).all()
        due = []
        for export in own:
            since = export.last_scheduled_at or export.created_at
            if since < last_fire(export.schedule, export.timezone, moment):
                export.last_scheduled_at = moment
                due.append(export.name)
    for name in due:
        _queue(ctx, name, result)
    for problem in result.problems:
        log.warning("scheduler: %s", problem)
    return result


def scheduler_loop(
    ctx: Context, stop: threading.Event, *, every_seconds: float = 20.0, clock: Clock = utcnow
) -> None:
    """Tick until ``stop`` is set."""
    while not stop.is_set():
        try:
            tick(ctx, clock())
        except Exception:
            log.exception("scheduler tick failed")
        stop.wait(every_seconds)


def worker_loop(
    ctx: Context, stop: threading.Event, *, worker: str | None = None, idle_seconds: float = 1.0
) -> None:
    """Execute queued runs until ``stop`` is set; several workers share one queue."""
    name = worker or runs.worker_name()
    while not stop.is_set():
        try:
            done = runs.run_pending(ctx, name)
        except Exception:
            log.exception("worker %s failed to run", name)
            done = None
        if done is None:
            stop.wait(idle_seconds)
