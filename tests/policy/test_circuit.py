"""pushq.policy.circuit: the circuit breaker, Retry-After holds and AIMD, as tables."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pushq.policy.circuit import PROBE_WAIT, Circuit, CircuitConfig, admit, record

NOW = 1_000_000.0
CONFIG = CircuitConfig(threshold=3, cooldown=10.0, max_cooldown=60.0, ceiling=8)
C = Circuit

RECORD_CASES = [
    # (name, before, status, failure, retry_after, after)
    ("a success keeps it closed", C(), 200, None, None, C()),
    ("a failure counts", C(), 500, None, None, C(failures=1)),
    ("a 4xx means the origin is up", C(failures=2), 404, None, None, C()),
    ("the threshold opens it", C(failures=2), None, "connection", None, C("open", 3, 1, NOW + 10)),
    (
        "a failed probe reopens for twice as long",
        C("half_open", 3, 1, NOW, probing=True),
        502,
        None,
        None,
        C("open", 4, 2, NOW + 20),
    ),
    (
        "the cool-down is capped",
        C("half_open", 9, 5, NOW, probing=True),
        500,
        None,
        None,
        C("open", 10, 6, NOW + 60),
    ),
    (
        "a successful probe closes it, ramping up from one",
        C("half_open", 3, 2, NOW, probing=True),
        200,
        None,
        None,
        C(limit=1, ramping=True),
    ),
    (
        "a late failure while open does not reopen",
        C("open", 3, 1, NOW + 10),
        500,
        None,
        None,
        C("open", 4, 1, NOW + 10),
    ),
]


@pytest.mark.parametrize(
    "before, status, failure, retry_after, after",
    [case[1:] for case in RECORD_CASES],
    ids=[case[0] for case in RECORD_CASES],
)
def test_record(
    before: Circuit,
    status: int | None,
    failure: str | None,
    retry_after: float | None,
    after: Circuit,
) -> None:
    config = replace(CONFIG, adaptive=False)
    assert (
        record(before, config, now=NOW, status=status, failure=failure, retry_after=retry_after)
        == after
    )


ADMIT_CASES = [
    # (name, circuit, in_flight, hold, state after)
    ("closed: send", C(), 0, None, "closed"),
    ("open: hold until the cool-down ends", C("open", 3, 1, NOW + 5), 0, NOW + 5, "open"),
    ("a passed cool-down sends one probe", C("open", 3, 1, NOW - 1), 0, None, "half_open"),
    (
        "while the probe is out, others wait",
        C("half_open", 3, 1, NOW, probing=True),
        0,
        NOW + PROBE_WAIT,
        "half_open",
    ),
    ("Retry-After holds even a closed circuit", C(hold_until=NOW + 30), 0, NOW + 30, "closed"),
    ("a passed Retry-After no longer holds", C(hold_until=NOW - 1), 0, None, "closed"),
    ("the AIMD limit holds the extra delivery", C(limit=2), 2, NOW + PROBE_WAIT, "closed"),
    ("under the AIMD limit: send", C(limit=2), 1, None, "closed"),
]


@pytest.mark.parametrize(
    "circuit, in_flight, hold, state",
    [case[1:] for case in ADMIT_CASES],
    ids=[case[0] for case in ADMIT_CASES],
)
def test_admit(circuit: Circuit, in_flight: int, hold: float | None, state: str) -> None:
    after, held = admit(circuit, now=NOW, in_flight=in_flight)
    assert (held, after.state) == (hold, state)


def test_retry_after_on_429_or_503_holds_the_origin() -> None:
    held = record(C(), CONFIG, now=NOW, status=429, failure=None, retry_after=30.0)
    assert held.hold_until == NOW + 30 and held.state == "closed"
    longer = record(held, CONFIG, now=NOW, status=503, failure=None, retry_after=5.0)
    assert longer.hold_until == NOW + 30  # a shorter ask does not cut a hold short
    other = record(C(), CONFIG, now=NOW, status=500, failure=None, retry_after=30.0)
    assert other.hold_until is None


def test_aimd_halves_on_throttling_and_climbs_one_per_window() -> None:
    config = replace(CONFIG, threshold=100)  # the 503s below do not open the circuit
    c = record(C(), config, now=NOW, status=429, failure=None, retry_after=None)
    assert c.limit == 4  # half the ceiling
    c = record(c, config, now=NOW, status=None, failure="timeout", retry_after=None)
    assert c.limit == 2
    for _ in range(5):
        c = record(c, config, now=NOW, status=503, failure=None, retry_after=None)
    assert c.limit == 1  # never below one
    for expected in (2, 3):  # a window of `limit` successes adds one
        for _ in range(expected - 1):
            c = record(c, config, now=NOW, status=200, failure=None, retry_after=None)
        assert c.limit == expected
    for _ in range(3 + 4 + 5 + 6 + 7):
        c = record(c, config, now=NOW, status=200, failure=None, retry_after=None)
    assert c.limit is None  # back at the ceiling: no limit of its own
    off = replace(CONFIG, adaptive=False)
    assert record(C(), off, now=NOW, status=429, failure=None, retry_after=None).limit is None


def test_a_closed_circuit_ramps_up_from_one_doubling_per_window() -> None:
    c = record(
        C("half_open", 3, 1, NOW, probing=True),
        CONFIG,
        now=NOW,
        status=200,
        failure=None,
        retry_after=None,
    )
    assert (c.state, c.limit, c.ramping) == ("closed", 1, True)
    limits = []
    for _ in range(1 + 2 + 4):  # windows of 1, 2 and 4 successes: 1 -> 2 -> 4 -> 8 (ceiling)
        c = record(c, CONFIG, now=NOW, status=200, failure=None, retry_after=None)
        limits.append(c.limit)
    assert limits == [2, 2, 4, 4, 4, 4, None]
    assert not c.ramping  # at the ceiling: no limit of its own


def test_throttling_ends_the_ramp_and_aimd_goes_on_from_half() -> None:
    c = replace(C(), limit=4, ramping=True)
    c = record(c, CONFIG, now=NOW, status=429, failure=None, retry_after=None)
    assert (c.limit, c.ramping) == (2, False)
    for _ in range(2):
        c = record(c, CONFIG, now=NOW, status=200, failure=None, retry_after=None)
    assert c.limit == 3  # additive from here


def test_the_ramp_applies_without_aimd_too() -> None:
    off = replace(CONFIG, adaptive=False)
    c = record(
        C("half_open", 3, 1, NOW, probing=True),
        off,
        now=NOW,
        status=200,
        failure=None,
        retry_after=None,
    )
    assert c.limit == 1
    c = record(c, off, now=NOW, status=429, failure=None, retry_after=None)
    assert (c.limit, c.ramping) == (1, True)  # no decrease without AIMD; still ramping
    assert record(c, off, now=NOW, status=200, failure=None, retry_after=None).limit == 2


ADMIT_QUEUE_CASES = [
    # (name, circuit, in flight, adaptive, cap, the queue's in flight, hold)
    ("AIMD limit applies", C(limit=2), 2, True, None, 0, NOW + PROBE_WAIT),
    ("a queue opted out of AIMD passes its limit", C(limit=2), 2, False, None, 0, None),
    ("but not the ramp", C(limit=2, ramping=True), 2, False, None, 0, NOW + PROBE_WAIT),
    ("the queue's cap holds its own", C(), 5, True, 3, 3, NOW + PROBE_WAIT),
    ("under the queue's cap: send", C(), 5, True, 3, 2, None),
]


@pytest.mark.parametrize(
    "circuit, in_flight, adaptive, cap, queue_in_flight, hold",
    [case[1:] for case in ADMIT_QUEUE_CASES],
    ids=[case[0] for case in ADMIT_QUEUE_CASES],
)
def test_admit_with_the_queues_settings(
    circuit: Circuit,
    in_flight: int,
    adaptive: bool,
    cap: int | None,
    queue_in_flight: int,
    hold: float | None,
) -> None:
    _, got = admit(
        circuit,
        now=NOW,
        in_flight=in_flight,
        adaptive=adaptive,
        cap=cap,
        queue_in_flight=queue_in_flight,
    )
    assert got == hold
