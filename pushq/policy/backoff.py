"""When the next attempt may run: pure functions of attempt, policy, clock and randomness.

Defaults (base 30 s, cap 8 h, 13 attempts, equal jitter) spread a job's retries
over roughly a day, as QStash and Svix do; docs/delivery.md has the table.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

DEFAULT_MAX_ATTEMPTS = 13
DEFAULT_RETRY_AFTER_CAP = 86400.0


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff: base * 2^(retry-1), capped at max, jittered if asked."""

    base: float = 30.0
    max: float = 8 * 3600.0
    jitter: bool = True


@dataclass(frozen=True, slots=True)
class PartialBackoff:
    """Backoff fields as a job or queue gives them; None defers to the next level."""

    base: float | None = None
    max: float | None = None
    jitter: bool | None = None


def resolve_backoff(*levels: PartialBackoff | None, default: BackoffPolicy) -> BackoffPolicy:
    """The first level that sets each field wins; the server default fills the rest."""
    base = next((lv.base for lv in levels if lv and lv.base is not None), default.base)
    jitter = next((lv.jitter for lv in levels if lv and lv.jitter is not None), default.jitter)
    cap = next((lv.max for lv in levels if lv and lv.max is not None), None)
    return BackoffPolicy(
        base=base, max=max(cap if cap is not None else default.max, base), jitter=jitter
    )


def retry_delay(retry_number: int, policy: BackoffPolicy, rand: Callable[[], float]) -> float:
    """Seconds to wait before retry `retry_number` (1 = the first retry).

    Exponential with a cap; with jitter the delay is drawn uniformly from
    [d/2, d] ("equal jitter"): retries of jobs that failed together spread
    out, yet no retry comes much sooner than the schedule promises.
    """
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    exponent = min(retry_number - 1, 62)  # 2**62 * base already exceeds any sane cap
    nominal = min(policy.max, policy.base * (2.0**exponent))
    if not policy.jitter:
        return nominal
    return nominal / 2 + rand() * nominal / 2


def parse_retry_after(value: str | None, now: float, cap: float) -> float | None:
    """Seconds asked for by a Retry-After header (delta or HTTP date), clamped to [0, cap]."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), cap)


def next_run_at(
    *,
    now: float,
    retry_number: int,
    policy: BackoffPolicy,
    retry_after: float | None,
    rand: Callable[[], float] = random.random,
) -> float:
    """The time of the next attempt: the backoff delay, or later if Retry-After asks for it."""
    delay = retry_delay(retry_number, policy, rand)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + delay


def retry_or_dead(
    *,
    attempts: int,
    max_attempts: int,
    retryable: bool,
    now: float,
    policy: BackoffPolicy,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
    interrupted: bool = False,
) -> float | None:
    """After a failed attempt: when the job runs again, or None if it goes to the DLQ.

    The one place pushq makes this decision (a settle after a response, the
    rescuer after an expired lease): a final failure, or the last of
    `max_attempts`, is dead; anything else waits out its backoff (or a longer
    Retry-After). `attempts` counts the attempt that just failed. An attempt
    pushq itself `interrupted` (it crashed mid-delivery: not the endpoint's
    fault) is due again at once, `now`, with no backoff; it still counts.
    """
    if not retryable or attempts >= max_attempts:
        return None
    if interrupted:
        return now
    return next_run_at(
        now=now, retry_number=attempts, policy=policy, retry_after=retry_after, rand=rand
    )
