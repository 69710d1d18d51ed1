"""pushq.server.delivery: the signed request, the response table, and the httpx sender."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from pushq.policy.backoff import BackoffPolicy
from pushq.server.delivery import (
    RESPONSE_CAP,
    AiohttpSender,
    DeliveryFailed,
    DeliveryRequest,
    DeliveryResponse,
    HttpxSender,
    Outcome,
    build_request,
    classify,
)
from pushq.server.http_sender import LeanSender
from pushq.server.models import JobRecord
from pushq.signing import generate_secret, make_job_token, secret_key
from pushq.version import __version__

NOW = 1_700_000_000.0
SECRET_A = generate_secret()
SECRET_B = generate_secret()
TOKEN_KEY = b"t" * 32


def make_job(**overrides: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "id": "01HZX3Q9J5W8F6ZK2M4N7P0RST",
        "queue": "emails",
        "url": "https://worker.example/hook",
        "method": "POST",
        "headers": {},
        "body": b'{"to":"a@example.com"}',
        "state": "active",
        "priority": 0,
        "attempts": 3,
        "max_attempts": 13,
        "backoff": BackoffPolicy(),
        "timeout": 30.0,
        "created_at": NOW - 100,
        "run_at": NOW - 10,
        "lease": "lease-abc",
    }
    fields.update(overrides)
    return JobRecord(**fields)


# -- classify -------------------------------------------------------------------------


def _response(status: int, **headers: str) -> DeliveryResponse:
    return DeliveryResponse(status, {k.replace("_", "-"): v for k, v in headers.items()}, b"")


def _classify(response: DeliveryResponse | DeliveryFailed, cap: float = 86400.0) -> Outcome:
    return classify(response, now=NOW, retry_after_cap=cap)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_classify_2xx_succeeds(status: int) -> None:
    outcome = _classify(_response(status))
    assert outcome.verdict == "succeeded"
    assert outcome.status == status
    assert outcome.failure_class is None


@pytest.mark.parametrize("value", ["true", "True", " TRUE "])
def test_classify_202_with_pushq_async_waits_for_completion(value: str) -> None:
    outcome = _classify(_response(202, pushq_async=value))
    assert outcome.verdict == "async"
    assert outcome.status == 202


@pytest.mark.parametrize("headers", [{}, {"pushq_async": "false"}, {"pushq_async": "yes"}])
def test_classify_202_without_pushq_async_succeeds(headers: dict[str, str]) -> None:
    assert _classify(_response(202, **headers)).verdict == "succeeded"


@pytest.mark.parametrize("status", [200, 204])
def test_classify_pushq_async_only_counts_on_202(status: int) -> None:
    assert _classify(_response(status, pushq_async="true")).verdict == "succeeded"


@pytest.mark.parametrize(
    ("status", "failure_class"),
    [(404, "4xx"), (429, "4xx"), (500, "5xx"), (503, "5xx"), (302, "3xx"), (199, "other")],
)
def test_classify_retries_a_failure_and_labels_its_class(status: int, failure_class: str) -> None:
    # the response table itself is pushq.policy.classify's (tests/policy/test_classify.py)
    outcome = _classify(_response(status, retry_after="60"))
    assert outcome == Outcome("retry", status, f"HTTP {status}", 60.0, failure_class)


def test_classify_passes_the_jobs_permanent_statuses_on() -> None:
    response = _response(422, retry_after="60")
    assert _classify(response).verdict == "retry"
    killed = classify(response, now=NOW, retry_after_cap=86400.0, permanent_statuses=(422,))
    assert killed == Outcome("dead", 422, "HTTP 422 (permanent)", None, "4xx")


def test_classify_410_and_pushq_retry_false_are_permanent() -> None:
    assert _classify(_response(410)) == Outcome("dead", 410, "HTTP 410 (permanent)", None, "4xx")
    refused = _classify(_response(500, pushq_retry="false"))
    assert refused == Outcome("dead", 500, "HTTP 500 with pushq-retry: false", None, "5xx")


@pytest.mark.parametrize("kind", ["timeout", "connection"])
def test_classify_no_response_is_retried(kind: Any) -> None:
    outcome = _classify(DeliveryFailed(kind, f"{kind} happened"))
    assert outcome == Outcome("retry", None, f"{kind} happened", None, kind)


# -- build_request --------------------------------------------------------------------


def _headers(request: DeliveryRequest) -> dict[str, str]:
    names = [name.lower() for name, _ in request.headers]
    assert len(names) == len(set(names)), f"a header is repeated: {names}"
    return {name.lower(): value for name, value in request.headers}


def test_build_request_sets_every_pushq_header() -> None:
    job = make_job(headers={"X-Tenant": "acme", "Authorization": "Bearer worker-secret"})
    keys = [secret_key(SECRET_A)]
    request = build_request(job, now=NOW + 0.75, signing_keys=keys, token_key=TOKEN_KEY)
    headers = _headers(request)
    assert request.method == "POST"
    assert request.url == job.url
    assert request.body == job.body
    assert request.timeout == job.timeout
    assert headers["webhook-id"] == job.id
    assert headers["webhook-timestamp"] == str(int(NOW))
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert headers["pushq-attempt"] == "3"
    assert headers["pushq-max-attempts"] == "13"
    assert headers["pushq-queue"] == "emails"
    assert headers["pushq-job-token"] == make_job_token(TOKEN_KEY, job.id, 3, "lease-abc")
    assert headers["user-agent"] == f"pushq/{__version__}"
    assert headers["content-type"] == "application/json"
    assert headers["x-tenant"] == "acme"
    assert headers["authorization"] == "Bearer worker-secret"


def test_build_request_signs_once_per_key_and_each_verifies() -> None:
    job = make_job()
    now = time.time()
    keys = [secret_key(SECRET_A), secret_key(SECRET_B)]
    request = build_request(job, now=now, signing_keys=keys, token_key=TOKEN_KEY)
    headers = _headers(request)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (SECRET_A, SECRET_B):
        assert Webhook(secret).verify(request.body, headers) == {"to": "a@example.com"}


def test_build_request_without_body_sends_no_content_type() -> None:
    job = make_job(body=None, method="GET")
    request = build_request(job, now=NOW, signing_keys=[secret_key(SECRET_A)], token_key=TOKEN_KEY)
    headers = _headers(request)
    assert request.body == b""
    assert request.method == "GET"
    assert "content-type" not in headers
    assert headers["webhook-signature"].startswith("v1,")


def test_build_request_keeps_the_jobs_own_content_type() -> None:
    job = make_job(headers={"Content-Type": "application/vnd.acme+json"})
    request = build_request(job, now=NOW, signing_keys=[secret_key(SECRET_A)], token_key=TOKEN_KEY)
    assert _headers(request)["content-type"] == "application/vnd.acme+json"


def test_build_request_webhook_id_is_the_same_on_every_attempt() -> None:
    keys = [secret_key(SECRET_A)]
    first = build_request(make_job(attempts=1), now=NOW, signing_keys=keys, token_key=TOKEN_KEY)
    later = build_request(
        make_job(attempts=2, lease="lease-def"),
        now=NOW + 60,
        signing_keys=keys,
        token_key=TOKEN_KEY,
    )
    a, b = _headers(first), _headers(later)
    assert a["webhook-id"] == b["webhook-id"]
    assert (a["pushq-attempt"], b["pushq-attempt"]) == ("1", "2")
    assert a["pushq-job-token"] != b["pushq-job-token"]
    assert a["webhook-timestamp"] != b["webhook-timestamp"]


# -- the senders against a real server --------------------------------------------------

SLOW_SECONDS = 1.0
BIG_BODY = b"x" * (200 * 1024)


async def _redirect(request: Request) -> Response:
    return RedirectResponse("/ok", status_code=302)


async def _ok(request: Request) -> Response:
    body = await request.body()
    return PlainTextResponse(
        f"{request.method} {len(body)} {request.headers.get('x-echo', '')}",
        headers={"retry-after": "7", "X-Mixed-Case": "yes"},
    )


async def _big(request: Request) -> Response:
    return Response(BIG_BODY, media_type="application/octet-stream")


async def _slow(request: Request) -> Response:
    await asyncio.sleep(SLOW_SECONDS)
    return PlainTextResponse("late")


def _worker_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/redirect", _redirect, methods=["POST"]),
            Route("/ok", _ok, methods=["GET", "POST"]),
            Route("/big", _big, methods=["POST"]),
            Route("/slow", _slow, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def worker_url() -> Iterator[str]:
    """A real HTTP server on a free loopback port, run by uvicorn in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        _worker_app(),
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert thread.is_alive(), "the test server did not start"
        assert time.monotonic() < deadline, "the test server did not start in 5 s"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


SenderClass = LeanSender | AiohttpSender | HttpxSender


@pytest.fixture(params=[LeanSender, AiohttpSender, HttpxSender], ids=["lean", "aiohttp", "httpx"])
def sender_class(request: pytest.FixtureRequest) -> type[SenderClass]:
    """Every sender test runs against every sender."""
    return request.param  # type: ignore[no-any-return]


def _send(request: DeliveryRequest, sender_class: type[SenderClass]) -> DeliveryResponse:
    async def main() -> DeliveryResponse:
        sender = sender_class()
        try:
            return await sender.send(request)
        finally:
            await sender.aclose()

    return asyncio.run(main())


def _request(url: str, *, timeout: float = 5.0, body: bytes = b"{}") -> DeliveryRequest:
    return DeliveryRequest("POST", url, [("x-echo", "hello")], body, timeout)


def test_sender_returns_the_response(worker_url: str, sender_class: type[SenderClass]) -> None:
    response = _send(_request(f"{worker_url}/ok", body=b'{"a":1}'), sender_class)
    assert response.status == 200
    assert response.body == b"POST 7 hello"
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-mixed-case"] == "yes"  # names are lower-cased


def test_sender_does_not_follow_redirects(worker_url: str, sender_class: type[SenderClass]) -> None:
    response = _send(_request(f"{worker_url}/redirect"), sender_class)
    assert response.status == 302
    assert response.headers["location"] == "/ok"
    assert _classify(response).verdict == "retry"


def test_sender_caps_the_response_body(worker_url: str, sender_class: type[SenderClass]) -> None:
    response = _send(_request(f"{worker_url}/big"), sender_class)
    assert response.status == 200
    assert len(response.body) == RESPONSE_CAP == 65536
    assert response.body == BIG_BODY[:RESPONSE_CAP]


def test_sender_times_out(worker_url: str, sender_class: type[SenderClass]) -> None:
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failure:
        _send(_request(f"{worker_url}/slow", timeout=0.2), sender_class)
    assert failure.value.kind == "timeout"
    assert time.monotonic() - started < SLOW_SECONDS
    assert _classify(failure.value) == replace(
        Outcome("retry", None, failure.value.message), failure_class="timeout"
    )


def test_sender_reports_a_closed_port_as_a_connection_failure(
    sender_class: type[SenderClass],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(DeliveryFailed) as failure:
            _send(_request(f"http://127.0.0.1:{port}/hook", timeout=2.0), sender_class)
    assert failure.value.kind == "connection"
    assert failure.value.message


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://127.0.0.1:9/a\tb", []),  # a URL httpx refuses to send
        ("http://127.0.0.1:9/hook", [("x-name", "Jos\u00e9")]),  # a header value httpx can't encode
    ],
)
def test_sender_turns_an_unsendable_request_into_delivery_failed(
    url: str, headers: list[tuple[str, str]], sender_class: type[SenderClass]
) -> None:
    # Sender.send's contract: no response -> DeliveryFailed. Anything else escapes the
    # dispatcher's attempt task and leaves the job leased until the rescuer finds it.
    with pytest.raises(DeliveryFailed) as failure:
        _send(DeliveryRequest("POST", url, headers, b"", 1.0), sender_class)
    assert failure.value.kind == "connection"
