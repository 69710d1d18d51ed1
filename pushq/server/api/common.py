"""What every handler shares: bounded JSON bodies, validation errors, rendering."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from ...errors import ApiError, BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from ..config import Settings
from ..endpoints import Endpoints
from ..metrics import Metrics
from ..settle import Settler
from ..store.base import Store
from ..store.errors import StoreUnavailable
from ..ui.session import COOKIE_NAME, CSRF_HEADER, Sessions
from ..waiters import JobWaiters

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, *, limit: int, allow_empty: bool = False) -> Any:
    """The request body as JSON: 413 over `limit` bytes, 400 when it does not parse."""
    return await parse_body(
        request.stream(),
        request.headers.get("content-length"),
        limit=limit,
        allow_empty=allow_empty,
    )


async def parse_body(
    chunks: AsyncIterator[bytes], declared: str | None, *, limit: int, allow_empty: bool = False
) -> Any:
    """A JSON object from body chunks, read no further than `limit` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    raw = bytearray()
    async for chunk in chunks:
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("request body is empty; send a JSON object", code="invalid_json")
    try:
        data = orjson.loads(raw)  # strict JSON: no NaN/Infinity, nesting limited
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    return data


def describe(error: ValidationError, prefix: str = "") -> str:
    """One readable line naming the first bad field: 'jobs[2].url: must be ...'."""
    first = error.errors(include_url=False)[0]
    path = prefix
    for part in first["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    message = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] == "extra_forbidden":
        message = "is not a known field"
    elif first["type"] == "missing":
        message = "is required"
    return f"{path}: {message}" if path else message


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe(exc, prefix)) from None


def bearer_token(request: Request) -> str | None:
    return parse_bearer(request.headers.get("authorization", ""))


def parse_bearer(header: str) -> str | None:
    """The token of an 'Authorization: Bearer <token>' header, or None."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_token(request: Request, expected: str) -> None:
    """401 unless the request carries the API token (compared in constant time) or,
    from the dashboard, a session cookie; a cookie-authenticated request that changes
    state must also send the CSRF header, which a cross-site form cannot set."""
    token = bearer_token(request)
    session = request.cookies.get(COOKIE_NAME)
    if token is None and session is not None:
        sessions = context(request).sessions
        if sessions is None or not sessions.valid(session):
            raise Unauthorized("the dashboard session has expired; log in again at /ui")
        if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != "1":
            raise Forbidden(f"a session-cookie request that changes state needs '{CSRF_HEADER}: 1'")
        return
    if token is None:
        raise Unauthorized("send the API token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("the API token is not valid")


class DatabaseUnavailable(ApiError):
    """503: the database cannot take writes now (disk full, read-only, I/O error);
    nothing was saved, and the client should retry after Retry-After."""

    status = 503
    code = "database_unavailable"
    retry_after = 5.0

    @classmethod
    def from_store(cls, exc: StoreUnavailable) -> DatabaseUnavailable:
        return cls(
            f"the database cannot take writes now ({exc.kind}); nothing was saved: retry later"
        )


def error_parts(exc: ApiError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers of an API error's response."""
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
    if exc.status == 401:
        headers["www-authenticate"] = "Bearer"
    return exc.status, exc.to_json(), headers


class FastJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson (several times faster than json.dumps)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return FastJSONResponse(data, status_code=status, headers=headers)


class Notifier(Protocol):
    def notify(self, run_at: float | None = None) -> None: ...


@dataclass
class Context:
    """What handlers work with; create_app puts it on app.state.pushq."""

    settings: Settings
    store: Store
    dispatcher: Notifier
    metrics: Metrics
    clock: Callable[[], float] = time.time
    dispatcher_last_loop: Callable[[], float] = field(default=lambda: 0.0)
    shutting_down: Callable[[], bool] = field(default=lambda: False)
    sessions: Sessions | None = None  # dashboard sessions; None accepts no cookie
    # (delivered, failed attempts) of a queue in the last minute, as this node saw them
    queue_activity: Callable[[str], tuple[int, int]] = field(default=lambda queue: (0, 0))
    # the same for every node sharing the database, {queue: (delivered, failed)} since
    # a time (PostgreSQL); None: this node's own figures are the whole answer
    cluster_activity: Callable[[float], Awaitable[dict[str, tuple[int, int]]]] | None = None
    scheduler_wake: Callable[[], None] = field(default=lambda: None)
    settler: Settler | None = None  # finishes async jobs; None refuses /complete and /fail
    waiters: JobWaiters = field(default_factory=JobWaiters)
    endpoints: Endpoints | None = None  # delivery health per origin (the dispatcher's)


def context(request: Request) -> Context:
    ctx: Context = request.app.state.pushq
    return ctx
