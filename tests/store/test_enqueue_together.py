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
from .test_conformance import DEFAULTS, NOW, TTL, new_job
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
