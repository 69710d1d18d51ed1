"""pushq.policy.flow_keys: per-key limits of a claim round, as tables."""

from __future__ import annotations

import pytest

from pushq.policy.claim_plan import QueueSnapshot, plan_claim
from pushq.policy.flow_keys import KeyLimits, KeySnapshot, key_limits, pick, spent_buckets

NOW = 1_000_000.0
K = KeySnapshot

LIMIT_CASES = [
    # (name, keys, key_concurrency, key_rate_limit, held, allowance, default)
    ("no keys, no defaults: unlimited", [], None, None, set(), {}, None),
    ("a paused key is held", [K("a", paused=True)], None, None, {"a"}, {}, None),
    (
        "own concurrency minus in flight",
        [K("a", concurrency=3, active=1)],
        None,
        None,
        set(),
        {"a": 2},
        None,
    ),
    (
        "a key at its concurrency is held",
        [K("a", concurrency=1, active=1)],
        None,
        None,
        {"a"},
        {},
        None,
    ),
    (
        "the queue default applies to keys without their own",
        [K("a", active=1)],
        1,
        None,
        {"a"},
        {},
        1,
    ),
    (
        "a key's own setting beats the default",
        [K("a", concurrency=5, active=1)],
        1,
        None,
        set(),
        {"a": 4},
        1,
    ),
    (
        "an empty bucket holds the key",
        [K("a", rate_limit="2/s", tokens=0.5, tokens_at=NOW, bucket_rate="2/s")],
        None,
        None,
        {"a"},
        {},
        None,
    ),
    (
        "a bucket saved under another rate starts full",
        [K("a", rate_limit="3/s", tokens=0.0, tokens_at=NOW, bucket_rate="2/s")],
        None,
        None,
        set(),
        {"a": 3},
        None,
    ),
    ("a default rate caps unknown keys at its capacity", [], 10, "4/m", set(), {}, 4),
]


@pytest.mark.parametrize(
    "keys, concurrency, rate, held, allowance, default",
    [case[1:] for case in LIMIT_CASES],
    ids=[case[0] for case in LIMIT_CASES],
)
def test_key_limits(
    keys: list[KeySnapshot],
    concurrency: int | None,
    rate: str | None,
    held: set[str],
    allowance: dict[str, int],
    default: int | None,
) -> None:
    limits = key_limits(keys, key_concurrency=concurrency, key_rate_limit=rate, now=NOW)
    assert (set(limits.held), dict(limits.allowance), limits.default) == (held, allowance, default)


def test_an_empty_bucket_wakes_the_round_at_its_next_token() -> None:
    keys = [K("a", rate_limit="2/s", tokens=0.5, tokens_at=NOW, bucket_rate="2/s")]
    limits = key_limits(keys, key_concurrency=None, key_rate_limit=None, now=NOW)
    assert limits.wake_at == pytest.approx(NOW + 0.25)


PICK_CASES = [
    # (name, candidates, limits, count, ids, full)
    (
        "jobs without a key are always taken",
        [("1", None), ("2", None)],
        KeyLimits(default=1),
        5,
        ["1", "2"],
        set(),
    ),
    (
        "a key at its limit is skipped, not waited on: no head-of-line blocking",
        [("1", "a"), ("2", "a"), ("3", "a"), ("4", "b")],
        KeyLimits(default=1),
        5,
        ["1", "4"],
        {"a", "b"},
    ),
    (
        "held keys take nothing",
        [("1", "a"), ("2", "b")],
        KeyLimits(held=frozenset({"a"})),
        5,
        ["2"],
        set(),
    ),
    (
        "own allowance beats the default",
        [("1", "a"), ("2", "a"), ("3", "a")],
        KeyLimits(allowance={"a": 2}, default=1),
        5,
        ["1", "2"],
        {"a"},
    ),
    (
        "at most count",
        [("1", "a"), ("2", "b"), ("3", "c")],
        KeyLimits(default=1),
        2,
        ["1", "2"],
        {"a", "b"},
    ),
]


@pytest.mark.parametrize(
    "candidates, limits, count, ids, full",
    [case[1:] for case in PICK_CASES],
    ids=[case[0] for case in PICK_CASES],
)
def test_pick(
    candidates: list[tuple[str, str | None]],
    limits: KeyLimits,
    count: int,
    ids: list[str],
    full: set[str],
) -> None:
    assert pick(candidates, limits, {}, count) == (ids, full)


def test_pick_counts_what_earlier_queues_took_this_round() -> None:
    taken = {"a": 1}
    assert pick([("1", "a"), ("2", "b")], KeyLimits(default=1), taken, 5) == (["2"], {"a", "b"})
    assert taken == {"a": 1, "b": 1}


def test_spent_buckets_for_own_and_default_rates() -> None:
    keys = [K("a", rate_limit="5/s", tokens=3.0, tokens_at=NOW, bucket_rate="5/s")]
    limits = key_limits(keys, key_concurrency=None, key_rate_limit="10/m", now=NOW)
    assert spent_buckets(limits, {"a": 2, "b": 1, "c": 0}, NOW) == {
        "a": ("5/s", 1.0, NOW),
        "b": ("10/m", 9.0, NOW),
    }


def test_the_plan_carries_key_limits_only_for_limited_queues() -> None:
    queues = [QueueSnapshot("free", ready=3), QueueSnapshot("keyed", ready=3, key_concurrency=1)]
    plan = plan_claim(
        queues, limit=10, slots=64, now=NOW, credit={}, in_flight={}, keys=[K("x", active=1)]
    )
    assert set(plan.keys) == {"keyed"}
    assert plan.keys["keyed"].held == frozenset({"x"}) and plan.keys["keyed"].default == 1


def test_a_bad_rate_holds_its_key_and_a_bad_default_sets_its_queue_aside() -> None:
    queues = [QueueSnapshot("bad", ready=1, key_rate_limit="x"), QueueSnapshot("good", ready=1)]
    keys = [K("x", rate_limit="nonsense")]
    plan = plan_claim(queues, limit=10, slots=64, now=NOW, credit={}, in_flight={}, keys=keys)
    assert set(plan.skipped) == {"bad"}
    assert plan.takes == (("good", 1),) and plan.keys["good"].held == frozenset({"x"})
