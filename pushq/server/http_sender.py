"""The lean sender: HTTP/1.1 deliveries on asyncio Protocols and httptools' parser,
with keep-alive connections pooled per origin.

aiohttp's request machinery was the largest block of pushq's CPU per job (py-spy,
docs/benchmarks.md); a delivery needs a small part of it: one request head
written with its body, a response parsed into status, headers and a capped body,
and a connection kept for the next delivery to the same origin.

Layout, top down:
- `LeanSender.send` checks the URL, builds the request bytes, and runs the whole
  exchange under the attempt's deadline, turning every failure into DeliveryFailed.
- `_Pool` keeps connections per origin (scheme, host, port) under one global cap,
  resolves names through the target policy (pushq.server.guard), and connects
  only to a checked address.
- `_Connection` is one socket: it writes a request and parses its response.

What the sender guarantees, as aiohttp did: no redirect is followed (a 3xx is a
status), TLS is verified (SNI = the URL's host), the body is decoded no further
than the cap (BoundedBody), response heads are bounded (HEAD_LINE_MAX,
HEAD_COUNT_MAX, HEAD_BYTES_MAX), and a connection is reused only after a complete
response that allows keep-alive.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

from ..policy.targets import TargetPolicy, parse_ip
from .delivery import (
    RESPONSE_CAP,
    BoundedBody,
    DeliveryFailed,
    DeliveryRequest,
    DeliveryResponse,
    _with_accept_encoding,
)
from .guard import CheckedUrls, Resolve, TargetRefusedError, allowed_addresses, system_resolve

# Response head limits, aiohttp's line limit and a header count near its default.
HEAD_LINE_MAX = 8190  # bytes in the status line or in one header (name + value)
HEAD_COUNT_MAX = 100  # headers in one response (interim 1xx answers included)
HEAD_BYTES_MAX = 128 * 1024  # bytes received before a response's head is complete

IDLE_TIMEOUT = 15.0  # seconds an unused keep-alive connection is kept
DNS_TTL = 60.0  # seconds a name's checked addresses are kept (aiohttp's ttl_dns_cache)
URL_CACHE_MAX = 4096  # parsed URLs kept; full, the cache starts over

# RFC 9110 tokens (method, header names) and the bytes a field value may not hold.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
# The sender frames the message itself: these never come from the request's headers.
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# Methods that define a body: Content-Length is sent even when it is 0 (RFC 9110 8.6).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Origin = tuple[str, str, int]  # scheme, host (IDNA, no brackets), port


class ResponseError(Exception):
    """The peer's answer broke HTTP or a limit: no usable response ("connection")."""


class _StaleConnection(ResponseError):
    """A reused connection closed before any byte of the answer: the peer had
    dropped it while idle, so the request may go once more on a new connection."""


@dataclass(frozen=True, slots=True)
class _Target:
    """What a URL means to the sender, parsed once (yarl, as aiohttp parsed it)."""

    origin: Origin
    host_header: str  # the host, with the port when it is not the scheme's default
    path: str  # percent-encoded path and query, no fragment


def _parse(url: str) -> _Target:
    parsed = URL(url)
    scheme = parsed.scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    host, port = parsed.raw_host, parsed.port
    if not host or port is None:
        raise ValueError(f"the URL names no host: {url!r}")
    return _Target((scheme, host, port), parsed.host_port_subcomponent or host, parsed.raw_path_qs)


def _request_bytes(request: DeliveryRequest, target: _Target) -> bytes:
    """Request line, headers and body as written to the socket; ValueError for a
    method or header that is not valid HTTP (a CR/LF would split the message)."""
    method = request.method
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    for name, value in _with_accept_encoding(request.headers):
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if _BAD_VALUE.search(value):
            raise ValueError(f"invalid character in the value of header {name!r}")
        if name.lower() not in _FRAMING:
            lines.append(f"{name}: {value}")
    body = request.body
    if body or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}")
    # UTF-8 as aiohttp encoded non-ASCII values; everything else was checked above
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: a request at a time, its response parsed as it arrives.

    The httptools callbacks (on_*) fill the current response; `answer` is resolved
    when it is complete, or failed when the peer breaks HTTP, a limit, or the
    connection."""

    def __init__(self, pool: _Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.served = 0  # complete responses so far: >0 means a reused connection
        # the exchange in progress
        self.answer: asyncio.Future[DeliveryResponse] | None = None
        self.keep_alive = False
        self._head_only = False  # a HEAD request: no body follows the head
        self._cap = RESPONSE_CAP
        self._received = 0
        self._head_bytes = 0
        self._head_done = False
        self._interim = False
        self._header_count = 0
        self._status_len = 0
        self._framed = False  # Content-Length or chunked: the body's end is known
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: BoundedBody | None = None

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a Transport in fact (uvloop's is not a subclass of asyncio's, hence no check)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None or answer.done():  # bytes nobody asked for: never reuse
            self.close()
            return
        self._received += len(data)
        if not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_BYTES_MAX:
                self._fail(ResponseError(f"response head over {HEAD_BYTES_MAX} bytes"))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # 101: no HTTP after it; the head is the answer
            self._finish(keep_alive=False)
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, ResponseError) else exc
            self._fail(cause if isinstance(cause, ResponseError) else ResponseError(str(exc)))
        if answer.done() and not self.keep_alive:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self.answer
        if answer is not None and not answer.done():
            if self._head_done and not self._framed and not self._interim:
                self._finish(keep_alive=False)  # an EOF-delimited body ends here
            elif self._received == 0 and self.served:
                answer.set_exception(_StaleConnection("the kept-alive connection was closed"))
            else:
                reason = f": {exc}" if exc else ""
                answer.set_exception(ResponseError(f"connection closed mid-response{reason}"))
        self.pool.lost(self)

    # -- httptools callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        answer = self.answer
        if answer is None or answer.done():  # more bytes after the answer: never reuse
            self.keep_alive = False
        self._head_done = self._framed = False
        self._headers = {}
        self._status_len = 0

    def on_status(self, status: bytes) -> None:
        self._status_len += len(status)
        if self._status_len > HEAD_LINE_MAX:
            raise ResponseError(f"response status line over {HEAD_LINE_MAX} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > HEAD_COUNT_MAX:
            raise ResponseError(f"more than {HEAD_COUNT_MAX} response headers")
        if len(name) + len(value) > HEAD_LINE_MAX:
            raise ResponseError(f"a response header over {HEAD_LINE_MAX} bytes")
        key = name.decode("latin-1").lower()
        text = value.decode("utf-8", errors="replace").strip()
        if key == "content-length":
            self._framed = True
        elif key == "transfer-encoding" and "chunked" in text.lower():
            self._framed = True
        self._headers[key] = text  # a repeated header: the last one, as before

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints...
            self._interim = True  # skipped: the final answer follows
            return
        self._interim = False
        self._head_done = True
        self._status = status
        if status in (204, 304) or status == 101:
            self._framed = True  # no body, whatever the headers say
        self._body = BoundedBody(self._headers.get("content-encoding"), self._cap)
        if self._head_only:
            # httptools cannot be told a HEAD answer has no body: answer now, and
            # close the connection rather than parse its next bytes wrongly
            self._finish(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        bounded, answer = self._body, self.answer
        if bounded is not None and answer is not None and not answer.done() and bounded.feed(body):
            self._finish(keep_alive=False)  # full: the rest is never read

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._finish(keep_alive=self.parser.should_keep_alive())

    # -- the exchange --------------------------------------------------------------

    def request(
        self, data: bytes, *, head_only: bool, cap: int
    ) -> asyncio.Future[DeliveryResponse]:
        """Write one request (head and body in one write); the future is its answer."""
        assert self.transport is not None
        self.answer = self.pool.loop.create_future()
        self.keep_alive = False
        self._head_only = head_only
        self._cap = cap
        self._received = self._head_bytes = self._header_count = 0
        self._head_done = self._interim = False
        self._body = None
        self.transport.write(data)
        return self.answer

    def _finish(self, *, keep_alive: bool) -> None:
        answer = self.answer
        if answer is None or answer.done():
            return
        body = bytes(self._body.body) if self._body is not None else b""
        self.keep_alive = keep_alive and not self.closed
        self.served += 1
        answer.set_result(DeliveryResponse(self._status, self._headers, body))

    def _fail(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)
        self.keep_alive = False
        self.close()

    @property
    def reusable(self) -> bool:
        transport = self.transport
        return (
            self.keep_alive
            and not self.closed
            and transport is not None
            and not transport.is_closing()
        )

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # connection_lost follows and tells the pool


class _Pool:
    """Keep-alive connections per origin, at most `limit` open in all.

    A request takes the origin's most recently used idle connection, else opens a
    new one when the cap allows (closing an idle connection of another origin if
    that makes room), else waits for a connection to be released or closed."""

    def __init__(
        self,
        *,
        limit: int,
        targets: TargetPolicy,
        resolve: Resolve,
        ssl_context: ssl.SSLContext,
        idle_timeout: float,
        dns_ttl: float,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.limit = limit
        self.targets = targets
        self.idle_timeout = idle_timeout
        self.dns_ttl = dns_ttl
        self._resolve = resolve
        self._ssl = ssl_context
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._open: set[_Connection] = set()  # connected, idle or in use
        self._connecting = 0  # slots taken by connections being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def acquire(self, origin: Origin, *, fresh: bool = False) -> _Connection:
        """A connection to `origin`: an idle one unless `fresh`, else a new one."""
        while True:
            idle = None if fresh else self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if conn.reusable and self.loop.time() - conn.idle_since < self.idle_timeout:
                    return conn
                conn.close()
            if len(self._open) + self._connecting >= self.limit:
                self._evict_an_idle_connection()
            if len(self._open) + self._connecting < self.limit:
                return await self.connect(origin)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: pass the turn on
                else:
                    self._waiters.remove(waiter)
                raise

    async def connect(self, origin: Origin) -> _Connection:
        """A new connection to a checked address of the origin (a slot is held while
        connecting, so the cap counts it)."""
        self._connecting += 1
        try:
            scheme, host, port = origin
            tls = scheme == "https"
            literal = parse_ip(host) if tls else None  # SNI is a name; an IP is checked
            server_hostname = str(literal) if literal is not None else host
            failure: OSError | None = None
            for address in await self._addresses(host, port):
                try:
                    _, conn = await self.loop.create_connection(
                        lambda: _Connection(self, origin),
                        address,
                        port,
                        ssl=self._ssl if tls else None,
                        server_hostname=server_hostname if tls else None,
                    )
                except OSError as exc:  # refused, unreachable, TLS: try the next address
                    failure = exc
                    continue
                self._open.add(conn)
                return conn
            assert failure is not None
            raise failure
        finally:
            self._connecting -= 1
            self._wake()

    def release(self, conn: _Connection) -> None:
        """Back to its origin's idle list when reusable, else closed."""
        if not conn.reusable:
            conn.close()
            return
        conn.answer = None
        conn.idle_since = self.loop.time()
        self._idle.setdefault(conn.origin, deque()).append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.idle_timeout, self._sweep)
        self._wake()

    def lost(self, conn: _Connection) -> None:
        """A connection closed (either side): its slot is free."""
        if conn in self._open:
            self._open.discard(conn)
            idle = self._idle.get(conn.origin)
            if idle is not None and conn in idle:
                idle.remove(conn)
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _evict_an_idle_connection(self) -> None:
        oldest: _Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is not None:
            self._idle[oldest.origin].popleft()
            self._open.discard(oldest)  # its slot is free now, not when the close lands
            oldest.close()

    def _sweep(self) -> None:
        """Close connections idle for longer than idle_timeout."""
        self._sweeper = None
        deadline = self.loop.time() - self.idle_timeout
        for idle in self._idle.values():
            while idle and idle[0].idle_since <= deadline:
                idle.popleft().close()
        if any(self._idle.values()):
            self._sweeper = self.loop.call_later(self.idle_timeout / 2, self._sweep)

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to: the checked IP literal, or the allowed
        addresses the name resolves to (kept for dns_ttl; only checked ones)."""
        literal = parse_ip(host)  # ValueError for a malformed literal: CheckedUrls saw it
        if literal is not None:
            decision = self.targets.check_address(literal, shown=host)
            if not decision.allowed:
                raise TargetRefusedError(decision.reason)
            return [str(literal)]
        key = (host, port)
        cached = self._dns.get(key)
        now = self.loop.time()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            resolved = await self._resolve(host, port)
        except OSError as exc:  # socket.gaierror: no such name
            raise OSError(f"cannot resolve {host}: {exc}") from None
        allowed = allowed_addresses(self.targets, host, resolved)
        if len(self._dns) >= URL_CACHE_MAX:
            self._dns.clear()
        self._dns[key] = (now + self.dns_ttl, allowed)
        return allowed

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._open):
            conn.close()
        self._idle.clear()


class LeanSender:
    """Sends deliveries on pooled keep-alive HTTP/1.1 connections (the default sender).

    `resolve` answers name lookups (loop.getaddrinfo by default; tests pass their
    own), `ssl_context` verifies servers (the system's trust store by default)."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        response_cap: int = RESPONSE_CAP,
        targets: TargetPolicy | None = None,
        resolve: Resolve = system_resolve,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        dns_ttl: float = DNS_TTL,
    ) -> None:
        self.max_connections = max_connections
        self.response_cap = response_cap
        self.targets = targets if targets is not None else TargetPolicy()
        self.idle_timeout = idle_timeout
        self._urls = CheckedUrls(self.targets)
        self._resolve = resolve
        self._dns_ttl = dns_ttl
        self._ssl = ssl_context
        self._parsed: dict[str, _Target] = {}
        self._pool: _Pool | None = None

    def _open(self) -> _Pool:
        # Created on first use, inside the running loop that will use it.
        self._pool = _Pool(
            limit=self.max_connections,
            targets=self.targets,
            resolve=self._resolve,
            ssl_context=self._ssl if self._ssl is not None else ssl.create_default_context(),
            idle_timeout=self.idle_timeout,
            dns_ttl=self._dns_ttl,
        )
        return self._pool

    def _target(self, url: str) -> _Target:
        target = self._parsed.get(url)
        if target is None:
            target = _parse(url)
            if len(self._parsed) >= URL_CACHE_MAX:
                self._parsed.clear()
            self._parsed[url] = target
        return target

    async def send(self, request: DeliveryRequest) -> DeliveryResponse:
        try:
            self._urls.check(request.url)  # credentials, literals, the lists
            target = self._target(request.url)
            data = _request_bytes(request, target)
            pool = self._pool or self._open()
            async with asyncio.timeout(request.timeout):
                return await self._exchange(pool, target.origin, data, request.method)
        except TargetRefusedError as exc:
            raise DeliveryFailed("refused", f"target refused: {exc.reason}") from None
        except TimeoutError:
            raise DeliveryFailed(
                "timeout", f"no complete response within {request.timeout:g}s"
            ) from None
        except (OSError, ResponseError, ValueError, UnicodeError) as exc:
            # invalid URLs and headers are no response all the same: nothing was sent
            message = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            raise DeliveryFailed("connection", message) from None

    async def _exchange(
        self, pool: _Pool, origin: Origin, data: bytes, method: str
    ) -> DeliveryResponse:
        conn = await pool.acquire(origin)
        try:
            return await self._ask(pool, conn, data, method)
        except _StaleConnection:
            # the peer closed it while it was idle, before reading this request:
            # once more on a new connection (a kept-alive connection's known race)
            conn = await pool.acquire(origin, fresh=True)
            return await self._ask(pool, conn, data, method)

    async def _ask(
        self, pool: _Pool, conn: _Connection, data: bytes, method: str
    ) -> DeliveryResponse:
        try:
            response = await conn.request(data, head_only=method == "HEAD", cap=self.response_cap)
        except BaseException:  # a failure or the deadline: never reuse it
            conn.close()
            raise
        pool.release(conn)
        return response

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
            await asyncio.sleep(0)  # let the transports close
