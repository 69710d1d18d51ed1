"""pushq.Client and AsyncClient against a mocked API (respx): request shapes, typed
results, error mapping, retries with one idempotency key."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

import pushq
from pushq.client import RetryPolicy, retry_wait

BASE = "http://pushq.test"
FAST = RetryPolicy(attempts=3, wait_base=0.001, wait_max=0.005, retry_after_max=1.0)


def job_json(**fields: Any) -> dict[str, Any]:
    job = {
        "id": "01JOB",
        "queue": "default",
        "url": "http://w.test/hook",
        "method": "POST",
        "headers": {},
        "body": {"n": 1},
        "state": "pending",
        "attempts": 0,
        "max_attempts": 13,
        "priority": 0,
        "timeout": 30.0,
        "backoff": {"base": 30.0, "max": 28800.0, "jitter": True},
        "created_at": "2026-01-01T09:00:00.000Z",
        "run_at": "2026-01-01T09:00:00.000Z",
        "finished_at": None,
        "failed_at": None,
        "last_error": None,
        "result": None,
        "progress": None,
        "idempotency_key": None,
        "unique_key": None,
    }
    job.update(fields)
    return job


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[pushq.Client]:
    with pushq.Client(BASE, token="tok-123", retry=FAST) as c:
        yield c


def sent(route: respx.Route, index: int = -1) -> httpx.Request:
    return route.calls[index].request


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


# -- enqueue ----------------------------------------------------------------------------


def test_enqueue_sends_every_field_and_returns_a_typed_job(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.post("/v1/jobs").respond(201, json=job_json(priority=5, queue="emails"))
    job = client.enqueue(
        "http://w.test/hook",
        {"n": 1},
        queue="emails",
        headers={"x-tenant": "a"},
        method="PUT",
        run_at=datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
        priority=5,
        max_attempts=3,
        backoff={"base": timedelta(seconds=2), "max": "1m", "jitter": False},
        timeout=timedelta(seconds=45),
        idempotency_key="order-7",
        unique_key="user:1",
        ordering_key="acct:9",
        callback_url="http://w.test/done",
        failure_callback_url="http://w.test/failed",
    )
    request = sent(route)
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.headers["idempotency-key"] == "order-7"
    assert body_of(request) == {
        "url": "http://w.test/hook",
        "body": {"n": 1},
        "queue": "emails",
        "headers": {"x-tenant": "a"},
        "method": "PUT",
        "run_at": "2026-01-01T09:00:00+00:00",
        "priority": 5,
        "max_attempts": 3,
        "backoff": {"base": 2.0, "max": "1m", "jitter": False},
        "timeout": 45.0,
        "unique_key": "user:1",
        "ordering_key": "acct:9",
        "callback_url": "http://w.test/done",
        "failure_callback_url": "http://w.test/failed",
    }
    assert isinstance(job, pushq.Job)
    assert (job.id, job.queue, job.priority, job.state) == ("01JOB", "emails", 5, "pending")
    assert job.created_at == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert job.finished_at is None and not job.terminal and not job.deduplicated


def test_enqueue_leaves_out_unset_fields_and_makes_an_idempotency_key(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.post("/v1/jobs").respond(201, json=job_json())
    client.enqueue("http://w.test/hook", delay="10s")
    client.enqueue("http://w.test/hook", delay=timedelta(minutes=1))
    first, second = sent(route, 0), sent(route, 1)
    assert body_of(first) == {"url": "http://w.test/hook", "delay": "10s"}
    assert body_of(second) == {"url": "http://w.test/hook", "delay": 60.0}
    keys = {first.headers["idempotency-key"], second.headers["idempotency-key"]}
    assert len(keys) == 2 and all(len(k) == 36 for k in keys)  # a fresh uuid4 per call


def test_naive_run_at_is_refused_before_sending(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.post("/v1/jobs").respond(201, json=job_json())
    with pytest.raises(ValueError, match="timezone-aware"):
        client.enqueue("http://w.test/hook", run_at=datetime(2026, 1, 1, 9, 0))
    assert not route.called


def test_enqueue_many_gives_each_job_a_key_and_keeps_given_ones(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    reply = {"jobs": [job_json(id="A"), job_json(id="B", deduplicated=True)]}
    route = api.post("/v1/jobs/batch").respond(201, json=reply)
    jobs = client.enqueue_many(
        [
            {"url": "http://w.test/a", "body": [1], "delay": timedelta(seconds=5)},
            {"url": "http://w.test/b", "idempotency_key": "mine"},
        ]
    )
    sent_jobs = body_of(sent(route))["jobs"]
    assert sent_jobs[0]["url"] == "http://w.test/a" and sent_jobs[0]["delay"] == 5.0
    assert len(sent_jobs[0]["idempotency_key"]) == 36
    assert sent_jobs[1]["idempotency_key"] == "mine"
    assert [j.id for j in jobs] == ["A", "B"] and jobs[1].deduplicated


def test_enqueue_many_needs_a_url_per_job(client: pushq.Client) -> None:
    with pytest.raises(ValueError, match="url"):
        client.enqueue_many([{"body": 1}])


# -- every other call: method, path, query, body, and the typed result ---------------------


def _dead(**fields: Any) -> dict[str, Any]:
    return job_json(
        state="dead",
        last_error={"status": 500, "message": "HTTP 500", "at": "2026-01-01T09:01:00.000Z"},
        **fields,
    )


ATTEMPT = {
    "number": 1,
    "started_at": "2026-01-01T09:00:00.000Z",
    "duration_ms": 12.5,
    "status": 500,
    "error": "HTTP 500",
    "response_body": "boom",
}
QUEUE = {
    "name": "emails",
    "concurrency": 4,
    "rate_limit": "10/m",
    "paused": False,
    "stats": {"pending": 3, "oldest_pending_age": 1.5},
}
SCHEDULE = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "timezone": "Europe/Paris",
    "job": {"url": "http://w.test/report"},
    "next_run_at": "2026-01-02T02:00:00Z",
    "last_run_at": None,
}

# (call, method, path, query, json sent, reply status, reply body, check of the result)
CASES: list[tuple[str, Callable[[pushq.Client], Any], str, str, dict[str, str], Any, int, Any]] = [
    (
        "get",
        lambda c: c.get("01JOB"),
        "GET",
        "/v1/jobs/01JOB",
        {},
        None,
        200,
        job_json(result={"status": 200, "body": {"ok": True}}, state="succeeded"),
    ),
    (
        "list",
        lambda c: c.list(queue="emails", state="dead", limit=5, cursor="c1"),
        "GET",
        "/v1/jobs",
        {"queue": "emails", "state": "dead", "limit": "5", "cursor": "c1"},
        None,
        200,
        {"jobs": [job_json()], "next_cursor": "c2"},
    ),
    ("cancel", lambda c: c.cancel("01JOB"), "POST", "/v1/jobs/01JOB/cancel", {}, None, 200,
     job_json(state="cancelled")),
    ("attempts", lambda c: c.attempts("01JOB"), "GET", "/v1/jobs/01JOB/attempts", {}, None, 200,
     {"attempts": [ATTEMPT]}),
    ("progress", lambda c: c.progress("01JOB", percent=50, message="half", job_token="jt"),
     "POST", "/v1/jobs/01JOB/progress", {}, {"percent": 50, "message": "half"}, 200, {}),
    ("complete", lambda c: c.complete("01JOB", {"url": "x"}, job_token="jt"), "POST",
     "/v1/jobs/01JOB/complete", {}, {"result": {"url": "x"}}, 200, job_json()),
    ("fail", lambda c: c.fail("01JOB", "disk full", retry=False, job_token="jt"), "POST",
     "/v1/jobs/01JOB/fail", {}, {"error": "disk full", "retry": False}, 200, job_json()),
    ("dlq.list", lambda c: c.dlq.list(queue="q", limit=2), "GET", "/v1/dlq",
     {"queue": "q", "limit": "2"}, None, 200, {"jobs": [_dead()], "next_cursor": None}),
    ("dlq.get", lambda c: c.dlq.get("01JOB"), "GET", "/v1/dlq/01JOB", {}, None, 200,
     _dead(attempt_log=[ATTEMPT])),
    ("dlq.retry", lambda c: c.dlq.retry("01JOB"), "POST", "/v1/dlq/01JOB/retry", {}, None, 200,
     job_json()),
    ("dlq.retry_all", lambda c: c.dlq.retry_all(queue="q"), "POST", "/v1/dlq/retry", {},
     {"queue": "q"}, 200, {"retried": 7}),
    ("dlq.delete", lambda c: c.dlq.delete("01JOB"), "DELETE", "/v1/dlq/01JOB", {}, None, 204,
     None),
    ("queues.get", lambda c: c.queues.get("emails"), "GET", "/v1/queues/emails", {}, None, 200,
     QUEUE),
    ("queues.update",
     lambda c: c.queues.update("emails", concurrency=4, rate_limit="10/m",
                               timeout=timedelta(seconds=5), priority=2),
     "PUT", "/v1/queues/emails", {},
     {"concurrency": 4, "rate_limit": "10/m", "timeout": 5.0, "priority": 2},
     200, QUEUE),
    ("queues.pause", lambda c: c.queues.pause("emails"), "POST", "/v1/queues/emails/pause", {},
     None, 200, dict(QUEUE, paused=True)),
    ("queues.resume", lambda c: c.queues.resume("emails"), "POST", "/v1/queues/emails/resume",
     {}, None, 200, QUEUE),
    ("queues.list", lambda c: c.queues.list(), "GET", "/v1/queues", {}, None, 200,
     {"queues": [QUEUE]}),
    ("schedules.set",
     lambda c: c.schedules.set("nightly", "0 3 * * *", {"url": "http://w.test/report"},
                               timezone="Europe/Paris"),
     "PUT", "/v1/schedules/nightly", {},
     {"cron": "0 3 * * *", "timezone": "Europe/Paris", "job": {"url": "http://w.test/report"}},
     200, SCHEDULE),
    ("schedules.get", lambda c: c.schedules.get("nightly"), "GET", "/v1/schedules/nightly", {},
     None, 200, SCHEDULE),
    ("schedules.delete", lambda c: c.schedules.delete("nightly"), "DELETE",
     "/v1/schedules/nightly", {}, None, 204, None),
    ("schedules.list", lambda c: c.schedules.list(), "GET", "/v1/schedules", {}, None, 200,
     {"schedules": [SCHEDULE]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "call", "method", "path", "query", "sent_json", "status", "reply"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_request_shapes(
    api: respx.MockRouter,
    client: pushq.Client,
    name: str,
    call: Callable[[pushq.Client], Any],
    method: str,
    path: str,
    query: dict[str, str],
    sent_json: Any,
    status: int,
    reply: Any,
) -> None:
    route = api.route(method=method, path=path).respond(
        status, json=reply if reply is not None else None
    )
    result = call(client)
    request = sent(route)
    assert dict(request.url.params) == query
    assert body_of(request) == sent_json
    job_token_calls = ("progress", "complete", "fail")
    expected_auth = "Bearer jt" if name in job_token_calls else "Bearer tok-123"
    assert request.headers["authorization"] == expected_auth
    check_result(name, result)


def check_result(name: str, result: Any) -> None:
    """What each call returns, typed."""
    if name in ("get",):
        assert result.state == "succeeded" and result.result == pushq.Result(200, {"ok": True})
    elif name in ("list", "dlq.list"):
        assert isinstance(result, pushq.Page) and len(result) == 1
        assert isinstance(result[0], pushq.Job)
        assert result.next_cursor == ("c2" if name == "list" else None)
        if name == "dlq.list":
            assert result[0].last_error == pushq.LastError(
                500, "HTTP 500", datetime(2026, 1, 1, 9, 1, tzinfo=UTC)
            )
    elif name == "attempts":
        [attempt] = result
        assert attempt == pushq.Attempt(
            1, datetime(2026, 1, 1, 9, tzinfo=UTC), 12.5, 500, "HTTP 500", "boom"
        )
    elif name == "dlq.get":
        assert result.attempt_log is not None and result.attempt_log[0].status == 500
    elif name == "dlq.retry_all":
        assert result == 7
    elif name in ("cancel", "dlq.retry"):
        assert isinstance(result, pushq.Job)
    elif name.startswith("queues."):
        queues = list(result) if name == "queues.list" else [result]
        assert all(isinstance(q, pushq.Queue) and q.name == "emails" for q in queues)
        assert queues[0].concurrency == 4 and queues[0].stats["pending"] == 3
        assert queues[0].paused is (name == "queues.pause")
    elif name in ("schedules.set", "schedules.get", "schedules.list"):
        [schedule] = list(result) if name == "schedules.list" else [result]
        assert isinstance(schedule, pushq.Schedule)
        assert schedule.cron == "0 3 * * *" and schedule.timezone == "Europe/Paris"
        assert schedule.next_run_at == datetime(2026, 1, 2, 2, tzinfo=UTC)
    else:  # progress, complete, fail, deletes: nothing to return
        assert result is None


def test_ids_and_names_are_escaped_in_paths(api: respx.MockRouter, client: pushq.Client) -> None:
    route = api.get(url__startswith=BASE).respond(200, json=job_json())
    client.get("../v1/dlq")
    assert sent(route).url.raw_path == b"/v1/jobs/..%2Fv1%2Fdlq"


def test_a_newer_servers_extra_keys_are_kept_not_fatal(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    api.get("/v1/jobs/01JOB").respond(200, json=job_json(shiny_new_field=[1, 2]))
    job = client.get("01JOB")
    assert job.raw["shiny_new_field"] == [1, 2]


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, pushq.BadRequest),
        (401, pushq.Unauthorized),
        (403, pushq.Forbidden),
        (404, pushq.NotFound),
        (409, pushq.Conflict),
        (413, pushq.PayloadTooLarge),
        (422, pushq.ApiError),
        (500, pushq.ApiError),
    ],
)
def test_error_answers_raise_the_class_for_their_status(
    api: respx.MockRouter, client: pushq.Client, status: int, cls: type[pushq.ApiError]
) -> None:
    api.get("/v1/jobs/X").respond(status, json={"error": {"code": "some_code", "message": "why"}})
    with pytest.raises(cls) as raised:
        client.get("X")
    assert type(raised.value) is cls
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        status,
        "some_code",
        "why",
    )


def test_rate_limited_carries_retry_after(api: respx.MockRouter, client: pushq.Client) -> None:
    api.post("/v1/dlq/X/retry").respond(
        429,
        json={"error": {"code": "queue_full", "message": "queue q is full"}},
        headers={"retry-after": "7"},
    )
    with pytest.raises(pushq.RateLimited) as raised:
        client.dlq.retry("X")
    assert raised.value.retry_after == 7.0 and raised.value.status == 429
    assert raised.value.code == "queue_full"


def test_an_error_without_a_json_body_still_says_what_happened(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    api.get("/v1/jobs/X").respond(502, text="<html>Bad Gateway</html>")
    with pytest.raises(pushq.ApiError) as raised:
        client.get("X")
    assert raised.value.status == 502 and raised.value.code == "http_502"
    assert "Bad Gateway" in raised.value.message


def test_an_answer_that_is_not_pushqs_is_an_api_error(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    api.get("/v1/jobs/X").respond(200, text="<html>a login page</html>")
    api.get("/v1/dlq").respond(200, json={"something": "else"})
    with pytest.raises(pushq.ApiError, match="unexpected answer to GET /v1/jobs/X") as raised:
        client.get("X")
    assert raised.value.code == "bad_response" and raised.value.status == 200
    with pytest.raises(pushq.ApiError, match="KeyError"):
        client.dlq.list()


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("no answer"),
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}}),
        httpx.Response(429, headers={"retry-after": "0"}),
    ],
    ids=["connect-error", "read-timeout", "503", "429"],
)
def test_a_retried_enqueue_sends_the_same_idempotency_key(
    api: respx.MockRouter, client: pushq.Client, first: Any
) -> None:
    route = api.post("/v1/jobs").mock(side_effect=[first, httpx.Response(201, json=job_json())])
    job = client.enqueue("http://w.test/hook", {"n": 1})
    assert job.id == "01JOB" and route.call_count == 2
    keys = [call.request.headers["idempotency-key"] for call in route.calls]
    assert keys[0] == keys[1] and len(keys[0]) == 36
    assert body_of(sent(route, 0)) == body_of(sent(route, 1))


def test_a_retried_batch_sends_the_same_per_job_keys(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.post("/v1/jobs/batch").mock(
        side_effect=[httpx.ConnectError("down"), httpx.Response(201, json={"jobs": [job_json()]})]
    )
    client.enqueue_many([{"url": "http://w.test/a"}])
    assert route.call_count == 2
    assert body_of(sent(route, 0)) == body_of(sent(route, 1))


def test_enqueue_gives_up_after_the_bound(api: respx.MockRouter, client: pushq.Client) -> None:
    route = api.post("/v1/jobs").respond(503, json={"error": {"code": "down", "message": "down"}})
    with pytest.raises(pushq.ApiError) as raised:
        client.enqueue("http://w.test/hook")
    assert raised.value.status == 503 and route.call_count == FAST.attempts

    route.mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(pushq.PushqConnectionError) as unreachable:
        client.enqueue("http://w.test/hook")
    assert route.call_count == 2 * FAST.attempts
    assert unreachable.value.reason == "connection refused"
    assert isinstance(unreachable.value.__cause__, httpx.ConnectError)


def test_a_retry_after_longer_than_the_policy_allows_is_raised_at_once(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.post("/v1/jobs").respond(429, headers={"retry-after": "3600"})
    with pytest.raises(pushq.RateLimited) as raised:
        client.enqueue("http://w.test/hook")
    assert route.call_count == 1 and raised.value.retry_after == 3600


def test_enqueue_does_not_retry_a_4xx(api: respx.MockRouter, client: pushq.Client) -> None:
    route = api.post("/v1/jobs").respond(400, json={"error": {"code": "bad", "message": "url"}})
    with pytest.raises(pushq.BadRequest):
        client.enqueue("http://w.test/hook")
    assert route.call_count == 1


def test_reads_retry_transport_faults_but_not_error_answers(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.get("/v1/jobs/X").mock(
        side_effect=[httpx.ConnectError("down"), httpx.Response(200, json=job_json(id="X"))]
    )
    assert client.get("X").id == "X" and route.call_count == 2

    failing = api.get("/v1/jobs/Y").respond(500, json={"error": {"code": "e", "message": "m"}})
    with pytest.raises(pushq.ApiError):
        client.get("Y")
    assert failing.call_count == 1


def test_unsafe_calls_are_never_retried(api: respx.MockRouter, client: pushq.Client) -> None:
    route = api.post("/v1/jobs/X/cancel").mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(pushq.PushqConnectionError):
        client.cancel("X")
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("retry_number", "retry_after", "rand", "expected"),
    [
        (1, None, 1.0, 0.25),
        (2, None, 1.0, 0.5),
        (3, None, 0.5, 0.5),
        (10, None, 1.0, 8.0),  # capped at wait_max
        (1, None, 0.0, 0.0),  # full jitter reaches zero
        (1, 5.0, 0.3, 5.0),  # never sooner than Retry-After
        (10, 2.0, 1.0, 8.0),  # ... but a longer jittered wait stands
    ],
)
def test_retry_wait(
    retry_number: int, retry_after: float | None, rand: float, expected: float
) -> None:
    assert retry_wait(RetryPolicy(), retry_number, retry_after, lambda: rand) == expected


def test_wait_long_polls_until_the_job_is_terminal(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.get("/v1/jobs/X").mock(
        side_effect=[
            httpx.Response(200, json=job_json(id="X", state="pending")),
            httpx.Response(200, json=job_json(id="X", state="active")),
            httpx.Response(200, json=job_json(id="X", state="succeeded")),
        ]
    )
    job = client.wait("X", timeout=20)
    assert job.state == "succeeded" and route.call_count == 3
    waits = [int(call.request.url.params["wait"]) for call in route.calls]
    assert all(0 < w <= 20 for w in waits)


def test_wait_times_out_without_a_tight_loop(api: respx.MockRouter, client: pushq.Client) -> None:
    route = api.get("/v1/jobs/X").respond(200, json=job_json(id="X", state="active"))
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="still active"):
        client.wait("X", timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2
    # an answer at once (a server without long-poll) is followed by a growing pause
    assert 2 <= route.call_count <= 8


# -- configuration and the async client ------------------------------------------------------


def test_url_and_token_default_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, api: respx.MockRouter
) -> None:
    monkeypatch.setenv("PUSHQ_URL", BASE + "/")
    monkeypatch.setenv("PUSHQ_API_TOKEN", "from-env")
    route = api.get("/v1/jobs/X").respond(200, json=job_json(id="X"))
    with pushq.Client() as client:
        assert client.base_url == BASE
        client.get("X")
    assert sent(route).headers["authorization"] == "Bearer from-env"


def test_without_env_the_client_talks_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHQ_URL", raising=False)
    with pushq.Client(token="t") as client:
        assert client.base_url == "http://127.0.0.1:8080"


def test_async_client_has_the_same_calls_and_retries(api: respx.MockRouter) -> None:
    enqueue = api.post("/v1/jobs").mock(
        side_effect=[httpx.ConnectError("down"), httpx.Response(201, json=job_json())]
    )
    api.get("/v1/jobs/01JOB").mock(
        side_effect=[
            httpx.Response(200, json=job_json(state="active")),
            httpx.Response(200, json=job_json(state="dead")),
        ]
    )
    retried = api.post("/v1/dlq/retry").respond(200, json={"retried": 2})
    api.get("/v1/queues/q").respond(404, json={"error": {"code": "not_found", "message": "no"}})

    async def scenario() -> None:
        async with pushq.AsyncClient(BASE, token="t", retry=FAST) as client:
            job = await client.enqueue("http://w.test/hook", {"n": 1}, queue="q")
            assert (await client.wait(job.id, timeout=5)).state == "dead"
            assert await client.dlq.retry_all(queue="q") == 2
            with pytest.raises(pushq.NotFound):
                await client.queues.get("q")

    asyncio.run(scenario())
    keys = {call.request.headers["idempotency-key"] for call in enqueue.calls}
    assert enqueue.call_count == 2 and len(keys) == 1
    assert body_of(sent(retried)) == {"queue": "q"}
