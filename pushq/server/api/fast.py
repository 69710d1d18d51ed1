"""POST /v1/jobs straight from ASGI, the hottest route of all.

It skips uvicorn's proxy-headers middleware, Starlette's routing, middleware
stack and Request objects (a sixth of the CPU an enqueue costs, see
docs/benchmarks.md) but not a single check: auth,
body limits, validation, the store call and the JSON it answers are the
Starlette handler's own (jobs.enqueue_one, common.parse_body). A request without
a bearer token (the dashboard's session cookie) goes through Starlette as usual.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ...errors import ApiError, Unauthorized
from ..store.errors import StoreUnavailable
from .common import Context, DatabaseUnavailable, error_parts, parse_bearer, parse_body
from .jobs import REQUEST_OVERHEAD, enqueue_one

log = logging.getLogger("pushq.api")


class FastEnqueue:
    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx
        self._token = ctx.settings.api_token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/jobs" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = length = idempotency = None
        for name, value in scope["headers"]:  # names are lower-case; the last one counts
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
            elif name == b"idempotency-key":
                idempotency = value
        token = None if authorization is None else parse_bearer(authorization.decode("latin-1"))
        if token is None:
            await self.app(scope, receive, send)  # a session cookie, or the 401
            return
        try:
            if not hmac.compare_digest(token.encode(), self._token):
                raise Unauthorized("the API token is not valid")
            limit = self.ctx.settings.max_body_size + REQUEST_OVERHEAD
            declared = None if length is None else length.decode("latin-1")
            data = await parse_body(_chunks(receive), declared, limit=limit)
            key = None if idempotency is None else idempotency.decode("latin-1")
            status, body, extra = await enqueue_one(self.ctx, data, key)
        except ApiError as exc:
            status, body, extra = error_parts(exc)
        except StoreUnavailable as exc:  # logged once per episode by the store
            status, body, extra = error_parts(DatabaseUnavailable.from_store(exc))
        except Exception:
            log.exception("unexpected error on POST /v1/jobs")
            status, extra = 500, {}
            body = {
                "error": {"code": "internal_error", "message": "internal error; see the pushq log"}
            }
        await _respond(send, status, body, extra)


class FastStarlette(Starlette):
    """Starlette with FastEnqueue in front of its whole middleware stack, so an
    enqueue does not pass the error middlewares either (FastEnqueue answers every
    error itself); create_app puts the Context on app.state.pushq before the first
    request builds the stack. This is the app as tests and in-process callers
    get it; the server puts FastEnqueue further out still (outermost)."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if getattr(self.state, "fast_outside", False):  # set by outermost
            return stack
        return FastEnqueue(stack, self.state.pushq)


def outermost(app: Starlette, forwarded_allow_ips: str | list[str]) -> ASGIApp:
    """The ASGI app the server runs: FastEnqueue first, then uvicorn's
    ProxyHeadersMiddleware (which uvicorn would otherwise put in front of it), then
    the Starlette app without its own FastEnqueue. An enqueue reads neither the
    client address nor the scheme, so the proxy headers need not be applied to it;
    every other request gets them as before. Serve with proxy_headers=False."""
    app.state.fast_outside = True
    # the same ASGI callables, typed by uvicorn's TypedDicts on one side and
    # Starlette's MutableMappings on the other
    proxied = ProxyHeadersMiddleware(cast(Any, app), forwarded_allow_ips)
    return FastEnqueue(cast(ASGIApp, proxied), app.state.pushq)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _respond(send: Send, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
    payload = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.encode(), v.encode()) for k, v in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
