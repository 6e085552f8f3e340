"""The system refresh schedule: a cron expression with a time zone, off by default.

When it fires, profile datasets with a source are refreshed, segments re-evaluated, then
every enabled export that follows the system refresh is queued (Customer Insights'
"scheduled refresh"). Exports may instead have their own cron schedule or be manual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, FormatError, Options
from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import AuditEntry, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import SystemSchedule
from audiencesync.control.zones import zone_label
from audiencesync.errors import UserInputError


@dataclass(frozen=True)
class Sentence:
    """When something runs, in words, and the next time the words end with.

    ``stem`` names the schedule's own zone ("daily at 03:00 Europe/London"); the next time
    is said in the zone of whoever reads it (``in_zone``), in UTC by default (``str``).
    """

    stem: str
    next_at: datetime | None = None

    def in_zone(self, zone: tzinfo | None = None) -> str:
        """The sentence with its next time in ``zone`` (None: UTC)."""
        return self.stem + next_words(self.next_at, zone)

    def __str__(self) -> str:
        return self.in_zone(None)


#: no words yet (a view built without a schedule).
NO_SENTENCE = Sentence("")


@dataclass(frozen=True)
class ScheduleView:
    enabled: bool
    cron: str
    timezone: str
    next_run_at: datetime | None
    last_fired_at: datetime | None
    updated_by: str | None
    #: when a system refresh last ran (scheduled or "Refresh now"); None: never.
    last_refresh_at: datetime | None = None

    @property
    def sentence(self) -> Sentence:
        """The system refresh in words: "off: ..." or "daily at 03:00 UTC, next ..."."""
        if not self.enabled:
            return Sentence("off: the system refresh is off")
        return Sentence(f"{describe_cron(self.cron)} {self.timezone}", self.next_run_at)

    @property
    def words(self) -> str:
        """The sentence with its next time in UTC (the API's and the CLI's)."""
        return str(self.sentence)


_HHMM = re.compile(r"^\d{1,2}$")


def describe_cron(cron: str) -> str:
    """A cron expression in words, as typed: "daily at 03:00", "every 15 minutes"...

    Times are of the schedule's own time zone (said after it by the callers).
    """
    fields = cron.split()
    if len(fields) == 5 and fields[2:] == ["*", "*", "*"]:
        minute, hour = fields[0], fields[1]
        if _HHMM.match(minute) and _HHMM.match(hour):
            return f"daily at {int(hour):02d}:{int(minute):02d}"
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        text = str(ExpressionDescriptor(cron, options).get_description())
    except (FormatError, ValueError, IndexError, KeyError):
        return f"on the cron schedule {cron}"
    return text[:1].lower() + text[1:]


def when_words(moment: datetime | None, zone: tzinfo | None = None) -> str:
    """A moment in ``zone`` (None: UTC) with the zone's short name at that moment:
    "2026-12-02 03:00 UTC", "2026-12-02 04:00 CET". A naive moment is taken as UTC."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone or UTC)
    return f"{local:%Y-%m-%d %H:%M} {zone_label(local)}"


def next_words(moment: datetime | None, zone: tzinfo | None = None) -> str:
    return f", next {when_words(moment, zone)}" if moment is not None else ""


def export_schedule_sentence(
    *,
    schedule: str,
    timezone: str,
    enabled: bool,
    connected: bool,
    needs_reauth: bool,
    system: ScheduleView | None,
    next_run_at: datetime | None,
) -> Sentence:
    """When an export runs next, in words (the same in the UI, the API and the CLI; the
    UI says the next time in the viewer's zone)."""
    if not connected:
        return Sentence("off: the export has no connection")
    if not enabled:
        return Sentence("off: the export is disabled")
    if needs_reauth:
        return Sentence("paused: its connection needs re-authentication")
    if schedule == "manual":
        return Sentence("on demand only")
    if schedule == "system":
        if system is None or not system.enabled:
            return Sentence("off: the system refresh is off (runs on demand only)")
        own = system.sentence
        return Sentence(f"with the system refresh, {own.stem}", own.next_at)
    return Sentence(f"{describe_cron(schedule)} {timezone}", next_run_at)


def export_schedule_words(
    *,
    schedule: str,
    timezone: str,
    enabled: bool,
    connected: bool,
    needs_reauth: bool,
    system: ScheduleView | None,
    next_run_at: datetime | None,
) -> str:
    """``export_schedule_sentence`` with its next time in UTC."""
    sentence = export_schedule_sentence(
        schedule=schedule, timezone=timezone, enabled=enabled, connected=connected,
        needs_reauth=needs_reauth, system=system, next_run_at=next_run_at,
    )  # fmt: skip
    return str(sentence)


def check_cron(cron: str, timezone: str) -> None:
    """UserInputError unless ``cron`` is a cron expression and ``timezone`` a known zone."""
    if not croniter.is_valid(cron):
        raise UserInputError(
            f"{cron!r} is not a cron expression: use five fields, for example '0 3 * * *' "
            "(every day at 03:00).",
            field="cron",
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserInputError(
            f"unknown time zone {timezone!r}: use a name like UTC or Europe/Paris.",
            field="timezone",
        ) from None


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time after ``after`` that ``cron`` fires in ``timezone``, in UTC."""
    fired: datetime = croniter(cron, after.astimezone(ZoneInfo(timezone))).get_next(datetime)
    return fired.astimezone(UTC)


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


#: the audit action of a system refresh that ran (the schedule's, or "Refresh now").
REFRESHED = "schedule.refresh"


#: the name the scheduler's refreshes are recorded under (``scheduler.SCHEDULER``).
SCHEDULER_NAME = "scheduler"


def _last_refresh(session: Session, *, by: str | None = None) -> datetime | None:
    query = select(AuditEntry.at).where(AuditEntry.action == REFRESHED)
    if by is not None:
        query = query.where(AuditEntry.actor == by)
    return session.scalar(query.order_by(AuditEntry.id.desc()).limit(1))


def _view(schedule: SystemSchedule, now: datetime) -> ScheduleView:
    upcoming = next_fire(schedule.cron, schedule.timezone, now) if schedule.enabled else None
    session = object_session(schedule)
    return ScheduleView(
        last_refresh_at=_last_refresh(session) if session is not None else None,
        enabled=schedule.enabled,
        cron=schedule.cron,
        timezone=schedule.timezone,
        next_run_at=upcoming,
        # When the schedule last ran the refresh, not the row's counting mark (which
        # enabling sets to now so that no past slot fires).
        last_fired_at=(_last_refresh(session, by=SCHEDULER_NAME) if session is not None else None),
        updated_by=schedule.updated_by,
    )


def current(session: Session, now: datetime) -> ScheduleView | None:
    """The system schedule read in a session (None before it was first set)."""
    schedule = session.scalar(select(SystemSchedule).limit(1))
    return None if schedule is None else _view(schedule, now)


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
