"""The system refresh schedule: a cron expression with a time zone, off by default.

When it fires, profile datasets with a source are refreshed, segments re-evaluated, then
every enabled export that follows the system refresh is queued (Customer Insights'
"scheduled refresh"). Exports may instead have their own cron schedule or be manual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import SystemSchedule
from audiencesync.errors import UserInputError


@dataclass(frozen=True)
class ScheduleView:
    enabled: bool
    cron: str
    timezone: str
    next_run_at: datetime | None
    last_fired_at: datetime | None
    updated_by: str | None


def check_cron(cron: str, timezone: str) -> None:
    """UserInputError unless ``cron`` is a cron expression and ``timezone`` a known zone."""
    if not croniter.is_valid(cron):
        raise UserInputError(
            f"{cron!r} is not a cron expression: use five fields, for example '0 3 * * *' "
            "(every day at 03:00)."
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserInputError(
            f"unknown time zone {timezone!r}: use a name like UTC or Europe/Paris."
        ) from None


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time after ``after`` that ``cron`` fires in ``timezone``."""
    fired: datetime = croniter(cron, after.astimezone(ZoneInfo(timezone))).get_next(datetime)
    return fired


def last_fire(cron: str, timezone: str, at: datetime) -> datetime:
    """The latest time at or before ``at`` that ``cron`` fired in ``timezone``."""
    fired: datetime = croniter(cron, at.astimezone(ZoneInfo(timezone))).get_prev(datetime)
    return fired


def row(session: Session) -> SystemSchedule:
    """The single schedule row, created off on first use."""
    schedule = session.scalar(select(SystemSchedule).limit(1))
    if schedule is None:
        schedule = SystemSchedule(id=1, enabled=False, cron="0 3 * * *", timezone="UTC")
        session.add(schedule)
        session.flush()
    return schedule


def _view(schedule: SystemSchedule, now: datetime) -> ScheduleView:
    upcoming = next_fire(schedule.cron, schedule.timezone, now) if schedule.enabled else None
    return ScheduleView(
        enabled=schedule.enabled,
        cron=schedule.cron,
        timezone=schedule.timezone,
        next_run_at=upcoming,
        last_fired_at=schedule.last_fired_at,
        updated_by=schedule.updated_by,
    )


def get_schedule(ctx: Context, actor: Actor) -> ScheduleView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return _view(row(session), utcnow())


def set_schedule(
    ctx: Context, actor: Actor, *, enabled: bool, cron: str, timezone: str = "UTC"
) -> ScheduleView:
    """Turn the system refresh on or off and set when it runs. Administrators only."""
    require(actor, Action.MANAGE_SCHEDULE)
    check_cron(cron, timezone)
    with ctx.db.session() as session:
        schedule = row(session)
        before = {"enabled": schedule.enabled, "cron": schedule.cron, "timezone": schedule.timezone}
        if enabled and not schedule.enabled:
            # Start counting from now, so enabling never fires a slot that already passed.
            schedule.last_fired_at = utcnow()
        schedule.enabled = enabled
        schedule.cron = cron
        schedule.timezone = timezone
        schedule.updated_by = actor.name
        audit.record(
            session, actor, "schedule.update", "schedule:system",
            before=before, after={"enabled": enabled, "cron": cron, "timezone": timezone},
        )  # fmt: skip
        return _view(schedule, utcnow())
