"""The platform's days: due dates are whole days in one time zone (Europe/Moscow by default).

Pure functions of a moment and a zone's name. The loan workflow imports this module passed
through its sandbox, so the zone's rules are read from the tz database here, outside it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from functools import cache
from zoneinfo import ZoneInfo


@cache
def zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def day_of(moment: datetime, zone_name: str) -> date:
    """The calendar day a moment falls on in the zone."""
    return moment.astimezone(zone(zone_name)).date()


def day_start(day: date, zone_name: str) -> datetime:
    """The moment (in UTC) a day begins in the zone."""
    return datetime.combine(day, time.min, tzinfo=zone(zone_name)).astimezone(UTC)
