"""Hostile clients against a real `pushq serve` (issue 16, part 5): idle and slow
connections are closed, header floods refused, connections capped."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from ..harness import PushqProcess, wait_until

StartPushq = Callable[..., PushqProcess]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushqProcess]:
    server = PushqProcess(
        tmp_path_factory.mktemp("limits"),
        {
            "PUSHQ_HEADER_TIMEOUT": "1s",
            "PUSHQ_BODY_TIMEOUT": "2s",
            "PUSHQ_MAX_CONNECTIONS": "40",
        },
    )
    server.start()
    yield server
    server.close()


def _connect(server: PushqProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a test timeout
    of 30 s per read fails the test if it never does)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def test_a_connection_that_never_sends_a_byte_is_closed(guarded: PushqProcess) -> None:
    with _connect(guarded) as sock:
        assert _read_until_closed(sock) == b""


def test_headers_sent_a_byte_at_a_time_are_cut_off(guarded: PushqProcess) -> None:
    """Slowloris: each byte arrives before any idle timer would fire, yet the whole
    request never does."""
    request = b"GET /health HTTP/1.1\r\nhost: x\r\n" + b"x-pad: y\r\n" * 1000
    with _connect(guarded) as sock:
        closed = False
        for byte in request:
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
        assert closed, "the server kept reading a request that never ended"


def test_a_body_that_never_ends_is_cut_off(guarded: PushqProcess) -> None:
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer test\r\ncontent-length: 1000\r\n\r\n{"
    )
    with _connect(guarded) as sock:
        sock.sendall(head)
        _read_until_closed(sock)  # returns once the server closes it


def test_100000_request_headers_are_refused(guarded: PushqProcess) -> None:
    request = b"GET /health HTTP/1.1\r\nhost: x\r\n" + b"x-a: b\r\n" * 100_000 + b"\r\n"
    with _connect(guarded) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the flood was sent
        answer = _read_until_closed(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    # 101 short headers: over the count, under the size
    request = b"GET /health HTTP/1.1\r\nhost: x\r\n" + b"x-a: b\r\n" * 101 + b"\r\n"
    with _connect(guarded) as sock:
        sock.sendall(request)
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 431")
    # one huge header value
    request = b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"v" * 200_000 + b"\r\n\r\n"
    with _connect(guarded) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_until_closed(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert guarded.client.get("/health").status_code == 200


def test_ordinary_requests_and_keep_alive_still_work(guarded: PushqProcess) -> None:
    with httpx.Client(base_url=guarded.base_url) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
        time.sleep(1.5)  # longer than the header timeout, shorter than keep-alive
        assert client.get("/health").status_code == 200
    many = {f"x-h{i}": "v" for i in range(60)}
    assert httpx.get(guarded.base_url + "/health", headers=many).status_code == 200


def test_connections_over_the_cap_are_refused_then_served_again(
    start_pushq: StartPushq,
) -> None:
    server = start_pushq(PUSHQ_MAX_CONNECTIONS="20", PUSHQ_HEADER_TIMEOUT="60s")
    idle = [_connect(server) for _ in range(20)]
    try:
        # wait until the server has accepted them all, then one more is refused
        def refused() -> bytes:
            with _connect(server) as extra:
                return _read_until_closed(extra)

        answer = wait_until(refused, timeout=30)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"retry-after" in answer.lower()
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: _health(server) == 200, timeout=30)
    assert server.log().count("connection limit of 20 reached") == 1


def _health(server: PushqProcess) -> int:
    try:
        return httpx.get(server.base_url + "/health", timeout=5).status_code
    except httpx.TransportError:
        return 0
