"""The SDK end to end: Client against a real `pushq serve`, delivering to a real
TaskRouter app on uvicorn."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pushq import (
    Async,
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    Job,
    NotFound,
    Result,
    Task,
    Unauthorized,
)
from pushq.signing import secret_key, sign
from pushq.worker import JobContext, Permanent, Retry, TaskRouter

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess

FAST = {"backoff": {"base": 0.05, "max": 0.2, "jitter": False}}


def missing_route(server: PushqProcess, method: str, path: str) -> bool:
    """True when this server build has no such route yet (not: no such job)."""
    response = server.client.request(method, path, json={})
    if response.status_code not in (404, 405):
        return False
    return response.json()["error"]["message"].startswith(("no route", method))


@dataclass
class Tasks:
    router: TaskRouter
    base_url: str
    runs: list[tuple[str, int]]
    add: Task
    flaky: Task
    reject: Task
    boom: Task
    report: Task
    encode: Task


@pytest.fixture(scope="module")
def client(pushq: PushqProcess) -> Iterator[Client]:
    with Client(pushq.base_url, token=TEST_TOKEN) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def tasks(client: Client, serve_asgi: Any) -> Tasks:
    router = TaskRouter(secret=TEST_SECRET, client=client)
    runs: list[tuple[str, int]] = []

    @router.task(queue="sdk-e2e")
    def add(ctx: JobContext, a: int, b: int) -> dict[str, int]:
        runs.append(("add", ctx.attempt))
        return {"sum": a + b}

    @router.task(queue="sdk-e2e", **FAST)
    def flaky(ctx: JobContext, after: float | None) -> str:
        runs.append(("flaky", ctx.attempt))
        if ctx.attempt == 1:
            raise Retry("not yet", after=after)
        return f"done on attempt {ctx.attempt}"

    @router.task(queue="sdk-e2e")
    def reject(customer: str) -> None:
        raise Permanent(f"no such customer {customer}")

    @router.task(queue="sdk-e2e", max_attempts=2, **FAST)
    def boom() -> None:
        raise RuntimeError("database on fire")

    @router.task(queue="sdk-e2e")
    def report(ctx: JobContext, items: int) -> dict[str, str]:
        for done in range(1, items + 1):
            ctx.progress(current=done, total=items, message=f"item {done}")
        return {"url": "/reports/1.pdf"}

    @router.task(queue="sdk-e2e")
    def encode(ctx: JobContext) -> Async:
        def finish_later() -> None:
            time.sleep(0.2)
            ctx.complete({"video": "cat.mp4"})

        threading.Thread(target=finish_later).start()
        return ctx.defer()

    base_url = serve_asgi(Starlette(routes=[Mount("/tasks", app=router)]))
    router.base_url = f"{base_url}/tasks"
    return Tasks(router, base_url, runs, add, flaky, reject, boom, report, encode)


# -- tasks through a real pushq --------------------------------------------------------------


def test_task_enqueue_runs_the_task_and_keeps_its_result(client: Client, tasks: Tasks) -> None:
    job = tasks.add.enqueue(2, b=40)
    assert job.url == f"{tasks.base_url}/tasks/add" and job.queue == "sdk-e2e"
    done = client.wait(job.id, timeout=10)
    assert done.state == "succeeded" and done.attempts == 1
    assert done.result == Result(200, {"sum": 42})
    assert done.finished_at is not None and done.finished_at <= datetime.now(UTC)


def test_retry_is_retried_then_succeeds(client: Client, tasks: Tasks) -> None:
    job = tasks.flaky.enqueue(None)
    done = client.wait(job.id, timeout=10)
    assert done.state == "succeeded" and done.attempts == 2
    assert done.result is not None and done.result.body == "done on attempt 2"
    first, second = client.attempts(job.id)
    assert (first.status, second.status) == (503, 200)


def test_retry_after_holds_the_next_attempt_back(client: Client, tasks: Tasks) -> None:
    job = tasks.flaky.enqueue(1)
    done = client.wait(job.id, timeout=10)
    assert done.state == "succeeded"
    first, second = client.attempts(job.id)
    assert first.started_at is not None and second.started_at is not None
    assert second.started_at - first.started_at >= timedelta(seconds=0.9)


def test_permanent_goes_straight_to_the_dlq(client: Client, tasks: Tasks) -> None:
    job = tasks.reject.enqueue("c-9")
    done = client.wait(job.id, timeout=10)
    assert done.state == "dead" and done.attempts == 1
    assert done.last_error is not None and done.last_error.status == 422
    dead = client.dlq.get(job.id)
    assert dead.attempt_log is not None
    assert "no such customer c-9" in (dead.attempt_log[0].response_body or "")


def test_an_unexpected_exception_is_retried_and_its_traceback_kept(
    client: Client, tasks: Tasks
) -> None:
    job = tasks.boom.enqueue()
    done = client.wait(job.id, timeout=10)
    assert done.state == "dead" and done.attempts == 2
    body = client.attempts(job.id)[-1].response_body or ""
    assert "RuntimeError: database on fire" in body and "Traceback" in body


def test_a_tampered_request_is_rejected_and_runs_nothing(tasks: Tasks) -> None:
    genuine = json.dumps({"args": [1, 2], "kwargs": {}}).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": "01TAMPERED",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign([secret_key(TEST_SECRET)], "01TAMPERED", timestamp, genuine),
        "pushq-attempt": "1",
    }
    before = list(tasks.runs)
    tampered = genuine.replace(b"[1, 2]", b"[1, 2000]")
    response = httpx.post(f"{tasks.base_url}/tasks/add", content=tampered, headers=headers)
    assert response.status_code == 401
    assert httpx.post(f"{tasks.base_url}/tasks/add", content=genuine, headers=headers).is_success
    assert tasks.runs == [*before, ("add", 1)]  # only the genuine request ran


def test_a_router_with_the_wrong_secret_runs_nothing_and_the_job_is_retried(
    client: Client, serve_asgi: Any
) -> None:
    from pushq.signing import generate_secret

    ran: list[int] = []
    router = TaskRouter(secret=generate_secret(), client=client)

    @router.task(max_attempts=3, **FAST)
    def noop() -> None:
        ran.append(1)

    router.base_url = serve_asgi(router)
    job = client.wait(noop.enqueue().id, timeout=10)
    # a 401 is retried (mid-rotation the next attempt may verify) until attempts run out
    assert job.state == "dead" and job.attempts == 3 and job.last_error is not None
    assert job.last_error.status == 401 and ran == []
    assert [a.status for a in client.attempts(job.id)] == [401, 401, 401]


def test_progress_is_visible_on_the_job(pushq: PushqProcess, client: Client, tasks: Tasks) -> None:
    if missing_route(pushq, "POST", "/v1/jobs/NOPE/progress"):
        pytest.skip("needs /progress and /complete routes (issue 5)")
    job = client.wait(tasks.report.enqueue(3).id, timeout=10)
    assert job.state == "succeeded"
    assert job.progress is not None and job.progress["current"] == 3


def test_a_deferred_task_completes_asynchronously(
    pushq: PushqProcess, client: Client, tasks: Tasks
) -> None:
    if missing_route(pushq, "POST", "/v1/jobs/NOPE/complete"):
        pytest.skip("needs /progress and /complete routes (issue 5)")
    job = client.wait(tasks.encode.enqueue().id, timeout=10)
    assert job.state == "succeeded"
    assert job.result is not None and job.result.body == {"video": "cat.mp4"}


def test_an_async_task_enqueued_with_the_async_client(pushq: PushqProcess, serve_asgi: Any) -> None:
    sdk = AsyncClient(pushq.base_url, token=TEST_TOKEN)
    router = TaskRouter(secret=TEST_SECRET, async_client=sdk)

    @router.task(queue="sdk-e2e")
    async def greet(name: str, greeting: str) -> str:
        await asyncio.sleep(0.01)
        return f"{greeting} {name}"

    async def scenario() -> Job:
        async with sdk:
            job = await greet.aenqueue("ada", greeting="hello")
            return await sdk.wait(job.id, timeout=10)

    router.base_url = serve_asgi(router)
    done = asyncio.run(scenario())
    assert done.state == "succeeded" and done.result == Result(200, "hello ada")


# -- the rest of the API, against the real server ------------------------------------------------


def test_enqueue_is_idempotent_per_key(client: Client, tasks: Tasks) -> None:
    url = f"{tasks.base_url}/tasks/add"
    first = client.enqueue(url, {"args": [1, 1]}, queue="sdk-e2e", idempotency_key="sdk-key-1")
    again = client.enqueue(url, {"args": [9, 9]}, queue="sdk-e2e", idempotency_key="sdk-key-1")
    assert first.id == again.id and again.deduplicated and not first.deduplicated
    assert first.idempotency_key == "sdk-key-1"


def test_enqueue_many_list_and_cancel(client: Client, pushq: PushqProcess) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    jobs = client.enqueue_many(
        [
            {"url": "http://127.0.0.1:9/never", "queue": "sdk-list", "run_at": later},
            {"url": "http://127.0.0.1:9/never", "queue": "sdk-list", "delay": "1h"},
        ]
    )
    assert [j.state for j in jobs] == ["scheduled", "scheduled"]
    page = client.list(queue="sdk-list", limit=1)
    assert len(page) == 1 and page.next_cursor is not None
    rest = client.list(queue="sdk-list", cursor=page.next_cursor)
    assert {j.id for j in [*page, *rest]} == {j.id for j in jobs}
    cancelled = client.cancel(jobs[0].id)
    assert cancelled.state == "cancelled" and cancelled.terminal
    with pytest.raises(Conflict):
        client.cancel(jobs[0].id)
    assert client.wait(jobs[0].id, timeout=1).state == "cancelled"
    with pytest.raises(TimeoutError):
        client.wait(jobs[1].id, timeout=0.3)


def test_dlq_redrive_and_delete(client: Client, tasks: Tasks) -> None:
    ids = [client.wait(tasks.reject.enqueue(f"d{i}").id, timeout=10).id for i in range(3)]
    dead = {j.id for j in client.dlq.list(queue="sdk-e2e", limit=1000)}
    assert set(ids) <= dead
    redriven = client.dlq.retry(ids[0])
    assert redriven.state in ("pending", "active", "dead") and redriven.attempts in (0, 1)
    client.dlq.delete(ids[1])
    with pytest.raises(NotFound):
        client.dlq.get(ids[1])
    client.wait(ids[0], timeout=10)  # dead again: reject always rejects
    assert client.dlq.retry_all(queue="sdk-e2e") >= 2


def test_api_errors_are_typed(pushq: PushqProcess, client: Client) -> None:
    with pytest.raises(NotFound) as raised:
        client.get("NOSUCHJOB")
    assert raised.value.status == 404 and "NOSUCHJOB" in raised.value.message
    with pytest.raises(BadRequest):
        client.enqueue("ftp://example.com/")
    with Client(pushq.base_url, token="wrong-token-123456") as stranger:
        with pytest.raises(Unauthorized):
            stranger.get("X")


def test_queues_and_schedules(pushq: PushqProcess, client: Client) -> None:
    if missing_route(pushq, "GET", "/v1/queues"):
        pytest.skip("the server has no /v1/queues yet (issue 4)")
    queue = client.queues.update("sdk-flow", concurrency=2, rate_limit="10/m")
    assert queue.name == "sdk-flow" and queue.concurrency == 2 and queue.rate_limit == "10/m"
    assert client.queues.pause("sdk-flow").paused
    assert not client.queues.resume("sdk-flow").paused
    assert "sdk-flow" in {q.name for q in client.queues.list()}
    assert "pending" in client.queues.get("sdk-flow").stats
    with pytest.raises(NotFound):
        client.queues.get("sdk-never-used")
    if missing_route(pushq, "GET", "/v1/schedules"):
        pytest.skip("the server has no /v1/schedules yet (issue 4)")
    schedule = client.schedules.set(
        "sdk-nightly", "0 3 * * *", {"url": "http://127.0.0.1:9/report"}, timezone="UTC"
    )
    assert schedule.cron == "0 3 * * *" and schedule.next_run_at is not None
    assert "sdk-nightly" in {s.name for s in client.schedules.list()}
    client.schedules.delete("sdk-nightly")
    with pytest.raises(NotFound):
        client.schedules.get("sdk-nightly")


def test_permanent_statuses_through_the_sdk(pushq: PushqProcess, client: Client) -> None:
    queue = client.queues.update("sdk-strict", permanent_statuses=[422, 400])
    assert queue.permanent_statuses == (400, 422)
    assert client.queues.get("sdk-strict").permanent_statuses == (400, 422)
    inherited = client.enqueue("http://127.0.0.1:9/never", queue="sdk-strict", delay=3600)
    own = client.enqueue(
        "http://127.0.0.1:9/never", queue="sdk-strict", delay=3600, permanent_statuses=(404,)
    )
    plain = client.enqueue("http://127.0.0.1:9/never", queue="sdk-lenient", delay=3600)
    assert inherited.permanent_statuses == (400, 422) and own.permanent_statuses == (404,)
    assert plain.permanent_statuses is None
    assert client.queues.update("sdk-strict", permanent_statuses=[]).permanent_statuses == ()
    with pytest.raises(BadRequest):
        client.enqueue("http://127.0.0.1:9/never", permanent_statuses=[200])
    client.cancel(own.id)
    client.cancel(inherited.id)
    client.cancel(plain.id)
