"""/v1/queues: settings, live stats, pause and resume."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import BadRequest, NotFound
from ...policy.backoff import PartialBackoff
from ...policy.states import PUBLIC_STATES
from ..models import JobFilter, QueueSettings
from .common import Context, context, ok, read_json, validate
from .schemas import NAME_PATTERN, PurgeRequest, QueueRequest

ACTIVITY_WINDOW = 60.0  # seconds: delivered_last_minute, failed_last_minute


def queue_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadRequest("queue names match [A-Za-z0-9_.-]{1,64}")
    return name


def queue_json(
    queue: QueueSettings,
    counts: dict[tuple[str, str], int],
    oldest: dict[str, float],
    activity: Callable[[str], tuple[int, int]],
    now: float,
) -> dict[str, Any]:
    backoff = None
    if queue.backoff is not None:
        backoff = {
            "base": queue.backoff.base,
            "max": queue.backoff.max,
            "jitter": queue.backoff.jitter,
        }
    delivered, failed = activity(queue.name)
    stats: dict[str, Any] = {state: counts.get((queue.name, state), 0) for state in PUBLIC_STATES}
    oldest_at = oldest.get(queue.name)
    stats["oldest_pending_age"] = None if oldest_at is None else max(0.0, now - oldest_at)
    stats["delivered_last_minute"] = delivered
    stats["failed_last_minute"] = failed
    return {
        "name": queue.name,
        "concurrency": queue.concurrency,
        "rate_limit": queue.rate_limit,
        "max_attempts": queue.max_attempts,
        "backoff": backoff,
        "timeout": queue.timeout,
        "max_size": queue.max_size,
        "paused": queue.paused,
        "priority": queue.priority,
        "permanent_statuses": (
            None if queue.permanent_statuses is None else list(queue.permanent_statuses)
        ),
        "key_concurrency": queue.key_concurrency,
        "key_rate_limit": queue.key_rate_limit,
        "adaptive_concurrency": queue.adaptive_concurrency,
        "endpoint_concurrency": queue.endpoint_concurrency,
        "stats": stats,
    }


async def _render(ctx: Context, queues: list[QueueSettings]) -> list[dict[str, Any]]:
    now = ctx.clock()
    counts = await ctx.store.count_by_state(now=now)
    oldest = await ctx.store.oldest_pending()
    activity = ctx.queue_activity
    if ctx.cluster_activity is not None:  # every node's, from the database
        recent = await ctx.cluster_activity(now - ACTIVITY_WINDOW)
        activity = _lookup(recent)
    return [queue_json(q, counts, oldest, activity, now) for q in queues]


def _lookup(recent: dict[str, tuple[int, int]]) -> Callable[[str], tuple[int, int]]:
    return lambda name: recent.get(name, (0, 0))


async def get_queue(request: Request) -> JSONResponse:
    ctx = context(request)
    name = queue_name(request)
    queue = await ctx.store.get_queue(name=name)
    if queue is None:
        raise NotFound(f"no queue {name}")
    [body] = await _render(ctx, [queue])
    return ok(body)


async def list_queues(request: Request) -> JSONResponse:
    ctx = context(request)
    return ok({"queues": await _render(ctx, await ctx.store.list_queues())})


async def put_queue(request: Request) -> JSONResponse:
    ctx = context(request)
    name = queue_name(request)
    given = validate(QueueRequest, await read_json(request, limit=64 * 1024))
    changes: dict[str, Any] = {}
    for field in given.model_fields_set:
        value = getattr(given, field)
        if field == "backoff" and value is not None:  # a max below the base is raised to it
            value = PartialBackoff(value.base, value.max, value.jitter)
        if field == "paused" and value is None:
            value = False
        if field == "priority" and value is None:
            value = 0
        if field == "adaptive_concurrency" and value is None:
            value = True
        if field == "permanent_statuses" and value is not None:
            value = tuple(value)
        changes[field] = value
    queue = await ctx.store.put_queue(name=name, changes=changes, now=ctx.clock())
    if ctx.endpoints is not None:  # this node's deliveries follow the new rules at once
        ctx.endpoints.set_queue(queue)
    ctx.dispatcher.notify()  # a raised limit or a resume may free jobs now
    [body] = await _render(ctx, [queue])
    return ok(body)


async def _set_paused(request: Request, paused: bool) -> JSONResponse:
    ctx = context(request)
    name = queue_name(request)
    queue = await ctx.store.put_queue(name=name, changes={"paused": paused}, now=ctx.clock())
    if not paused:
        ctx.dispatcher.notify()
    [body] = await _render(ctx, [queue])
    return ok(body)


async def pause(request: Request) -> JSONResponse:
    return await _set_paused(request, True)


async def resume(request: Request) -> JSONResponse:
    return await _set_paused(request, False)


async def purge(request: Request) -> JSONResponse:
    """Cancel every unfinished job of the queue (or those in the given states)."""
    ctx = context(request)
    name = queue_name(request)
    given = validate(PurgeRequest, await read_json(request, limit=64 * 1024, allow_empty=True))
    if await ctx.store.get_queue(name=name) is None:
        raise NotFound(f"no queue {name}")
    states = None if given.states is None else tuple(given.states)
    match = JobFilter(queue=name, states=states)
    count = await ctx.store.cancel_matching(match=match, now=ctx.clock())
    if count:
        ctx.dispatcher.notify()
    return ok({"cancelled": count})


async def delete_queue(request: Request) -> Response:
    """Forget a queue; 409 while it holds unfinished jobs, unless ?force=true."""
    ctx = context(request)
    name = queue_name(request)
    force = request.query_params.get("force", "false")
    if force not in ("true", "false"):
        raise BadRequest("force must be true or false")
    await ctx.store.delete_queue(name=name, force=force == "true", now=ctx.clock())
    return Response(status_code=204)
