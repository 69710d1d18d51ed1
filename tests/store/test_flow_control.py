"""Flow control in the store: queues, claiming rules, backpressure, ordering keys, schedules.

Every clock is an injected float, so rates, delays and leases are exact and fast.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from pushq.errors import RateLimited
from pushq.policy.backoff import BackoffPolicy, PartialBackoff
from pushq.server.models import Claim, JobDefaults, JobRecord, NewJob, QueueSettings, ScheduleRecord
from pushq.server.store.base import Store

from ..stores import claim_due
from .conftest import WithStore
from .test_conformance import (
    DEFAULTS,
    MARGIN,
    NOW,
    SLOTS,
    TTL,
    attempt_of,
    claim,
    complete,
    enqueue,
    fetch,
    kill,
    make_dead,
    new_job,
    rescue_expired,
    retry,
)

UNFINISHED_PUBLIC = ("scheduled", "pending", "active", "retrying")


async def put_queue(store: Store, name: str, *, now: float = NOW, **changes: Any) -> QueueSettings:
    return await store.put_queue(name=name, changes=changes, now=now)


async def claim_round(
    store: Store, *, now: float = NOW, limit: int = 10, slots: int = SLOTS, lease: str = "L1"
) -> Claim:
    """A promotion then a claim, as the promoter and the dispatcher do them; wake_at is
    the sooner of theirs (the next waiting job, the next token)."""
    promoted = await store.promote_due(now=now, limit=10_000)
    claimed = await claim_due(
        store, limit=limit, slots=slots, now=now, lease=lease, lease_margin=MARGIN
    )
    wakes = [at for at in (promoted.next_at, claimed.wake_at) if at is not None]
    return Claim(claimed.jobs, min(wakes, default=None))


async def try_enqueue(
    store: Store, *jobs: NewJob, now: float = NOW, defaults: JobDefaults = DEFAULTS
) -> list[JobRecord]:
    """Enqueue (raising what the store raises) and return the jobs, created or not."""
    results = await store.enqueue(jobs=list(jobs), now=now, idempotency_ttl=TTL, defaults=defaults)
    return [result.job for result in results]


async def unfinished(store: Store, queue: str) -> int:
    settings = await store.get_queue(name=queue)
    assert settings is not None
    return settings.unfinished


async def complete_all(store: Store, jobs: Iterable[JobRecord], lease: str, now: float) -> None:
    done = await asyncio.gather(
        *(complete(store, job, lease, attempt_of(job), now) for job in jobs)
    )
    assert all(done)


def ids(jobs: Iterable[JobRecord]) -> set[str]:
    return {job.id for job in jobs}


def only(jobs: list[JobRecord], job_id: str) -> JobRecord:
    (job,) = [job for job in jobs if job.id == job_id]
    return job


async def stored(store: Store, queue: str | None = None, now: float = NOW) -> list[JobRecord]:
    page = await store.list_jobs(queue=queue, state=None, limit=1000, cursor=None, now=now)
    return page.jobs


async def assert_unfinished_exact(store: Store, now: float) -> None:
    """Every queue's unfinished counter equals a count over the jobs themselves."""
    counted: Counter[str] = Counter()
    for (queue, state), n in (await store.count_by_state(now=now)).items():
        if state in UNFINISHED_PUBLIC:
            counted[queue] += n
    counters = {queue.name: queue.unfinished for queue in await store.list_queues()}
    assert set(counted) <= set(counters), (counted, counters)
    assert counters == {name: counted[name] for name in counters}


# -- queues: settings and resolution -------------------------------------------


def test_queues_exist_once_named_and_keep_their_settings(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get_queue(name="q") is None
        assert await store.list_queues() == []

        await enqueue(store, new_job(queue="q"))
        assert await store.get_queue(name="q") == QueueSettings(name="q", unfinished=1)

        settings: dict[str, Any] = {
            "concurrency": 3,
            "rate_limit": "10/m",
            "max_attempts": 5,
            "backoff": PartialBackoff(base=1.0),
            "timeout": 9.0,
            "max_size": 100,
            "priority": 2,
        }
        created = await put_queue(store, "p", **settings)
        assert created == QueueSettings(name="p", **settings)
        paused = await put_queue(store, "p", now=NOW + 1, paused=True)
        assert paused == QueueSettings(name="p", paused=True, **settings)
        cleared = await put_queue(store, "p", now=NOW + 2, concurrency=None, rate_limit=None)
        assert (cleared.concurrency, cleared.rate_limit, cleared.max_size) == (None, None, 100)
        assert await store.get_queue(name="p") == cleared
        assert [queue.name for queue in await store.list_queues()] == ["p", "q"]

    with_store(scenario)


def test_job_settings_override_queue_settings_over_the_defaults(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(
            store, "tuned", max_attempts=7, timeout=12.0, backoff=PartialBackoff(base=5.0)
        )
        plain, tuned, own = await enqueue(
            store,
            new_job(queue="untuned"),
            new_job(queue="tuned"),
            new_job(
                queue="tuned",
                max_attempts=2,
                backoff=PartialBackoff(max=100.0, jitter=False),
            ),
        )

        assert (plain.max_attempts, plain.timeout, plain.backoff) == (3, 30.0, BackoffPolicy())
        assert (tuned.max_attempts, tuned.timeout) == (7, 12.0)
        assert tuned.backoff == BackoffPolicy(base=5.0, max=DEFAULTS.backoff.max, jitter=True)
        assert (own.max_attempts, own.timeout) == (2, 12.0)
        assert own.backoff == BackoffPolicy(base=5.0, max=100.0, jitter=False)
        assert await fetch(store, own.id) == own

    with_store(scenario)


def test_oldest_pending_per_queue(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.oldest_pending() == {}
        await enqueue(store, new_job(queue="a"), now=NOW - 30)
        await enqueue(store, new_job(queue="a"), now=NOW - 10)
        await enqueue(store, new_job(queue="b"), now=NOW - 5)
        await enqueue(store, new_job(queue="c", run_at=NOW + 60))

        assert await store.oldest_pending() == {"a": NOW - 30, "b": NOW - 5}

    with_store(scenario)


# -- pause, concurrency, rate limits -------------------------------------------


def test_paused_queue_is_not_claimed_until_resumed(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert (await put_queue(store, "a", paused=True)).paused
        a1, a2, b1 = await enqueue(
            store, new_job(queue="a"), new_job(queue="a"), new_job(queue="b")
        )

        assert ids(await claim(store)) == {b1.id}  # enqueue is accepted, delivery waits
        assert await claim(store, now=NOW + 10) == []
        assert (await fetch(store, a1.id)).state == "pending"

        assert not (await put_queue(store, "a", now=NOW + 20, paused=False)).paused
        assert ids(await claim(store, now=NOW + 20)) == {a1.id, a2.id}

    with_store(scenario)


def test_concurrency_caps_the_jobs_of_a_queue_in_flight(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "c", concurrency=2)
        await enqueue(store, *(new_job(queue="c") for _ in range(5)))

        first = await claim(store)
        assert len(first) == 2
        assert await claim(store) == []

        (other,) = await enqueue(store, new_job(queue="d"))
        assert ids(await claim(store)) == {other.id}  # other queues keep flowing

        assert await complete(store, first[0], "L1", attempt_of(first[0]), NOW + 1)
        assert len(await claim(store, now=NOW + 1, lease="L2")) == 1
        assert await claim(store, now=NOW + 1) == []

        # A job waiting for its retry is not in flight.
        assert await retry(store, first[1], "L1", attempt_of(first[1], status=503), NOW + 2)
        assert len(await claim(store, now=NOW + 2, lease="L3")) == 1
        assert await claim(store, now=NOW + 2) == []

    with_store(scenario)


def test_rate_limit_is_a_token_bucket(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "r", rate_limit="5/s")
        await enqueue(store, *(new_job(queue="r") for _ in range(20)))

        assert len((await claim_round(store)).jobs) == 5  # a fresh bucket is full
        empty = await claim_round(store)
        assert empty.jobs == []
        assert empty.wake_at == pytest.approx(NOW + 0.2)  # the next token
        assert len((await claim_round(store, now=NOW + 1)).jobs) == 5
        assert len((await claim_round(store, now=NOW + 1.3)).jobs) == 1

    with_store(scenario)


def test_rate_limit_never_exceeds_twice_its_rate_in_any_period(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "r", rate_limit="5/s")
        await enqueue(store, *(new_job(queue="r") for _ in range(60)))

        step, steps_per_period = 0.05, 20
        claimed: list[int] = []
        for i in range(100):  # a claim round every 50 ms for 5 s
            jobs = await claim(store, now=NOW + i * step, lease=f"L{i}")
            claimed.append(len(jobs))

        windows = [sum(claimed[i : i + steps_per_period]) for i in range(len(claimed))]
        assert max(windows) <= 2 * 5, claimed
        assert 25 <= sum(claimed) <= 30, claimed  # one full bucket, then 5 per second

    with_store(scenario)


# -- priorities and fairness ----------------------------------------------------


def test_priority_within_a_queue_then_fifo(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        jobs = await enqueue(store, *(new_job(queue="p", priority=p) for p in (0, 5, 0, 5, 1)))

        order = [job.id for _ in range(6) for job in await claim(store, limit=1)]
        assert order == [jobs[i].id for i in (1, 3, 4, 0, 2)]

    with_store(scenario)


def test_queue_priority_serves_the_high_queue_most_without_starving_the_low(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "critical", priority=2)
        await put_queue(store, "batch", priority=0)
        await enqueue(
            store, *(new_job(queue=queue) for queue in ("critical", "batch") for _ in range(40))
        )

        served: Counter[str] = Counter()
        for round_ in range(4):
            now = NOW + round_
            jobs = await claim(store, now=now, lease=f"L{round_}")
            assert len(jobs) == 10
            served.update(job.queue for job in jobs)
            await complete_all(store, jobs, f"L{round_}", now)
        # weights 4^2 : 4^0 = 16 : 1, by weighted round robin over the 40 slots
        assert served["critical"] >= 10 * served["batch"] and served["batch"] >= 1, served

    with_store(scenario)


@pytest.mark.parametrize(("priorities", "rounds", "least"), [((0, 0), 20, 5), ((2, 0), 40, 1)])
def test_one_free_slot_at_a_time_still_serves_every_queue(
    with_store: WithStore, priorities: tuple[int, int], rounds: int, least: int
) -> None:
    """The dispatcher often claims with limit=1 (one slot freed): no queue may starve then."""

    async def scenario(store: Store) -> None:
        for name, priority in zip(("a", "b"), priorities, strict=True):
            await put_queue(store, name, priority=priority)
        await enqueue(store, *(new_job(queue=queue) for queue in "ab" for _ in range(rounds)))

        served: Counter[str] = Counter()
        for round_ in range(rounds):
            now = NOW + round_
            (job,) = await claim(store, now=now, limit=1, lease=f"L{round_}")
            served[job.queue] += 1
            await complete_all(store, [job], f"L{round_}", now)
        assert min(served["a"], served["b"]) >= least, served

    with_store(scenario)


def test_a_queue_alone_may_take_every_slot(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, *(new_job(queue="solo") for _ in range(12)))

        assert len(await claim(store, limit=8, slots=8)) == 8

    with_store(scenario)


def test_with_several_queues_one_holds_at_most_three_quarters_of_the_slots(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "other")  # a second unpaused queue, nothing ready yet
        await enqueue(store, *(new_job(queue="busy") for _ in range(12)))

        assert len(await claim(store, limit=8, slots=8)) == 8 * 3 // 4
        assert await claim(store, limit=2, slots=8) == []  # busy holds all it may

        others = await enqueue(store, *(new_job(queue="other") for _ in range(3)))
        got = await claim(store, limit=2, slots=8, lease="L2")
        assert len(got) == 2 and ids(got) <= ids(others)

        # Once the other queue is paused, busy is alone again and may fill the slots.
        await complete_all(store, got, "L2", NOW)
        await put_queue(store, "other", paused=True)
        got = await claim(store, limit=2, slots=8, lease="L3")
        assert [job.queue for job in got] == ["busy", "busy"]

    with_store(scenario)


# -- backpressure ---------------------------------------------------------------


def test_max_size_counts_unfinished_jobs_and_frees_up_as_they_finish(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "small", max_size=2)
        await enqueue(store, new_job(queue="small"), new_job(queue="small", unique_key="u"))

        with pytest.raises(RateLimited) as raised:
            await try_enqueue(store, new_job(queue="small"))
        assert (raised.value.status, raised.value.code) == (429, "queue_full")
        assert raised.value.retry_after > 0
        assert len(await stored(store, "small")) == 2
        assert await unfinished(store, "small") == 2

        # A deduplicated enqueue stores nothing, so a full queue still answers it.
        (same,) = await try_enqueue(store, new_job(queue="small", unique_key="u"))
        assert same.unique_key == "u"

        (active,) = await claim(store, limit=1)  # in flight is still unfinished
        with pytest.raises(RateLimited):
            await try_enqueue(store, new_job(queue="small"))

        assert await complete(store, active, "L1", attempt_of(active), NOW + 1)
        (third,) = await enqueue(store, new_job(queue="small"), now=NOW + 2)
        assert third.state == "pending"
        with pytest.raises(RateLimited):
            await try_enqueue(store, new_job(queue="small"), now=NOW + 3)
        await enqueue(store, new_job(queue="roomy"), now=NOW + 3)  # other queues: unaffected

    with_store(scenario)


def test_a_batch_over_max_size_is_all_or_nothing(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "small", max_size=3)
        await enqueue(store, new_job(queue="small"))

        batch = [new_job(queue="small", idempotency_key="x"), new_job(queue="small")]
        with pytest.raises(RateLimited) as raised:
            await try_enqueue(store, *batch, new_job(queue="small"))
        assert raised.value.code == "queue_full"
        assert len(await stored(store)) == 1
        assert await unfinished(store, "small") == 1

        created = await enqueue(store, *batch)  # the key was not kept by the failed batch
        assert len(created) == 2
        assert await unfinished(store, "small") == 3

    with_store(scenario)


def test_global_max_unfinished(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        limited = replace(DEFAULTS, max_unfinished=3)
        await try_enqueue(
            store, new_job(queue="a"), new_job(queue="a"), new_job(queue="b"), defaults=limited
        )

        with pytest.raises(RateLimited) as raised:
            await try_enqueue(store, new_job(queue="c"), defaults=limited)
        assert (raised.value.status, raised.value.code) == (429, "server_full")
        assert raised.value.retry_after > 0
        assert len(await stored(store)) == 3

        (job,) = await claim(store, limit=1)
        assert await complete(store, job, "L1", attempt_of(job), NOW + 1)
        (fourth,) = await try_enqueue(store, new_job(queue="c"), now=NOW + 2, defaults=limited)
        assert fourth.queue == "c"
        with pytest.raises(RateLimited):
            await try_enqueue(store, new_job(queue="a"), now=NOW + 2, defaults=limited)
        await enqueue(store, new_job(queue="a"), now=NOW + 2)  # no limit configured

    with_store(scenario)


# -- unique keys ----------------------------------------------------------------


def test_concurrent_enqueues_with_one_unique_key_make_one_job(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        batches = await asyncio.gather(
            *(
                store.enqueue(
                    jobs=[new_job(unique_key="u", body=str(i).encode())],
                    now=NOW,
                    idempotency_ttl=TTL,
                    defaults=DEFAULTS,
                )
                for i in range(5)
            )
        )
        results = [result for batch in batches for result in batch]

        assert sum(result.created for result in results) == 1
        assert len({result.job.id for result in results}) == 1
        assert len(await stored(store)) == 1
        assert await unfinished(store, "default") == 1

    with_store(scenario)


# -- ordering keys ----------------------------------------------------------------


@pytest.mark.parametrize("head_ends", ["complete", "kill", "rescue"])
def test_ordering_key_delivers_one_at_a_time_and_a_retry_holds_back_only_its_key(
    with_store: WithStore, head_ends: str
) -> None:
    async def scenario(store: Store) -> None:
        k1, k2, k3, o1, u1 = await enqueue(
            store,
            new_job(ordering_key="k", max_attempts=2, timeout=10.0),
            new_job(ordering_key="k"),
            new_job(ordering_key="k"),
            new_job(ordering_key="other"),
            new_job(),
        )
        assert [(await fetch(store, job.id)).state for job in (k2, k3)] == ["blocked"] * 2

        first = await claim(store)
        assert ids(first) == {k1.id, o1.id, u1.id}
        assert await claim(store) == []

        # The head fails and waits for its retry: only key "k" waits with it.
        head = only(first, k1.id)
        assert await retry(store, head, "L1", attempt_of(head, status=503), NOW + 1)  # NOW + 61
        o2, u2 = await enqueue(store, new_job(ordering_key="other"), new_job(), now=NOW + 2)
        assert (await fetch(store, o2.id)).state == "blocked"  # o1 is still in flight
        await complete_all(store, [only(first, o1.id), only(first, u1.id)], "L1", NOW + 3)
        flowing = await claim(store, now=NOW + 3, lease="L2")
        assert ids(flowing) == {o2.id, u2.id}
        assert (await fetch(store, k2.id)).state == "blocked"
        await complete_all(store, flowing, "L2", NOW + 4)
        assert await claim(store, now=NOW + 30) == []

        (head,) = await claim(store, now=NOW + 61, lease="L3")
        assert (head.id, head.attempts) == (k1.id, 2)
        assert await claim(store, now=NOW + 61) == []

        end = NOW + 100
        if head_ends == "complete":
            assert await complete(store, head, "L3", attempt_of(head), end)
        elif head_ends == "kill":
            assert await kill(store, head, "L3", attempt_of(head, status=400), end)
        else:  # the lease runs out on the last attempt: dead by the rescuer
            (rescued,) = await rescue_expired(store, now=end, limit=10)
            assert (rescued.id, rescued.state) == (k1.id, "dead")

        (second,) = await claim(store, now=end, lease="L4")
        assert second.id == k2.id
        assert (await fetch(store, k3.id)).state == "blocked"
        assert await complete(store, second, "L4", attempt_of(second), end + 1)
        assert ids(await claim(store, now=end + 1, lease="L5")) == {k3.id}

    with_store(scenario)


@pytest.mark.parametrize("head_is", ["pending", "active", "scheduled"])
def test_cancelling_the_head_of_a_key_unblocks_the_next(
    with_store: WithStore, head_is: str
) -> None:
    async def scenario(store: Store) -> None:
        run_at = NOW + 60 if head_is == "scheduled" else NOW
        k1, k2, k3 = await enqueue(
            store,
            new_job(ordering_key="k", run_at=run_at),
            new_job(ordering_key="k"),
            new_job(ordering_key="k"),
        )
        if head_is == "active":
            assert ids(await claim(store)) == {k1.id}
        elif head_is == "scheduled":
            assert await claim(store) == []
        assert (await fetch(store, k1.id)).state == head_is

        await store.cancel(job_id=k1.id, now=NOW + 1)

        assert ids(await claim(store, now=NOW + 1, lease="L2")) == {k2.id}
        assert (await fetch(store, k3.id)).state == "blocked"

    with_store(scenario)


def test_cancelling_a_blocked_job_keeps_the_order_of_the_rest(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        k1, k2, k3 = await enqueue(store, *(new_job(ordering_key="k") for _ in range(3)))

        assert (await store.cancel(job_id=k2.id, now=NOW)).state == "cancelled"
        (head,) = await claim(store)
        assert head.id == k1.id
        assert (await fetch(store, k3.id)).state == "blocked"

        assert await complete(store, head, "L1", attempt_of(head), NOW + 1)
        assert ids(await claim(store, now=NOW + 1, lease="L2")) == {k3.id}

    with_store(scenario)


def test_a_delayed_head_holds_its_key_until_it_runs(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        k1, k2 = await enqueue(
            store, new_job(ordering_key="k", run_at=NOW + 60), new_job(ordering_key="k")
        )
        assert (k1.state, (await fetch(store, k2.id)).state) == ("scheduled", "blocked")

        waiting = await claim_round(store)
        assert (waiting.jobs, waiting.wake_at) == ([], NOW + 60)

        (head,) = await claim(store, now=NOW + 60)
        assert head.id == k1.id
        assert await complete(store, head, "L1", attempt_of(head), NOW + 61)
        assert ids(await claim(store, now=NOW + 61, lease="L2")) == {k2.id}

    with_store(scenario)


def test_ordering_keys_belong_to_their_queue(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        a, b = await enqueue(
            store, new_job(queue="a", ordering_key="k"), new_job(queue="b", ordering_key="k")
        )

        assert ids(await claim(store)) == {a.id, b.id}

    with_store(scenario)


def test_blocked_jobs_read_as_pending_or_scheduled(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        head, due, delayed = await enqueue(
            store,
            new_job(ordering_key="k"),
            new_job(ordering_key="k"),
            new_job(ordering_key="k", run_at=NOW + 60),
        )
        assert {(await fetch(store, job.id)).state for job in (due, delayed)} == {"blocked"}
        await claim(store)

        assert await store.count_by_state(now=NOW) == {
            ("default", "active"): 1,
            ("default", "pending"): 1,
            ("default", "scheduled"): 1,
        }

        async def listed(state: str) -> set[str]:
            page = await store.list_jobs(queue=None, state=state, limit=10, cursor=None, now=NOW)
            return ids(page.jobs)

        assert await listed("pending") == {due.id}
        assert await listed("scheduled") == {delayed.id}
        assert await listed("active") == {head.id}

    with_store(scenario)


def test_redriving_a_dead_job_behind_a_holder_of_its_key_blocks_it(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(ordering_key="k"), failed_at=[NOW + 1])
        (holder,) = await enqueue(store, new_job(ordering_key="k"), now=NOW + 2)
        assert holder.state == "pending"  # a dead job holds no key

        redriven = await store.redrive(job_id=dead.id, now=NOW + 3)
        assert redriven.state == "blocked"
        (active,) = await claim(store, now=NOW + 3, lease="L2")
        assert active.id == holder.id

        assert await complete(store, active, "L2", attempt_of(active), NOW + 4)
        (again,) = await claim(store, now=NOW + 4, lease="L3")
        assert (again.id, again.attempts) == (dead.id, 1)

    with_store(scenario)


def test_redrive_many_of_jobs_sharing_a_key_delivers_them_one_at_a_time(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        (older,) = await make_dead(store, new_job(ordering_key="k"), failed_at=[NOW + 1])
        (newer,) = await make_dead(store, new_job(ordering_key="k"), failed_at=[NOW + 2])

        assert await store.redrive_many(queue=None, now=NOW + 3) == 2
        (first,) = await claim(store, now=NOW + 3, lease="L2")
        assert first.id == older.id
        assert await claim(store, now=NOW + 3) == []

        assert await complete(store, first, "L2", attempt_of(first), NOW + 4)
        assert ids(await claim(store, now=NOW + 4, lease="L3")) == {newer.id}

    with_store(scenario)


# -- delays ---------------------------------------------------------------------


def test_scheduled_jobs_wait_for_their_run_at_and_wake_at_names_the_next(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        idle = await claim_round(store)
        assert (idle.jobs, idle.wake_at) == ([], None)
        later, sooner = await enqueue(
            store, new_job(run_at=NOW + 30), new_job(queue="other", run_at=NOW + 20)
        )
        assert (later.state, sooner.state) == ("scheduled", "scheduled")

        for now in (NOW, NOW + 19.5):
            waiting = await claim_round(store, now=now)
            assert (waiting.jobs, waiting.wake_at) == ([], NOW + 20)

        first = await claim_round(store, now=NOW + 20)
        assert (ids(first.jobs), first.wake_at) == ({sooner.id}, NOW + 30)
        second = await claim_round(store, now=NOW + 31, lease="L2")
        assert (ids(second.jobs), second.wake_at) == ({later.id}, None)

        # A retry waits the same way.
        (job,) = second.jobs
        assert await retry(store, job, "L2", attempt_of(job, status=503), NOW + 31)
        waiting = await claim_round(store, now=NOW + 32)
        assert (waiting.jobs, waiting.wake_at) == ([], NOW + 91)

    with_store(scenario)


def test_a_due_job_of_a_paused_queue_becomes_pending_but_stays_put(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "p", paused=True)
        (job,) = await enqueue(store, new_job(queue="p", run_at=NOW + 10))

        assert (await claim_round(store, now=NOW + 10)).jobs == []
        assert (await fetch(store, job.id)).state == "pending"
        await put_queue(store, "p", now=NOW + 11, paused=False)
        assert ids(await claim(store, now=NOW + 11)) == {job.id}

    with_store(scenario)


# -- the unfinished counter ---------------------------------------------------------


def test_unfinished_counters_stay_exact_through_every_transition(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        check = assert_unfinished_exact
        await put_queue(store, "b", max_size=6)
        jobs = await enqueue(
            store,
            new_job(queue="a"),
            new_job(queue="a", max_attempts=2, timeout=10.0),
            new_job(queue="a", max_attempts=1, timeout=10.0),
            new_job(queue="a", run_at=NOW + 500),
            new_job(queue="a", ordering_key="k"),
            new_job(queue="a", ordering_key="k"),
            new_job(queue="a", ordering_key="k"),
            new_job(queue="b", unique_key="u"),
            new_job(queue="b"),
            new_job(queue="b"),
        )
        plain, flaky, fragile, delayed, k1, k2, k3, unique, b1, b2 = jobs
        await check(store, NOW)
        (dedup,) = await try_enqueue(store, new_job(queue="b", unique_key="u"))
        assert dedup.id == unique.id
        await check(store, NOW)

        active = {job.id: job for job in await claim(store)}
        assert set(active) == ids(jobs) - {delayed.id, k2.id, k3.id}
        await check(store, NOW)

        t = NOW + 1
        assert await complete(store, active[plain.id], "L1", attempt_of(active[plain.id]), t)
        assert await retry(store, active[flaky.id], "L1", attempt_of(active[flaky.id]), t)
        assert await kill(store, active[b1.id], "L1", attempt_of(active[b1.id]), t)
        assert await complete(store, active[k1.id], "L1", attempt_of(active[k1.id]), t)
        await check(store, t)

        await store.cancel(job_id=delayed.id, now=t)  # scheduled
        await store.cancel(job_id=k3.id, now=t)  # blocked
        await store.cancel(job_id=b2.id, now=t)  # active
        await check(store, t)

        # flaky's retry is due; k2 went on when k1 finished.
        t = NOW + 61
        again = {job.id: job for job in await claim(store, now=t, lease="L2")}
        assert set(again) == {flaky.id, k2.id}
        await check(store, t)
        # Leases run out: fragile and flaky on their last attempt, unique with attempts left.
        rescued = await rescue_expired(store, now=NOW + 91, limit=10)
        assert {(job.id, job.state) for job in rescued} == {
            (fragile.id, "dead"),
            (flaky.id, "dead"),
            (unique.id, "retrying"),
        }
        await check(store, NOW + 91)

        t = NOW + 100
        assert await store.delete_dead(job_id=b1.id)
        await check(store, t)
        assert (await store.redrive(job_id=fragile.id, now=t)).state == "pending"
        await check(store, t)
        assert await store.redrive_many(queue=None, now=t) == 1  # flaky
        await check(store, t)

        with pytest.raises(RateLimited):  # b holds unique: 6 more is one too many
            await try_enqueue(store, *(new_job(queue="b") for _ in range(6)), now=t)
        await check(store, t)

        schedule = await store.put_schedule(
            name="s", cron="* * * * *", timezone="UTC", job={}, next_run_at=t, now=t
        )
        fired = await store.fire_schedule(
            schedule=schedule,
            next_run_at=t + 60,
            job=new_job(queue="cron"),
            now=t,
            idempotency_ttl=TTL,
            defaults=DEFAULTS,
        )
        assert fired is not None
        await check(store, t)

        last = await claim(store, now=t + 1, lease="L3")
        assert ids(last) == {flaky.id, fragile.id, unique.id, fired.job.id}
        for job in last:
            assert await complete(store, job, "L3", attempt_of(job), t + 2)
            await check(store, t + 2)
        assert await complete(store, again[k2.id], "L2", attempt_of(again[k2.id]), t + 2)
        await check(store, t + 2)
        counters = {queue.name: queue.unfinished for queue in await store.list_queues()}
        assert counters == {"a": 0, "b": 0, "cron": 0}

    with_store(scenario)


# -- schedules ------------------------------------------------------------------


def test_schedules_put_get_list_delete(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get_schedule(name="nightly") is None
        assert await store.list_schedules() == []
        assert await store.next_schedule_at() is None

        template = {"url": "https://worker.example/nightly", "body": {"report": True}}
        nightly = await store.put_schedule(
            name="nightly",
            cron="0 3 * * *",
            timezone="Europe/Paris",
            job=template,
            next_run_at=NOW + 100,
            now=NOW,
        )
        assert nightly == ScheduleRecord(
            "nightly", "0 3 * * *", "Europe/Paris", template, NOW + 100, None
        )
        assert await store.get_schedule(name="nightly") == nightly
        await store.put_schedule(
            name="hourly", cron="0 * * * *", timezone="UTC", job={}, next_run_at=NOW + 50, now=NOW
        )
        assert [s.name for s in await store.list_schedules()] == ["hourly", "nightly"]
        assert await store.next_schedule_at() == NOW + 50

        changed = await store.put_schedule(
            name="nightly",
            cron="30 4 * * *",
            timezone="UTC",
            job={"url": "https://worker.example/v2"},
            next_run_at=NOW + 200,
            now=NOW + 1,
        )
        assert (changed.cron, changed.timezone, changed.next_run_at) == (
            "30 4 * * *",
            "UTC",
            NOW + 200,
        )
        assert changed.job == {"url": "https://worker.example/v2"}
        assert await store.get_schedule(name="nightly") == changed

        assert await store.delete_schedule(name="hourly")
        assert not await store.delete_schedule(name="hourly")
        assert await store.get_schedule(name="hourly") is None
        assert await store.list_schedules() == [changed]
        assert await store.next_schedule_at() == NOW + 200

    with_store(scenario)


def test_due_schedules(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        for name, at in (("a", NOW + 10), ("b", NOW + 20)):
            await store.put_schedule(
                name=name, cron="* * * * *", timezone="UTC", job={}, next_run_at=at, now=NOW
            )

        async def due(now: float) -> list[str]:
            return sorted(schedule.name for schedule in await store.due_schedules(now=now))

        assert await due(NOW + 9) == []
        assert await due(NOW + 10) == ["a"]
        assert await due(NOW + 25) == ["a", "b"]

    with_store(scenario)


def test_fire_schedule_enqueues_exactly_one_job_per_firing(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.put_schedule(
            name="nightly", cron="* * * * *", timezone="UTC", job={}, next_run_at=NOW, now=NOW
        )

        async def fire(schedule: ScheduleRecord, now: float) -> Any:
            job = new_job(queue="cron", idempotency_key=f"schedule:nightly:{schedule.next_run_at}")
            return await store.fire_schedule(
                schedule=schedule,
                next_run_at=schedule.next_run_at + 60,
                job=job,
                now=now,
                idempotency_ttl=TTL,
                defaults=DEFAULTS,
            )

        (due,) = await store.due_schedules(now=NOW + 1)
        fired = await fire(due, NOW + 1)
        assert fired is not None and fired.created
        assert (fired.job.queue, fired.job.state) == ("cron", "pending")
        assert await fire(due, NOW + 2) is None  # the same firing again: a no-op
        assert len(await stored(store, "cron")) == 1

        moved = await store.get_schedule(name="nightly")
        assert moved is not None
        assert (moved.next_run_at, moved.last_run_at) == (NOW + 60, NOW)
        assert await store.due_schedules(now=NOW + 59) == []

        # Two schedulers racing on the next firing: one job.
        (due,) = await store.due_schedules(now=NOW + 60)
        outcomes = await asyncio.gather(fire(due, NOW + 60), fire(due, NOW + 60))
        assert sum(outcome is not None for outcome in outcomes) == 1
        assert len(await stored(store, "cron")) == 2
        after = await store.get_schedule(name="nightly")
        assert after is not None
        assert (after.next_run_at, after.last_run_at) == (NOW + 120, NOW + 60)

    with_store(scenario)


def test_a_callback_is_never_refused_by_backpressure(with_store: WithStore) -> None:
    """A callback reports an outcome already decided: a full callback queue must not
    make the settle fail (which would leave the job active and deliver it again)."""

    async def scenario(store: Store) -> None:
        await put_queue(store, "pushq.callbacks", max_size=1, paused=True)
        await enqueue(store, new_job(queue="pushq.callbacks"))  # now full
        (job,) = await enqueue(store, new_job(queue="work"))
        (active,) = await claim(store, limit=1)
        callback = new_job(queue="pushq.callbacks", idempotency_key="callback:1")

        assert await store.complete(
            job_id=active.id,
            lease="L1",
            attempt=attempt_of(active),
            result={},
            now=NOW + 1,
            callback=callback,
            defaults=DEFAULTS,
        )
        assert (await fetch(store, job.id)).state == "succeeded"
        assert len(await stored(store, "pushq.callbacks")) == 2
        # an ordinary enqueue into that queue is still refused
        with pytest.raises(RateLimited):
            await try_enqueue(store, new_job(queue="pushq.callbacks"), now=NOW + 2)

    with_store(scenario)
