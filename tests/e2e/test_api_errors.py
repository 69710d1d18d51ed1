"""Bad input gets a clear 4xx JSON error, never a 5xx; auth guards every /v1 route."""

from __future__ import annotations

import httpx
import pytest

from ..harness import PushqProcess

GOOD = {"url": "http://127.0.0.1:9/work"}


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return str(error["message"])


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({}, "url"),
        ({"url": 5}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "http://exa mple.com/"}, "url"),
        ({"url": "http://example.com:99999/"}, "url"),
        ({"url": "http://example.com/" + "a" * 3000}, "url"),
        (GOOD | {"queue": "a/b"}, "queue"),
        (GOOD | {"queue": "q" * 65}, "queue"),
        (GOOD | {"queue": ""}, "queue"),
        (GOOD | {"delay": -1}, "delay"),
        (GOOD | {"delay": "soon"}, "delay"),
        (GOOD | {"delay": True}, "delay"),
        (GOOD | {"run_at": "tomorrow"}, "run_at"),
        (GOOD | {"run_at": "2030-01-01T00:00:00"}, "run_at"),
        (GOOD | {"delay": 5, "run_at": "2030-01-01T00:00:00Z"}, "delay or run_at"),
        (GOOD | {"priority": "high"}, "priority"),
        (GOOD | {"priority": 1.5}, "priority"),
        (GOOD | {"max_attempts": 0}, "max_attempts"),
        (GOOD | {"max_attempts": "3"}, "max_attempts"),
        (GOOD | {"timeout": 0}, "timeout"),
        (GOOD | {"timeout": "1y"}, "timeout"),
        (GOOD | {"backoff": {"base": -1}}, "backoff.base"),
        (GOOD | {"backoff": "fast"}, "backoff"),
        (GOOD | {"headers": ["x"]}, "headers"),
        (GOOD | {"headers": {"X-A": 1}}, "headers.X-A"),
        (GOOD | {"headers": {"X-A": "a\r\nInjected: yes"}}, "headers"),
        (GOOD | {"headers": {"Bad Name": "x"}}, "headers"),
        (GOOD | {"headers": {"webhook-signature": "v1,forged"}}, "headers"),
        (GOOD | {"headers": {"Pushq-Attempt": "9"}}, "headers"),
        (GOOD | {"headers": {"Transfer-Encoding": "chunked"}}, "headers"),
        (GOOD | {"method": "TRACE"}, "method"),
        (GOOD | {"idempotency_key": ""}, "idempotency_key"),
        (GOOD | {"idempotency_key": "k" * 300}, "idempotency_key"),
        (GOOD | {"delay_seconds": 5}, "delay_seconds"),
    ],
)
def test_invalid_job_fields(pushq: PushqProcess, job: dict[str, object], field: str) -> None:
    message = error_of(pushq.client.post("/v1/jobs", json=job), 400)
    assert field in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"a string"', "JSON object"),
        (b"null", "JSON object"),
        (b'{"url": NaN}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_bodies(pushq: PushqProcess, content: bytes, fragment: str) -> None:
    response = pushq.client.post("/v1/jobs", content=content)
    assert fragment in error_of(response, 400)


def test_oversized_bodies_get_413(pushq: PushqProcess) -> None:
    big = "x" * (1024 * 1024 + 10)
    response = pushq.client.post("/v1/jobs", json=GOOD | {"body": big})
    error_of(response, 413)
    # a request body far over the limit is refused without being read whole
    response = pushq.client.post("/v1/jobs", content=b"{" + b" " * (3 * 1024 * 1024) + b"}")
    error_of(response, 413)
    # in a batch, one oversized job fails the batch with 413 naming it
    batch = {"jobs": [GOOD, GOOD | {"body": big}]}
    assert "jobs[1]" in error_of(pushq.client.post("/v1/jobs/batch", json=batch), 413)


@pytest.mark.parametrize(
    "batch",
    [{}, {"jobs": []}, {"jobs": "x"}, {"jobs": [1]}, {"jobs": [GOOD], "extra": 1}],
)
def test_invalid_batches(pushq: PushqProcess, batch: dict[str, object]) -> None:
    error_of(pushq.client.post("/v1/jobs/batch", json=batch), 400)


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "abc"},
        {"limit": "100000"},
        {"state": "exploded"},
        {"queue": "bad/queue"},
        {"cursor": "!!!"},
        {"cursor": "bm90IGpzb24"},
    ],
)
def test_invalid_list_queries(pushq: PushqProcess, query: dict[str, str]) -> None:
    error_of(pushq.client.get("/v1/jobs", params=query), 400)
    if "state" not in query:
        error_of(pushq.client.get("/v1/dlq", params=query), 400)


def test_unknown_ids_and_routes(pushq: PushqProcess) -> None:
    for method, path in [
        ("GET", "/v1/jobs/nope"),
        ("GET", "/v1/jobs/nope/attempts"),
        ("POST", "/v1/jobs/nope/cancel"),
        ("GET", "/v1/dlq/nope"),
        ("POST", "/v1/dlq/nope/retry"),
        ("DELETE", "/v1/dlq/nope"),
        ("GET", "/v1/nothing-here"),
    ]:
        error_of(pushq.client.request(method, path), 404)
    error_of(pushq.client.delete("/v1/jobs"), 405)


def test_idempotency_header_wins_over_the_field(pushq: PushqProcess) -> None:
    # No schema can relate a header to a body field, so both are checked on their own
    # and the header wins.
    response = pushq.client.post(
        "/v1/jobs", json=GOOD | {"idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["idempotency_key"] == "b"
    response = pushq.client.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "x" * 300})
    assert "Idempotency-Key" in error_of(response, 400)
    response = pushq.client.post(
        "/v1/jobs", json=GOOD | {"idempotency_key": ""}, headers={"Idempotency-Key": "c"}
    )
    assert "idempotency_key" in error_of(response, 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/jobs"),
        ("POST", "/v1/jobs/batch"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/x"),
        ("GET", "/v1/jobs/x/attempts"),
        ("POST", "/v1/jobs/x/cancel"),
        ("GET", "/v1/dlq"),
        ("GET", "/v1/dlq/x"),
        ("POST", "/v1/dlq/x/retry"),
        ("POST", "/v1/dlq/retry"),
        ("DELETE", "/v1/dlq/x"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz"]
)
def test_every_v1_route_needs_the_token(
    pushq: PushqProcess, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = httpx.request(method, pushq.base_url + path, headers=headers, json=GOOD)
    assert error_of(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_open_routes_need_no_token(pushq: PushqProcess) -> None:
    for path in ("/health", "/metrics", "/openapi.json"):
        assert httpx.get(pushq.base_url + path).status_code == 200
