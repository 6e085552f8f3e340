"""Time zones of people: the IANA names a user may choose, and how a moment is labelled.

A user's zone is a display preference (web pages show times in it); everything stored,
the API and the CLI stay in UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

UTC_ZONE = ZoneInfo("UTC")
#: names in the tz database that are not places a person lives in.
_NOT_OFFERED = frozenset({"Factory", "localtime", "posixrules"})
_NUMERIC = re.compile(r"^[+-]\d{2,4}$")


@cache
def zone_names() -> tuple[str, ...]:
    """Every IANA time zone name a user may choose, sorted."""
    return tuple(
        sorted(
            name
            for name in available_timezones()
            if name not in _NOT_OFFERED and not name.startswith(("posix/", "right/"))
        )
    )


@cache
def _by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in zone_names()}


def canonical_zone(text: str) -> str | None:
    """The IANA name ``text`` stands for, spelled as the tz database does ("europe/paris"
    is "Europe/Paris"); None when it names no zone."""
    return _by_folded_name().get(text.strip().casefold())


def viewer_zone(name: str | None) -> tzinfo:
    """The zone a user sees times in: theirs, or UTC when they chose none."""
    if name and canonical_zone(name) == name:
        return ZoneInfo(name)
    return UTC_ZONE


def zone_label(moment: datetime) -> str:
    """The short name of an aware moment's zone at that moment: "CET", "CEST", "UTC";
    "UTC+03:00" where the tz database has no letters for it (it says "+03")."""
    name = moment.tzname() or ""
    if name and not _NUMERIC.match(name):
        return name
    offset = moment.utcoffset()
    if offset is None:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"
