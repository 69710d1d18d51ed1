"""Unauthenticated operational routes: /health, /ready and /metrics (token optional)."""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..version import __version__
from .common import context, require_token

log = logging.getLogger("pushq.health")
DISPATCHER_STALL_AFTER = 30.0  # seconds without a loop iteration


async def health(request: Request) -> JSONResponse:
    ctx = context(request)
    reasons = []
    database = dispatcher = "ok"
    try:
        await ctx.store.ping()
    except Exception as exc:  # any failure to write means unhealthy, whatever the cause
        log.warning("health: database not writable: %s", exc)
        database = "unwritable"
        reasons.append(f"database is not writable: {type(exc).__name__}")
    last_loop = ctx.dispatcher_last_loop()
    if last_loop == 0.0:
        dispatcher = "starting"
        reasons.append("dispatcher has not started")
    elif ctx.clock() - last_loop > DISPATCHER_STALL_AFTER:
        dispatcher = "stalled"
        reasons.append(f"dispatcher loop has not run for {ctx.clock() - last_loop:.0f}s")
    body = {
        "status": "unavailable" if reasons else "ok",
        "version": __version__,
        "database": database,
        "dispatcher": dispatcher,
        "reasons": reasons,
    }
    return JSONResponse(body, status_code=503 if reasons else 200)


async def ready(request: Request) -> JSONResponse:
    """For load balancers: 200 while pushq takes traffic; 503 while it starts or stops."""
    ctx = context(request)
    if ctx.shutting_down():
        return JSONResponse({"status": "stopping"}, status_code=503)
    if ctx.dispatcher_last_loop() == 0.0:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    ctx = context(request)
    if ctx.settings.metrics_auth:
        require_token(request, ctx.settings.api_token)
    ctx.metrics.set_depths(await ctx.store.count_by_state(now=ctx.clock()))
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
