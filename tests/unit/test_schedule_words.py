"""Schedules in words: the same sentence in the UI, the API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from audiencesync.sync.schedule import (
    ScheduleView,
    describe_cron,
    export_schedule_words,
    next_fire,
    when_words,
)


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 3 * * *", "daily at 03:00"),
        ("30 17 * * *", "daily at 17:30"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 6 * * 1-5", "at 06:00, Monday through Friday"),
        ("0 0 * * 0", "at 00:00, only on Sunday"),
    ],
)
def test_cron_in_words(cron: str, words: str) -> None:
    assert describe_cron(cron) == words


def test_times_are_said_in_utc_whatever_zone_they_come_in() -> None:
    london_summer = datetime(2026, 7, 2, 3, 0, tzinfo=ZoneInfo("Europe/London"))
    assert when_words(london_summer) == "2026-07-02 02:00 UTC"
    assert when_words(datetime(2026, 12, 2, 3, 0)) == "2026-12-02 03:00 UTC"  # naive = UTC
    assert when_words(None) == "—"


def _system(enabled: bool) -> ScheduleView:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    upcoming = next_fire("0 3 * * *", "Europe/London", now) if enabled else None
    return ScheduleView(enabled, "0 3 * * *", "Europe/London", upcoming, None, "admin")


def test_export_schedules_in_words() -> None:
    common = {"timezone": "UTC", "enabled": True, "connected": True, "needs_reauth": False}
    off = export_schedule_words(schedule="system", system=_system(False), next_run_at=None,
                                **common)  # fmt: skip
    assert off == "off: the system refresh is off (runs on demand only)"
    on = export_schedule_words(schedule="system", system=_system(True), next_run_at=None,
                               **common)  # fmt: skip
    assert on == (
        "with the system refresh, daily at 03:00 Europe/London, next 2026-12-02 03:00 UTC"
    )
    assert _system(False).words == "off: the system refresh is off"
    nxt = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    own = export_schedule_words(schedule="0 6 * * 1", system=None, next_run_at=nxt, **common)
    assert own == "at 06:00, only on Monday UTC, next 2026-12-07 06:00 UTC"
    manual = export_schedule_words(schedule="manual", system=None, next_run_at=None, **common)
    assert manual == "on demand only"
    paused = {**common, "needs_reauth": True}
    assert export_schedule_words(schedule="system", system=_system(True), next_run_at=None,
                                 **paused).startswith("paused")  # fmt: skip
    disabled = {**common, "enabled": False}
    assert export_schedule_words(schedule="manual", system=None, next_run_at=None,
                                 **disabled) == "off: the export is disabled"  # fmt: skip
