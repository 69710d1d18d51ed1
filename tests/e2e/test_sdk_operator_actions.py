"""The SDK's operators' actions (issue 14) against a real server, blocking and asyncio."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from pushq import AsyncClient, Client, Conflict, NotFound

from ..harness import TEST_TOKEN, PushqProcess, Reply, Worker


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(pushq: PushqProcess) -> Iterator[Client]:
    with Client(pushq.base_url, token=TEST_TOKEN) as sdk:
        yield sdk


def test_run_now_replay_delete_and_cancel_many(client: Client, worker: Worker) -> None:
    tag, path = name("sdk"), name("sdk-ok")
    later = client.enqueue(worker.url(path), {"n": 1}, delay="1h", tags=[tag], flow_key="acct")
    assert later.tags == (tag,) and later.flow_key == "acct"
    assert client.run_now(later.id).state == "pending"
    done = client.wait(later.id, timeout=10)
    assert done.state == "succeeded" and done.last_error is None
    with pytest.raises(Conflict):
        client.run_now(later.id)
    copy = client.replay(later.id)
    assert copy.replay_of == later.id and copy.body == {"n": 1}
    client.wait(copy.id, timeout=10)
    client.delete(later.id)
    with pytest.raises(NotFound):
        client.get(later.id)

    waiting = [client.enqueue(worker.url(path), delay="1h", tags=[tag]) for _ in range(2)]
    assert [job.id for job in client.list(tag=tag, state="scheduled")] == [
        job.id for job in reversed(waiting)
    ]
    assert [j.id for j in client.list(tag=tag, since=timedelta(hours=1), limit=1)] == [
        waiting[1].id
    ]
    assert [j.id for j in client.list(tag=tag, until=waiting[0].created_at)] == [copy.id]
    assert client.cancel_many(tag=tag) == 2
    with pytest.raises(ValueError, match="at least one filter"):
        client.cancel_many()


def test_dlq_retry_many_queues_purge_and_delete(client: Client, worker: Worker) -> None:
    queue, path = name("sdk-q"), name("sdk-down")
    worker.script(path, Reply(500, b'{"message": "try later"}'))
    ids = [client.enqueue(worker.url(path), queue=queue, max_attempts=1).id for _ in range(2)]
    for job_id in ids:
        dead = client.wait(job_id, timeout=10)
        assert dead.last_error is not None and dead.last_error.response == "try later"
    assert client.dlq.retry_many(queue=queue, error_contains="later", dry_run=True) == 2
    client.queues.pause(queue)
    assert client.dlq.retry_many(queue=queue, status=500, rate_limit="1/s") == 2
    runs = sorted(client.get(job_id).run_at for job_id in ids)  # type: ignore[type-var]
    assert (runs[1] - runs[0]).total_seconds() == pytest.approx(1.0, abs=0.01)
    attempts = client.attempts(ids[0])
    assert [a.redrive for a in attempts] == [0]

    with pytest.raises(Conflict):
        client.queues.delete(queue)
    assert client.queues.purge(queue, states=["scheduled", "pending"]) == 2
    client.queues.delete(queue)
    with pytest.raises(NotFound):
        client.queues.get(queue)
    client.enqueue(worker.url(path), queue=queue, delay="1h")
    client.queues.delete(queue, force=True)


def test_dlq_list_and_delete_by_filter(client: Client, worker: Worker) -> None:
    queue, path, tag = name("sdk-rm"), name("sdk-gone"), name("customer")
    worker.script(path, Reply(500, b'{"message": "try later"}'))
    tagged = [
        client.enqueue(worker.url(path), queue=queue, max_attempts=1, tags=[tag]).id
        for _ in range(2)
    ]
    other = client.enqueue(worker.url(path), queue=queue, max_attempts=1).id
    for job_id in [*tagged, other]:
        client.wait(job_id, timeout=10)
    listed = client.dlq.list(queue=queue, tag=tag, error_contains="LATER", since=timedelta(hours=1))
    assert sorted(job.id for job in listed) == sorted(tagged)
    assert client.dlq.delete_many(tag=tag, dry_run=True) == 2
    assert client.dlq.delete_many(queue=queue, tag=tag) == 2
    assert [job.id for job in client.dlq.list(queue=queue)] == [other]
    assert client.dlq.delete_many(queue=queue) == 1


def test_schedules_pause_resume_trigger(client: Client, worker: Worker) -> None:
    schedule = name("sdk-sched")
    created = client.schedules.set(schedule, "@weekly", {"url": worker.url(name("tick"))})
    assert created.cron == "@weekly" and not created.paused and created.recent_runs == ()
    assert client.schedules.pause(schedule).paused
    job = client.schedules.trigger(schedule)
    assert job.schedule == schedule
    client.wait(job.id, timeout=10)
    shown = client.schedules.get(schedule)
    assert [(run.id, run.state) for run in shown.recent_runs] == [(job.id, "succeeded")]
    assert not client.schedules.resume(schedule).paused
    assert [j.id for j in client.list(schedule=schedule)] == [job.id]
    client.schedules.delete(schedule)


def test_the_async_client_has_the_same_actions(pushq: PushqProcess, worker: Worker) -> None:
    async def main() -> None:
        async with AsyncClient(pushq.base_url, token=TEST_TOKEN) as client:
            tag, queue = name("async"), name("async-q")
            job = await client.enqueue(worker.url("async-ok"), delay="1h", tags=[tag], queue=queue)
            assert [j.id for j in await client.list(tag=tag)] == [job.id]
            await client.run_now(job.id)
            await client.wait(job.id, timeout=10)
            copy = await client.replay(job.id)
            assert copy.replay_of == job.id
            await client.wait(copy.id, timeout=10)
            await client.delete(job.id)
            await client.enqueue(worker.url("async-ok"), delay="1h", tags=[tag], queue=queue)
            assert await client.cancel_many(tag=tag) == 1
            assert await client.dlq.retry_many(queue=queue, dry_run=True) == 0
            assert await client.dlq.delete_many(queue=queue, dry_run=True) == 0
            assert list(await client.dlq.list(queue=queue, tag=tag)) == []
            assert await client.queues.purge(queue) == 0
            await client.queues.delete(queue)
            schedule = name("async-sched")
            await client.schedules.set(schedule, "@daily", {"url": worker.url("async-ok")})
            assert (await client.schedules.pause(schedule)).paused
            assert not (await client.schedules.resume(schedule)).paused
            triggered = await client.schedules.trigger(schedule)
            assert triggered.schedule == schedule
            await client.schedules.delete(schedule)

    asyncio.run(main())
