"""Cron expressions for schedules: 5 fields or a macro (@daily...), evaluated in a
time zone (croniter). Errors name the field that is wrong."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from .patterns import int_range

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DAYS = "sun mon tue wed thu fri sat".split()
# (name, low, high, names for low, low+1, ...)
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day-of-month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_ITEM = re.compile(r"^(?:(\*)|([^-/]+)(?:-([^-/]+))?)(?:/(.*))?$")


# Every IANA zone name this installation knows: the API accepts exactly these.
TIMEZONES = tuple(sorted(available_timezones() | {"UTC"}))
_ZONES = frozenset(TIMEZONES)


def _case_free(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _token(low: int, high: int, names: list[str], name_low: int) -> str:
    """A value from `low` to `high`: a number (leading zeros allowed) or its name."""
    named = [_case_free(n) for i, n in enumerate(names) if low <= name_low + i <= high]
    return "(?:" + "|".join(["0*" + int_range(low, high), *named]) + ")"


def _field_pattern(low: int, high: int, names: list[str], sunday_seven: bool = False) -> str:
    """The items check_cron accepts in one field, as a regular expression: *, a value,
    or a range that does not run backwards, each with an optional /step, comma-listed."""
    value = _token(low, high, names, low)
    end_seven = "|0*7" if sunday_seven else ""
    ranges = "|".join(
        f"{_token(start, start, names, low)}-(?:{_token(start, high, names, low)}{end_seven})"
        for start in range(low, high + 1)
    )
    alone = value[:-1] + end_seven + ")"
    item = rf"(?:\*|{ranges}|{alone})(?:/0*[1-9][0-9]?)?"
    return f"{item}(?:,{item})*"


# The grammar the API accepts and /openapi.json publishes; every line it matches passes
# check_cron (tests/policy/test_patterns.py), so the two are one rule.
CRON_PATTERN = (
    "^ *(?:@(?:"
    + "|".join(_case_free(m[1:]) for m in MACROS)
    + ")|"
    + " +".join(
        _field_pattern(low, high, names, sunday_seven=field == "day-of-week")
        for field, low, high, names in _FIELDS
    )
    + ") *$"
)


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


def _value(text: str, field: str, low: int, high: int, names: list[str]) -> int:
    lowered = text.lower()
    if lowered in names:
        return low + names.index(lowered)
    if not (text.isascii() and text.isdigit()):
        known = f" or a name ({names[0]}-{names[-1]})" if names else ""
        raise ValueError(f"{field}: {text!r} is not a number{known}")
    value = int(text)
    if field == "day-of-week" and value == 7:
        return 0  # 7 is Sunday too, as in most crons
    if not low <= value <= high:
        raise ValueError(f"{field}: {value} is out of range {low}-{high}")
    return value


def _check_field(text: str, field: str, low: int, high: int, names: list[str]) -> None:
    for item in text.split(","):
        match = _ITEM.match(item)
        if not item or match is None:
            raise ValueError(f"{field}: {item!r} is not a value, a range a-b, or a step */n")
        star, start, end, step = match.groups()
        if step is not None and not (step.isascii() and step.isdigit() and int(step) >= 1):
            raise ValueError(f"{field}: the step in {item!r} must be a whole number from 1")
        if star:
            continue
        first = _value(start, field, low, high, names)
        if end is not None:
            last = _value(end, field, low, high, names)
            if last < first and not (field == "day-of-week" and end == "7"):
                raise ValueError(f"{field}: the range {item!r} runs backwards")


def check_cron(expression: str) -> str:
    """The expression, normalised; ValueError naming the bad field unless it is a valid
    5-field cron line or one of the macros @hourly, @daily, @weekly, @monthly, @yearly."""
    stripped = expression.strip()
    if stripped.startswith("@"):
        macro = stripped.lower()
        if macro not in MACROS:
            raise ValueError(f"{stripped!r} is not a macro; use one of {', '.join(MACROS)}")
        return macro
    fields = stripped.split()
    if len(fields) != 5:
        raise ValueError(
            "a cron expression has 5 fields: minute hour day-of-month month day-of-week "
            f"(or one of {', '.join(MACROS)}); got {len(fields)}"
        )
    for text, (field, low, high, names) in zip(fields, _FIELDS, strict=True):
        _check_field(text, field, low, high, names)
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise ValueError(f"{expression!r} is not a valid cron expression")
    return normalised


def next_fire(expression: str, timezone: str, after: float) -> float:
    """The first firing strictly after `after` (Unix seconds), honouring DST in `timezone`."""
    start = datetime.fromtimestamp(after, UTC).astimezone(zone(timezone))
    fire: datetime = croniter(MACROS.get(expression, expression), start).get_next(datetime)
    return fire.timestamp()
