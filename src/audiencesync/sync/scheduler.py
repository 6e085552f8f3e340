"""The scheduler and the worker loops that ``audiencesync serve`` and ``worker`` run.

:func:`tick` decides, for one instant, what is due: the system refresh (datasets, then
unified datasets, then segments, then exports following it), exports with their own cron
schedule, and the audience readings that are due (after a run: 1, 5, 15, 60 minutes while
Snapchat is still matching, then daily; see ``sync.audience``). Time is injected, so tests
fire schedules and readings without waiting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Role, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Export
from audiencesync.errors import AudiencesyncError, DatabaseUnavailableError
from audiencesync.profiles import store
from audiencesync.profiles.unify import service as unify
from audiencesync.segments import service as segments
from audiencesync.sync import privacy, retention, runs
from audiencesync.sync.schedule import REFRESHED, SCHEDULER_NAME, last_fire, row

log = logging.getLogger(__name__)

#: The scheduler acts with administrator rights, recorded in the audit log by this name.
SCHEDULER = Actor(id=0, name=SCHEDULER_NAME, role=Role.ADMIN)

Clock = Callable[[], datetime]


@dataclass
class TickResult:
    system_fired: bool = False
    refreshed: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    #: exports whose audience was read (follow-up and daily readings).
    read: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _queue(ctx: Context, name: str, result: TickResult) -> None:
    try:
        runs.request_run(ctx, None, name, trigger="schedule")
        result.queued.append(name)
    except DatabaseUnavailableError:
        raise  # the loop backs off; not a problem of this one export
    except AudiencesyncError as error:
        result.problems.append(f"export {name!r}: {error.message}")


def _system_refresh(ctx: Context, result: TickResult) -> None:
    for dataset in store.list_datasets(ctx, SCHEDULER):
        if dataset.kind != "file":
            continue
        try:
            store.refresh(ctx, SCHEDULER, dataset.name)
            result.refreshed.append(dataset.name)
        except DatabaseUnavailableError:
            raise  # the loop backs off; not a problem of this one item
        except AudiencesyncError as error:
            result.problems.append(f"dataset {dataset.name!r}: {error.message}")
    # Unified datasets read the datasets above: after them, before the segments.
    for unification in unify.list_unifications(ctx, SCHEDULER):
        try:
            unify.refresh(ctx, SCHEDULER, unification.name)
            result.refreshed.append(unification.name)
        except DatabaseUnavailableError:
            raise  # the loop backs off; not a problem of this one item
        except AudiencesyncError as error:
            result.problems.append(f"unification {unification.name!r}: {error.message}")
    for segment in segments.list_segments(ctx, SCHEDULER):
        try:
            segments.count_segment(ctx, SCHEDULER, segment.name)
            result.evaluated.append(segment.name)
        except DatabaseUnavailableError:
            raise  # the loop backs off; not a problem of this one item
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


def _record_refresh(ctx: Context, actor: Actor, result: TickResult) -> None:
    with ctx.db.session() as session:
        audit.record(
            session, actor, REFRESHED, "schedule:system",
            after={
                "datasets refreshed": len(result.refreshed),
                "segments counted": len(result.evaluated),
                "exports queued": len(result.queued),
                "problems": len(result.problems),
            },
        )  # fmt: skip


def refresh_now(ctx: Context, actor: Actor) -> TickResult:
    """ "Refresh now": the system refresh at once, whether its schedule is on or off.

    Re-imports the datasets with a source, counts the segments and queues every enabled
    export that follows the system refresh. Administrators only.
    """
    require(actor, Action.MANAGE_SCHEDULE)
    result = TickResult(system_fired=True)
    _system_refresh(ctx, result)
    _record_refresh(ctx, actor, result)
    return result


def tick(ctx: Context, now: datetime | None = None) -> TickResult:
    """Fire whatever is due at ``now``: the system refresh, exports' own schedules, then
    the audience readings that are due."""
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
        _record_refresh(ctx, SCHEDULER, result)
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
    read, problems = runs.read_due_audiences(ctx, moment)
    result.read.extend(read)
    result.problems.extend(problems)
    for problem in result.problems:
        log.warning("scheduler: %s", problem)
    return result


#: First and longest wait of a loop while the control database is unreachable.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0


class Outage:
    """Back-off of one loop while the control database is unreachable.

    Waits double from ``first`` up to ``longest``; one log line when an outage starts and
    one when it ends, never a traceback per poll.
    """

    def __init__(
        self,
        who: str,
        *,
        first: float = BACKOFF_FIRST_SECONDS,
        longest: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self.who = who
        self.first = first
        self.longest = longest
        self.failures = 0
        #: how many outages this loop went through (for tests and figures).
        self.outages = 0

    def failed(self, error: DatabaseUnavailableError) -> float:
        """Count one failed attempt; how long to wait before the next."""
        if self.failures == 0:
            self.outages += 1
            log.warning("%s: %s; backing off (up to %gs between tries)",
                        self.who, error.message, self.longest)  # fmt: skip
        self.failures += 1
        return float(min(self.first * 2 ** (self.failures - 1), self.longest))

    def recovered(self) -> None:
        if self.failures:
            log.info("%s: the control database answers again after %d failed tries",
                     self.who, self.failures)  # fmt: skip
            self.failures = 0


def scheduler_loop(
    ctx: Context,
    stop: threading.Event,
    *,
    every_seconds: float = 20.0,
    clock: Clock = utcnow,
    outage: Outage | None = None,
) -> None:
    """Tick until ``stop`` is set; back off while the control database is unreachable."""
    outage = outage or Outage("scheduler")
    while not stop.is_set():
        try:
            tick(ctx, clock())
            # Hourly: reject samples, old uploads and superseded versions; erasures left
            # unfinished (docs/privacy.md).
            if retention.sweep_if_due(ctx, clock()) is not None:
                privacy.resume_unfinished(ctx, SCHEDULER)
            outage.recovered()
        except DatabaseUnavailableError as error:
            stop.wait(max(every_seconds, outage.failed(error)))
            continue
        except Exception:
            log.exception("scheduler tick failed")
        stop.wait(every_seconds)


def worker_loop(
    ctx: Context,
    stop: threading.Event,
    *,
    worker: str | None = None,
    idle_seconds: float = 1.0,
    outage: Outage | None = None,
) -> None:
    """Execute queued runs until ``stop`` is set; several workers share one queue.

    While the control database is unreachable the worker backs off (exponential,
    capped) with one log line per outage.
    """
    name = worker or runs.worker_name()
    outage = outage or Outage(f"worker {name}")
    while not stop.is_set():
        try:
            done = runs.run_pending(ctx, name)
            outage.recovered()
        except DatabaseUnavailableError as error:
            stop.wait(outage.failed(error))
            continue
        except Exception:
            log.exception("worker %s failed to run", name)
            done = None
        if done is None:
            stop.wait(idle_seconds)
