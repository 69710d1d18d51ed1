"""/v1/jobs: enqueue (one or a batch), inspect, list, cancel."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from ...errors import BadRequest, NotFound, PayloadTooLarge
from ...policy.backoff import PartialBackoff
from ...policy.durations import parse_duration
from ...policy.states import PUBLIC_STATES, TERMINAL_STATES
from ..config import Settings
from ..models import NewJob
from ..render import attempt_json, job_json
from .common import Context, context, ok, read_json, validate
from .schemas import (
    LIMIT_PATTERN,
    LIST_LIMIT_MAX,
    MAX_WAIT,
    NAME_PATTERN,
    QUERY_SCHEMAS,
    WAIT_PATTERN,
    BatchRequest,
    IdempotencyKey,
    JobRequest,
)
from .targets import check_job_targets

log = logging.getLogger("pushq.api")

# Room for a job's other fields around a body of the maximum size.
REQUEST_OVERHEAD = 64 * 1024
LIST_LIMIT_DEFAULT = 50


def to_new_job(request: JobRequest, settings: Settings, now: float, where: str = "") -> NewJob:
    """A validated request ready for the store (which fills in the queue's defaults)."""
    check_job_targets(settings.target_policy, request, where)
    body: bytes | None = None
    if request.body is not None:
        try:
            body = orjson.dumps(request.body)
        except orjson.JSONEncodeError as exc:  # e.g. nested deeper than 254 levels
            raise BadRequest(f"{where}body: {exc}") from None
        if len(body) > settings.max_body_size:
            raise PayloadTooLarge(
                f"{where}body is {len(body)} bytes; the limit is {settings.max_body_size}"
            )
    backoff = None
    if request.backoff is not None:
        given = request.backoff  # a max below the base is raised to it when resolved
        backoff = PartialBackoff(given.base, given.max, given.jitter)
    run_at = now
    if request.delay is not None:
        run_at = now + request.delay
    elif request.run_at is not None:
        run_at = request.run_at.timestamp()
    return NewJob(
        url=request.url,
        queue=request.queue,
        method=request.method,
        headers=request.headers,
        body=body,
        run_at=run_at,
        priority=request.priority,
        max_attempts=request.max_attempts,
        backoff=backoff,
        timeout=request.timeout,
        idempotency_key=request.idempotency_key,
        unique_key=request.unique_key,
        ordering_key=request.ordering_key,
        callback_url=request.callback_url,
        failure_callback_url=request.failure_callback_url,
        permanent_statuses=(
            None if request.permanent_statuses is None else tuple(request.permanent_statuses)
        ),
    )


def _idempotency_header(key: str | None) -> str | None:
    if key is None:
        return None
    try:
        return validate(IdempotencyKey, {"key": key}).key
    except BadRequest as exc:
        raise BadRequest(exc.message.replace("key:", "Idempotency-Key header:", 1)) from None


async def enqueue(request: Request) -> JSONResponse:
    ctx = context(request)
    data = await read_json(request, limit=ctx.settings.max_body_size + REQUEST_OVERHEAD)
    status, body, headers = await enqueue_one(ctx, data, request.headers.get("idempotency-key"))
    return ok(body, status, headers=headers)


async def enqueue_one(
    ctx: Context, data: dict[str, Any], idempotency_header: str | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST /v1/jobs past auth and body parsing: status, body and headers to answer."""
    header_key = _idempotency_header(idempotency_header)
    request = validate(JobRequest, data)
    if header_key is not None:  # both valid: the header wins over the field
        request = request.model_copy(update={"idempotency_key": header_key})
    now = ctx.clock()
    new = to_new_job(request, ctx.settings, now)
    [result] = await ctx.store.enqueue(
        jobs=[new],
        now=now,
        idempotency_ttl=ctx.settings.idempotency_ttl,
        defaults=ctx.settings.job_defaults,
    )
    body = job_json(result.job, now)
    body["deduplicated"] = not result.created
    if not result.created:
        return 200, body, {}
    ctx.metrics.enqueued.labels(queue=new.queue).inc()
    ctx.dispatcher.notify(new.run_at)
    if log.isEnabledFor(logging.INFO):
        job = result.job
        log.info(
            "job %s enqueued in %s (%s)",
            job.id,
            job.queue,
            body["state"],
            extra={"job_id": job.id, "queue": job.queue, "verdict": body["state"]},
        )
    return 201, body, {"location": f"/v1/jobs/{result.job.id}"}


async def enqueue_batch(request: Request) -> JSONResponse:
    ctx = context(request)
    data = await read_json(request, limit=ctx.settings.max_batch_size)
    batch = validate(BatchRequest, data)
    now = ctx.clock()
    jobs = [to_new_job(item, ctx.settings, now, f"jobs[{i}].") for i, item in enumerate(batch.jobs)]
    results = await ctx.store.enqueue(
        jobs=jobs,
        now=now,
        idempotency_ttl=ctx.settings.idempotency_ttl,
        defaults=ctx.settings.job_defaults,
    )
    out = []
    for result in results:
        body = job_json(result.job, now)
        body["deduplicated"] = not result.created
        out.append(body)
        if result.created:
            ctx.metrics.enqueued.labels(queue=result.job.queue).inc()
    ctx.dispatcher.notify(min(job.run_at for job in jobs))
    created = sum(result.created for result in results)
    log.info("batch of %d enqueued (%d new)", len(results), created)
    return ok({"jobs": out}, 201)


WAIT_RECHECK = 1.0  # re-read while waiting: another node may finish the job


def query_wait(request: Request) -> float:
    text = request.query_params.get("wait")
    if text is None:
        return 0.0
    if not re.fullmatch(WAIT_PATTERN, text):
        raise BadRequest(f"wait must be a number of seconds from 0 to {MAX_WAIT:g}")
    return parse_duration(text)


async def get_job(request: Request) -> JSONResponse:
    """The job; with ?wait=N, held up to N seconds until it finishes (long poll)."""
    ctx = context(request)
    job_id = request.path_params["id"]
    wait = query_wait(request)
    deadline = time.monotonic() + wait
    while True:
        job = await ctx.store.get(job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        left = deadline - time.monotonic()
        if job.state in TERMINAL_STATES or left <= 0:
            return ok(job_json(job, ctx.clock()))
        await ctx.waiters.wait(job_id, min(left, WAIT_RECHECK))


def query_limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return LIST_LIMIT_DEFAULT
    if not re.fullmatch(LIMIT_PATTERN, text):
        raise BadRequest(f"limit must be an integer from 1 to {LIST_LIMIT_MAX}")
    return int(text)


def query_queue(request: Request) -> str | None:
    queue = request.query_params.get("queue")
    if queue is not None and not re.fullmatch(NAME_PATTERN, queue):
        raise BadRequest("queue must match [A-Za-z0-9_.-]{1,64}")
    return queue


def query_cursor(request: Request, schema: str = "cursor") -> str | None:
    cursor = request.query_params.get("cursor")
    if cursor is not None and not re.fullmatch(QUERY_SCHEMAS[schema]["pattern"], cursor):
        raise BadRequest("cursor is not valid; pass next_cursor from a previous page")
    return cursor


async def list_jobs(request: Request) -> JSONResponse:
    ctx = context(request)
    state = request.query_params.get("state")
    if state is not None and state not in PUBLIC_STATES:
        raise BadRequest(f"state must be one of {', '.join(PUBLIC_STATES)}")
    now = ctx.clock()
    try:
        page = await ctx.store.list_jobs(
            queue=query_queue(request),
            state=state,
            limit=query_limit(request),
            cursor=query_cursor(request),
            now=now,
        )
    except ValueError:
        raise BadRequest("cursor is not valid; pass next_cursor from a previous page") from None
    return ok({"jobs": [job_json(j, now) for j in page.jobs], "next_cursor": page.next_cursor})


async def list_attempts(request: Request) -> JSONResponse:
    ctx = context(request)
    job_id = request.path_params["id"]
    if await ctx.store.get(job_id=job_id) is None:
        raise NotFound(f"no job {job_id}")
    attempts = await ctx.store.list_attempts(job_id=job_id)
    return ok({"attempts": [attempt_json(a) for a in attempts]})


async def cancel(request: Request) -> JSONResponse:
    ctx = context(request)
    now = ctx.clock()
    job = await ctx.store.cancel(job_id=request.path_params["id"], now=now)
    ctx.waiters.wake(job.id)
    ctx.dispatcher.notify()  # the next job of its ordering key may go now
    log.info(
        "job %s cancelled",
        job.id,
        extra={"job_id": job.id, "queue": job.queue, "verdict": "cancelled"},
    )
    return ok(job_json(job, now))
