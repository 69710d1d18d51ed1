"""Cron expressions for schedules: 5 fields, evaluated in a time zone (croniter)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

# Every IANA zone name this installation knows: the API accepts exactly these.
TIMEZONES = tuple(sorted(available_timezones() | {"UTC"}))
_ZONES = frozenset(TIMEZONES)


def _names(*words: str) -> str:
    return "|".join("".join(f"[{c.upper()}{c.lower()}]" for c in word) for word in words)


def _field(value: str) -> str:
    """One cron field: *, a value or a range, each with an optional /step, comma-listed."""
    step = "(?:/0*[1-9][0-9]?)?"
    item = rf"(?:\*|(?:{value})(?:-(?:{value}))?){step}"
    return f"{item}(?:,{item})*"


_MONTHS = _names("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = _names("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# The grammar the API accepts (and /openapi.json publishes): 5 fields in their ranges
# (minute 0-59, hour 0-23, day 1-31, month 1-12 or jan-dec, weekday 0-7 or sun-sat),
# or one of the @ shorthands.
CRON_PATTERN = (
    r"^ *(?:@(?:hourly|daily|weekly|monthly|yearly|annually|midnight)|"
    + " +".join(
        _field(value)
        for value in (
            r"0?[0-9]|[1-5][0-9]",
            r"0?[0-9]|1[0-9]|2[0-3]",
            r"0?[1-9]|[12][0-9]|3[01]",
            rf"0?[1-9]|1[0-2]|{_MONTHS}",
            rf"0?[0-7]|{_DAYS}",
        )
    )
    + ") *$"
)
_CRON = re.compile(CRON_PATTERN)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError if there is no such zone."""
    if name not in _ZONES:
        raise ValueError(
            f"{name[:64]!r} is not a known time zone (use IANA names like Europe/Paris)"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a known time zone") from None


def check_cron(expression: str) -> str:
    """The expression, normalised; ValueError unless it is a valid 5-field cron line
    (or an @ shorthand such as @hourly)."""
    if not _CRON.fullmatch(expression):
        raise ValueError(
            "a cron expression has 5 fields: minute (0-59) hour (0-23) day-of-month (1-31) "
            "month (1-12, jan-dec) day-of-week (0-7, sun-sat), each *, a value or a range "
            "with an optional /step, comma-separated; or @hourly, @daily, @weekly, @monthly"
        )
    normalised = " ".join(expression.split())
    if not croniter.is_valid(normalised):
        raise ValueError(f"{expression!r} is not a valid cron expression")
    return normalised


def next_fire(expression: str, timezone: str, after: float) -> float:
    """The first firing strictly after `after` (Unix seconds), honouring DST in `timezone`."""
    start = datetime.fromtimestamp(after, UTC).astimezone(zone(timezone))
    fire: datetime = croniter(expression, start).get_next(datetime)
    return fire.timestamp()
