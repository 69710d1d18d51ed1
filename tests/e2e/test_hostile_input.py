"""Issue 16, part 1 (API): hostile input a probe sent to a real server, each case as it
was found. Bad input is a 400 naming the field, never a 500 or a crash loop; a 500 that
still happens answers with the JSON error and keeps the client's connection."""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from pushq.server.app import create_app
from pushq.server.config import Settings
from pushq.server.metrics import Metrics
from pushq.server.store.sqlite import SQLiteStore

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess, Worker

HUGE_RATE = "2" + "0" * 400 + "/s"  # a count past float range


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class KeepAlive:
    """One raw HTTP/1.1 connection: proves that answers come back on the same socket."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buffer = b""

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: pushq\r\nauthorization: Bearer {TEST_TOKEN}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head_bytes, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        assert headers.get("connection") != "close", lines
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._read()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), payload

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError("the server closed the keep-alive connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def test_a_rate_limit_past_float_range_is_a_400_and_deliveries_go_on(
    pushq: PushqProcess, worker: Worker
) -> None:
    # It was accepted; the next claim raised OverflowError in the token bucket, the
    # dispatcher died and the process crashed again on every restart.
    queue = unique("huge-rate")
    response = pushq.client.put(f"/v1/queues/{queue}", json={"rate_limit": HUGE_RATE})
    assert response.status_code == 400, response.text
    assert "rate_limit" in response.json()["error"]["message"]
    too_many = pushq.client.put(f"/v1/queues/{queue}", json={"rate_limit": "1000001/s"})
    assert too_many.status_code == 400, too_many.text
    assert pushq.client.put(f"/v1/queues/{queue}", json={"rate_limit": "1000000/s"}).is_success
    path = unique("after-huge-rate")
    pushq.enqueue(url=worker.url(path), queue=queue)
    worker.wait_for(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_size", 9223372036854775808),  # past SQLite's INTEGER: a 500 with a traceback
        ("max_size", 1_000_000_001),
        ("concurrency", 100_001),
        ("max_attempts", 1001),
        ("timeout", "2h"),
        ("timeout", 3600.5),
        ("priority", 6),
    ],
)
def test_queue_settings_past_their_bounds_are_400s(
    pushq: PushqProcess, field: str, value: object
) -> None:
    response = pushq.client.put(f"/v1/queues/{unique('bounds')}", json={field: value})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


def nested_cursor(depth: int = 5000) -> str:
    return base64.urlsafe_b64encode(b"[" * depth).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/dlq"])
def test_a_cursor_of_5000_nested_brackets_is_a_400(pushq: PushqProcess, path: str) -> None:
    # json.loads hit the recursion limit: RecursionError, a 500 with a traceback.
    response = pushq.client.get(path, params={"cursor": nested_cursor()})
    assert response.status_code == 400, response.text
    assert "cursor" in response.json()["error"]["message"]
    assert "Traceback" not in pushq.log()


def test_cursors_still_page_through_jobs_and_the_dlq(pushq: PushqProcess) -> None:
    queue = unique("pages")
    ids = {pushq.enqueue(url="http://127.0.0.1:9/", queue=queue, delay="1h")["id"] for _ in "abc"}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"queue": queue, "limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = pushq.client.get("/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 3


def test_bad_requests_keep_the_connection(pushq: PushqProcess) -> None:
    connection = KeepAlive(pushq.base_url)
    try:
        queue = unique("keep")
        answers = [
            connection.request("GET", f"/v1/jobs?cursor={nested_cursor()}")[0],
            connection.request("PUT", f"/v1/queues/{queue}", b'{"max_size": 9223372036854775808}')[
                0
            ],
            connection.request(
                "PUT", f"/v1/queues/{queue}", b'{"rate_limit": "%s"}' % HUGE_RATE.encode()
            )[0],
            connection.request("DELETE", "/v1/jobs")[0],
            connection.request("GET", "/v1/queues")[0],
        ]
    finally:
        connection.close()
    assert answers == [400, 400, 400, 405, 200]


@pytest.fixture(scope="module")
def broken_api(serve_asgi: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """pushq's app on a real uvicorn server over a store that was never opened: every
    route that reads it fails with an unexpected exception."""

    class Idle:
        def notify(self, run_at: float | None = None) -> None:
            pass

    store = SQLiteStore(Path(tmp_path_factory.mktemp("broken")) / "never-opened.db")
    app = create_app(
        Settings(api_token=TEST_TOKEN, signing_secrets=(TEST_SECRET,)),
        store,
        dispatcher=Idle(),
        metrics=Metrics(),
    )
    return serve_asgi(app)


def test_a_500_answers_json_and_keeps_the_connection(broken_api: str) -> None:
    # Starlette's last-resort handler re-raised after answering, and uvicorn then closed
    # the client's keep-alive connection.
    connection = KeepAlive(broken_api)
    try:
        status, body = connection.request("GET", "/v1/queues")
        assert status == 500
        assert b'"internal_error"' in body
        status, body = connection.request("POST", "/v1/jobs", b'{"url": "http://127.0.0.1:9/"}')
        assert status == 500
        assert b'"internal_error"' in body
        status, _ = connection.request("GET", "/openapi.json")
        assert status == 200
    finally:
        connection.close()


def test_405_names_every_method_of_the_path(pushq: PushqProcess) -> None:
    # Starlette named only the methods of the first route declared for the path.
    cases = {
        "/v1/queues/q": "DELETE, GET, HEAD, PUT",
        "/v1/schedules/s": "DELETE, GET, HEAD, PUT",
        "/v1/dlq/x": "DELETE, GET, HEAD",
        "/v1/dlq/retry": "POST",
        "/v1/jobs/batch": "POST",
        "/v1/jobs": "GET, HEAD, POST",
    }
    for path, allow in cases.items():
        response = pushq.client.request("OPTIONS", path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == allow, path
