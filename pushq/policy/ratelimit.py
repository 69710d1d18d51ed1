"""Rate limits as queues take them ("10/m") and the token bucket that enforces them.

A bucket of capacity N refills at N per period, so no window of one period
holds more than 2N deliveries, and over time the rate is N per period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|m|h)\s*$")
_PERIOD = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period


def parse_rate(text: str) -> Rate:
    """Rate("10/m"); ValueError says what a valid one looks like."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a rate; use 'N/s', 'N/m' or 'N/h', e.g. '10/m'")
    count = int(match.group(1))
    if count < 1:
        raise ValueError("a rate allows at least 1 delivery per period")
    return Rate(count, _PERIOD[match.group(2)])


def refill(rate: Rate, tokens: float | None, tokens_at: float | None, now: float) -> float:
    """Tokens in the bucket at `now` (a new bucket starts full)."""
    if tokens is None or tokens_at is None:
        return float(rate.count)
    return min(float(rate.count), tokens + max(0.0, now - tokens_at) * rate.per_second)


def next_token_at(rate: Rate, tokens: float, now: float) -> float:
    """When the bucket will next hold a whole token."""
    return now + max(0.0, 1.0 - tokens) / rate.per_second
