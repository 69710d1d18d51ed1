"""/v1/dlq: the dead-letter queue: inspect, redrive, drop."""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import BadRequest, NotFound
from ...policy.ratelimit import parse_rate
from ..models import DeadFilter
from ..render import attempt_json, job_json
from .common import context, ok, read_json, validate
from .jobs import query_cursor, query_limit, query_queue
from .schemas import DeadDeleteRequest, DeadMatch, RedriveRequest, time_bound

log = logging.getLogger("pushq.api")


def _match(query: DeadMatch, now: float) -> DeadFilter:
    return DeadFilter(
        queue=query.queue,
        url_prefix=query.url_prefix,
        status=query.status,
        error_contains=query.error_contains,
        since=None if query.since is None else time_bound(query.since, now),
        until=None if query.until is None else time_bound(query.until, now),
        tag=query.tag,
    )


def _query_match(request: Request, now: float) -> DeadFilter:
    """A listing's filter from its query string (as strict as the bulk bodies)."""
    given: dict[str, object] = {
        name: request.query_params[name]
        for name in ("url_prefix", "error_contains", "since", "until", "tag")
        if name in request.query_params
    }
    status = request.query_params.get("status")
    if status is not None:
        if not re.fullmatch(r"[1-5][0-9]{2}", status):
            raise BadRequest("status must be an HTTP status from 100 to 599")
        given["status"] = int(status)
    return _match(validate(DeadMatch, given), now)


async def list_dead(request: Request) -> JSONResponse:
    ctx = context(request)
    now = ctx.clock()
    page = await ctx.store.list_dead(
        queue=query_queue(request),
        limit=query_limit(request),
        cursor=query_cursor(request, "/v1/dlq cursor"),
        match=_query_match(request, now),
    )
    return ok({"jobs": [job_json(j, now) for j in page.jobs], "next_cursor": page.next_cursor})


async def get_dead(request: Request) -> JSONResponse:
    ctx = context(request)
    job_id = request.path_params["id"]
    job = await ctx.store.get(job_id=job_id)
    if job is None or job.state != "dead":
        raise NotFound(f"no dead job {job_id}")
    body = job_json(job, ctx.clock())
    body["attempt_log"] = [attempt_json(a) for a in await ctx.store.list_attempts(job_id=job_id)]
    return ok(body)


async def redrive(request: Request) -> JSONResponse:
    ctx = context(request)
    now = ctx.clock()
    job = await ctx.store.redrive(job_id=request.path_params["id"], now=now)
    ctx.dispatcher.notify()
    log.info(
        "job %s redriven from the DLQ",
        job.id,
        extra={"job_id": job.id, "queue": job.queue, "verdict": "redriven"},
    )
    return ok(job_json(job, now))


async def redrive_many(request: Request) -> JSONResponse:
    ctx = context(request)
    data = await read_json(request, limit=64 * 1024, allow_empty=True)
    query = validate(RedriveRequest, data)
    now = ctx.clock()
    match = _match(query, now)
    if query.dry_run:
        return ok({"matched": await ctx.store.count_dead(match=match)})
    # A rate spreads the jobs' run_at, so a recovering endpoint is not stampeded.
    interval = 0.0 if query.rate_limit is None else 1.0 / parse_rate(query.rate_limit).per_second
    count = await ctx.store.redrive_matching(match=match, now=now, interval=interval)
    filters = query.model_dump(exclude_none=True, exclude={"dry_run"})
    log.info("%d dead jobs redriven (%s)", count, filters or "all")
    if count:
        ctx.dispatcher.notify()
    return ok({"retried": count})


async def delete_many(request: Request) -> JSONResponse:
    ctx = context(request)
    data = await read_json(request, limit=64 * 1024, allow_empty=True)
    query = validate(DeadDeleteRequest, data)
    match = _match(query, ctx.clock())
    if query.dry_run:
        return ok({"matched": await ctx.store.count_dead(match=match)})
    count = await ctx.store.delete_dead_matching(match=match)
    filters = query.model_dump(exclude_none=True, exclude={"dry_run"})
    log.info("%d dead jobs deleted (%s)", count, filters or "all")
    return ok({"deleted": count})


async def delete_dead(request: Request) -> Response:
    ctx = context(request)
    job_id = request.path_params["id"]
    if not await ctx.store.delete_dead(job_id=job_id):
        raise NotFound(f"no dead job {job_id}")
    return Response(status_code=204)
