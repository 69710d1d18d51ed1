"""QStash's durations: "50s", "10m", "1d10h30m" (d, h, m, s; a bare number is seconds)."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Seconds; ValueError names what is wrong."""
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    if not value or _PART.sub("", value) != "":
        raise ValueError(f"{text!r} is not a duration like 50s, 10m or 1d10h30m")
    return sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value))
