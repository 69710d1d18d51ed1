"""PostgreSQL's group commit (pg_batch.py) across nodes: batches of enqueues and of
completes from several stores on one database, racing each other and the rescuer.

Each store batches its own callers; what must hold for the cluster (one job per
idempotency key, one settle per attempt, true counts) is the database's to hold."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pushq.server.models import NewJob
from pushq.server.store.postgres import PostgresStore

from .test_conformance import (
    DEFAULTS,
    NOW,
    TTL,
    attempt_of,
    claim,
    complete,
    enqueue,
    new_job,
    rescue_expired,
)
from .test_counts import check
from .test_postgres import nodes, run


async def call(store: PostgresStore, job: NewJob, now: float = NOW) -> tuple[str, bool]:
    [result] = await store.enqueue(jobs=[job], now=now, idempotency_ttl=TTL, defaults=DEFAULTS)
    return result.job.id, result.created


def test_two_nodes_batching_the_same_idempotency_keys_store_one_job_per_key() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            await a.put_queue(name="default", changes={}, now=NOW)  # a new queue: one by one
            keys = [f"k{i}" for i in range(12)]
            # every key four times, twice on each node, in orders that differ between
            # the nodes (each node's batch claims its keys in key order, not call order)
            calls = [call(a, new_job(idempotency_key=key)) for key in keys * 2]
            calls += [call(b, new_job(idempotency_key=key)) for key in reversed(keys * 2)]
            calls += [call(a, new_job()) for _ in range(5)]  # no key, same batches
            answers = await asyncio.gather(*calls)

            by_key: dict[str, set[str]] = {}
            created: Counter[str] = Counter()
            for (job_id, made), job in zip(answers, [*keys * 2, *reversed(keys * 2)], strict=False):
                by_key.setdefault(job, set()).add(job_id)
                created[job] += made
            assert all(len(ids) == 1 for ids in by_key.values()), by_key
            assert created == Counter({key: 1 for key in keys})
            assert all(made for _, made in answers[-5:])
            queue = await a.get_queue(name="default")
            assert queue is not None and queue.unfinished == len(keys) + 5
            await check(a, NOW, "the same keys batched on two nodes")

    run(scenario)


def test_completes_batched_on_two_nodes_racing_the_rescuer_settle_each_job_once() -> None:
    """Node a claims, node b's rescuer finds the leases expired and rescues them while
    a's completes of the same attempts are in flight: each job ends one way (the
    complete, or the rescue), with one attempt recorded, and the counts stay true."""

    async def scenario() -> None:
        async with nodes(2) as (a, b):
            await enqueue(a, *(new_job(timeout=10.0) for _ in range(60)))
            claimed = await claim(a, limit=100, lease="La")
            assert len(claimed) == 60
            late = NOW + 100  # past every lease
            completes = [complete(a, job, "La", attempt_of(job), late) for job in claimed]
            answers, rescued = await asyncio.gather(
                asyncio.gather(*completes), rescue_expired(b, now=late, limit=100)
            )
            rescued_ids = {job.id for job in rescued}
            for job, settled in zip(claimed, answers, strict=True):
                stored = await a.get(job_id=job.id)
                assert stored is not None
                attempts = await a.list_attempts(job_id=job.id)
                assert [attempt.number for attempt in attempts] == [1], job.id
                if settled:
                    assert stored.state == "succeeded" and job.id not in rescued_ids
                    assert attempts[0].status == 200
                else:
                    assert stored.state == "retrying" and job.id in rescued_ids
                    assert attempts[0].status is None
            assert len(rescued_ids) + answers.count(True) == 60
            # a stale complete after the rescue changes nothing
            for job in claimed:
                if job.id in rescued_ids:
                    assert not await complete(a, job, "La", attempt_of(job), late + 1)
            await check(a, late + 1, "completes racing a rescue")

    run(scenario)


def test_a_batch_the_database_refuses_falls_back_to_one_statement_per_job() -> None:
    """A job whose id is already taken fails its batch's statement: the batch runs
    again one job at a time, so only that job's caller gets the error."""

    async def scenario() -> None:
        async with nodes(1) as (a,):
            [taken] = await enqueue(a, new_job())
            jobs = [new_job(tags=[f"t{i}"]) for i in range(10)]
            jobs[4] = new_job(id=taken.id)
            answers = await asyncio.gather(*(call(a, job) for job in jobs), return_exceptions=True)
            failed = [i for i, answer in enumerate(answers) if isinstance(answer, BaseException)]
            assert failed == [4]
            assert "duplicate key" in str(answers[4])
            stored = [answer for answer in answers if not isinstance(answer, BaseException)]
            assert all(made for _, made in stored)
            for job_id, _ in stored:
                assert await a.get(job_id=job_id) is not None
            queue = await a.get_queue(name="default")
            assert queue is not None and queue.unfinished == 10  # 9 and the first
            await check(a, NOW, "a refused batch, rerun one by one")

    run(scenario)


def test_enqueues_made_together_are_one_statement_and_one_notify() -> None:
    """What the batching buys: many enqueues at once go to the database as fewer
    statements than jobs, and wake the other nodes fewer times than jobs."""

    async def scenario() -> None:
        async with nodes(2) as (a, b):
            await a.put_queue(name="default", changes={}, now=NOW)  # a new queue: one by one
            heard: asyncio.Queue[float | None] = asyncio.Queue()
            b.listen(heard.put_nowait)
            statements = 0
            enqueue_rows = a._enqueue_rows

            async def counted(*args: Any) -> Any:
                nonlocal statements
                statements += 1
                return await enqueue_rows(*args)

            a._enqueue_rows = counted  # type: ignore[method-assign]
            answers = await asyncio.gather(*(call(a, new_job()) for _ in range(40)))
            assert all(made for _, made in answers)
            assert 1 <= statements < 40
            # NOTIFYs arrive in commit order: once the marker is heard, every wake-up
            # of the 40 has been
            await call(a, new_job(run_at=NOW + 77))
            wakeups = []
            while (at := await asyncio.wait_for(heard.get(), 30)) != NOW + 77:
                wakeups.append(at)
            assert 1 <= len(wakeups) <= statements and set(wakeups) == {None}

    run(scenario)
