"""Regression tests for bugs found in review: each names what a user would hit."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pushq.server.store.base import Store
from pushq.server.store.group_commit import GroupCommitWriter

from ..harness import PushqProcess, Reply, Worker, wait_until
from ..store.test_conformance import NOW, claim, enqueue, new_job
from ..stores import WithStore

ASYNC = Reply(202, b"accepted", headers={"pushq-async": "true"})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def assert_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "error" in response.json()


# -- bad input must be a 4xx, never a 5xx ------------------------------------------------


def test_deeply_nested_body_is_a_4xx(pushq: PushqProcess) -> None:
    # orjson.loads accepts 1024 levels, orjson.dumps only 254: to_new_job re-encodes the
    # body and its TypeError ("Recursion limit reached") escapes as a 500.
    raw = b'{"url": "http://127.0.0.1:9/", "body": ' + b"[" * 300 + b"]" * 300 + b"}"
    response = pushq.client.post(
        "/v1/jobs", content=raw, headers={"content-type": "application/json"}
    )
    assert_4xx(response)


def test_run_at_past_year_9999_is_a_4xx_and_does_not_break_listings(pushq: PushqProcess) -> None:
    # A zone offset moves 9999-12-31T23:59:59 into year 10000 UTC: the job is stored, then
    # every rendering of it (this response, GET /v1/jobs for everyone) fails with a 500.
    queue = unique("far")
    response = pushq.client.post(
        "/v1/jobs",
        json={"url": "http://127.0.0.1:9/", "queue": queue, "run_at": "9999-12-31T23:59:59-14:00"},
    )
    listing = pushq.client.get("/v1/jobs", params={"queue": queue})
    assert_4xx(response)
    assert listing.status_code == 200, listing.text


@pytest.mark.parametrize(
    "raw",
    [b'[null, "x"]', b'[[], "x"]', b'[{"a": 1}, "x"]', b"[1" + b"0" * 400 + b', "x"]'],
    ids=["null", "list", "object", "huge-int"],
)
def test_dlq_cursor_with_a_non_numeric_time_is_a_4xx(pushq: PushqProcess, raw: bytes) -> None:
    # list_dead does float(parts[0]) and catches only ValueError: TypeError / OverflowError
    # become 500s.
    assert_4xx(pushq.client.get("/v1/dlq", params={"cursor": cursor(raw)}))


def test_schedule_whose_cron_never_fires_is_a_4xx(pushq: PushqProcess) -> None:
    # croniter.is_valid accepts Feb 30, next_fire then raises CroniterBadDateError: 500.
    response = pushq.client.put(
        f"/v1/schedules/{unique('never')}",
        json={"cron": "0 0 30 2 *", "job": {"url": "http://127.0.0.1:9/"}},
    )
    assert_4xx(response)


# -- callbacks ---------------------------------------------------------------------------


def test_success_callback_after_a_redrive_is_delivered(pushq: PushqProcess, worker: Worker) -> None:
    # Callback idempotency keys are callback:{id}:{attempts}; a redrive resets attempts, so
    # the success callback of attempt 1 after a redrive collides with the failure callback
    # of attempt 1 before it and is silently deduplicated away.
    target, ok_cb, fail_cb = unique("cbsrc"), unique("okcb"), unique("failcb")
    worker.script(target, 400, 200)
    job = pushq.enqueue(
        url=worker.url(target),
        max_attempts=1,
        callback_url=worker.url(ok_cb),
        failure_callback_url=worker.url(fail_cb),
    )
    pushq.wait_state(job["id"], "dead")
    worker.wait_for(fail_cb, timeout=5)
    redriven = pushq.client.post(f"/v1/dlq/{job['id']}/retry")
    assert redriven.status_code == 200, redriven.text
    pushq.wait_state(job["id"], "succeeded")
    [delivery] = worker.wait_for(ok_cb, timeout=2)
    assert json.loads(delivery.body)["state"] == "succeeded"


# -- claiming ----------------------------------------------------------------------------


def test_jobs_awaiting_async_completion_do_not_starve_their_queue(
    start_pushq: Callable[..., PushqProcess], worker: Worker
) -> None:
    # The "three quarters of the slots" cap counts every active job of the queue, including
    # jobs that answered 202 pushq-async and hold no delivery slot. With 4 slots and a second
    # queue, a queue with no concurrency limit stalls at 3 async jobs while all slots are idle.
    server = start_pushq(PUSHQ_DELIVERY_CONCURRENCY="4")
    assert server.client.put("/v1/queues/other", json={}).status_code == 200
    target = unique("asyncmany")
    worker.script(target, ASYNC)
    for _ in range(4):
        server.enqueue(url=worker.url(target), queue="big", timeout=60)
    worker.wait_for(target, 4, timeout=2)


def test_async_completion_wakes_the_dispatcher_for_a_concurrency_limited_queue(
    start_pushq: Callable[..., PushqProcess], worker: Worker
) -> None:
    # /complete frees the queue's concurrency slot but never notifies the dispatcher: the
    # next job waits for the fallback poll (0.5 to 1.5 x PUSHQ_POLL_INTERVAL).
    server = start_pushq(PUSHQ_POLL_INTERVAL="8")
    queue = unique("conc1")
    assert server.client.put(f"/v1/queues/{queue}", json={"concurrency": 1}).status_code == 200
    first_path, second_path = unique("async1"), unique("next1")
    worker.script(first_path, ASYNC)
    first = server.enqueue(url=worker.url(first_path), queue=queue, timeout=60)
    [delivery] = worker.wait_for(first_path)
    wait_until(lambda: server.job(first["id"])["attempts"] == 1)
    server.enqueue(url=worker.url(second_path), queue=queue)
    time.sleep(0.3)
    assert worker.to(second_path) == []  # held by the concurrency limit
    token = delivery.headers["pushq-job-token"]
    done = httpx.post(
        f"{server.base_url}/v1/jobs/{first['id']}/complete",
        json={"result": 1},
        headers={"authorization": f"Bearer {token}"},
    )
    assert done.status_code == 200, done.text
    worker.wait_for(second_path, timeout=2)


@pytest.mark.xfail(
    strict=True,
    reason="known limitation (docs/queues.md): cancelling an active job frees its ordering "
    "key at once, while its request may still be in flight",
)
def test_cancelling_an_in_flight_head_does_not_overlap_its_ordering_key(
    pushq: PushqProcess, worker: Worker
) -> None:
    # Cancelling the active head of an ordering key unblocks the next job at once, while the
    # head's request is still in flight: the worker gets two jobs of one key concurrently.
    queue, key = unique("ordc"), unique("key")
    slow, fast = unique("slowhead"), unique("next")
    worker.script(slow, Reply(200, sleep=1.5))
    head = pushq.enqueue(url=worker.url(slow), queue=queue, ordering_key=key)
    pushq.enqueue(url=worker.url(fast), queue=queue, ordering_key=key)
    [started] = worker.wait_for(slow)
    assert pushq.client.post(f"/v1/jobs/{head['id']}/cancel").status_code == 200
    [follower] = worker.wait_for(fast, timeout=5)
    assert follower.at >= started.at + 1.4, "the next job of the key overlapped the head"


# -- rate limits (store) -----------------------------------------------------------------


def test_putting_an_unchanged_rate_limit_keeps_the_bucket(with_store: WithStore) -> None:
    # put_queue resets the token bucket whenever "rate_limit" is in the request, even when
    # it is unchanged, so re-applying a queue's settings (config as code) refills it and a
    # window of one period holds more than 2N deliveries.
    async def scenario(store: Store) -> None:
        await store.put_queue(name="r", changes={"rate_limit": "2/m"}, now=NOW)
        await enqueue(store, *(new_job(queue="r") for _ in range(10)))
        claimed = 0
        for i in range(3):
            now = NOW + i
            await store.put_queue(name="r", changes={"rate_limit": "2/m"}, now=now)
            claimed += len(await claim(store, now=now, lease=f"L{i}"))
        assert claimed <= 2 * 2, f"{claimed} deliveries within 3 s under a 2/m limit"

    with_store(scenario)


# -- group commit ------------------------------------------------------------------------


def run_writer(tmp_path: Path, scenario: Callable[[GroupCommitWriter], object]) -> None:
    async def main() -> None:
        writer = GroupCommitWriter(tmp_path / "gc.db", synchronous="FULL", busy_timeout_ms=1000)
        await writer.open()
        try:
            await scenario(writer)  # type: ignore[misc]
        finally:
            await writer.close()

    asyncio.run(main())


def test_group_commit_isolates_a_failing_write_and_fails_all_on_a_failing_commit(
    tmp_path: Path,
) -> None:
    async def scenario(writer: GroupCommitWriter) -> None:
        await writer.call(
            lambda c: c.executescript(
                "PRAGMA foreign_keys = ON;"
                "CREATE TABLE p (id INTEGER PRIMARY KEY);"
                "CREATE TABLE t (v INTEGER UNIQUE,"
                " p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);"
            )
        )

        def insert(v: int, p: int | None = None) -> Callable[[sqlite3.Connection], int]:
            return lambda c: c.execute("INSERT INTO t VALUES (?, ?)", (v, p)).rowcount

        def boom(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO t VALUES (99, NULL)")
            raise RuntimeError("boom")

        # One failing write in a batch rolls back alone.
        results = await asyncio.gather(
            writer.write(insert(1)), writer.write(boom), writer.write(insert(2)),
            return_exceptions=True,
        )  # fmt: skip
        assert results[0] == 1 and results[2] == 1
        assert isinstance(results[1], RuntimeError)
        rows = await writer.call(lambda c: c.execute("SELECT v FROM t ORDER BY v").fetchall())
        assert [r[0] for r in rows] == [1, 2]

        # A COMMIT that fails (deferred foreign key) fails every write of its batch.
        results = await asyncio.gather(
            writer.write(insert(3)), writer.write(insert(4, p=7)), writer.write(insert(5)),
            return_exceptions=True,
        )  # fmt: skip
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        rows = await writer.call(lambda c: c.execute("SELECT v FROM t ORDER BY v").fetchall())
        assert [r[0] for r in rows] == [1, 2]
        # ... and the writer keeps working afterwards.
        assert await writer.write(insert(6)) == 1

    run_writer(tmp_path, scenario)
