"""/v2/schedules: QStash schedules as pushq schedules.

A QStash schedule is a pushq schedule (visible in `/v1/schedules`) named by its
`scheduleId`, whose job template keeps the publish request itself: the
`Upstash-*` headers and the body. Each firing reads them with the same parser as
`/v2/publish` (`job_of_template`), so every publish header applies to every
firing, and the scheduler enqueues one /v2 message per firing carrying
`scheduleId`.

The template is `{"url", "method", "queue", "qstash": {...}}`: the first three so
`/v1` shows where the firings go, the rest for this module.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ...errors import BadRequest, Conflict, NotFound
from ...policy.cron import check_cron, next_fire, zone
from ..api.schemas import NAME_PATTERN
from ..config import Settings
from ..models import JobFilter, NewJob, ScheduleRecord
from .headers import header_map, parse_publish
from .jobs import PUBLISH_QUEUE, make_job
from .render import REDACTED, ms, redacted_headers

if TYPE_CHECKING:
    from .routes import V2, Handler

TEMPLATE_KEY = "qstash"  # a job template holding this key is a /v2 schedule's
# Not stored for firings: each firing is a message of its own, not a duplicate of the
# first, and its time is the schedule's.
NOT_FOR_FIRINGS = frozenset(
    {
        "upstash-cron",
        "upstash-schedule-id",
        "upstash-queue-name",
        "upstash-not-before",
        "upstash-deduplication-id",
        "upstash-content-based-deduplication",
    }
)
_CRON_TZ = re.compile(r"^\s*CRON_TZ=(\S+)\s+(.*)$")
_STATES = {"succeeded": "SUCCESS", "dead": "FAIL", "cancelled": "FAIL"}


def is_qstash(schedule: ScheduleRecord) -> bool:
    return TEMPLATE_KEY in schedule.job


def parse_cron(text: str | None) -> tuple[str, str]:
    """`Upstash-Cron` (with an optional `CRON_TZ=Zone ` prefix) as (cron, timezone)."""
    if not text or not text.strip():
        raise BadRequest("Upstash-Cron is required (a 5-field cron expression)")
    timezone = "UTC"
    match = _CRON_TZ.match(text)
    if match:
        timezone, text = match.group(1), match.group(2)
    try:
        zone(timezone)
        cron = check_cron(text.strip())
    except ValueError as exc:
        raise BadRequest(f"Upstash-Cron: {exc}") from None
    return cron, timezone


def _body_of(template: dict[str, Any]) -> bytes:
    encoded = template[TEMPLATE_KEY].get("body")
    return base64.b64decode(encoded) if encoded else b""


def job_of_template(template: dict[str, Any], settings: Settings, now: float) -> NewJob:
    """One firing of a /v2 schedule: its stored publish request made into a message
    (the scheduler sets `idempotency_key` to name the firing)."""
    own = template[TEMPLATE_KEY]
    publish = parse_publish(
        [(str(k), str(v)) for k, v in own.get("headers") or ()], token=settings.api_token
    )
    return make_job(
        publish,
        destination=template["url"],
        body=_body_of(template),
        now=now,
        settings=settings,
        queue=template.get("queue") or PUBLISH_QUEUE,
        ordering_key=own.get("ordering"),
        caller_ip=own.get("callerIp"),
        extra={"scheduleId": own["scheduleId"]},
        idempotency_key=template.get("idempotency_key"),
    )


class Schedules:
    """The /v2/schedules handlers, over the V2 plumbing (routes.V2)."""

    def __init__(self, v2: V2) -> None:
        self.v2 = v2
        self.ctx = v2.ctx

    def routes(self) -> list[tuple[str, str, Handler]]:
        # pause/resume first: POST /schedules/{destination:path} would take them too
        return [
            ("PATCH", "/schedules/{id}/pause", self.pause),
            ("POST", "/schedules/{id}/pause", self.pause),
            ("PATCH", "/schedules/{id}/resume", self.resume),
            ("POST", "/schedules/{id}/resume", self.resume),
            ("GET", "/schedules", self.list),
            ("GET", "/schedules/{id}", self.get),
            ("DELETE", "/schedules/{id}", self.delete),
            ("POST", "/schedules/{destination:path}", self.create),
        ]

    async def _schedule(self, schedule_id: str) -> ScheduleRecord:
        schedule = await self.ctx.store.get_schedule(name=schedule_id)
        if schedule is None or not is_qstash(schedule):
            raise NotFound(f"schedule {schedule_id[:100]} not found")
        return schedule

    async def create(self, request: Request) -> Response:
        pairs = list(request.headers.items())
        given = {name.lower(): value for name, value in pairs}
        cron, timezone = parse_cron(given.get("upstash-cron"))
        schedule_id = (given.get("upstash-schedule-id") or "").strip()
        if not schedule_id:
            schedule_id = "scd_" + secrets.token_hex(12)
        elif not re.fullmatch(NAME_PATTERN, schedule_id):
            raise BadRequest("Upstash-Schedule-Id must match [A-Za-z0-9_.-]{1,64}")
        kept = [
            (name, value)
            for name, value in pairs
            if name.lower() not in NOT_FOR_FIRINGS
            and (name.lower().startswith("upstash-") or name.lower() == "content-type")
        ]
        publish = self.v2.publish_of(kept)
        destination = self.v2.raw_rest(request, 0)
        url = self.v2.destination(destination, groups=False)
        body = await self.v2.body(request)
        queue_name = (given.get("upstash-queue-name") or "").strip() or None
        target, ordering = PUBLISH_QUEUE, None
        if queue_name is not None:
            target, ordering = await self.v2.queue_target(queue_name)
        now = self.ctx.clock()
        existing = await self.ctx.store.get_schedule(name=schedule_id)
        if existing is not None and not is_qstash(existing):
            raise Conflict(f"{schedule_id} names a /v1 schedule; choose another schedule id")
        created_at = ms(now)
        if existing is not None:
            created_at = existing.job[TEMPLATE_KEY].get("createdAt", created_at)
        caller = request.client.host if request.client else None
        template: dict[str, Any] = {
            "url": url,
            "method": publish.method,
            "queue": target,
            TEMPLATE_KEY: {
                "scheduleId": schedule_id,
                "cron": given["upstash-cron"].strip(),
                "headers": [list(pair) for pair in kept],
                "body": base64.b64encode(body).decode() if body else None,
                "queueName": queue_name,
                "ordering": ordering,
                "callerIp": caller,
                "createdAt": created_at,
            },
        }
        firing = job_of_template(template, self.ctx.settings, now)  # refuse what cannot fire
        try:
            first = next_fire(cron, timezone, now)
        except ValueError:
            raise BadRequest(f"Upstash-Cron: {cron!r} never fires") from None
        await self.ctx.store.put_schedule(
            name=schedule_id,
            cron=cron,
            timezone=timezone,
            job=template,
            next_run_at=first,
            now=now,
        )
        await self.v2.flow.apply([firing])  # the firings' flow-control values, set once
        self.ctx.scheduler_wake()
        return self.v2.answer({"scheduleId": schedule_id})

    async def _json(self, schedule: ScheduleRecord) -> dict[str, Any]:
        template = schedule.job
        own = template[TEMPLATE_KEY]
        publish = parse_publish(
            [(str(k), str(v)) for k, v in own.get("headers") or ()],
            token=self.ctx.settings.api_token,
        )
        shown: dict[str, Any] = {
            "scheduleId": schedule.name,
            "destination": template["url"],
            "cron": own.get("cron") or schedule.cron,
            "createdAt": own.get("createdAt", 0),
            "method": publish.method,
            "retries": 3 if publish.retries is None else publish.retries,
            "isPaused": schedule.paused,
            "header": redacted_headers(publish.headers, publish.redact),
        }
        body = _body_of(template)
        if body and "body" in publish.redact:
            shown["body"] = REDACTED
        elif body:
            try:
                shown["body"] = body.decode()
            except UnicodeDecodeError:
                shown["bodyBase64"] = base64.b64encode(body).decode()
        forwards = {
            "callbackHeader": publish.callback_headers,
            "failureCallbackHeader": publish.failure_callback_headers,
        }
        for key, nested in forwards.items():
            found = [(n[16:], v) for n, v in nested if n.lower().startswith("upstash-forward-")]
            if found:
                shown[key] = header_map(found)
        optional: dict[str, Any] = {
            "callback": publish.callback,
            "failureCallback": publish.failure_callback,
            "delay": None if publish.delay is None else int(publish.delay),
            "timeout": None if publish.timeout is None else int(publish.timeout),
            "callerIP": own.get("callerIp"),
            "queueName": own.get("queueName"),
            "retryDelayExpression": publish.retry_delay,
            "label": publish.label,
            "lastScheduleTime": ms(schedule.last_run_at),
            "nextScheduleTime": None if schedule.paused else ms(schedule.next_run_at),
        }
        if publish.flow_control_key is not None:
            flow = publish.flow_control
            optional |= {
                "flowControlKey": publish.flow_control_key,
                "parallelism": flow.get("parallelism"),
                "rate": flow.get("rate"),
                "period": flow.get("period", 1) if flow.get("rate") else None,
            }
        shown.update({k: v for k, v in optional.items() if v is not None})
        page = await self.ctx.store.find_jobs(
            match=JobFilter(schedule=schedule.name), limit=1, cursor=None, now=self.ctx.clock()
        )
        if page.jobs:
            last = page.jobs[0]
            shown["lastScheduleStates"] = {last.id: _STATES.get(last.state, "IN_PROGRESS")}
        return shown

    async def list(self, request: Request) -> Response:
        schedules = [s for s in await self.ctx.store.list_schedules() if is_qstash(s)]
        return self.v2.answer([await self._json(s) for s in schedules])

    async def get(self, request: Request) -> Response:
        return self.v2.answer(await self._json(await self._schedule(request.path_params["id"])))

    async def delete(self, request: Request) -> Response:
        schedule = await self._schedule(request.path_params["id"])
        await self.ctx.store.delete_schedule(name=schedule.name)
        self.ctx.scheduler_wake()
        return self.v2.answer({})

    async def _set_paused(self, request: Request, paused: bool) -> Response:
        schedule = await self._schedule(request.path_params["id"])
        now = self.ctx.clock()
        # Resumed, it fires at its next time from now (firings missed while paused are
        # skipped), as /v1 resume does.
        following = None if paused else next_fire(schedule.cron, schedule.timezone, now)
        await self.ctx.store.set_schedule_paused(
            name=schedule.name, paused=paused, next_run_at=following, now=now
        )
        self.ctx.scheduler_wake()
        return self.v2.answer({})

    async def pause(self, request: Request) -> Response:
        return await self._set_paused(request, True)

    async def resume(self, request: Request) -> Response:
        return await self._set_paused(request, False)
