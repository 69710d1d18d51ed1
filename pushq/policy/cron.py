"""Cron expressions for schedules: 5 fields, evaluated in a time zone (croniter)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a known time zone (use IANA names like Europe/Paris)"
        ) from None


def check_cron(expression: str) -> str:
    """The expression, normalised; ValueError unless it is a valid 5-field cron line."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            "a cron expression has 5 fields: minute hour day-of-month month day-of-week"
        )
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise ValueError(f"{expression!r} is not a valid cron expression")
    return normalised


def next_fire(expression: str, timezone: str, after: float) -> float:
    """The first firing strictly after `after` (Unix seconds), honouring DST in `timezone`."""
    start = datetime.fromtimestamp(after, UTC).astimezone(zone(timezone))
    fire: datetime = croniter(expression, start).get_next(datetime)
    return fire.timestamp()
