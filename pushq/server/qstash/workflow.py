"""Upstash Workflow's server side: runs, their step lists, and the /v2/workflows routes.

The SDK drives a run through ordinary /v2 publishes whose `Upstash-Workflow-*`
headers say what they are (QSTASH.md §4):

- `Init: true` starts run `RunId`; its body is the run's initial payload.
- a step (`CallType` absent or `step`) adds `{"messageId", "body": b64(step),
  "callType": "step"}` to the run's step list, and is delivered to the
  workflow URL with the whole list so far as its body.
- `toCallback` (context.call) is a plain message to the third party; its callback
  (`fromCallback`) and every failure callback (`failureCall`) are made by the
  delivery hook from the nested `Upstash-(Failure-)Callback-*` headers.

Nothing but jobs is stored. Every job of a run carries the tag `wf:<runId>`; a
step's job lives in the `qstash-workflow` queue, tagged `wf-steps:<runId>` too,
and its body is the step list up to and including itself, so the newest step's job
holds the run's whole list: appending a step is reading that job and enqueueing
the next one, in one store write. Each step is deduplicated by (run, stepId), so
an SDK that publishes a step again (its delivery was retried) adds it only once.
A run's state is read off its jobs: the newest step's state, and whether any
job of the run (a call, a callback) is still unfinished.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ...errors import BadRequest, NotFound, PayloadTooLarge
from .. import cursors
from ..api.common import Context
from ..models import JobFilter, JobRecord, NewJob, new_job_id
from .headers import Publish
from .jobs import make_job, run_tag

WORKFLOW_QUEUE = "qstash-workflow"  # the pushq queue of workflow steps
# How long a step's deduplication key lasts: longer than any retry of the step that
# published it (QStash's backoff reaches its one-day cap after six retries).
STEP_KEY_TTL = 30 * 86400.0
RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,60}$")
UNFINISHED = ("scheduled", "pending", "active", "retrying")
LIST_MAX = 100
BULK_BODY_MAX = 1024 * 1024  # DELETE /v2/workflows/runs: a list of run ids
SCAN_PAGE = 200
CALL_TYPES = ("step", "toCallback", "fromCallback", "failureCall")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def steps_tag(run_id: str) -> str:
    return f"wf-steps:{run_id}"


def run_ids(publish: Publish) -> list[str]:
    """Every run id a publish names: its own and those of its (failure) callbacks."""
    found = [publish.workflow["runid"]] if "runid" in publish.workflow else []
    for name, value in (*publish.callback_headers, *publish.failure_callback_headers):
        if name.lower() == "upstash-workflow-runid":
            found.append(value)
    return found


def check(publish: Publish) -> None:
    """BadRequest unless every run id and call type in the headers is well-formed."""
    for run_id in run_ids(publish):
        if not RUN_ID.match(run_id):
            raise BadRequest("Upstash-Workflow-RunId must match [A-Za-z0-9_.:-]{1,60}")
    call_type = publish.workflow.get("calltype")
    if call_type is not None and call_type.strip() not in CALL_TYPES:
        raise BadRequest(f"Upstash-Workflow-CallType must be one of {', '.join(CALL_TYPES)}")


def inherit(publish: Publish, previous: dict[str, Any]) -> None:
    """Give a step the run's settings it does not set itself, as its previous step had
    them. `@upstash/workflow` 1.x sends retries, retry delay and the failure callback
    with the trigger only (its `WF_TriggerOnConfig`); the Python SDK sends them with
    every step, so for it this changes nothing."""
    if publish.retries is None and isinstance(previous.get("retries"), int):
        publish.retries = previous["retries"]
    if publish.retry_delay is None and previous.get("retryDelay"):
        publish.retry_delay = str(previous["retryDelay"])
    if publish.failure_callback is None and previous.get("failureCallback"):
        publish.failure_callback = str(previous["failureCallback"])
        publish.failure_callback_headers = [
            (str(name), str(value)) for name, value in previous.get("failureCallbackHeaders") or ()
        ]


def is_step(publish: Publish) -> bool:
    return "runid" in publish.workflow and (publish.workflow.get("calltype") or "step").strip() in (
        "",
        "step",
    )


def id_millis(job_id: str) -> int:
    """The creation time (Unix ms) a job id carries in its first 48 bits."""
    value = 0
    for char in job_id[:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value >> 2


def steps_of(job: JobRecord) -> list[dict[str, Any]]:
    """The step list a step's job delivers."""
    steps = orjson.loads(job.body or b"[]")
    return steps if isinstance(steps, list) else []


def source_body(job: JobRecord) -> str | None:
    """What a workflow step's callbacks show as `sourceBody`: the run's initial payload
    (base64), which the SDK's failure function reads; None for other jobs."""
    if not (job.meta or {}).get("workflowSteps"):
        return None
    steps = steps_of(job)
    return str(steps[0].get("body") or "") if steps else ""


def _decode(entry: dict[str, Any]) -> str:
    try:
        return base64.b64decode(str(entry.get("body") or "")).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _step_json(body: bytes) -> dict[str, Any]:
    try:
        step = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("a workflow step's body must be the step as JSON") from None
    if not isinstance(step, dict) or not isinstance(step.get("stepId"), int):
        raise BadRequest("a workflow step's body must be a JSON object with an integer stepId")
    return step


@dataclass(frozen=True, slots=True)
class Run:
    """A run as its jobs show it."""

    run_id: str
    newest: JobRecord  # the newest step's job: it holds the whole step list
    busy: bool  # a job of the run (a step, a call, a callback) is unfinished

    @property
    def state(self) -> str:
        if self.newest.state == "cancelled":
            return "RUN_CANCELED"
        if self.newest.state == "dead":
            return "RUN_FAILED"
        return "RUN_STARTED" if self.busy else "RUN_SUCCESS"

    @property
    def created_at(self) -> int:
        return int((self.newest.meta or {}).get("workflowCreatedAt") or 0)

    def json(self) -> dict[str, Any]:
        """The run as Upstash's GET /v2/workflows/logs shows it."""
        steps = steps_of(self.newest)
        shown: dict[str, Any] = {
            "workflowRunId": self.run_id,
            "workflowUrl": self.newest.url,
            "workflowState": self.state,
            "workflowRunCreatedAt": self.created_at,
            "steps": [self._group(entry, i, i == len(steps) - 1) for i, entry in enumerate(steps)],
        }
        if self.state != "RUN_STARTED":
            done = self.newest.finished_at or self.newest.failed_at
            shown["workflowRunCompletedAt"] = int((done or 0) * 1000)
        return shown

    def _group(self, entry: dict[str, Any], index: int, last: bool) -> dict[str, Any]:
        message_id = str(entry.get("messageId") or "")
        step: dict[str, Any] = {
            "callType": entry.get("callType", "step"),
            "messageId": message_id,
            "concurrent": 1,
            "state": self._step_state() if last else "STEP_SUCCESS",
            "createdAt": id_millis(message_id) if message_id else 0,
        }
        text = _decode(entry)
        if index == 0:
            step |= {"stepName": "init", "stepType": "Initial", "out": text}
        else:
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = {}
            if isinstance(parsed, dict):
                for key in ("stepId", "stepName", "stepType", "out", "concurrent"):
                    if key in parsed:
                        step[key] = parsed[key]
                for key in ("sleepFor", "sleepUntil"):
                    if parsed.get(key) is not None:
                        step[key] = parsed[key]
        return {"steps": [step], "type": "sequential"}

    def _step_state(self) -> str:
        return {
            "succeeded": "STEP_SUCCESS",
            "dead": "STEP_FAILED",
            "cancelled": "STEP_CANCELED",
            "retrying": "STEP_RETRY",
        }.get(self.newest.state, "STEP_PROGRESS")


class Workflows:
    """Workflow messages made into jobs, and the /v2/workflows handlers."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def newest_step(self, run_id: str) -> JobRecord | None:
        page = await self.ctx.store.find_jobs(
            match=JobFilter(tag=steps_tag(run_id)), limit=1, cursor=None, now=self.ctx.clock()
        )
        return page.jobs[0] if page.jobs else None

    async def run(self, run_id: str) -> Run | None:
        newest = await self.newest_step(run_id)
        if newest is None:
            return None
        busy = newest.state not in ("succeeded", "dead", "cancelled")
        if not busy:
            page = await self.ctx.store.find_jobs(
                match=JobFilter(tag=run_tag(run_id), states=UNFINISHED),
                limit=1,
                cursor=None,
                now=self.ctx.clock(),
            )
            busy = bool(page.jobs)
        return Run(run_id, newest, busy)

    async def job_of(
        self,
        publish: Publish,
        *,
        destination: str,
        body: bytes,
        now: float,
        caller_ip: str | None,
    ) -> NewJob:
        """The job of one /v2 message that names a workflow run."""
        run_id = publish.workflow["runid"]
        if is_step(publish):
            return await self._step(publish, run_id, destination, body, now, caller_ip)
        key = None
        if publish.workflow.get("calltype", "").strip() == "toCallback":
            # a call is made once per step, however often the SDK publishes it
            step_id = dict((k.lower(), v) for k, v in publish.callback_headers).get(
                "upstash-forward-upstash-workflow-stepid"
            )
            if step_id is not None:
                key = f"wf-call:{run_id}:{step_id.strip()}"
        return make_job(
            publish,
            destination=destination,
            body=body,
            now=now,
            settings=self.ctx.settings,
            caller_ip=caller_ip,
            idempotency_key=key,
        )

    async def _step(
        self,
        publish: Publish,
        run_id: str,
        destination: str,
        body: bytes,
        now: float,
        caller_ip: str | None,
    ) -> NewJob:
        init = publish.workflow.get("init", "").strip().lower() == "true"
        newest = None if init else await self.newest_step(run_id)
        if init:
            base: list[dict[str, Any]] = []
            created_at = int(now * 1000)
            key = f"wf-step:{run_id}:init"
        else:
            if newest is None:
                raise NotFound(f"workflow run {run_id} not found; start it with Init: true")
            if newest.state == "cancelled":
                raise NotFound(f"workflow run {run_id} was cancelled")
            step = _step_json(body)
            inherit(publish, newest.meta or {})
            base = steps_of(newest)
            created_at = int((newest.meta or {}).get("workflowCreatedAt") or 0)
            key = f"wf-step:{run_id}:{step['stepId']}:{step.get('targetStep') or 0}"
        job = make_job(
            publish,
            destination=destination,
            body=body,
            now=now,
            settings=self.ctx.settings,
            queue=WORKFLOW_QUEUE,
            caller_ip=caller_ip,
            extra={"workflowSteps": True, "workflowCreatedAt": created_at},
            idempotency_key=key,
        )
        job.id = new_job_id(now)
        entry = {"messageId": job.id, "body": base64.b64encode(body).decode(), "callType": "step"}
        job.body = orjson.dumps([*base, entry])
        limit = self.ctx.settings.max_batch_size
        if len(job.body) > limit:
            raise PayloadTooLarge(
                f"workflow run {run_id}'s steps would be {len(job.body)} bytes; "
                f"the limit is {limit} (PUSHQ_MAX_BATCH_SIZE)"
            )
        job.tags = [run_tag(run_id), steps_tag(run_id)]
        return job

    # -- the /v2/workflows routes ----------------------------------------------------
    def _run_id(self, request: Request) -> str:
        run_id = str(request.path_params["id"])
        if not RUN_ID.match(run_id):
            raise BadRequest("a workflow run id must match [A-Za-z0-9_.:-]{1,60}")
        return run_id

    async def _cancel(self, run_id: str) -> int:
        cancelled = await self.ctx.store.cancel_matching(
            match=JobFilter(tag=run_tag(run_id)), now=self.ctx.clock()
        )
        if cancelled:
            self.ctx.dispatcher.notify()
        return cancelled

    async def delete_run(self, request: Request) -> Response:
        """DELETE /v2/workflows/runs/{id}?cancel=: the SDK's "the run is over"
        (cancel=false: nothing to undo) or a cancel (its unfinished jobs). Idempotent."""
        run_id = self._run_id(request)
        cancel = request.query_params.get("cancel", "false").strip().lower()
        if cancel not in ("true", "false"):
            raise BadRequest("cancel must be true or false")
        if await self.newest_step(run_id) is None:
            raise NotFound(f"workflow run {run_id} not found")
        cancelled = await self._cancel(run_id) if cancel == "true" else 0
        return answer({"cancelled": cancelled})

    async def delete_runs(self, request: Request) -> Response:
        """DELETE /v2/workflows/runs with {"workflowRunIds": [...]}: cancel each."""
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > BULK_BODY_MAX:
                raise PayloadTooLarge(f"the body is larger than {BULK_BODY_MAX} bytes")
        try:
            data = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not valid JSON") from None
        ids = data.get("workflowRunIds") if isinstance(data, dict) else None
        if ids is None:
            ids = request.query_params.getlist("workflowRunIds")
        if not ids or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest(
                "send workflowRunIds: a list of run ids (cancelling by URL or all runs "
                "at once is not supported)"
            )
        cancelled = 0
        for run_id in ids:
            if RUN_ID.match(run_id) and await self.newest_step(run_id) is not None:
                await self._cancel(run_id)
                cancelled += 1
        return answer({"cancelled": cancelled})

    async def get_run(self, request: Request) -> Response:
        """GET /v2/workflows/runs/{id}: the run's step list as its deliveries carry it."""
        run_id = self._run_id(request)
        newest = await self.newest_step(run_id)
        if newest is None:
            raise NotFound(f"workflow run {run_id} not found")
        return answer(steps_of(newest))

    async def logs(self, request: Request) -> Response:
        """GET /v2/workflows/logs: runs newest first, as Upstash's List Workflow Runs."""
        params = request.query_params
        count = params.get("count") or "10"
        if not count.isdigit() or not 1 <= int(count) <= LIST_MAX:
            raise BadRequest(f"count must be an integer from 1 to {LIST_MAX}")
        wanted_state = params.get("state")
        wanted_url = params.get("workflowUrl")
        runs: list[dict[str, Any]] = []
        if params.get("workflowRunId"):
            run_id = params["workflowRunId"]
            run = await self.run(run_id) if RUN_ID.match(run_id) else None
            found = [run] if run is not None else []
            runs = [r.json() for r in found if _wanted(r, wanted_state, wanted_url)]
            return answer({"runs": runs})
        cursor = params.get("cursor") or None
        seen: set[str] = set()
        next_cursor = None
        while len(runs) < int(count):
            try:
                page = await self.ctx.store.find_jobs(
                    match=JobFilter(queue=WORKFLOW_QUEUE),
                    limit=SCAN_PAGE,
                    cursor=cursor,
                    now=self.ctx.clock(),
                )
            except ValueError:
                raise BadRequest("cursor is not valid") from None
            for index, job in enumerate(page.jobs):
                run_id = str(((job.meta or {}).get("workflow") or {}).get("runid") or "")
                if not run_id or run_id in seen:
                    continue
                seen.add(run_id)
                run = await self.run(run_id)
                # a run is listed where its newest step is, so once across pages
                if run is None or run.newest.id != job.id:
                    continue
                if _wanted(run, wanted_state, wanted_url):
                    runs.append(run.json())
                if len(runs) >= int(count):
                    if index + 1 < len(page.jobs) or page.next_cursor is not None:
                        next_cursor = cursors.encode_jobs(job.id)
                    break
            cursor = page.next_cursor
            if cursor is None:
                break
        body: dict[str, Any] = {"runs": runs}
        if next_cursor is not None:
            body["cursor"] = next_cursor
        return answer(body)


def _wanted(run: Run, state: str | None, url: str | None) -> bool:
    return (not state or run.state == state) and (not url or run.newest.url == url)


def answer(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")
