"""Durations as the API and the flags accept them: seconds or "30s", "5m", "2h", "1d"."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from .patterns import decimal_at_most

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# ASCII only: "\d" and "\s" would also take other scripts' digits and spaces.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.ASCII)
_UNIT_FRACTION = {"ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60)}
_UNIT_FRACTION |= {"h": Fraction(3600), "d": Fraction(86400)}


def duration_pattern(max_seconds: float, *, positive: bool) -> str:
    """The strings parse_duration reads as at most `max_seconds` (and above zero when
    `positive`), as one regular expression: for each unit, a number up to the whole
    count of that unit in `max_seconds` (a unit that does not fit is left out)."""
    limit = Fraction(max_seconds)
    alternatives = []
    for unit, size in _UNIT_FRACTION.items():
        count = limit / size
        if count.denominator != 1 and positive and count < 1:
            continue  # not even one whole unit fits: "0.04d" is no way to write 1 h
        number = decimal_at_most(int(count), positive=positive)
        suffix = " *s?" if unit == "s" else f" *{unit}"
        alternatives.append(number + suffix)
    return "^ *(?:" + "|".join(alternatives) + ") *$"


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like "30s"; ValueError says what was wrong."""
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds or a string like '30s', '5m', '2h', '1d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration; use seconds or a string like '30s', '5m', '2h', '1d'"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise ValueError("must be a number of seconds or a string like '30s', '5m', '2h', '1d'")
    if not math.isfinite(seconds):
        raise ValueError("must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds
