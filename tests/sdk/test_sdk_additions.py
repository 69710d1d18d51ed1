"""The SDK's flow keys, topics and endpoints request shapes (mocked API), the token
lookup, the enqueue-time check of task arguments, and what a non-pushq answer reads as."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import respx

import pushq
from pushq.client import TOKEN_FILE, RetryPolicy, find_token
from pushq.worker import JobContext, TaskRouter

from ..harness import TEST_SECRET

BASE = "http://pushq.test"
ONCE = RetryPolicy(attempts=1)
KEY = {"key": "acme", "concurrency": 2, "rate_limit": "5/s", "paused": False}
KEY_LIVE = {**KEY, "in_flight": 1, "waiting": 4}
TOPIC = {
    "name": "orders",
    "endpoints": [{"url": "http://a.test/h"}, {"url": "http://b.test/h", "name": "b"}],
    "created_at": "2026-01-01T09:00:00.000Z",
    "updated_at": "2026-01-01T09:30:00.000Z",
}
ENDPOINT = {
    "origin": "http://a.test:80",
    "state": "open",
    "in_flight": 0,
    "concurrency_limit": 4,
    "success_rate": 0.25,
    "latency_p50_ms": 12.0,
    "latency_p99_ms": 80.5,
    "consecutive_failures": 9,
    "last_error": {"status": 503, "message": "HTTP 503", "at": "2026-01-01T09:00:00.000Z"},
    "open_until": "2026-01-01T09:00:10.000Z",
    "held_until": None,
}


def job(**fields: Any) -> dict[str, Any]:
    return {"id": "J1", "queue": "default", "url": "http://a.test/h", "state": "pending", **fields}


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[pushq.Client]:
    with pushq.Client(BASE, token="tok", retry=ONCE) as c:
        yield c


def sent_json(route: respx.Route) -> Any:
    content = route.calls.last.request.content
    return json.loads(content) if content else None


# -- flow keys ---------------------------------------------------------------------------


def test_flow_key_update_sends_only_what_is_given_and_none_clears(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.put("/v1/flow-keys/acme").respond(200, json=KEY_LIVE)
    key = client.flow_keys.update("acme", concurrency=2)
    assert sent_json(route) == {"concurrency": 2}
    assert key == pushq.FlowKey("acme", 2, "5/s", False, 1, 4)
    client.flow_keys.update("acme", rate_limit=None, paused=True)
    assert sent_json(route) == {"rate_limit": None, "paused": True}


def test_flow_key_reads_pause_resume_and_list(api: respx.MockRouter, client: pushq.Client) -> None:
    api.get("/v1/flow-keys/a%2Fb").respond(200, json={**KEY_LIVE, "key": "a/b"})
    pause = api.post("/v1/flow-keys/acme/pause").respond(200, json={**KEY_LIVE, "paused": True})
    api.post("/v1/flow-keys/acme/resume").respond(200, json=KEY_LIVE)
    api.get("/v1/flow-keys").respond(200, json={"flow_keys": [KEY_LIVE]})
    assert client.flow_keys.get("a/b").key == "a/b"  # escaped in the path
    assert client.flow_keys.pause("acme").paused and pause.call_count == 1
    assert not client.flow_keys.resume("acme").paused
    assert [k.waiting for k in client.flow_keys.list()] == [4]


# -- topics ------------------------------------------------------------------------------


def test_topic_set_takes_urls_endpoints_and_dicts(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    route = api.put("/v1/topics/orders").respond(200, json=TOPIC)
    topic = client.topics.set(
        "orders",
        [
            "http://a.test/h",
            pushq.TopicEndpoint("http://b.test/h", name="b", headers={"X-T": "1"}),
            {"url": "http://c.test/h", "name": None},
        ],
    )
    assert sent_json(route) == {
        "endpoints": [
            {"url": "http://a.test/h"},
            {"url": "http://b.test/h", "name": "b", "headers": {"X-T": "1"}},
            {"url": "http://c.test/h"},
        ]
    }
    assert topic.endpoints == (
        pushq.TopicEndpoint("http://a.test/h"),
        pushq.TopicEndpoint("http://b.test/h", "b"),
    )
    assert topic.updated_at is not None and topic.updated_at.minute == 30


def test_publish_sends_job_fields_without_a_url_and_always_a_key(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    reply = {"jobs": [job(topic="orders"), job(id="J2", topic="orders")]}
    route = api.post("/v1/topics/orders/publish").respond(201, json=reply)
    jobs = client.topics.publish("orders", {"n": 1}, delay="5m", tags=["t"], flow_key="acme")
    body = sent_json(route)
    assert "url" not in body and body["body"] == {"n": 1} and body["delay"] == "5m"
    assert body["tags"] == ["t"] and body["flow_key"] == "acme" and body["idempotency_key"]
    assert [j.id for j in jobs] == ["J1", "J2"] and {j.topic for j in jobs} == {"orders"}
    client.topics.publish("orders", idempotency_key="mine")
    assert sent_json(route) == {"idempotency_key": "mine"}


def test_a_retried_publish_keeps_its_idempotency_key(api: respx.MockRouter) -> None:
    route = api.post("/v1/topics/orders/publish").mock(
        side_effect=[httpx.ConnectError("reset"), httpx.Response(201, json={"jobs": [job()]})]
    )
    with pushq.Client(BASE, token="t", retry=RetryPolicy(attempts=2, wait_base=0.001)) as c:
        c.topics.publish("orders", {"n": 1})
    keys = {json.loads(call.request.content)["idempotency_key"] for call in route.calls}
    assert route.call_count == 2 and len(keys) == 1


def test_topic_get_delete_and_list(api: respx.MockRouter, client: pushq.Client) -> None:
    api.get("/v1/topics/orders").respond(200, json=TOPIC)
    gone = api.delete("/v1/topics/orders").respond(204)
    api.get("/v1/topics").respond(200, json={"topics": [TOPIC]})
    assert client.topics.get("orders").name == "orders"
    assert client.topics.delete("orders") is None and gone.call_count == 1
    assert [t.name for t in client.topics.list()] == ["orders"]


# -- endpoints ---------------------------------------------------------------------------


def test_endpoints_are_typed_and_an_origin_is_escaped(
    api: respx.MockRouter, client: pushq.Client
) -> None:
    one = api.get(url__startswith=f"{BASE}/v1/endpoints/").respond(200, json=ENDPOINT)
    api.get("/v1/endpoints").respond(200, json={"endpoints": [ENDPOINT]})
    health = client.endpoints.get("http://a.test:80")
    assert one.calls.last.request.url.raw_path == b"/v1/endpoints/http%3A%2F%2Fa.test%3A80"
    assert health.state == "open" and health.consecutive_failures == 9
    assert health.last_error is not None and health.last_error.status == 503
    assert health.open_until is not None and health.held_until is None
    assert [e.origin for e in client.endpoints.list()] == ["http://a.test:80"]


def test_queue_key_limits_round_trip(api: respx.MockRouter, client: pushq.Client) -> None:
    queue = {"name": "q", "key_concurrency": 1, "key_rate_limit": "2/s", "stats": {}}
    route = api.put("/v1/queues/q").respond(200, json=queue)
    shown = client.queues.update("q", key_concurrency=1, key_rate_limit="2/s")
    assert sent_json(route) == {"key_concurrency": 1, "key_rate_limit": "2/s"}
    assert (shown.key_concurrency, shown.key_rate_limit) == (1, "2/s")


def test_the_async_namespaces_send_the_same_requests(api: respx.MockRouter) -> None:
    put = api.put("/v1/flow-keys/acme").respond(200, json=KEY_LIVE)
    publish = api.post("/v1/topics/orders/publish").respond(201, json={"jobs": [job()]})
    api.get("/v1/endpoints").respond(200, json={"endpoints": [ENDPOINT]})

    async def scenario() -> None:
        async with pushq.AsyncClient(BASE, token="t", retry=ONCE) as c:
            assert (await c.flow_keys.update("acme", concurrency=None)).key == "acme"
            assert len(await c.topics.publish("orders", [1, 2])) == 1
            assert (await c.endpoints.list())[0].state == "open"

    asyncio.run(scenario())
    assert sent_json(put) == {"concurrency": None}
    assert sent_json(publish)["body"] == [1, 2]


# -- answers that are not pushq's --------------------------------------------------------


def test_an_html_error_page_reads_as_one_line(api: respx.MockRouter, client: pushq.Client) -> None:
    page = "<html>\n  <head><title>404 Not Found</title></head>\n  <body>nope</body>\n</html>\n"
    api.get("/v1/jobs").respond(404, text=page)
    with pytest.raises(pushq.NotFound) as raised:
        client.list()
    assert raised.value.code == "http_404" and "\n" not in raised.value.message
    assert raised.value.message.startswith("HTTP 404: <html> <head><title>404 Not Found")


def test_a_url_that_is_not_http_is_a_config_error() -> None:
    with pushq.Client("ftp://pushq.test", token="t", retry=ONCE) as c:
        with pytest.raises(pushq.ConfigError, match="use http:// or https://"):
            c.get("X")


# -- the token ---------------------------------------------------------------------------


def test_find_token_prefers_the_env_then_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / TOKEN_FILE).write_text("  from-file \n")
    monkeypatch.setenv("PUSHQ_API_TOKEN", "from-env")
    assert find_token(tmp_path) == "from-env"
    monkeypatch.delenv("PUSHQ_API_TOKEN")
    assert find_token(tmp_path) == "from-file"
    monkeypatch.setenv("PUSHQ_DATA_DIR", str(tmp_path))
    assert find_token() == "from-file"
    (tmp_path / TOKEN_FILE).write_text("\n")
    with pytest.raises(pushq.TokenNotFound, match="PUSHQ_API_TOKEN is not set"):
        find_token()


def test_the_token_file_is_the_one_pushq_serve_writes() -> None:
    pytest.importorskip("starlette")  # the server is installed in the test env
    from pushq.server.config import TOKEN_FILE as SERVER_TOKEN_FILE

    assert TOKEN_FILE == SERVER_TOKEN_FILE


def test_a_client_without_a_token_sends_nothing_but_job_token_calls_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUSHQ_API_TOKEN", raising=False)
    monkeypatch.setenv("PUSHQ_DATA_DIR", str(tmp_path))
    seen: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=job(state="active"))

    with pushq.Client(BASE, transport=httpx.MockTransport(app), retry=ONCE) as c:
        with pytest.raises(pushq.TokenNotFound) as raised:
            c.get("J1")
        assert str(tmp_path / TOKEN_FILE) in str(raised.value) and seen == []
        c.progress("J1", percent=10, job_token="jt")  # a worker's call: its own token
    assert [r.headers["authorization"] for r in seen] == ["Bearer jt"]


# -- task arguments, checked before anything is sent -------------------------------------


def unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request should be sent, got {request.method} {request.url}")


@pytest.fixture
def router() -> TaskRouter:
    client = pushq.Client(BASE, token="t", transport=httpx.MockTransport(unreachable))
    return TaskRouter(secret=TEST_SECRET, base_url="http://w.test/tasks", client=client)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "task send: missing a required argument: 'to'"),
        ((5,), {}, "task send: argument to: expected str, got int"),
        (("a", "2"), {}, "task send: argument count: expected int, got str"),
        (("a", True), {}, "task send: argument count: expected int, got bool"),
        (("a", 1, 2), {}, "task send: too many positional arguments"),
        (("a",), {"mode": "loud"}, "task send: argument mode: expected one of ['plain', 'html']"),
        (("a",), {"cc": ["x", 3]}, "task send: argument cc: [1]: expected str, got int"),
        (("a",), {"meta": {"k": "v"}}, "task send: argument meta: ['k']: expected int, got str"),
        (("a",), {"meta": 3}, "task send: argument meta: expected dict[str, int] | None, got int"),
        (("a",), {"nope": 1}, "task send: got an unexpected keyword argument 'nope'"),
        (("a",), {"weight": "x"}, "task send: argument weight: expected float, got str"),
    ],
)
def test_enqueue_checks_arguments_against_the_function(
    router: TaskRouter, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    @router.task
    def send(
        ctx: JobContext,
        to: str,
        count: int = 1,
        *,
        mode: Literal["plain", "html"] = "plain",
        cc: list[str] | None = None,
        meta: dict[str, int] | None = None,
        weight: float = 1.0,
    ) -> None: ...

    with pytest.raises(pushq.TaskArgumentError) as raised:
        send.enqueue(*args, **kwargs)
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, TypeError)  # what a wrong call raises in Python


def test_arguments_that_fit_are_sent_and_json_is_required(router: TaskRouter) -> None:
    sent: list[Any] = []

    def app(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["body"])
        return httpx.Response(201, json=job())

    router._client = pushq.Client(BASE, token="t", transport=httpx.MockTransport(app))

    @router.task
    def resize(image: str, width: float, *sizes: int, **options: bool) -> None: ...

    resize.enqueue("cat.png", 640, 1, 2, crop=True)
    assert sent == [{"args": ["cat.png", 640, 1, 2], "kwargs": {"crop": True}}]
    with pytest.raises(pushq.TaskArgumentError, match="argument sizes\\[1\\]: expected int"):
        resize.enqueue("cat.png", 1.5, 1, "2")

    @router.task
    def store(blob: Any) -> None: ...

    with pytest.raises(pushq.TaskArgumentError, match="arguments are not JSON"):
        store.enqueue(object())


def test_typing_false_skips_the_check_and_aenqueue_checks_too(router: TaskRouter) -> None:
    @router.task(typing=False)
    def loose(n: int) -> None: ...

    @router.task
    def strict(n: int) -> None: ...

    with pytest.raises(AssertionError, match="no request should be sent"):
        loose.enqueue("not an int")  # no check: it went as far as the (fake) network
    with pytest.raises(AssertionError, match="no request should be sent"):
        loose.options(priority=1).enqueue("still unchecked")
    router._async_client = pushq.AsyncClient(BASE, token="t")
    with pytest.raises(pushq.TaskArgumentError, match="argument n: expected int"):
        asyncio.run(strict.aenqueue("x"))


def test_the_async_client_maps_a_bad_scheme_and_a_missing_token_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUSHQ_API_TOKEN", raising=False)
    monkeypatch.setenv("PUSHQ_DATA_DIR", str(tmp_path))

    async def scenario() -> None:
        async with pushq.AsyncClient("ftp://pushq.test", token="t", retry=ONCE) as c:
            with pytest.raises(pushq.ConfigError, match="use http:// or https://"):
                await c.get("X")
        async with pushq.AsyncClient(BASE, retry=ONCE) as c:
            with pytest.raises(pushq.TokenNotFound, match="PUSHQ_API_TOKEN is not set"):
                await c.topics.list()

    asyncio.run(scenario())
