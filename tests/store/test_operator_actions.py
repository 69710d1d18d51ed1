"""Store conformance for the operators' verbs (issue 14): run now, delete, cancel by
filter, queue removal, filtered redrive with spreading, search filters, schedule pause."""

from __future__ import annotations

import time

import pytest

from pushq.errors import Conflict, NotFound
from pushq.server import models
from pushq.server.models import DeadFilter, JobFilter
from pushq.server.store.base import Store

from .conftest import WithStore
from .test_conformance import (
    NOW,
    attempt_of,
    claim,
    complete,
    enqueue,
    fetch,
    make_dead,
    new_job,
    retry,
)


async def ids(store: Store, now: float = NOW, limit: int = 50, **match: object) -> list[str]:
    page = await store.find_jobs(match=JobFilter(**match), limit=limit, cursor=None, now=now)  # type: ignore[arg-type]
    return [job.id for job in page.jobs]


# -- run now ---------------------------------------------------------------------


def test_run_now_makes_waiting_jobs_due_without_an_attempt(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        later, retrying = await enqueue(store, new_job(run_at=NOW + 3600), new_job())
        [active] = await claim(store)
        assert await retry(store, active, "L1", attempt_of(active, status=500), NOW)

        for job in (later, retrying):
            ran = await store.run_now(job_id=job.id, now=NOW + 1)
            assert ran.state == "pending" and ran.run_at == NOW + 1
        claimed = await claim(store, now=NOW + 1)
        assert {job.id for job in claimed} == {later.id, retrying.id}
        assert {job.id: job.attempts for job in claimed} == {later.id: 1, retrying.id: 2}

    with_store(scenario)


def test_run_now_redrives_a_dead_job_and_refuses_the_rest(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(), failed_at=[NOW + 1])
        redriven = await store.run_now(job_id=dead.id, now=NOW + 2)
        assert redriven.state == "pending" and redriven.attempts == 0 and redriven.redrives == 1

        [active] = await claim(store, now=NOW + 2)
        with pytest.raises(Conflict, match="being delivered"):
            await store.run_now(job_id=active.id, now=NOW + 3)
        assert await complete(store, active, "L1", attempt_of(active), NOW + 3)
        with pytest.raises(Conflict, match="succeeded"):
            await store.run_now(job_id=active.id, now=NOW + 4)
        (waiting,) = await enqueue(store, new_job(run_at=NOW + 60))
        await store.cancel(job_id=waiting.id, now=NOW + 5)
        with pytest.raises(Conflict, match="cancelled"):
            await store.run_now(job_id=waiting.id, now=NOW + 6)
        with pytest.raises(NotFound):
            await store.run_now(job_id="NOSUCHJOB", now=NOW)

    with_store(scenario)


def test_attempts_after_a_redrive_name_the_redrive_and_success_clears_last_error(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(), failed_at=[NOW + 1])
        assert dead.last_error is not None
        await store.redrive(job_id=dead.id, now=NOW + 2)
        [again] = await claim(store, now=NOW + 2, lease="L2")
        assert again.attempts == 1  # numbers restart after a redrive
        assert await complete(store, again, "L2", attempt_of(again), NOW + 3)

        attempts = await store.list_attempts(job_id=dead.id)
        assert [(a.number, a.redrive) for a in attempts] == [(1, 0), (1, 1)]
        done = await fetch(store, dead.id)
        assert done.state == "succeeded" and done.last_error is None and done.redrives == 1

    with_store(scenario)


# -- delete, cancel by filter, queues ----------------------------------------------


def test_delete_job_removes_only_finished_jobs(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(tags=["x"]), failed_at=[NOW + 1])
        (waiting,) = await enqueue(store, new_job(run_at=NOW + 60))

        with pytest.raises(Conflict, match="not finished"):
            await store.delete_job(job_id=waiting.id)
        await store.delete_job(job_id=dead.id)
        assert await store.get(job_id=dead.id) is None
        assert await store.list_attempts(job_id=dead.id) == []
        assert await ids(store, tag="x") == []  # its tags go with it
        with pytest.raises(NotFound):
            await store.delete_job(job_id=dead.id)

    with_store(scenario)


def test_cancel_matching_cancels_unfinished_jobs_by_filter(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(queue="a"), failed_at=[NOW + 1])
        a1, a2, b1, later = await enqueue(
            store,
            new_job(queue="a", url="https://acme.example/1", tags=["acme"]),
            new_job(queue="a", url="https://other.example/1", flow_key="k1"),
            new_job(queue="b", url="https://acme.example/2"),
            new_job(queue="b", url="https://acme.example/3", run_at=NOW + 60),
        )

        match = JobFilter(url_prefix="https://acme.example/", states=("scheduled",))
        assert await store.cancel_matching(match=match, now=NOW + 2) == 1
        assert (await fetch(store, later.id)).state == "cancelled"
        assert await store.cancel_matching(match=JobFilter(tag="acme"), now=NOW + 2) == 1
        assert await store.cancel_matching(match=JobFilter(flow_key="k1"), now=NOW + 2) == 1
        assert await store.cancel_matching(match=JobFilter(queue="a"), now=NOW + 2) == 0
        assert (await fetch(store, dead.id)).state == "dead"  # finished jobs are left alone
        assert (await fetch(store, b1.id)).state == "pending"
        counters = {q.name: q.unfinished for q in await store.list_queues()}
        assert counters == {"a": 0, "b": 1}
        assert {(await fetch(store, j.id)).state for j in (a1, a2)} == {"cancelled"}

    with_store(scenario)


def test_cancelling_the_head_of_an_ordering_key_lets_the_next_go(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        first, second = await enqueue(
            store, new_job(ordering_key="k", tags=["t1"]), new_job(ordering_key="k")
        )
        assert await store.cancel_matching(match=JobFilter(tag="t1"), now=NOW + 1) == 1
        assert [job.id for job in await claim(store, now=NOW + 1)] == [second.id]

    with_store(scenario)


def test_delete_queue_refuses_while_jobs_wait_unless_forced(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(queue="q"), failed_at=[NOW + 1])
        (waiting,) = await enqueue(store, new_job(queue="q"))

        with pytest.raises(Conflict, match="1 unfinished"):
            await store.delete_queue(name="q", force=False, now=NOW + 2)
        assert await store.delete_queue(name="q", force=True, now=NOW + 2) == 1
        assert await store.get_queue(name="q") is None
        assert (await fetch(store, waiting.id)).state == "cancelled"
        with pytest.raises(NotFound):
            await store.delete_queue(name="q", force=True, now=NOW + 3)
        # a dead job of a removed queue can still be redriven and delivered
        await store.redrive(job_id=dead.id, now=NOW + 4)
        assert [job.id for job in await claim(store, now=NOW + 4)] == [dead.id]

    with_store(scenario)


# -- the DLQ: filtered, spread redrive ------------------------------------------------


def test_count_and_redrive_dead_jobs_by_filter_spread_over_time(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        jobs = [
            new_job(queue="a", url="https://acme.example/x"),
            new_job(queue="a", url="https://acme.example/y"),
            new_job(queue="a", url="https://other.example/z"),
            new_job(queue="b", url="https://acme.example/w"),
        ]
        dead = await make_dead(store, *jobs, failed_at=[NOW + 1, NOW + 2, NOW + 3, NOW + 4])

        acme = DeadFilter(url_prefix="https://acme.example/")
        assert await store.count_dead(match=acme) == 3
        assert await store.count_dead(match=DeadFilter(status=400, queue="a")) == 3
        assert await store.count_dead(match=DeadFilter(status=500)) == 0
        assert await store.count_dead(match=DeadFilter(error_contains="http 4")) == 4
        assert await store.count_dead(match=DeadFilter(since=NOW + 2, until=NOW + 4)) == 2
        assert await store.count_dead(match=acme) == 3  # counting changes nothing

        assert await store.redrive_matching(match=acme, now=NOW + 10, interval=0.5) == 3
        redriven = [await fetch(store, job.id) for job in (dead[0], dead[1], dead[3])]
        assert [job.run_at for job in redriven] == [NOW + 10, NOW + 10.5, NOW + 11]
        assert [job.state for job in redriven] == ["pending", "scheduled", "scheduled"]
        assert (await fetch(store, dead[2].id)).state == "dead"
        assert await store.count_dead(match=acme) == 0

    with_store(scenario)


def test_list_and_delete_dead_jobs_by_filter(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        jobs = [
            new_job(queue="a", url="https://acme.example/x", tags=["cust-acme", "vip"]),
            new_job(queue="a", url="https://other.example/y", tags=["cust-other"]),
            new_job(queue="b", url="https://acme.example/z", tags=["cust-acme"]),
        ]
        dead = await make_dead(store, *jobs, failed_at=[NOW + 1, NOW + 2, NOW + 3])
        (pending,) = await enqueue(store, new_job(queue="a", url="https://acme.example/p"))
        acme = DeadFilter(url_prefix="https://acme.example/")

        async def listed(queue: str | None = None, **match: object) -> list[str]:
            page = await store.list_dead(
                queue=queue,
                limit=10,
                cursor=None,
                match=DeadFilter(**match),  # type: ignore[arg-type]
            )
            return [job.id for job in page.jobs]

        assert await listed(url_prefix="https://acme.example/") == [dead[2].id, dead[0].id]
        assert await listed("a", url_prefix="https://acme.example/") == [dead[0].id]
        assert await listed(since=NOW + 2) == [dead[2].id, dead[1].id]
        assert await listed(tag="cust-acme") == [dead[2].id, dead[0].id]
        assert await listed(tag="vip", queue="a") == [dead[0].id]
        assert await store.count_dead(match=DeadFilter(tag="cust-other")) == 1
        assert await store.count_dead(match=DeadFilter(tag="nobody")) == 0
        first = await store.list_dead(queue=None, limit=1, cursor=None, match=acme)
        assert [job.id for job in first.jobs] == [dead[2].id]
        rest = await store.list_dead(queue=None, limit=1, cursor=first.next_cursor, match=acme)
        assert [job.id for job in rest.jobs] == [dead[0].id] and rest.next_cursor is None

        assert await store.delete_dead_matching(match=acme) == 2
        for gone in (dead[0], dead[2]):
            assert await store.get(job_id=gone.id) is None
            assert await store.list_attempts(job_id=gone.id) == []
        assert (await fetch(store, dead[1].id)).state == "dead"
        assert await store.list_attempts(job_id=dead[1].id) != []
        assert (await fetch(store, pending.id)).state == "pending"  # only dead jobs go
        assert await store.delete_dead_matching(match=acme) == 0
        assert await listed() == [dead[1].id]

    with_store(scenario)


# -- search ------------------------------------------------------------------------


def test_find_jobs_by_every_filter(with_store: WithStore) -> None:
    # ids follow creation time once past every id this process has made (ids stay
    # monotonic, and other tests' clocks may have run far ahead)
    start = max(time.time(), (models._last_id_value >> 80) / 1000) + 10_000

    async def scenario(store: Store) -> None:
        early = await enqueue(
            store,
            new_job(url="https://acme.example/a", tags=["acme", "vip"], flow_key="acme"),
            new_job(url="https://acme.example/b", tags=["acme"], schedule="nightly"),
            now=start,
        )
        late = await enqueue(
            store,
            new_job(url="https://acmex.example/c", topic="orders"),
            new_job(url="https://other.example/d", tags=["vip"], replay_of=early[0].id),
            now=start + 100,
        )
        a, b, c, d = (job.id for job in early + late)

        assert await ids(store, tag="acme") == [b, a]
        assert await ids(store, tag="vip") == [d, a]
        assert await ids(store, tag="vip", url_prefix="https://acme.") == [a]
        assert await ids(store, url_prefix="https://acme.example/") == [b, a]
        assert await ids(store, url_prefix="https://acme") == [c, b, a]
        assert await ids(store, flow_key="acme") == [a]
        assert await ids(store, schedule="nightly") == [b]
        assert await ids(store, topic="orders") == [c]
        assert await ids(store, since=start + 50) == [d, c]
        assert await ids(store, until=start + 50) == [b, a]
        assert await ids(store, since=start, until=start + 100) == [b, a]
        assert await ids(store, tag="acme", since=start + 50) == []
        assert await ids(store, states=("pending",), tag="vip") == [d, a]
        stored = await fetch(store, d)
        assert stored.tags == ["vip"] and stored.replay_of == a

    with_store(scenario)


def test_find_jobs_pages_a_tag_newest_first(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        jobs = await enqueue(store, *(new_job(tags=["t"] if i % 2 else []) for i in range(9)))
        tagged = [job.id for job in reversed(jobs) if job.tags]
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.find_jobs(match=JobFilter(tag="t"), limit=2, cursor=cursor, now=NOW)
            seen += [job.id for job in page.jobs]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == tagged

    with_store(scenario)


# -- schedules ---------------------------------------------------------------------


def test_a_paused_schedule_is_not_due(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        job = {"url": "https://worker.example/nightly"}
        await store.put_schedule(
            name="s", cron="@daily", timezone="UTC", job=job, next_run_at=NOW + 1, now=NOW
        )
        paused = await store.set_schedule_paused(name="s", paused=True, next_run_at=None, now=NOW)
        assert paused.paused and paused.next_run_at == NOW + 1
        assert await store.due_schedules(now=NOW + 10) == []
        assert await store.next_schedule_at() is None

        resumed = await store.set_schedule_paused(
            name="s", paused=False, next_run_at=NOW + 500, now=NOW + 10
        )
        assert not resumed.paused and resumed.next_run_at == NOW + 500
        assert await store.next_schedule_at() == NOW + 500
        with pytest.raises(NotFound):
            await store.set_schedule_paused(name="nope", paused=True, next_run_at=None, now=NOW)

    with_store(scenario)
