"""pushq.worker: TaskRouter (through its ASGI interface), handle(), JobContext calls back."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import pushq
from pushq.signing import generate_secret, secret_key, sign
from pushq.worker import Async, JobContext, Permanent, Retry, TaskRouter, handle, verify

from ..harness import TEST_SECRET

PUSHQ = "http://pushq.test"
OTHER_SECRET = generate_secret()  # an old secret, being rotated out


def delivery_headers(
    body: bytes, *, job_id: str = "01JOB", attempt: int = 1, secret: str = TEST_SECRET
) -> dict[str, str]:
    """The headers pushq sends with a delivery of `body`."""
    timestamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": job_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign([secret_key(secret)], job_id, timestamp, body),
        "pushq-attempt": str(attempt),
        "pushq-max-attempts": "3",
        "pushq-queue": "emails",
        "pushq-job-token": "jt-1",
    }


def call_body(*args: Any, **kwargs: Any) -> bytes:
    return json.dumps({"args": list(args), "kwargs": kwargs}).encode()


def post(app: Any, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker.test") as http:
            return await http.post(path, content=body, headers=headers or delivery_headers(body))

    return asyncio.run(send())


class Recorder:
    """A fake pushq API for JobContext's calls back (an httpx MockTransport)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={})

    def seen(self) -> list[tuple[str, str, Any]]:
        return [
            (r.url.path, r.headers["authorization"], json.loads(r.content)) for r in self.requests
        ]


@pytest.fixture
def router() -> TaskRouter:
    return TaskRouter(secret=TEST_SECRET, base_url="http://worker.test/tasks")


# -- routing and answers ------------------------------------------------------------------


def test_a_task_gets_its_arguments_and_context_and_its_value_is_the_answer(
    router: TaskRouter,
) -> None:
    seen: dict[str, Any] = {}

    @router.task
    def send_email(ctx: JobContext, to: str, *, template: str = "hi") -> dict[str, str]:
        seen.update(ctx=ctx, thread=threading.current_thread())
        return {"sent_to": to, "template": template}

    response = post(router, "/send_email", call_body("ada@example.com", template="welcome"))
    assert response.status_code == 200
    assert response.json() == {"sent_to": "ada@example.com", "template": "welcome"}
    ctx = seen["ctx"]
    assert (ctx.id, ctx.attempt, ctx.max_attempts, ctx.queue, ctx.job_token) == (
        "01JOB",
        1,
        3,
        "emails",
        "jt-1",
    )
    assert not ctx.last_attempt
    assert seen["thread"] is not threading.main_thread()  # sync tasks run in a thread


def test_async_tasks_and_tasks_without_a_context(router: TaskRouter) -> None:
    @router.task(name="math.add")
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    @router.task
    def ping(ctx) -> str:  # type: ignore[no-untyped-def]  # `ctx` by name is enough
        return str(ctx.id)

    assert post(router, "/math.add", call_body(2, 3)).json() == 5
    assert post(router, "/ping", call_body()).json() == "01JOB"


def test_any_other_json_body_is_the_one_argument(router: TaskRouter) -> None:
    @router.task
    def echo(payload: Any) -> Any:
        return payload

    assert post(router, "/echo", b'{"to": "ada"}').json() == {"to": "ada"}
    assert post(router, "/echo", b"[1, 2]").json() == [1, 2]


def test_mounted_in_starlette(router: TaskRouter) -> None:
    @router.task
    def hello(name: str) -> str:
        return f"hello {name}"

    app = Starlette(routes=[Mount("/tasks", app=router)])
    response = post(app, "/tasks/hello", call_body("ada"))
    assert response.status_code == 200 and response.json() == "hello ada"


@pytest.mark.parametrize(
    ("raise_", "status", "headers"),
    [
        (Retry("busy", after=2.5), 503, {"retry-after": "3"}),
        (Retry(), 503, {}),
        (Permanent("no such customer"), 422, {"pushq-retry": "false"}),
        (Async(), 202, {"pushq-async": "true"}),
        (KeyError("boom"), 500, {}),
    ],
    ids=["retry-after", "retry", "permanent", "async", "unexpected"],
)
def test_exceptions_map_to_pushq_semantics(
    router: TaskRouter, raise_: Exception, status: int, headers: dict[str, str]
) -> None:
    @router.task
    def work() -> None:
        raise raise_

    response = post(router, "/work", call_body())
    assert response.status_code == status
    for name, value in headers.items():
        assert response.headers[name] == value
    if status == 503 and not headers:
        assert "retry-after" not in response.headers
    if status == 500:
        assert response.json()["error"] == "KeyError: 'boom'"
        assert "Traceback" in response.json()["traceback"]
    if status == 422:
        assert response.json() == {"error": "no such customer"}


def test_a_task_defers_with_ctx_defer(router: TaskRouter) -> None:
    @router.task
    def encode(ctx: JobContext) -> Async:
        return ctx.defer()

    @router.task
    def encode_later(ctx: JobContext) -> None:
        ctx.defer()

    for path in ("/encode", "/encode_later"):
        response = post(router, path, call_body())
        assert response.status_code == 202 and response.headers["pushq-async"] == "true"


def test_a_bad_signature_runs_nothing(router: TaskRouter) -> None:
    calls: list[int] = []

    @router.task
    def charge(amount: int) -> None:
        calls.append(amount)

    genuine = call_body(100)
    tampered = call_body(100_000)
    response = post(router, "/charge", tampered, delivery_headers(genuine))
    assert response.status_code == 401 and "invalid signature" in response.json()["error"]
    unsigned = post(router, "/charge", genuine, {"content-type": "application/json"})
    assert unsigned.status_code == 401
    assert post(router, "/nope", genuine, delivery_headers(genuine)).status_code == 404
    assert calls == []


def test_requests_no_retry_can_fix_are_permanent(router: TaskRouter) -> None:
    @router.task
    def one(a: int) -> int:
        return a

    for path, body, status in [
        ("/one", b"not json", 400),
        ("/one", b'{"args": {"a": 1}}', 400),
        ("/one", b'{"args": [1], "kwargs": []}', 400),
    ]:
        response = post(router, path, body)
        assert response.status_code == status, (path, body)
        assert response.headers["pushq-retry"] == "false"


def test_requests_a_deploy_or_rotation_can_fix_are_retried(router: TaskRouter) -> None:
    # pushq retries any 4xx without pushq-retry: false (DESIGN.md, Delivery)
    @router.task
    def one(a: int) -> int:
        return a

    genuine = call_body(1)
    for path, body, headers, status in [
        ("/missing", call_body(), None, 404),  # the task is not deployed here yet
        ("/one", call_body(1, 2), None, 422),  # the enqueuer runs newer code than we do
        ("/one", genuine, delivery_headers(call_body(2)), 401),  # signed for another body
    ]:
        response = post(router, path, body, headers)
        assert response.status_code == status, (path, body)
        assert "pushq-retry" not in response.headers


def test_a_body_over_the_limit_is_refused() -> None:
    small = TaskRouter(secret=TEST_SECRET, max_body_size=10)

    @small.task
    def big(data: str) -> None: ...

    body = call_body("x" * 100)
    response = post(small, "/big", body)
    assert response.status_code == 413 and response.headers["pushq-retry"] == "false"


def test_a_value_that_is_not_json_is_a_500(router: TaskRouter) -> None:
    @router.task
    def weird() -> object:
        return object()

    response = post(router, "/weird", call_body())
    assert response.status_code == 500 and "not JSON" in response.json()["error"]


def test_lifespan_messages_are_answered(router: TaskRouter) -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    asyncio.run(router({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# -- configuration ------------------------------------------------------------------------


def test_the_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHQ_SIGNING_SECRET", f"{OTHER_SECRET} {TEST_SECRET}")
    router = TaskRouter()
    assert router.secrets[1] == TEST_SECRET

    @router.task
    def ok() -> str:
        return "ok"

    assert post(router, "/ok", call_body()).status_code == 200  # the second secret verifies
    monkeypatch.delenv("PUSHQ_SIGNING_SECRET")
    with pytest.raises(pushq.errors.ConfigError, match="PUSHQ_SIGNING_SECRET"):
        TaskRouter()


def test_task_names_are_unique_and_enqueueing_needs_a_base_url() -> None:
    router = TaskRouter(secret=TEST_SECRET)

    @router.task
    def twice() -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        router.task(name="twice")(lambda: None)
    with pytest.raises(pushq.errors.ConfigError, match="base_url"):
        _ = twice.url
    assert twice() is None  # still callable directly
    with pytest.raises(TypeError, match="not job fields: max_retries"):
        router.task(name="typo", max_retries=3)(lambda: None)
    with pytest.raises(TypeError, match="not job fields: countdown"):
        twice.options(countdown=10)


# -- enqueue and calls back to pushq ------------------------------------------------------------


def test_task_enqueue_posts_the_call_to_the_tasks_url() -> None:
    recorder = Recorder()

    def api(request: httpx.Request) -> httpx.Response:
        recorder(request)
        job = {"id": "J1", "queue": "emails", "url": "u", "state": "pending"}
        return httpx.Response(201, json=job)

    client = pushq.Client(PUSHQ, token="tok", transport=httpx.MockTransport(api))
    router = TaskRouter(secret=TEST_SECRET, base_url="http://worker.test/tasks/", client=client)

    @router.task(queue="emails", max_attempts=5)
    def send_email(to: str, template: str = "hi") -> None: ...

    job = send_email.enqueue("ada@example.com", template="welcome")
    send_email.options(delay="1h", priority=9).enqueue("bob@example.com")
    assert job.id == "J1"
    first, second = (json.loads(r.content) for r in recorder.requests)
    assert first == {
        "url": "http://worker.test/tasks/send_email",
        "body": {"args": ["ada@example.com"], "kwargs": {"template": "welcome"}},
        "queue": "emails",
        "max_attempts": 5,
    }
    assert second["delay"] == "1h" and second["priority"] == 9 and second["queue"] == "emails"
    assert send_email.defaults == {"queue": "emails", "max_attempts": 5}  # options() copies
    client.close()


def test_aenqueue_uses_the_async_client() -> None:
    seen: list[Any] = []

    async def api(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(201, json={"id": "J2", "queue": "q", "url": "u", "state": "pending"})

    async def scenario() -> pushq.Job:
        async with pushq.AsyncClient(PUSHQ, "t", transport=httpx.MockTransport(api)) as client:
            router = TaskRouter(secret=TEST_SECRET, base_url="http://w/t", async_client=client)

            @router.task
            async def resize(image: str) -> None: ...

            return await resize.aenqueue("cat.png")

    assert asyncio.run(scenario()).id == "J2"
    assert seen == [{"url": "http://w/t/resize", "body": {"args": ["cat.png"], "kwargs": {}}}]


def test_a_sync_task_reports_progress_and_completes_with_its_job_token() -> None:
    recorder = Recorder()
    client = pushq.Client(PUSHQ, token="api-token", transport=httpx.MockTransport(recorder))
    router = TaskRouter(secret=TEST_SECRET, client=client)

    @router.task
    def report(ctx: JobContext, items: int) -> Async:
        for done in range(1, items + 1):
            ctx.progress(current=done, total=items)
        ctx.complete({"url": "/r.pdf"})
        return ctx.defer()

    response = post(router, "/report", call_body(2))
    assert response.status_code == 202
    assert recorder.seen() == [
        ("/v1/jobs/01JOB/progress", "Bearer jt-1", {"current": 1, "total": 2}),
        ("/v1/jobs/01JOB/progress", "Bearer jt-1", {"current": 2, "total": 2}),
        ("/v1/jobs/01JOB/complete", "Bearer jt-1", {"result": {"url": "/r.pdf"}}),
    ]
    client.close()


def test_an_async_task_reports_and_fails_with_its_job_token() -> None:
    seen: list[tuple[str, str, Any]] = []

    async def api(request: httpx.Request) -> httpx.Response:
        seen.append(
            (request.url.path, request.headers["authorization"], json.loads(request.content))
        )
        return httpx.Response(200, json={})

    async def scenario() -> httpx.Response:
        async with pushq.AsyncClient(PUSHQ, "t", transport=httpx.MockTransport(api)) as client:
            router = TaskRouter(secret=TEST_SECRET, async_client=client)

            @router.task
            async def encode(ctx: JobContext) -> None:
                await ctx.aprogress(percent=50, message="half way", meta={"fps": 30})
                await ctx.afail("codec missing", retry=False)
                raise Async()

            transport = httpx.ASGITransport(app=router)
            async with httpx.AsyncClient(transport=transport, base_url="http://w") as http:
                body = call_body()
                return await http.post("/encode", content=body, headers=delivery_headers(body))

    assert asyncio.run(scenario()).status_code == 202
    assert seen == [
        (
            "/v1/jobs/01JOB/progress",
            "Bearer jt-1",
            {"percent": 50, "message": "half way", "meta": {"fps": 30}},
        ),
        ("/v1/jobs/01JOB/fail", "Bearer jt-1", {"error": "codec missing", "retry": False}),
    ]


# -- the framework-free helper ---------------------------------------------------------------


def test_handle_runs_a_sync_function_for_any_framework() -> None:
    recorder = Recorder()
    client = pushq.Client(PUSHQ, transport=httpx.MockTransport(recorder))

    def resize(ctx: JobContext, image: str, width: int) -> dict[str, Any]:
        ctx.progress(percent=100)
        return {"image": image, "width": width, "attempt": ctx.attempt}

    body = call_body("cat.png", width=200)
    status, headers, out = handle(
        TEST_SECRET, body, delivery_headers(body, attempt=2), resize, client=client
    )
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(out) == {"image": "cat.png", "width": 200, "attempt": 2}
    assert recorder.seen() == [("/v1/jobs/01JOB/progress", "Bearer jt-1", {"percent": 100})]
    client.close()


def test_handle_maps_failures_like_the_router() -> None:
    def flaky() -> None:
        raise Retry(after=30)

    def broken() -> None:
        raise Permanent("bad input")

    body = call_body()
    assert handle(TEST_SECRET, body, delivery_headers(body), flaky)[:2] == (
        503,
        {"content-type": "application/json", "retry-after": "30"},
    )
    status, headers, _ = handle(TEST_SECRET, body, delivery_headers(body), broken)
    assert (status, headers["pushq-retry"]) == (422, "false")
    status, headers, out = handle(TEST_SECRET, b"{}", delivery_headers(body), flaky)
    assert status == 401 and b"invalid signature" in out
    assert "pushq-retry" not in headers  # retried: the worker may be mid-rotation
    status, headers, _ = handle(TEST_SECRET, b"nope", delivery_headers(b"nope"), flaky)
    assert (status, headers["pushq-retry"]) == (400, "false")


def test_handle_refuses_async_functions() -> None:
    async def coro() -> None: ...

    with pytest.raises(TypeError, match="TaskRouter"):
        handle(TEST_SECRET, b"", {}, coro)


def test_verify_accepts_any_of_several_secrets() -> None:
    body = b'{"a": 1}'
    headers = delivery_headers(body)
    verify([OTHER_SECRET, TEST_SECRET], body, headers)
    with pytest.raises(pushq.InvalidSignature):
        verify(TEST_SECRET, body + b" ", headers)


def test_job_context_calls_back_where_the_delivery_says(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {"webhook-id": "j1", "pushq-job-token": "1.t", "pushq-api-url": "http://pq:9"}
    ctx = JobContext.from_headers(headers)
    assert ctx.api_url == "http://pq:9"
    monkeypatch.delenv("PUSHQ_URL", raising=False)
    assert ctx._base_url() == "http://pq:9"
    monkeypatch.setenv("PUSHQ_URL", "http://configured:1")
    assert ctx._base_url() is None  # the worker's own configuration wins
