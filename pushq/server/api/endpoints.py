"""/v1/endpoints: delivery health per destination origin (scheme://host:port)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ...errors import NotFound
from ..endpoints import origin_of
from ..render import rfc3339
from .common import context, ok


def _json(view: dict[str, Any]) -> dict[str, Any]:
    out = dict(view)
    out["open_until"] = rfc3339(view["open_until"])
    out["held_until"] = rfc3339(view["held_until"])
    if view["last_error"] is not None:
        out["last_error"] = {**view["last_error"], "at": rfc3339(view["last_error"]["at"])}
    return out


async def list_endpoints(request: Request) -> JSONResponse:
    ctx = context(request)
    endpoints = ctx.endpoints
    now = ctx.clock()
    views = []
    if endpoints is not None:
        for origin in endpoints.origins():
            view = endpoints.describe(origin, now)
            if view is not None:
                views.append(_json(view))
    return ok({"endpoints": views})


async def get_endpoint(request: Request) -> JSONResponse:
    ctx = context(request)
    given: str = request.path_params["origin"]
    try:
        origin = origin_of(given) if "://" in given else given
    except ValueError:  # e.g. a port past 65535: no such origin
        origin = given
    view = None if ctx.endpoints is None else ctx.endpoints.describe(origin, ctx.clock())
    if view is None:
        raise NotFound(f"no deliveries to {given} seen since pushq started")
    return ok(_json(view))
