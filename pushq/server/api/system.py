"""Unauthenticated operational routes: /health, /ready and /metrics (token optional)."""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...version import __version__
from ..config import Settings
from ..store.errors import StoreUnavailable
from .common import Context, context, require_token

log = logging.getLogger("pushq.health")
DISPATCHER_STALL_AFTER = 30.0  # seconds without a loop iteration


async def health(request: Request) -> JSONResponse:
    ctx = context(request)
    reasons = []
    database = dispatcher = "ok"
    try:
        await ctx.store.ping()
    except StoreUnavailable as exc:  # the store logs each episode once
        database = "unwritable"
        reasons.append(f"database is not writable: {exc.kind}")
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
    backlog = "unchecked"
    if database == "ok" and _limits(ctx.settings):
        over = await _backlog_over_limits(ctx)
        backlog = "over_limit" if over else "ok"
        reasons.extend(over)
    body = {
        "status": "unavailable" if reasons else "ok",
        "version": __version__,
        "database": database,
        "dispatcher": dispatcher,
        "backlog": backlog,
        "reasons": reasons,
    }
    return JSONResponse(body, status_code=503 if reasons else 200)


def _limits(settings: Settings) -> bool:
    return settings.health_max_backlog is not None or settings.health_max_age is not None


async def _backlog_over_limits(ctx: Context) -> list[str]:
    """A reason per queue over --health-max-backlog (ready jobs) or --health-max-age
    (how long its oldest ready job has waited). Paused queues count too."""
    settings, now = ctx.settings, ctx.clock()
    reasons = []
    try:
        if settings.health_max_backlog is not None:
            counts = await ctx.store.count_by_state(now=now)
            for (queue, state), n in sorted(counts.items()):
                if state == "pending" and n > settings.health_max_backlog:
                    reasons.append(
                        f"queue {queue}: {n} ready jobs, over the limit of "
                        f"{settings.health_max_backlog}"
                    )
        if settings.health_max_age is not None:
            for queue, since in sorted((await ctx.store.oldest_pending()).items()):
                if now - since > settings.health_max_age:
                    reasons.append(
                        f"queue {queue}: oldest ready job has waited {now - since:.0f}s, over "
                        f"the limit of {settings.health_max_age:g}s"
                    )
    except Exception as exc:  # a failed read is a failed check, not a crash
        log.warning("health: could not read the backlog: %s", exc)
        reasons.append(f"backlog could not be read: {type(exc).__name__}")
    return reasons


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
    now = ctx.clock()
    counts = await ctx.store.count_by_state(now=now)
    queues = await ctx.store.list_queues()
    oldest = await ctx.store.oldest_pending()
    # No await from here on: concurrent scrapes can't interleave clearing and setting.
    ctx.metrics.set_depths(counts)
    ctx.metrics.set_queues(queues, oldest, now)
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
