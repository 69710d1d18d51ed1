"""pushq.server.http_sender: the lean sender against real, misbehaving loopback servers.

Each server is a raw asyncio TCP server in the test's own event loop, written to
answer exactly the bytes a case needs (framing, keep-alive, limits, errors). Every
case runs on asyncio's loop and on uvloop (the one `pushq serve` uses)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from pushq.policy.targets import TargetPolicy
from pushq.server.delivery import DeliveryFailed, DeliveryRequest, DeliveryResponse
from pushq.server.http_sender import HEAD_COUNT_MAX, HEAD_LINE_MAX, LeanSender, _parse

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run[Any]:
    """asyncio.run on the parametrized event loop."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run_on_loop(main: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)

    return run_on_loop


class RawServer:
    """A loopback TCP server running `handler` per connection; counts connections
    (accepted, open now, most open at once) and keeps every request it read."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.accepted = 0
        self.open_now = 0
        self.peak_open = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body), or None at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def answering(server_answer: bytes | Callable[[bytes], bytes]) -> Callable[[RawServer], Handler]:
    """A keep-alive handler writing the same answer to every request on a connection."""

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (request := await server.read_request(reader)) is not None:
                answer = server_answer(request) if callable(server_answer) else server_answer
                writer.write(answer)
                await writer.drain()

        return handler

    return make


def serve(make: Callable[[RawServer], Handler], **kwargs: Any) -> RawServer:
    server = RawServer(lambda r, w: handler(r, w), **kwargs)
    handler = make(server)
    return server


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (polling) until `condition` holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def post(
    url: str,
    *,
    timeout: float = 5.0,
    body: bytes = b"hello",
    method: str = "POST",
    headers: list[tuple[str, str]] | None = None,
) -> DeliveryRequest:
    return DeliveryRequest(method, url, headers or [], body, timeout)


async def outcome(sender: LeanSender, request: DeliveryRequest) -> DeliveryResponse | str:
    """The response, or "kind: message" of the DeliveryFailed."""
    try:
        return await sender.send(request)
    except DeliveryFailed as failure:
        return f"{failure.kind}: {failure.message}"


# -- keep-alive and the pool ----------------------------------------------------------


def test_one_connection_serves_many_requests(run: Run[Any]) -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = LeanSender()
            for _ in range(20):
                response = await sender.send(post(server.url()))
                assert (response.status, response.body) == (200, b"ok")
            await sender.aclose()
            assert server.accepted == 1
            assert len(server.requests) == 20

    run(main())


def test_the_request_is_the_method_headers_and_body_as_given(run: Run[Any]) -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = LeanSender()
            headers = [("X-Mixed", "Case"), ("content-type", "application/json")]
            await sender.send(post(server.url("/p?q=1"), headers=headers, body=b'{"a":1}'))
            await sender.send(post(server.url("/g"), method="GET", body=b""))
            await sender.send(
                post(
                    server.url("/d"),
                    method="DELETE",
                    body=b"",
                    headers=[("Accept-Encoding", "identity")],
                )
            )
            await sender.aclose()
        host = f"127.0.0.1:{server.port}"
        assert server.requests == [
            f"POST /p?q=1 HTTP/1.1\r\nHost: {host}\r\nX-Mixed: Case\r\n"
            "content-type: application/json\r\naccept-encoding: gzip, deflate\r\n"
            'Content-Length: 7\r\n\r\n{"a":1}'.encode(),
            # no body: no Content-Length for a method that defines none
            f"GET /g HTTP/1.1\r\nHost: {host}\r\naccept-encoding: gzip, deflate\r\n\r\n".encode(),
            f"DELETE /d HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n\r\n".encode(),
        ]

    run(main())


def test_the_pool_never_opens_more_than_max_connections(run: Run[Any]) -> None:
    async def main() -> None:
        def make(server: RawServer) -> Handler:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                while await server.read_request(reader) is not None:
                    await asyncio.sleep(0.02)  # keeps requests overlapping
                    writer.write(OK)

            return handler

        async with serve(make) as server:
            sender = LeanSender(max_connections=3)
            responses = await asyncio.gather(*(sender.send(post(server.url())) for _ in range(30)))
            await sender.aclose()
        assert [r.status for r in responses] == [200] * 30
        assert server.peak_open <= 3
        assert server.accepted == 3  # the three are reused, none closed and reopened

    run(main())


def test_the_cap_is_global_across_origins(run: Run[Any]) -> None:
    async def main() -> None:
        a, b = serve(answering(OK)), serve(answering(OK))
        async with a, b:
            sender = LeanSender(max_connections=1)
            for server in (a, b, a, b):
                assert (await sender.send(post(server.url()))).status == 200
                # the evicted connection's close reaches its server
                await eventually(lambda: a.open_now + b.open_now <= 1)
            # concurrent requests to both origins still finish, one connection at a time
            requests = [post(s.url()) for s in (a, b) * 5]
            responses = await asyncio.gather(*(sender.send(r) for r in requests))
            await sender.aclose()
        assert [r.status for r in responses] == [200] * 10
        assert a.peak_open + b.peak_open <= 2 and max(a.peak_open, b.peak_open) == 1

    run(main())


def test_waiting_for_a_connection_counts_against_the_deadline(run: Run[Any]) -> None:
    async def main() -> None:
        def make(server: RawServer) -> Handler:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await server.read_request(reader)
                await asyncio.sleep(5)  # holds the only connection

            return handler

        async with serve(make) as server:
            sender = LeanSender(max_connections=1)
            first = asyncio.ensure_future(outcome(sender, post(server.url(), timeout=2)))
            await asyncio.sleep(0.05)
            second = await outcome(sender, post(server.url(), timeout=0.2))
            assert isinstance(second, str) and second.startswith("timeout: ")
            assert server.accepted == 1
            first.cancel()
            await sender.aclose()

    run(main())


def test_connection_close_is_not_reused(run: Run[Any]) -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def main() -> None:
        async with serve(answering(answer)) as server:
            sender = LeanSender()
            for _ in range(3):
                assert (await sender.send(post(server.url()))).body == b"ok"
            await sender.aclose()
            assert server.accepted == 3

    run(main())


def test_a_peer_closing_an_idle_connection(run: Run[Any]) -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(OK)  # keep-alive by HTTP/1.1's default, then closed anyway
            await writer.drain()

        return handler

    async def main() -> None:
        async with serve(make) as server:
            sender = LeanSender()
            assert (await sender.send(post(server.url()))).status == 200
            await asyncio.sleep(0.1)  # the close arrives while the connection is idle
            assert (await sender.send(post(server.url()))).status == 200
            await sender.aclose()
            assert server.accepted == 2

    run(main())


def test_a_kept_connection_closed_on_the_next_request_is_retried_once(run: Run[Any]) -> None:
    """The race of keep-alive: the peer drops an idle connection as a request goes
    out on it. Nothing of an answer arrived, so the request goes once more, on a new
    connection; a new connection that does the same is a failure."""

    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            if server.accepted % 2 == 1:
                writer.write(OK)
                await writer.drain()
                await server.read_request(reader)  # ...and closes without an answer

        return handler

    async def main() -> None:
        async with serve(make) as server:
            sender = LeanSender()
            assert (await sender.send(post(server.url()))).status == 200
            second = await outcome(sender, post(server.url()))
            assert isinstance(second, str) and second.startswith("connection: ")
            # on the kept connection (closed without an answer), then on a new one
            # (which answered nothing either): two tries, never a third
            assert (server.accepted, len(server.requests)) == (2, 3)
            await sender.aclose()

    run(main())


def test_idle_connections_expire(run: Run[Any]) -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = LeanSender(idle_timeout=0.1)
            assert (await sender.send(post(server.url()))).status == 200
            await eventually(lambda: server.open_now == 0)  # closed by the sender while idle
            assert (await sender.send(post(server.url()))).status == 200
            await sender.aclose()
            assert server.accepted == 2

    run(main())


def test_unsolicited_bytes_after_an_answer_close_the_connection(run: Run[Any]) -> None:
    async def main() -> None:
        async with serve(answering(OK + b"HTTP/1.1 200 OK\r\n")) as server:
            sender = LeanSender()
            for _ in range(2):
                assert (await sender.send(post(server.url()))).body == b"ok"
            await sender.aclose()
            assert server.accepted == 2

    run(main())


def test_a_capped_body_is_not_read_on_and_its_connection_not_reused(run: Run[Any]) -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000

    async def main() -> None:
        async with serve(answering(big)) as server:
            sender = LeanSender(response_cap=1000)
            for _ in range(2):
                assert (await sender.send(post(server.url()))).body == b"x" * 1000
            await sender.aclose()
            assert server.accepted == 2

    run(main())


# -- framing ----------------------------------------------------------------------


def _two_requests(run: Run[Any], answer: bytes, *, method: str = "POST") -> tuple[list[Any], int]:
    """Two requests to a server giving `answer` to each: the outcomes and how many
    connections it took."""

    async def main() -> tuple[list[Any], int]:
        async with serve(answering(answer)) as server:
            sender = LeanSender()
            results = [await outcome(sender, post(server.url(), method=method)) for _ in "ab"]
            await sender.aclose()
            return results, server.accepted

    return run(main())


@pytest.mark.parametrize(
    ("answer", "status", "body", "connections"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            200,
            b"abcde",
            1,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
            201,
            b"x",
            1,
        ),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", 204, b"", 1),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 304, b"", 1),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, b"", 1),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", 2),  # 1.0: closes
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            200,
            b"ok",
            1,
        ),
        # a redirect is a status, never followed
        (
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\n\r\n",
            302,
            b"",
            1,
        ),
    ],
    ids=["chunked", "interim-1xx", "204", "304", "empty", "http/1.0", "1.0-keep-alive", "302"],
)
def test_framing(run: Run[Any], answer: bytes, status: int, body: bytes, connections: int) -> None:
    results, accepted = _two_requests(run, answer)
    for response in results:
        assert isinstance(response, DeliveryResponse), response
        assert (response.status, response.body) == (status, body)
    assert accepted == connections


def test_a_head_answer_has_no_body(run: Run[Any]) -> None:
    results, accepted = _two_requests(
        run, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD"
    )
    assert [(r.status, r.body) for r in results] == [(200, b"")] * 2
    assert accepted == 2  # not reused: httptools would wait for the 5 bytes


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_an_eof_delimited_body(run: Run[Any], version: str) -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(f"HTTP/{version} 200 OK\r\n\r\nuntil ".encode())
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"the end")

        return handler

    async def main() -> None:
        async with serve(make) as server:
            sender = LeanSender()
            for _ in range(2):
                assert (await sender.send(post(server.url()))).body == b"until the end"
            await sender.aclose()
            assert server.accepted == 2

    run(main())


# -- failures ---------------------------------------------------------------------


def _failure(run: Run[Any], make: Callable[[RawServer], Handler], *, timeout: float = 5.0) -> str:
    async def main() -> str:
        async with serve(make) as server:
            sender = LeanSender()
            result = await outcome(sender, post(server.url(), timeout=timeout))
            await sender.aclose()
        assert isinstance(result, str), result
        return result

    return run(main())


def _writes(
    *chunks: bytes, pause: float = 0.0, then_close: bool = True
) -> Callable[[RawServer], Handler]:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(pause)
            if not then_close:
                await asyncio.sleep(10)

        return handler

    return make


def test_a_server_that_never_answers_times_out(run: Run[Any]) -> None:
    result = _failure(run, _writes(then_close=False), timeout=0.2)
    assert result == "timeout: no complete response within 0.2s"


def test_a_slow_drip_times_out(run: Run[Any]) -> None:
    drip = [bytes([c]) for c in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100]
    result = _failure(run, _writes(*drip, pause=0.02), timeout=0.3)
    assert result.startswith("timeout: ")


@pytest.mark.parametrize(
    "chunks",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",),
        (b"HTTP/1.1 200 OK\r\nContent-Le",),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",),
        (),  # closed without a byte, on a new connection: a failure, not a retry
    ],
    ids=["mid-body", "mid-head", "mid-chunk", "no-answer"],
)
def test_a_connection_closed_mid_answer_is_a_connection_failure(
    run: Run[Any], chunks: tuple[bytes, ...]
) -> None:
    assert _failure(run, _writes(*chunks)).startswith("connection: ")


def test_a_reset_mid_answer_is_a_connection_failure(run: Run[Any]) -> None:
    def make(server: RawServer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST

        return handler

    assert _failure(run, make).startswith("connection: ")


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"".join(b"X-%d: v\r\n" % n for n in range(HEAD_COUNT_MAX + 1)), "response headers"),
        (b"X-Big: " + b"v" * HEAD_LINE_MAX + b"\r\n", "header over"),
        (b"X-Endless: " + b"v" * (200 * 1024), "head over"),  # never ends its line
    ],
    ids=["too-many", "too-long", "endless"],
)
def test_response_heads_are_bounded(run: Run[Any], head: bytes, reason: str) -> None:
    answer = b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: 0\r\n\r\n"
    result = _failure(run, _writes(answer, then_close=False))
    assert result.startswith("connection: ") and reason in result, result


def test_a_head_at_the_limits_is_read(run: Run[Any]) -> None:
    # HEAD_COUNT_MAX headers in all, with X-Big and Content-Length
    head = b"".join(b"X-%d: v\r\n" % n for n in range(HEAD_COUNT_MAX - 2))
    head += b"X-Big: " + b"v" * (HEAD_LINE_MAX - len(b"X-Big") - 10) + b"\r\n"
    results, _ = _two_requests(run, b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: 0\r\n\r\n")
    assert [r.status for r in results] == [200, 200]


def test_a_response_that_is_not_http_is_a_connection_failure(run: Run[Any]) -> None:
    assert _failure(run, _writes(b"SSH-2.0-OpenSSH_9.6\r\n")).startswith("connection: ")


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", [("x-a", "b\r\nx-injected: 1")]),
        ("POST", [("x-a", "b\nx-injected: 1")]),
        ("POST", [("x-a", "b\x00")]),
        ("POST", [("x-a\r\nx-injected", "1")]),
        ("POST", [("x a", "1")]),
        ("POST", [("", "1")]),
        ("POST\r\nX", []),
    ],
)
def test_unsendable_headers_are_refused_and_never_sent(
    run: Run[Any], method: str, headers: list[tuple[str, str]]
) -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = LeanSender()
            result = await outcome(sender, post(server.url(), method=method, headers=headers))
            await sender.aclose()
        assert isinstance(result, str) and result.startswith("connection: ValueError: invalid")
        assert server.accepted == 0  # refused before connecting

    run(main())


def test_framing_headers_come_from_the_sender_only(run: Run[Any]) -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = LeanSender()
            headers = [
                ("Content-Length", "999"),
                ("Host", "evil.example"),
                ("Transfer-Encoding", "chunked"),
                ("Connection", "close"),
            ]
            assert (await sender.send(post(server.url(), headers=headers))).status == 200
            await sender.aclose()
        [request] = server.requests
        assert b"999" not in request and b"evil" not in request and b"chunked" not in request
        assert b"Content-Length: 5\r\n" in request

    run(main())


# -- URLs and targets -----------------------------------------------------------------


def test_urls_are_read_as_yarl_reads_them() -> None:
    target = _parse("http://B\u00fccher.example/\u00e4 b?q=\u00fc x#fragment")
    assert target.origin == ("http", "xn--bcher-kva.example", 80)
    assert target.host_header == "xn--bcher-kva.example"  # the default port is not named
    assert target.path == "/%C3%A4%20b?q=%C3%BC+x"
    assert _parse("https://h.example:443").host_header == "h.example"
    assert _parse("https://h.example:8443").host_header == "h.example:8443"
    assert _parse("http://[::1]:8080/x").origin == ("http", "::1", 8080)
    assert _parse("http://[::1]:8080/x").host_header == "[::1]:8080"
    with pytest.raises(ValueError):
        _parse("ftp://h.example/")


def test_an_idna_name_is_resolved_and_named_in_host(run: Run[Any]) -> None:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = LeanSender(targets=TargetPolicy("private"), resolve=resolve)
            url = server.url("/\u00e4?x=\u00fc", host="b\u00fccher.test")
            assert (await sender.send(post(url))).status == 200
            await sender.aclose()
        assert asked == ["xn--bcher-kva.test"]
        assert server.requests[0].startswith(
            f"POST /%C3%A4?x=%C3%BC HTTP/1.1\r\nHost: xn--bcher-kva.test:{server.port}\r\n".encode()
        )

    run(main())


def test_credentials_in_the_url_are_refused(run: Run[Any]) -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = LeanSender()
            result = await outcome(sender, post(f"http://u:p@127.0.0.1:{server.port}/"))
            await sender.aclose()
        assert isinstance(result, str) and result.startswith("refused: target refused: ")
        assert server.accepted == 0

    run(main())


def test_names_are_resolved_once_per_ttl_and_refusals_are_not_kept(run: Run[Any]) -> None:
    asked: list[str] = []
    names = {"ok.test": ["127.0.0.1"], "meta.test": ["169.254.169.254"]}

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return names[host]

    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

    async def main() -> None:
        async with serve(answering(answer)) as server:
            sender = LeanSender(targets=TargetPolicy("private"), resolve=resolve)
            for _ in range(3):  # a new connection each time, one lookup in all
                assert (await sender.send(post(server.url(host="ok.test")))).status == 200
            for _ in range(2):
                result = await outcome(sender, post(server.url(host="meta.test")))
                assert isinstance(result, str) and "cloud metadata" in result
            await sender.aclose()
        assert asked == ["ok.test", "meta.test", "meta.test"]
        assert server.accepted == 3

    run(main())


# -- TLS --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for tls.test, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tls.test",
            "-addext",
            "subjectAltName=DNS:tls.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def _to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_https_is_verified_with_sni(run: Run[Any], certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_side.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,func-returns-value]
    trusting = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with serve(answering(OK), tls=server_side) as server:
            url = server.url(host="tls.test")
            sender = LeanSender(resolve=_to_loopback, ssl_context=trusting)
            for _ in range(3):
                assert (await sender.send(post(url))).body == b"ok"
            await sender.aclose()
            assert server.accepted == 1  # kept alive over TLS too
            # the system's trust store does not know the certificate: no answer
            default = LeanSender(resolve=_to_loopback)
            result = await outcome(default, post(url))
            await default.aclose()
            assert isinstance(result, str) and result.startswith("connection: ")
            assert "CERTIFICATE_VERIFY_FAILED" in result
            # trusted, but not for this name
            wrong = LeanSender(resolve=_to_loopback, ssl_context=trusting)
            result = await outcome(wrong, post(server.url()))  # https://127.0.0.1
            await wrong.aclose()
            assert isinstance(result, str) and result.startswith("connection: ")
        assert names[0] == "tls.test"
        assert len(server.requests) == 3

    run(main())
