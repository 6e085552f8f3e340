"""Schedules in words: the same sentence in the UI, the API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from audiencesync.control.zones import canonical_zone, viewer_zone
from audiencesync.sync.schedule import (
    ScheduleView,
    describe_cron,
    export_schedule_sentence,
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


def test_a_viewer_reads_times_in_their_zone_with_its_short_name() -> None:
    winter = datetime(2026, 12, 7, 13, 5, tzinfo=UTC)
    summer = datetime(2026, 7, 2, 13, 5, tzinfo=UTC)
    paris = ZoneInfo("Europe/Paris")
    assert when_words(winter, paris) == "2026-12-07 14:05 CET"
    assert when_words(summer, paris) == "2026-07-02 15:05 CEST"
    assert when_words(winter, ZoneInfo("America/New_York")) == "2026-12-07 08:05 EST"
    # Zones the tz database gives no letters say their offset from UTC.
    assert when_words(winter, ZoneInfo("Asia/Dubai")) == "2026-12-07 17:05 UTC+04:00"
    assert when_words(winter, ZoneInfo("America/St_Johns")) == "2026-12-07 09:35 NST"
    assert when_words(winter, ZoneInfo("Asia/Kathmandu")) == "2026-12-07 18:50 UTC+05:45"
    assert when_words(winter, viewer_zone(None)) == "2026-12-07 13:05 UTC"
    assert when_words(None, paris) == "—"


def test_only_names_of_the_tz_database_are_zones() -> None:
    assert canonical_zone(" europe/PARIS ") == "Europe/Paris"
    assert canonical_zone("UTC") == "UTC"
    for wrong in ("", "Mars/Olympus", "CEST", "Factory", "localtime", "../etc/passwd"):
        assert canonical_zone(wrong) is None
    assert str(viewer_zone("Nowhere/Else")) == "UTC"


def test_schedule_words_keep_the_schedules_zone_and_say_next_in_the_viewers() -> None:
    common = {"timezone": "UTC", "enabled": True, "connected": True, "needs_reauth": False}
    on = export_schedule_sentence(schedule="system", system=_system(True), next_run_at=None,
                                  **common)  # fmt: skip
    paris = ZoneInfo("Europe/Paris")
    assert on.in_zone(paris) == (
        "with the system refresh, daily at 03:00 Europe/London, next 2026-12-02 04:00 CET"
    )
    assert str(on) == export_schedule_words(schedule="system", system=_system(True),
                                            next_run_at=None, **common)  # fmt: skip
    assert _system(True).sentence.in_zone(ZoneInfo("Asia/Tokyo")) == (
        "daily at 03:00 Europe/London, next 2026-12-02 12:00 JST"
    )
    manual = export_schedule_sentence(schedule="manual", system=None, next_run_at=None, **common)
    assert manual.in_zone(paris) == "on demand only"


def test_next_times_are_utc_whatever_zone_the_schedule_fires_in() -> None:
    fired = next_fire("0 3 * * *", "Europe/Paris", datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    assert fired == datetime(2026, 7, 2, 1, 0, tzinfo=UTC)
    assert fired.utcoffset() is not None
    assert fired.isoformat() == "2026-07-02T01:00:00+00:00"  # what the API sends
