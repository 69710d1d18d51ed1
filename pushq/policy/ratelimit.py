"""Rate limits as queues take them ("10/m") and the token bucket that enforces them.

A bucket of capacity N refills at N per period, so no window of one period
holds more than 2N deliveries, and over time the rate is N per period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .patterns import int_range

_PERIOD = {"s": 1.0, "m": 60.0, "h": 3600.0}
# A million per period is far past any endpoint; a bigger count is a typo (and a
# count past float range would overflow the bucket arithmetic).
MAX_RATE_COUNT = 1_000_000
RATE_PATTERN = r"^ *0*(" + int_range(1, MAX_RATE_COUNT) + r") */ *(s|m|h) *$"
_RATE = re.compile(RATE_PATTERN)


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period


def parse_rate(text: str) -> Rate:
    """Rate("10/m"); ValueError says what a valid one looks like."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text[:40]!r} is not a rate; use 'N/s', 'N/m' or 'N/h' with N from 1 to "
            f"{MAX_RATE_COUNT:,}, e.g. '10/m'"
        )
    return Rate(int(match.group(1)), _PERIOD[match.group(2)])


def refill(rate: Rate, tokens: float | None, tokens_at: float | None, now: float) -> float:
    """Tokens in the bucket at `now` (a new bucket starts full)."""
    if tokens is None or tokens_at is None:
        return float(rate.count)
    return min(float(rate.count), tokens + max(0.0, now - tokens_at) * rate.per_second)


def next_token_at(rate: Rate, tokens: float, now: float) -> float:
    """When the bucket will next hold a whole token."""
    return now + max(0.0, 1.0 - tokens) / rate.per_second
