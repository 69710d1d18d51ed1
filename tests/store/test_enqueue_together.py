"""Enqueue calls made at the same time answer as if each ran alone.

SQLite folds the enqueues of one group commit into one set of statements
(group_commit.Shared); PostgreSQL runs them as concurrent transactions. Either
way a refused call (its queue full) leaves nothing behind, keys are honoured
across calls, and the counts stay true.
"""

from __future__ import annotations

import asyncio

import pytest

from pushq.errors import RateLimited
from pushq.server.models import EnqueueResult, NewJob
from pushq.server.store.base import Store

from .conftest import WithStore
from .test_conformance import DEFAULTS, NOW, TTL, attempt_of, claim, complete, enqueue, new_job
from .test_counts import check


async def call(store: Store, *jobs: NewJob) -> list[EnqueueResult]:
    return await store.enqueue(jobs=list(jobs), now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS)


def test_concurrent_enqueues_answer_as_if_alone(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.put_queue(name="full", changes={"max_size": 1}, now=NOW)
        [holder] = await call(store, new_job(queue="full"))
        answers = await asyncio.gather(
            call(store, new_job(queue="a", idempotency_key="k")),
            call(store, new_job(queue="full")),
            call(store, new_job(queue="a", idempotency_key="k")),
            call(store, new_job(queue="a", unique_key="u")),
            call(store, new_job(queue="a", unique_key="u")),
            # refused as a whole: its first job (in a queue not seen before) is not kept
            call(store, new_job(queue="fresh"), new_job(queue="full")),
            call(store, new_job(queue="b"), new_job(queue="b", ordering_key="o")),
            return_exceptions=True,
        )
        keyed, full, keyed_again, unique, unique_again, refused, plain = answers
        assert isinstance(full, RateLimited) and full.code == "queue_full"
        assert isinstance(refused, RateLimited) and refused.code == "queue_full"
        for first, second in ((keyed, keyed_again), (unique, unique_again)):
            assert isinstance(first, list) and isinstance(second, list)
            [one], [two] = first, second
            assert one.job.id == two.job.id  # the same job, whichever came first
            assert sorted([one.created, two.created]) == [False, True]
        assert isinstance(plain, list) and all(result.created for result in plain)

        assert await store.get_queue(name="fresh") is None
        full_queue = await store.get_queue(name="full")
        assert full_queue is not None and full_queue.unfinished == 1
        queue_a = await store.get_queue(name="a")
        assert queue_a is not None and queue_a.unfinished == 2
        counts = await store.count_by_state(now=NOW)
        assert counts == {("full", "pending"): 1, ("a", "pending"): 2, ("b", "pending"): 2}
        await check(store, NOW, "concurrent enqueues")
        assert holder.created

    with_store(scenario)


@pytest.mark.parametrize("calls", [2, 50])
def test_many_concurrent_single_enqueues_are_all_stored(with_store: WithStore, calls: int) -> None:
    async def scenario(store: Store) -> None:
        answers = await asyncio.gather(
            *(call(store, new_job(queue=f"q{i % 3}", tags=[f"t{i}"])) for i in range(calls))
        )
        ids = {result.job.id for [result] in answers}
        assert len(ids) == calls
        for job_id in ids:
            assert await store.get(job_id=job_id) is not None
        total = sum((await store.count_by_state(now=NOW)).values())
        assert total == calls
        queues = {q.name: q.unfinished for q in await store.list_queues()}
        assert sum(queues.values()) == calls

    with_store(scenario)


def test_a_bad_job_among_many_concurrent_enqueues_fails_alone(with_store: WithStore) -> None:
    """Many single enqueues at once (one group commit on either backend): the job the
    database refuses fails alone, a key given twice names one job, the rest are
    stored with the defaults resolved as for a job enqueued alone."""

    async def scenario(store: Store) -> None:
        await store.put_queue(name="tuned", changes={"max_attempts": 7, "timeout": 9.0}, now=NOW)
        await store.put_queue(name="default", changes={}, now=NOW)
        jobs = [new_job(queue="tuned" if i % 2 else "default", tags=[f"t{i}"]) for i in range(30)]
        jobs[7] = new_job(url=None)  # violates NOT NULL: the database refuses it
        jobs[11] = new_job(idempotency_key="twice")
        jobs[23] = new_job(idempotency_key="twice", queue="tuned")
        answers = await asyncio.gather(*(call(store, job) for job in jobs), return_exceptions=True)

        bad = answers[7]
        assert isinstance(bad, Exception) and "null" in str(bad).lower()
        good = [answer for i, answer in enumerate(answers) if i != 7]
        assert all(isinstance(answer, list) for answer in good)
        [first], [second] = answers[11], answers[23]  # type: ignore[misc]
        assert first.job.id == second.job.id
        assert sorted([first.created, second.created]) == [False, True]
        created = {r.job.id: r.job for [r] in good if r.created}  # type: ignore[misc]
        assert len(created) == 28
        for job in created.values():  # as returned is as stored
            assert await store.get(job_id=job.id) == job
        tuned = [job for job in created.values() if job.queue == "tuned"]
        assert tuned and all((j.max_attempts, j.timeout) == (7, 9.0) for j in tuned)
        plain = [job for job in created.values() if job.queue == "default"]
        assert plain and all(
            (j.max_attempts, j.timeout) == (DEFAULTS.max_attempts, DEFAULTS.timeout) for j in plain
        )
        queues = {q.name: q.unfinished for q in await store.list_queues()}
        assert queues == {"default": len(plain), "tuned": len(tuned)}
        await check(store, NOW, "a bad job among concurrent enqueues")

    with_store(scenario)


def test_concurrent_completes_settle_each_once_under_its_lease(with_store: WithStore) -> None:
    """Completes at once (one statement on PostgreSQL): each fenced by its own lease
    and attempt; a complete sent twice settles once; a stale one changes nothing."""

    async def scenario(store: Store) -> None:
        await enqueue(store, *(new_job() for _ in range(20)), new_job(ordering_key="o"))
        claimed = await claim(store, limit=50)
        assert len(claimed) == 21
        calls = [complete(store, job, "L1", attempt_of(job), NOW + 1) for job in claimed]
        calls.append(complete(store, claimed[3], "L1", attempt_of(claimed[3]), NOW + 1))
        calls.append(complete(store, claimed[5], "other", attempt_of(claimed[5]), NOW + 1))
        calls.append(complete(store, claimed[6], "L1", attempt_of(claimed[6], number=2), NOW + 1))
        answers = await asyncio.gather(*calls)
        assert all(answers[i] for i in range(21) if i != 3)
        assert {answers[3], answers[21]} == {True, False}  # the same complete twice
        assert answers[22:] == [False, False]
        assert answers.count(True) == 21
        for job in claimed:
            stored = await store.get(job_id=job.id)
            assert stored is not None and stored.state == "succeeded"
            assert stored.finished_at == NOW + 1
            assert [a.number for a in await store.list_attempts(job_id=job.id)] == [1]
        queue = await store.get_queue(name="default")
        assert queue is not None and queue.unfinished == 0
        await check(store, NOW + 1, "concurrent completes")

    with_store(scenario)
