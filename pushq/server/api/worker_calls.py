"""The routes a worker calls about the job it is running: progress (a heartbeat
too), complete and fail. They take the job's token (or the API token)."""

from __future__ import annotations

import hmac
import logging

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from ...errors import Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from ...signing import check_job_token, job_token_key
from ..delivery import Outcome
from ..models import AttemptRecord, JobRecord
from ..render import job_json, public_state
from ..settle import Verdict
from .common import Context, bearer_token, context, ok, read_json, validate
from .schemas import CompleteRequest, FailRequest, ProgressRequest

REPORT_LIMIT = 64 * 1024
log = logging.getLogger("pushq.api")


async def _authorized_job(request: Request) -> tuple[Context, JobRecord]:
    """The active job the request is about, once its token checks out.

    401 without a token, 403 for a token of another job or an earlier attempt,
    409 when the job is no longer active (finished, cancelled, or retrying).
    """
    ctx = context(request)
    job_id = request.path_params["id"]
    token = bearer_token(request) or request.headers.get("pushq-job-token")
    if not token:
        raise Unauthorized(
            "send the pushq-job-token of the delivery as 'Authorization: Bearer <token>'"
        )
    job = await ctx.store.get(job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    is_api_token = hmac.compare_digest(token.encode(), ctx.settings.api_token.encode())
    if not is_api_token:
        key = job_token_key(ctx.settings.api_token)
        if not check_job_token(key, token, job.id, job.attempts, job.lease or ""):
            attempt = token.split(".", 1)[0]
            if attempt.isascii() and attempt.isdigit() and int(attempt) < job.attempts:
                raise Forbidden(
                    f"this token is from attempt {attempt}; job {job_id} is on attempt "
                    f"{job.attempts}",
                    code="stale_job_token",
                )
            raise Forbidden(f"the token is not valid for job {job_id}", code="invalid_job_token")
    if job.state != "active":
        raise Conflict(
            f"job {job_id} is {public_state(job, ctx.clock())}, not active",
            code="job_not_active",
        )
    return ctx, job


def _async_attempt(job: JobRecord, now: float, error: str | None) -> AttemptRecord:
    started = job.attempt_started_at or now
    return AttemptRecord(
        job.id, job.attempts, started, round((now - started) * 1000, 3), None, error, None
    )


async def progress(request: Request) -> JSONResponse:
    ctx, job = await _authorized_job(request)
    report = validate(ProgressRequest, await read_json(request, limit=REPORT_LIMIT))
    now = ctx.clock()
    progress = report.model_dump(exclude_unset=True) | {"at": now}
    if not await ctx.store.report_progress(
        job_id=job.id,
        lease=job.lease or "",
        attempt=job.attempts,
        progress=progress,
        deadline=now + job.timeout,
    ):
        raise Conflict(f"job {job.id} moved on while reporting", code="job_not_active")
    updated = await ctx.store.get(job_id=job.id)
    assert updated is not None
    return ok(job_json(updated, now))


async def complete(request: Request) -> JSONResponse:
    ctx, job = await _authorized_job(request)
    limit = ctx.settings.max_result_size
    given = validate(CompleteRequest, await read_json(request, limit=limit + 1024))
    if len(orjson.dumps(given.result)) > limit:
        raise PayloadTooLarge(f"result is larger than {limit} bytes (PUSHQ_MAX_RESULT_SIZE)")
    return await _finish(ctx, job, Outcome("succeeded", None), given.result)


async def fail(request: Request) -> JSONResponse:
    ctx, job = await _authorized_job(request)
    given = validate(FailRequest, await read_json(request, limit=REPORT_LIMIT))
    message = f"worker reported: {given.error}"
    outcome = (
        Outcome("retry", None, message, None, "reported")
        if given.retry
        else Outcome("dead", None, message, None, "reported")
    )
    return await _finish(ctx, job, outcome, None)


async def _finish(ctx: Context, job: JobRecord, outcome: Outcome, result: object) -> JSONResponse:
    assert ctx.settler is not None, "create_app was given no settler"
    now = ctx.clock()
    attempt = _async_attempt(job, now, outcome.error)
    settled = await ctx.settler.settle(job, outcome, attempt, result, now)
    if settled.verdict is Verdict.STALE:
        raise Conflict(f"job {job.id} moved on before it could be finished", code="job_not_active")
    verdict = settled.describe(now)
    log.info(
        "job %s finished by its worker: attempt %d -> %s",
        job.id,
        attempt.number,
        verdict,
        extra={"job_id": job.id, "queue": job.queue, "attempt": attempt.number, "verdict": verdict},
    )
    updated = await ctx.store.get(job_id=job.id)
    assert updated is not None
    return ok(job_json(updated, now))
