"""pushq.policy.backoff: pure next-attempt-time functions, tested as tables."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from pushq.policy.backoff import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_AFTER_CAP,
    BackoffPolicy,
    next_run_at,
    parse_retry_after,
    retry_delay,
    retry_or_dead,
)

ALMOST_ONE = 1.0 - 1e-12
NOW = 1_700_000_000.0
NO_JITTER = BackoffPolicy(base=30.0, max=8 * 3600.0, jitter=False)


def _never() -> float:
    raise AssertionError("rand must not be called without jitter")


@pytest.mark.parametrize(
    ("retry_number", "policy", "expected"),
    [
        (1, NO_JITTER, 30.0),
        (2, NO_JITTER, 60.0),
        (3, NO_JITTER, 120.0),
        (10, NO_JITTER, 30.0 * 2**9),
        (11, NO_JITTER, 8 * 3600.0),  # 30 * 2**10 = 30720 > 28800: capped
        (12, NO_JITTER, 8 * 3600.0),
        (1000, NO_JITTER, 8 * 3600.0),  # no overflow for absurd retry numbers
        (1, BackoffPolicy(base=1.0, max=10.0, jitter=False), 1.0),
        (4, BackoffPolicy(base=1.0, max=10.0, jitter=False), 8.0),
        (5, BackoffPolicy(base=1.0, max=10.0, jitter=False), 10.0),
        (3, BackoffPolicy(base=0.5, max=100.0, jitter=False), 2.0),
    ],
)
def test_retry_delay_without_jitter_is_exact(
    retry_number: int, policy: BackoffPolicy, expected: float
) -> None:
    assert retry_delay(retry_number, policy, _never) == expected


@pytest.mark.parametrize(
    ("retry_number", "nominal"),
    [(1, 30.0), (2, 60.0), (5, 480.0), (11, 28800.0), (50, 28800.0)],
)
def test_retry_delay_with_jitter_stays_in_half_to_full(retry_number: int, nominal: float) -> None:
    policy = BackoffPolicy(jitter=True)
    low = retry_delay(retry_number, policy, lambda: 0.0)
    high = retry_delay(retry_number, policy, lambda: ALMOST_ONE)
    assert low == nominal / 2
    assert nominal / 2 < high <= nominal
    assert high == pytest.approx(nominal)
    middle = retry_delay(retry_number, policy, lambda: 0.5)
    assert middle == pytest.approx(nominal * 0.75)


@pytest.mark.parametrize("retry_number", [0, -1, -100])
def test_retry_delay_rejects_retry_numbers_below_one(retry_number: int) -> None:
    with pytest.raises(ValueError):
        retry_delay(retry_number, NO_JITTER, _never)


def _http_date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("value", "cap", "expected"),
    [
        (None, 86400.0, None),
        ("", 86400.0, None),
        ("   ", 86400.0, None),
        ("0", 86400.0, 0.0),
        ("120", 86400.0, 120.0),
        (" 120 ", 86400.0, 120.0),
        ("999999", 86400.0, 86400.0),  # clamped to the cap
        ("99999999999999999999999999", 86400.0, 86400.0),
        ("120", 60.0, 60.0),
        (_http_date(NOW + 90), 86400.0, 90.0),  # an HTTP date, relative to now
        (_http_date(NOW + 3 * 86400), 86400.0, 86400.0),  # a date far ahead: capped
        (_http_date(NOW - 3600), 86400.0, 0.0),  # a date in the past: not negative
        ("garbage", 86400.0, None),
        ("-5", 86400.0, None),
        ("1.5", 86400.0, None),  # delta-seconds is an integer
        ("soon, please", 86400.0, None),
        ("Mon, 99 Foo 2024 99:99:99 GMT", 86400.0, None),
        # str.isdigit() is true for these, yet they are not delta-seconds; a worker
        # sending such bytes must not crash classification.
        ("\u00b2", 86400.0, None),  # superscript two (byte 0xB2 read as latin-1)
        ("\u00b9\u00b2\u00b3", 86400.0, None),
    ],
)
def test_parse_retry_after(value: str | None, cap: float, expected: float | None) -> None:
    assert parse_retry_after(value, NOW, cap) == expected


@pytest.mark.parametrize(
    ("retry_number", "retry_after", "expected_delay"),
    [
        (1, None, 30.0),  # plain backoff
        (1, 10.0, 30.0),  # Retry-After shorter than the backoff: backoff wins
        (1, 300.0, 300.0),  # Retry-After longer: it sets the earliest next attempt
        (3, 0.0, 120.0),
        # Retry-After beyond backoff.max (8 h) still wins
        (12, 20 * 3600.0, 20 * 3600.0),
    ],
)
def test_next_run_at(retry_number: int, retry_after: float | None, expected_delay: float) -> None:
    at = next_run_at(
        now=NOW,
        retry_number=retry_number,
        policy=NO_JITTER,
        retry_after=retry_after,
        rand=_never,
    )
    assert at == NOW + expected_delay


def test_next_run_at_retry_after_past_backoff_max_is_capped_by_the_retry_after_cap() -> None:
    policy = BackoffPolicy(base=1.0, max=60.0, jitter=False)
    asked = parse_retry_after(str(7 * 86400), NOW, DEFAULT_RETRY_AFTER_CAP)
    assert asked == DEFAULT_RETRY_AFTER_CAP == 86400.0
    at = next_run_at(now=NOW, retry_number=1, policy=policy, retry_after=asked, rand=_never)
    assert at == NOW + 86400.0
    assert at - NOW > policy.max


def test_next_run_at_jittered_delay_is_never_below_retry_after() -> None:
    at = next_run_at(
        now=NOW,
        retry_number=2,
        policy=BackoffPolicy(jitter=True),
        retry_after=45.0,
        rand=lambda: 0.0,  # jittered backoff: 30 s, below Retry-After
    )
    assert at == NOW + 45.0


def test_default_schedule_spreads_over_about_a_day() -> None:
    policy = BackoffPolicy()
    nominal = BackoffPolicy(base=policy.base, max=policy.max, jitter=False)
    retries = DEFAULT_MAX_ATTEMPTS - 1  # the first attempt is not a retry
    delays = [retry_delay(n, nominal, _never) for n in range(1, retries + 1)]
    total = sum(delays)
    print(f"default schedule: {retries} retries, {total / 3600:.1f} h in all: {delays}")
    assert 12 * 3600 <= total <= 36 * 3600
    # With jitter the schedule shrinks by at most half.
    low = sum(retry_delay(n, policy, lambda: 0.0) for n in range(1, retries + 1))
    assert low == total / 2


@pytest.mark.parametrize(
    ("attempts", "max_attempts", "retryable", "retry_after", "expected"),
    [
        (1, 3, True, None, NOW + 30),  # first retry: the base delay
        (2, 3, True, None, NOW + 60),
        (3, 3, True, None, None),  # that was the last attempt: dead
        (4, 3, True, None, None),  # (a redrive's count never exceeds, but be safe)
        (1, 3, False, None, None),  # a final failure (4xx, pushq-retry: false): dead
        (1, 1, True, None, None),
        (1, 3, True, 120.0, NOW + 120),  # Retry-After longer than the backoff wins
        (1, 3, True, 5.0, NOW + 30),  # shorter does not shorten it
        (2, 3, False, 120.0, None),
    ],
)
def test_retry_or_dead(
    attempts: int,
    max_attempts: int,
    retryable: bool,
    retry_after: float | None,
    expected: float | None,
) -> None:
    assert (
        retry_or_dead(
            attempts=attempts,
            max_attempts=max_attempts,
            retryable=retryable,
            now=NOW,
            policy=NO_JITTER,
            retry_after=retry_after,
            rand=_never,
        )
        == expected
    )


@pytest.mark.parametrize(
    ("attempts", "max_attempts", "expected"),
    [
        (1, 3, NOW),  # pushq cut it off: due at once, no backoff
        (2, 3, NOW),
        (3, 3, None),  # it still counts: the last one goes to the DLQ
    ],
)
def test_an_attempt_pushq_interrupted_is_due_at_once_but_counts(
    attempts: int, max_attempts: int, expected: float | None
) -> None:
    run_at = retry_or_dead(
        attempts=attempts,
        max_attempts=max_attempts,
        retryable=True,
        now=NOW,
        policy=NO_JITTER,
        rand=_never,
        interrupted=True,
    )
    assert run_at == expected
