"""/v1/jobs: enqueue (one or a batch), inspect, list, cancel."""

from __future__ import annotations

import logging
import re
import time
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import BadRequest, NotFound, PayloadTooLarge
from ...policy.backoff import PartialBackoff
from ...policy.durations import parse_duration
from ...policy.states import PUBLIC_STATES, TERMINAL_STATES
from ..config import Settings
from ..models import JobFilter, JobRecord, NewJob
from ..render import attempt_json, job_json
from .common import Context, context, describe, ok, read_json, validate
from .schemas import (
    LIMIT_PATTERN,
    LIST_LIMIT_MAX,
    MAX_WAIT,
    NAME_PATTERN,
    QUERY_SCHEMAS,
    WAIT_PATTERN,
    BatchRequest,
    CancelRequest,
    FlowKey,
    IdempotencyKey,
    JobRequest,
    Tag,
    UrlPrefix,
    time_bound,
)
from .targets import check_job_targets, check_target

log = logging.getLogger("pushq.api")

# Room for a job's other fields around a body of the maximum size.
REQUEST_OVERHEAD = 64 * 1024
LIST_LIMIT_DEFAULT = 50


def job_from_template(template: dict[str, Any], settings: Settings, now: float) -> NewJob:
    """A schedule's stored job template, validated as the enqueue route validates a body."""
    return to_new_job(validate(JobRequest, template), settings, now)


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
        tags=request.tags,
        flow_key=request.flow_key,
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
    ctx: Context,
    data: dict[str, Any],
    idempotency_header: str | None,
    *,
    schedule: str | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST /v1/jobs past auth and body parsing: status, body and headers to answer
    (`schedule` names the schedule a triggered job comes from)."""
    header_key = _idempotency_header(idempotency_header)
    request = validate(JobRequest, data)
    if header_key is not None:  # both valid: the header wins over the field
        request = request.model_copy(update={"idempotency_key": header_key})
    now = ctx.clock()
    new = to_new_job(request, ctx.settings, now)
    new.schedule = schedule
    [result] = await ctx.store.enqueue(
        jobs=[new],
        now=now,
        idempotency_ttl=ctx.settings.idempotency_ttl,
        defaults=ctx.settings.job_defaults,
    )
    # a new job's body is the JSON to_new_job just encoded: answered as it is
    body = job_json(result.job, now, body_is_json=result.created)
    body["deduplicated"] = not result.created
    if not result.created:
        return 200, body, {}
    ctx.metrics.enqueued.labels(queue=new.queue).inc()  # (the store wakes the dispatcher)
    ctx.enqueue_log.enqueued(result.job.id, new.queue, body["state"])
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
    added: dict[str, int] = {}
    for result in results:
        body = job_json(result.job, now, body_is_json=result.created)
        body["deduplicated"] = not result.created
        out.append(body)
        if result.created:
            added[result.job.queue] = added.get(result.job.queue, 0) + 1
    for queue, n in added.items():  # one labelled update per queue, not per job
        ctx.metrics.enqueued.labels(queue=queue).inc(n)
    log.info("batch of %d enqueued (%d new)", len(results), sum(added.values()))
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
    """The page cursor, checked against the pattern /openapi.json states (the store
    raises InvalidCursor, a 400, for one it cannot read)."""
    cursor = request.query_params.get("cursor")
    if cursor is not None and not re.fullmatch(QUERY_SCHEMAS[schema]["pattern"], cursor):
        raise BadRequest("cursor is not valid; pass next_cursor from a previous page")
    return cursor


class JobQuery(BaseModel):
    """GET /v1/jobs's filters, checked as the job fields they match are."""

    url_prefix: UrlPrefix | None = None
    tag: Tag | None = None
    flow_key: FlowKey | None = None
    schedule: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    topic: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None


def query_filter(request: Request, now: float) -> JobFilter:
    """The job filter of a listing's query string; 400 naming the bad parameter."""
    params = request.query_params
    state = params.get("state")
    if state is not None and state not in PUBLIC_STATES:
        raise BadRequest(f"state must be one of {', '.join(PUBLIC_STATES)}")
    given = {name: params[name] for name in JobQuery.model_fields if name in params}
    try:
        query = JobQuery.model_validate(given)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None
    bounds: dict[str, float] = {}
    for name in ("since", "until"):
        if name in params:
            try:
                bounds[name] = time_bound(params[name], now)
            except ValueError as exc:
                raise BadRequest(f"{name}: {exc}") from None
    return JobFilter(
        queue=query_queue(request),
        states=None if state is None else (state,),
        url_prefix=query.url_prefix,
        tag=query.tag,
        flow_key=query.flow_key,
        schedule=query.schedule,
        topic=query.topic,
        since=bounds.get("since"),
        until=bounds.get("until"),
    )


async def list_jobs(request: Request) -> JSONResponse:
    ctx = context(request)
    now = ctx.clock()
    match = query_filter(request, now)
    page = await ctx.store.find_jobs(
        match=match, limit=query_limit(request), cursor=query_cursor(request), now=now
    )
    return ok({"jobs": [job_json(j, now) for j in page.jobs], "next_cursor": page.next_cursor})


async def list_attempts(request: Request) -> JSONResponse:
    ctx = context(request)
    job_id = request.path_params["id"]
    job = await ctx.store.get(job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    attempts = await ctx.store.list_attempts(job_id=job_id)
    return ok({"attempts": [attempt_json(a, job) for a in attempts]})


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


async def retry(request: Request) -> JSONResponse:
    """Run now: a waiting job becomes due at once (no attempt added); a dead one is
    redriven."""
    ctx = context(request)
    now = ctx.clock()
    job = await ctx.store.run_now(job_id=request.path_params["id"], now=now)
    ctx.dispatcher.notify()
    log.info(
        "job %s set to run now",
        job.id,
        extra={"job_id": job.id, "queue": job.queue, "verdict": "run_now"},
    )
    return ok(job_json(job, now))


def replay_of(job: JobRecord) -> NewJob:
    """A new job with the same request as `job`, due now. Its idempotency and unique
    keys are not copied: a replay is a deliberate second run."""
    return NewJob(
        url=job.url,
        queue=job.queue,
        method=job.method,
        headers=dict(job.headers),
        body=job.body,
        priority=job.priority,
        max_attempts=job.max_attempts,
        backoff=PartialBackoff(job.backoff.base, job.backoff.max, job.backoff.jitter),
        timeout=job.timeout,
        ordering_key=job.ordering_key,
        callback_url=job.callback_url,
        failure_callback_url=job.failure_callback_url,
        tags=list(job.tags),
        flow_key=job.flow_key,
        permanent_statuses=job.permanent_statuses,
        replay_of=job.id,
    )


async def replay(request: Request) -> JSONResponse:
    ctx = context(request)
    job_id = request.path_params["id"]
    original = await ctx.store.get(job_id=job_id)
    if original is None:
        raise NotFound(f"no job {job_id}")
    now = ctx.clock()
    new = replay_of(original)
    new.run_at = now
    # the targets are judged again: the policy may have changed since the original
    for field, url in (
        ("url", new.url),
        ("callback_url", new.callback_url),
        ("failure_callback_url", new.failure_callback_url),
    ):
        if url is not None:
            check_target(ctx.settings.target_policy, url, field)
    [result] = await ctx.store.enqueue(
        jobs=[new],
        now=now,
        idempotency_ttl=ctx.settings.idempotency_ttl,
        defaults=ctx.settings.job_defaults,
    )
    ctx.metrics.enqueued.labels(queue=new.queue).inc()
    ctx.dispatcher.notify(now)
    log.info(
        "job %s replays %s",
        result.job.id,
        job_id,
        extra={"job_id": result.job.id, "queue": new.queue, "verdict": "replayed"},
    )
    return ok(job_json(result.job, now), 201, headers={"location": f"/v1/jobs/{result.job.id}"})


async def delete_job(request: Request) -> Response:
    ctx = context(request)
    await ctx.store.delete_job(job_id=request.path_params["id"])
    return Response(status_code=204)


async def cancel_many(request: Request) -> JSONResponse:
    ctx = context(request)
    given = validate(CancelRequest, await read_json(request, limit=64 * 1024))
    match = JobFilter(
        queue=given.queue,
        states=None if given.state is None else (given.state,),
        url_prefix=given.url_prefix,
        tag=given.tag,
        flow_key=given.flow_key,
    )
    count = await ctx.store.cancel_matching(match=match, now=ctx.clock())
    if count:
        ctx.dispatcher.notify()  # the next jobs of their ordering keys may go now
    log.info("%d jobs cancelled by filter %s", count, given.model_dump(exclude_none=True))
    return ok({"cancelled": count})
