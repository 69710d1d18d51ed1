"""/v1/schedules: cron schedules that enqueue a job template."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import BadRequest, NotFound
from ...policy.cron import next_fire
from ..models import ScheduleRecord
from ..render import rfc3339
from .common import context, ok, read_json, validate
from .schemas import NAME_PATTERN, ScheduleRequest
from .targets import check_job_targets


def schedule_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadRequest("schedule names match [A-Za-z0-9_.-]{1,64}")
    return name


def schedule_json(schedule: ScheduleRecord) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "job": schedule.job,
        "next_run_at": rfc3339(schedule.next_run_at),
        "last_run_at": rfc3339(schedule.last_run_at),
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
    return ok(schedule_json(schedule))


async def get_schedule(request: Request) -> JSONResponse:
    ctx = context(request)
    name = schedule_name(request)
    schedule = await ctx.store.get_schedule(name=name)
    if schedule is None:
        raise NotFound(f"no schedule {name}")
    return ok(schedule_json(schedule))


async def list_schedules(request: Request) -> JSONResponse:
    ctx = context(request)
    return ok({"schedules": [schedule_json(s) for s in await ctx.store.list_schedules()]})


async def delete_schedule(request: Request) -> Response:
    ctx = context(request)
    name = schedule_name(request)
    if not await ctx.store.delete_schedule(name=name):
        raise NotFound(f"no schedule {name}")
    return Response(status_code=204)
