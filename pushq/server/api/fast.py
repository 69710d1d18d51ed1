"""POST /v1/jobs straight from ASGI, the hottest route of all.

It skips Starlette's routing, middleware stack and Request objects (a sixth of
the CPU an enqueue costs, see docs/benchmarks.md) but not a single check: auth,
body limits, validation, the store call and the JSON it answers are the
Starlette handler's own (jobs.enqueue_one, common.parse_body). A request without
a bearer token (the dashboard's session cookie) goes through Starlette as usual.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

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
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        token = parse_bearer(headers.get("authorization", ""))
        if token is None:
            await self.app(scope, receive, send)  # a session cookie, or the 401
            return
        try:
            if not hmac.compare_digest(token.encode(), self._token):
                raise Unauthorized("the API token is not valid")
            limit = self.ctx.settings.max_body_size + REQUEST_OVERHEAD
            data = await parse_body(_chunks(receive), headers.get("content-length"), limit=limit)
            status, body, extra = await enqueue_one(self.ctx, data, headers.get("idempotency-key"))
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
