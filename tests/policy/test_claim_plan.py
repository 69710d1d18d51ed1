"""pushq.policy.claim_plan: which queues a claim round takes from, as a table."""

from __future__ import annotations

import pytest

from pushq.policy.claim_plan import Bucket, ClaimPlan, QueueSnapshot, plan_claim

NOW = 1_000_000.0
Q = QueueSnapshot

CASES = [
    # (name, queues, limit, slots, in_flight, takes, wake_at)
    ("nothing ready", [Q("a")], 10, 64, {}, (), None),
    ("no free slot", [Q("a", ready=5)], 0, 64, {}, (), None),
    ("one queue takes what is ready", [Q("a", ready=3)], 10, 64, {}, (("a", 3),), None),
    ("one queue alone may fill every slot", [Q("a", ready=64)], 64, 64, {}, (("a", 64),), None),
    (
        "with several queues one holds at most 3/4 of the slots",
        [Q("a", ready=8), Q("b")],
        8,
        8,
        {},
        (("a", 6),),
        None,
    ),
    (
        "the 3/4 cap counts deliveries in flight",
        [Q("a", ready=8), Q("b")],
        4,
        8,
        {"a": 5},
        (("a", 1),),
        None,
    ),
    (
        "concurrency counts active jobs",
        [Q("a", ready=9, concurrency=3, active=2)],
        10,
        64,
        {},
        (("a", 1),),
        None,
    ),
    (
        "a full concurrency takes none",
        [Q("a", ready=9, concurrency=2, active=2)],
        10,
        64,
        {},
        (),
        None,
    ),
    (
        "a rate limit takes the whole tokens, and wakes at the next",
        [Q("a", ready=9, rate_limit="5/s", tokens=2.5, tokens_at=NOW)],
        10,
        64,
        {},
        (("a", 2),),
        NOW + 0.1,
    ),
    (
        "an empty bucket wakes at its next token",
        [Q("a", ready=9, rate_limit="2/s", tokens=0.0, tokens_at=NOW)],
        10,
        64,
        {},
        (),
        NOW + 0.5,
    ),
    (
        "a new bucket starts full",
        [Q("a", ready=9, rate_limit="3/m")],
        10,
        64,
        {},
        (("a", 3),),
        NOW + 20,
    ),
    (
        "slots are shared, and what one cannot use goes to the other",
        [Q("a", ready=1), Q("b", ready=9)],
        6,
        64,
        {},
        (("a", 1), ("b", 3), ("b", 2)),
        None,
    ),
    (
        "the higher priority is planned first and gets more",
        [Q("a", ready=9), Q("b", ready=9, priority=1)],
        5,
        64,
        {},
        (("b", 4), ("a", 1)),
        None,
    ),
]


@pytest.mark.parametrize(
    ("queues", "limit", "slots", "in_flight", "takes", "wake_at"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan_claim(
    queues: list[QueueSnapshot],
    limit: int,
    slots: int,
    in_flight: dict[str, int],
    takes: tuple[tuple[str, int], ...],
    wake_at: float | None,
) -> None:
    plan = plan_claim(queues, limit=limit, slots=slots, now=NOW, credit={}, in_flight=in_flight)
    assert plan.takes == takes
    assert plan.wake_at == pytest.approx(wake_at)
    assert plan.skipped == {}


def test_a_rate_limited_queue_saves_what_is_left_of_its_bucket() -> None:
    queues = [Q("a", ready=9, rate_limit="5/s", tokens=2.5, tokens_at=NOW - 0.1)]
    plan = plan_claim(queues, limit=10, slots=64, now=NOW, credit={})
    assert plan.buckets == {"a": Bucket("5/s", pytest.approx(1.0), NOW)}  # type: ignore[arg-type]


def test_the_credit_carries_over_so_one_slot_at_a_time_serves_both() -> None:
    queues = [Q("a", ready=9), Q("b", ready=9)]
    credit: dict[str, float] = {}
    served = []
    for _ in range(4):
        plan = plan_claim(queues, limit=1, slots=64, now=NOW, credit=credit, in_flight={})
        credit = dict(plan.credit)
        served += [name for name, _ in plan.takes]
    assert sorted(served) == ["a", "a", "b", "b"]


def test_without_in_flight_counts_active_jobs_fill_the_cap() -> None:
    queues = [Q("a", ready=8, active=5), Q("b")]
    assert plan_claim(queues, limit=8, slots=8, now=NOW, credit={}).takes == (("a", 1),)


@pytest.mark.parametrize(
    "bad",
    [
        Q("bad", ready=3, rate_limit="9" * 400 + "/s"),  # overflows a float
        Q("bad", ready=3, rate_limit="often"),
    ],
)
def test_a_queue_whose_settings_raise_is_set_aside_and_the_rest_planned(
    bad: QueueSnapshot,
) -> None:
    plan = plan_claim([bad, Q("good", ready=3)], limit=10, slots=64, now=NOW, credit={})
    assert plan.takes == (("good", 3),)
    assert list(plan.skipped) == ["bad"]


def test_an_empty_plan_keeps_the_credit() -> None:
    assert plan_claim([], limit=5, slots=8, now=NOW, credit={"a": 1.5}) == ClaimPlan(
        credit={"a": 1.5}
    )
