"""The HTTP/1.1 protocol pushq serves with: uvicorn's httptools protocol, chosen
explicitly, with the limits it lacks for a server that anyone can reach.

- At most `max_connections` open connections: one past that is answered 503
  and closed at once, so idle sockets cannot use up the file descriptors that
  the database and deliveries need.
- A client has `header_timeout` to send a request's headers (counted from the
  connection, or from the first byte of the next request on a keep-alive
  connection) and `body_timeout` for its body; a connection that never sends a
  byte, or trickles one now and then (slowloris), is closed.
- At most MAX_HEADERS header fields and MAX_HEADER_BYTES of request line and
  headers; more is answered 431 and the connection closed.

Idle keep-alive connections are closed by uvicorn's `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("pushq.http")

MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_headers: int = MAX_HEADERS
    max_header_bytes: int = MAX_HEADER_BYTES


class _Refusals:
    """Connections refused over the limit: logged once per episode, not per connection."""

    def __init__(self) -> None:
        self.count = 0

    def refused(self, limit: int) -> None:
        if self.count == 0:
            log.warning(
                "connection limit of %d reached (--max-connections/PUSHQ_MAX_CONNECTIONS): "
                "refusing new connections with 503",
                limit,
            )
        self.count += 1

    def closed(self, open_now: int, limit: int) -> None:
        if self.count and open_now < limit * 0.9:
            log.warning("connections back under the limit; %d were refused", self.count)
            self.count = 0


class _HeadersTooLarge(Exception):
    pass


def _response(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: "
        + str(len(message)).encode()
        + b"\r\nconnection: close\r\n"
        + (b"retry-after: 1\r\n" if status.startswith(b"503") else b"")
        + b"\r\n"
        + message
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    refusals: ClassVar[_Refusals] = _Refusals()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting_headers = True  # until the current request's headers are in
        self._header_bytes = 0
        self._header_count = 0
        self._too_large = False

    # -- connection ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refusals.refused(self.limits.max_connections)
            transport.write(_response(b"503 Service Unavailable", b"too many connections"))
            transport.close()
            return
        self._arm(self.limits.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self.refusals.closed(len(self.connections), self.limits.max_connections)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
            if self._deadline is None:  # the next request on a keep-alive connection
                self._arm(self.limits.header_timeout, self._headers_late)
        super().data_received(data)
        if (
            self._awaiting_headers
            and self._header_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._too_large = True
            self.send_400_response("request headers are too large")

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        message = (
            f"request headers are over the limit ({self.limits.max_headers} fields, "
            f"{self.limits.max_header_bytes} bytes)"
        )
        self.transport.write(_response(b"431 Request Header Fields Too Large", message.encode()))
        self.transport.close()

    # -- parser callbacks ------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._too_large = True
            raise _HeadersTooLarge  # httptools reports it; send_400_response answers 431
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        self._arm(self.limits.body_timeout, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._awaiting_headers = True
        super().on_message_complete()

    # -- deadlines -------------------------------------------------------------
    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._header_bytes:
            self.transport.write(_response(b"408 Request Timeout", b"request headers too slow"))
        self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # the handler reading the body sees a disconnect


def protocol_class(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for uvicorn's `http=` with these limits (and its own counters)."""
    return type(
        "PushqHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "refusals": _Refusals()},
    )
