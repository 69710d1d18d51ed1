"""/v1/schedules: cron schedules that enqueue a job template."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import BadRequest, NotFound
from ...policy.cron import next_fire
from ..models import JobFilter, ScheduleRecord
from ..qstash.schedules import TEMPLATE_KEY as QSTASH_TEMPLATE
from ..qstash.schedules import job_of_template
from ..render import error_json, job_json, public_state, rfc3339
from .common import Context, context, ok, read_json, validate
from .jobs import enqueue_one
from .schemas import NAME_PATTERN, ScheduleRequest
from .targets import check_job_targets

RECENT_RUNS = 5  # jobs shown in a schedule's recent_runs; GET /v1/jobs?schedule= has all


def schedule_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadRequest("schedule names match [A-Za-z0-9_.-]{1,64}")
    return name


async def schedule_json(ctx: Context, schedule: ScheduleRecord) -> dict[str, Any]:
    """A schedule with its newest runs (the jobs it made) and their outcome."""
    now = ctx.clock()
    page = await ctx.store.find_jobs(
        match=JobFilter(schedule=schedule.name), limit=RECENT_RUNS, cursor=None, now=now
    )
    runs = [
        {
            "id": job.id,
            "state": public_state(job, now),
            "attempts": job.attempts,
            "created_at": rfc3339(job.created_at),
            "finished_at": rfc3339(job.finished_at),
            "last_error": None if job.last_error is None else error_json(job.last_error),
        }
        for job in page.jobs
    ]
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "job": schedule.job,
        "paused": schedule.paused,
        "next_run_at": rfc3339(schedule.next_run_at),
        "last_run_at": rfc3339(schedule.last_run_at),
        "recent_runs": runs,
    }


async def put_schedule(request: Request) -> JSONResponse:
    ctx = context(request)
    name = schedule_name(request)
    data = await read_json(request, limit=ctx.settings.max_body_size)
    job = data.get("job")
    for field in ("delay", "run_at", "idempotency_key"):
        if isinstance(job, dict) and field in job:
            raise BadRequest(f"job.{field}: a schedule's firing time decides when it runs")
    given = validate(ScheduleRequest, data)  # the job too: fail now, not at the first firing
    check_job_targets(ctx.settings.target_policy, given.job, "job.")
    cron = given.cron  # normalised
    now = ctx.clock()
    try:
        first = next_fire(cron, given.timezone, now)
    except ValueError:
        raise BadRequest(f"cron: {cron!r} never fires") from None
    schedule = await ctx.store.put_schedule(
        name=name,
        cron=cron,
        timezone=given.timezone,
        job=job,
        next_run_at=first,
        now=now,
    )
    ctx.scheduler_wake()
    return ok(await schedule_json(ctx, schedule))


async def get_schedule(request: Request) -> JSONResponse:
    ctx = context(request)
    name = schedule_name(request)
    schedule = await ctx.store.get_schedule(name=name)
    if schedule is None:
        raise NotFound(f"no schedule {name}")
    return ok(await schedule_json(ctx, schedule))


async def list_schedules(request: Request) -> JSONResponse:
    ctx = context(request)
    schedules = [await schedule_json(ctx, s) for s in await ctx.store.list_schedules()]
    return ok({"schedules": schedules})


async def delete_schedule(request: Request) -> Response:
    ctx = context(request)
    name = schedule_name(request)
    if not await ctx.store.delete_schedule(name=name):
        raise NotFound(f"no schedule {name}")
    return Response(status_code=204)


async def _set_paused(request: Request, paused: bool) -> JSONResponse:
    ctx = context(request)
    name = schedule_name(request)
    now = ctx.clock()
    following = None
    if not paused:
        # Resumed, it fires at its next time from now: firings missed while paused
        # are skipped, not made up.
        current = await ctx.store.get_schedule(name=name)
        if current is None:
            raise NotFound(f"no schedule {name}")
        following = next_fire(current.cron, current.timezone, now)
    schedule = await ctx.store.set_schedule_paused(
        name=name, paused=paused, next_run_at=following, now=now
    )
    ctx.scheduler_wake()
    return ok(await schedule_json(ctx, schedule))


async def pause(request: Request) -> JSONResponse:
    return await _set_paused(request, True)


async def resume(request: Request) -> JSONResponse:
    return await _set_paused(request, False)


async def trigger(request: Request) -> JSONResponse:
    """Enqueue one job from the schedule's template now, besides its firings."""
    ctx = context(request)
    name = schedule_name(request)
    schedule = await ctx.store.get_schedule(name=name)
    if schedule is None:
        raise NotFound(f"no schedule {name}")
    if QSTASH_TEMPLATE in schedule.job:  # a /v2 schedule: its firing is a /v2 message
        now = ctx.clock()
        new = job_of_template(dict(schedule.job), ctx.settings, now)
        new.schedule = name
        [result] = await ctx.store.enqueue(
            jobs=[new], now=now, idempotency_ttl=0.0, defaults=ctx.settings.job_defaults
        )
        ctx.metrics.enqueued.labels(queue=new.queue).inc()
        return ok(job_json(result.job, now) | {"deduplicated": False}, 201)
    status, body, headers = await enqueue_one(ctx, dict(schedule.job), None, schedule=name)
    return ok(body, status, headers=headers)
