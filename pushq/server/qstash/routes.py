"""The /v2 app: QStash's REST API over the pushq store, mounted by create_app.

Auth is the pushq API token as QStash's bearer token (or `?qstash_token=`).
Errors are QStash's `{"error": "…"}`, never a 5xx for bad input.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ...errors import ApiError, BadRequest, Conflict, NotFound, PayloadTooLarge, Unauthorized
from ..api.common import Context, parse_bearer
from ..api.schemas import NAME_PATTERN
from ..models import JobRecord, NewJob
from . import render
from .flow_control import FlowControl
from .headers import DEDUP_WINDOW, Publish, parse_publish
from .jobs import PUBLISH_QUEUE, QUEUE_PREFIX, make_job, pushq_queue
from .keys import SigningKeys
from .schedules import Schedules
from .topics import UrlGroups, fan_out
from .workflow import STEP_KEY_TTL, Workflows
from .workflow import check as check_workflow

log = logging.getLogger("pushq.qstash")
Handler = Callable[[Request], Awaitable[Response]]
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,57}$")
LIST_MAX = 1000
SCAN_PAGE = 500


class QStashResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def answer(data: Any, status: int = 200) -> Response:
    return QStashResponse(data, status_code=status)


class V2:
    """The handlers, over the pushq context and the live signing keys."""

    answer = staticmethod(answer)

    def __init__(self, ctx: Context, keys: SigningKeys) -> None:
        self.ctx = ctx
        self.keys = keys
        self._token = ctx.settings.api_token.encode()
        self.workflows = Workflows(ctx)
        self.flow = FlowControl(self)

    # -- plumbing ------------------------------------------------------------------
    def guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            token = parse_bearer(request.headers.get("authorization", "")) or (
                request.query_params.get("qstash_token")
            )
            if token is None:
                raise Unauthorized("send the token as 'Authorization: Bearer <token>'")
            if not hmac.compare_digest(token.encode(), self._token):
                raise Unauthorized("the token is not valid")
            return await handler(request)

        return guarded

    async def body(self, request: Request, limit: int | None = None) -> bytes:
        limit = limit or self.ctx.settings.max_body_size
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        return bytes(raw)

    async def json_body(self, request: Request, *, empty: Any = None) -> Any:
        raw = await self.body(request, self.ctx.settings.max_batch_size)
        if not raw.strip():
            if empty is not None:
                return empty
            raise BadRequest("the body is empty; send JSON")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None

    def publish_of(self, pairs: list[tuple[str, str]]) -> Publish:
        return parse_publish(pairs, token=self.ctx.settings.api_token)

    async def enqueue(self, jobs: list[NewJob]) -> list[tuple[JobRecord, bool]]:
        await self.flow.apply(jobs)
        now = self.ctx.clock()
        # a workflow's steps and calls keep their keys as long as a step may be retried
        workflow = any((job.meta or {}).get("workflow") for job in jobs)
        results = await self.ctx.store.enqueue(
            jobs=jobs,
            now=now,
            idempotency_ttl=STEP_KEY_TTL if workflow else DEDUP_WINDOW,
            defaults=self.ctx.settings.job_defaults,
        )
        for result in results:
            if result.created:
                self.ctx.metrics.enqueued.labels(queue=result.job.queue).inc()
        if jobs:
            self.ctx.dispatcher.notify(min(job.run_at for job in jobs))
        return [(result.job, result.created) for result in results]

    async def queue_target(self, name: str) -> tuple[str, str | None]:
        """The pushq queue of QStash queue `name` (made at parallelism 1 if new) and the
        ordering key that makes it strict FIFO at parallelism 1."""
        if not QUEUE_NAME.match(name):
            raise BadRequest("a queue name must match [A-Za-z0-9_.-]{1,57}")
        queue = await self.ctx.store.get_queue(name=pushq_queue(name))
        if queue is None or queue.concurrency is None:
            queue = await self.ctx.store.put_queue(
                name=pushq_queue(name), changes={"concurrency": 1}, now=self.ctx.clock()
            )
        return queue.name, "fifo" if queue.concurrency == 1 else None

    def destination(self, text: str, *, groups: bool = True) -> str:
        """A raw destination from the path: a URL (repaired), or where `groups` allows,
        a URL group's name (see `is_url`)."""
        if not text.startswith(("http:", "https:")) and text.startswith("http%3"):
            text = unquote(text)
        text = re.sub(r"^(https?):/(?!/)", r"\1://", text)  # merge_slashes in front
        if is_url(text):
            return text
        if groups and re.fullmatch(NAME_PATTERN, text):
            return text
        if groups:
            raise BadRequest(
                f"destination {text[:100]!r} is neither an http(s) URL nor a URL group name"
            )
        raise BadRequest(f"destination {text[:100]!r} must be an http(s) URL")

    async def jobs_to(
        self, destination: str, publish: Publish, *, body: bytes, now: float, **job: Any
    ) -> tuple[list[NewJob], bool]:
        """The messages of one publish: one for a URL, one per endpoint for a URL group
        (and whether it was a group); a workflow's message is made by workflow.py."""
        check_workflow(publish)
        if "runid" in publish.workflow:
            if not is_url(destination):
                raise BadRequest("a workflow message must go to a URL, not a URL group")
            if job.get("queue", PUBLISH_QUEUE) != PUBLISH_QUEUE:
                raise BadRequest("a workflow message cannot go through a queue")
            made = await self.workflows.job_of(
                publish, destination=destination, body=body, now=now, caller_ip=job.get("caller_ip")
            )
            return [made], False
        if is_url(destination):
            job_ = make_job(
                publish,
                destination=destination,
                body=body,
                now=now,
                settings=self.ctx.settings,
                **job,
            )
            return [job_], False
        topic = await self.ctx.store.get_topic(name=destination)
        if topic is None:
            raise NotFound(f"url group {destination[:100]} not found")
        return fan_out(topic, publish, body=body, now=now, settings=self.ctx.settings, **job), True

    def raw_rest(self, request: Request, prefix_parts: int) -> str:
        """The path after /v2/<route>/<…prefix_parts segments>, raw, plus the query."""
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        rest = path.split("/", 3 + prefix_parts)[-1]
        query = request.scope.get("query_string", b"").decode("latin-1")
        if query:
            rest += "?" + query
        return rest

    async def one_message(self, request: Request, destination: str, queue: str | None) -> Response:
        pairs = list(request.headers.items())
        publish = self.publish_of(pairs)
        url = self.destination(destination)
        body = await self.body(request)
        target, ordering = PUBLISH_QUEUE, None
        if queue is not None:
            target, ordering = await self.queue_target(queue)
        jobs, group = await self.jobs_to(
            url,
            publish,
            body=body,
            now=self.ctx.clock(),
            queue=target,
            ordering_key=ordering,
            caller_ip=request.client.host if request.client else None,
        )
        if group:
            return answer(_shown(await self.enqueue(jobs), urls=True), 201)
        [(stored, created)] = await self.enqueue(jobs)
        if not created:
            return answer({"messageId": stored.id, "deduplicated": True}, 202)
        return answer({"messageId": stored.id}, 201)

    # -- messages ------------------------------------------------------------------
    async def publish(self, request: Request) -> Response:
        return await self.one_message(request, self.raw_rest(request, 0), None)

    async def enqueue_message(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        return await self.one_message(request, self.raw_rest(request, 1), queue)

    async def batch(self, request: Request) -> Response:
        items = await self.json_body(request)
        if not isinstance(items, list) or not items:
            raise BadRequest("the body must be a JSON array of messages")
        jobs: list[NewJob] = []
        shapes: list[int | None] = []  # per item: None for a URL, else its group's size
        now = self.ctx.clock()
        caller = request.client.host if request.client else None
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
                raise BadRequest(f"message {index}: destination (a string) is required")
            headers = item.get("headers") or {}
            body = item.get("body")
            if not isinstance(headers, dict) or not isinstance(body, str | None):
                raise BadRequest(f"message {index}: headers must be an object, body a string")
            try:
                publish = self.publish_of([(str(k), str(v)) for k, v in headers.items()])
                target, ordering = PUBLISH_QUEUE, None
                if item.get("queue"):
                    target, ordering = await self.queue_target(str(item["queue"]))
                made, group = await self.jobs_to(
                    self.destination(item["destination"]),
                    publish,
                    body=(body or "").encode(),
                    now=now,
                    queue=target,
                    ordering_key=ordering,
                    caller_ip=caller,
                )
            except ApiError as exc:
                exc.message = f"message {index}: {exc.message}"
                raise
            jobs += made
            shapes.append(len(made) if group else None)
        results = await self.enqueue(jobs)
        out: list[Any] = []
        for shape in shapes:
            if shape is None:
                out += _shown(results[:1], urls=False)
                results = results[1:]
            else:
                out.append(_shown(results[:shape], urls=True))
                results = results[shape:]
        return answer(out, 201)

    async def _message(self, message_id: str) -> JobRecord:
        job = await self.ctx.store.get(job_id=message_id)
        if job is None or (job.meta or {}).get("kind") != "qstash":
            raise NotFound(f"message {message_id} not found")
        return job

    async def get_message(self, request: Request) -> Response:
        job = await self._message(request.path_params["id"])
        if job.state in ("succeeded", "dead", "cancelled"):
            raise NotFound(f"message {job.id} not found")  # QStash forgets finished ones
        return answer(render.message_json(job))

    async def _cancel(self, message_id: str) -> bool:
        try:
            await self._message(message_id)
            job = await self.ctx.store.cancel(job_id=message_id, now=self.ctx.clock())
        except (NotFound, Conflict):
            return False
        self.ctx.waiters.wake(job.id)
        self.ctx.dispatcher.notify()
        return True

    async def cancel_message(self, request: Request) -> Response:
        message_id = request.path_params["id"]
        if not await self._cancel(message_id):
            raise NotFound(f"message {message_id} not found or not pending")
        return answer({"cancelled": 1}, 202)

    async def cancel_many(self, request: Request) -> Response:
        data = await self.json_body(request, empty={})
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        ids = data.get("messageIds")
        if ids is None and request.query_params.getlist("messageIds"):
            ids = request.query_params.getlist("messageIds")
        if ids is not None:
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise BadRequest("messageIds must be a list of strings")
        else:  # the JS SDK's filters in the query (none: every unfinished message)
            params = request.query_params
            filtered = any(params.get(name) for name in FILTER_PARAMS)
            _check_filters(params)
            ids = [
                job.id
                for job in await self._scan(unfinished=True)
                if not filtered or _matches(render.message_json(job), params)
            ]
        cancelled = 0
        for message_id in ids:
            cancelled += await self._cancel(message_id)
        return answer({"cancelled": cancelled})

    async def _scan(self, *, unfinished: bool = False) -> list[JobRecord]:
        """Every /v2 message, newest first (bulk cancel and the logs read it)."""
        found: list[JobRecord] = []
        cursor = None
        while True:
            page = await self.ctx.store.list_jobs(
                queue=None, state=None, limit=SCAN_PAGE, cursor=cursor, now=self.ctx.clock()
            )
            for job in page.jobs:
                if (job.meta or {}).get("kind") != "qstash":
                    continue
                if unfinished and job.state in ("succeeded", "dead", "cancelled"):
                    continue
                found.append(job)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    # -- signing keys ------------------------------------------------------------
    async def get_keys(self, request: Request) -> Response:
        return answer({"current": self.keys.current, "next": self.keys.next})

    async def rotate_keys(self, request: Request) -> Response:
        self.keys.rotate()
        log.info("QStash signing keys rotated")
        return answer({"current": self.keys.current, "next": self.keys.next})

    # -- queues --------------------------------------------------------------------
    async def _queue_json(self, name: str) -> dict[str, Any]:
        queue = await self.ctx.store.get_queue(name=pushq_queue(name))
        if queue is None:
            raise NotFound(f"queue {name} not found")
        return {
            "name": name,
            "parallelism": queue.concurrency or 1,
            "createdAt": 0,  # pushq's store keeps no creation time for queues
            "updatedAt": 0,
            "lag": queue.unfinished,
            "paused": queue.paused,
        }

    async def upsert_queue(self, request: Request) -> Response:
        data = await self.json_body(request)
        if not isinstance(data, dict) or not isinstance(data.get("queueName"), str):
            raise BadRequest("queueName is required")
        name = data["queueName"]
        if not QUEUE_NAME.match(name):
            raise BadRequest("a queue name must match [A-Za-z0-9_.-]{1,57}")
        changes: dict[str, Any] = {}
        parallelism = data.get("parallelism")
        if parallelism is not None:
            if not isinstance(parallelism, int) or isinstance(parallelism, bool):
                raise BadRequest("parallelism must be an integer")
            changes["concurrency"] = max(1, min(parallelism, 100_000))
        elif await self.ctx.store.get_queue(name=pushq_queue(name)) is None:
            changes["concurrency"] = 1
        if "paused" in data:
            if not isinstance(data["paused"], bool):
                raise BadRequest("paused must be true or false")
            changes["paused"] = data["paused"]
        await self.ctx.store.put_queue(
            name=pushq_queue(name), changes=changes, now=self.ctx.clock()
        )
        self.ctx.dispatcher.notify()
        return answer({})

    async def list_queues(self, request: Request) -> Response:
        names = [
            q.name[len(QUEUE_PREFIX) :]
            for q in await self.ctx.store.list_queues()
            if q.name.startswith(QUEUE_PREFIX)
        ]
        return answer([await self._queue_json(name) for name in names])

    async def get_queue(self, request: Request) -> Response:
        return answer(await self._queue_json(request.path_params["queue"]))

    async def pause_queue(self, request: Request) -> Response:
        return await self._set_paused(request.path_params["queue"], True)

    async def resume_queue(self, request: Request) -> Response:
        return await self._set_paused(request.path_params["queue"], False)

    async def _set_paused(self, name: str, paused: bool) -> Response:
        await self._queue_json(name)
        await self.ctx.store.put_queue(
            name=pushq_queue(name), changes={"paused": paused}, now=self.ctx.clock()
        )
        self.ctx.dispatcher.notify()
        return answer({})

    async def delete_queue(self, request: Request) -> Response:
        """Cancels the queue's unfinished messages and resets it (pushq keeps the row)."""
        name = request.path_params["queue"]
        await self._queue_json(name)
        for job in await self._scan(unfinished=True):
            if job.queue == pushq_queue(name):
                await self._cancel(job.id)
        await self.ctx.store.put_queue(
            name=pushq_queue(name),
            changes={"concurrency": None, "paused": False},
            now=self.ctx.clock(),
        )
        return answer({})

    # -- the DLQ -------------------------------------------------------------------
    async def _dead(self, dlq_id: str) -> JobRecord:
        job = await self.ctx.store.get(job_id=dlq_id)
        if job is None or job.state != "dead" or (job.meta or {}).get("kind") != "qstash":
            raise NotFound(f"dlq message {dlq_id} not found")
        return job

    async def _dlq_json(self, job: JobRecord) -> dict[str, Any]:
        attempts = await self.ctx.store.list_attempts(job_id=job.id)
        return render.dlq_json(job, attempts[-1] if attempts else None)

    async def _dead_page(
        self, params: Any, count: int, cursor: str | None
    ) -> tuple[list[tuple[JobRecord, dict[str, Any]]], str | None]:
        """Up to `count` DLQ entries the query's filters match, from `cursor` on, newest
        first, and the cursor of what follows (None at the end)."""
        _check_filters(params)
        wanted: list[tuple[JobRecord, dict[str, Any]]] = []
        while len(wanted) < count:
            try:
                page = await self.ctx.store.list_dead(
                    queue=None, limit=count - len(wanted), cursor=cursor
                )
            except ValueError:
                raise BadRequest("cursor is not valid") from None
            for job in page.jobs:
                if (job.meta or {}).get("kind") != "qstash":
                    continue
                shown = await self._dlq_json(job)
                if _matches(shown, params):
                    wanted.append((job, shown))
            cursor = page.next_cursor
            if cursor is None:
                break
        return wanted, cursor

    async def list_dlq(self, request: Request) -> Response:
        params = request.query_params
        count = _count(params.get("count"), 100)
        found, cursor = await self._dead_page(params, count, params.get("cursor") or None)
        body: dict[str, Any] = {"messages": [shown for _, shown in found]}
        if cursor is not None:
            body["cursor"] = cursor
        return answer(body)

    async def _chosen_dead(self, request: Request, data: Any) -> tuple[list[str], str | None]:
        """The DLQ ids a bulk delete or retry means: `dlqIds` in the JSON body (Python)
        or the query (JS), else the entries the query's filters match, `count` (default
        100) at a time from `cursor` (with no filter: all of them)."""
        params = request.query_params
        if not isinstance(data, dict):
            raise BadRequest('the body must be a JSON object such as {"dlqIds": [...]}')
        ids = data.get("dlqIds")
        if ids is None and params.getlist("dlqIds"):
            ids = params.getlist("dlqIds")
        if ids is not None:
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise BadRequest("dlqIds must be a list of strings")
            if len(ids) > LIST_MAX:
                raise BadRequest(f"at most {LIST_MAX} dlqIds at a time")
            return ids, None
        count = _count(params.get("count"), 100)
        found, cursor = await self._dead_page(params, count, params.get("cursor") or None)
        return [job.id for job, _ in found], cursor

    async def get_dlq(self, request: Request) -> Response:
        return answer(await self._dlq_json(await self._dead(request.path_params["id"])))

    async def delete_dlq(self, request: Request) -> Response:
        job = await self._dead(request.path_params["id"])
        await self.ctx.store.delete_dead(job_id=job.id)
        return answer({})

    async def delete_dlq_many(self, request: Request) -> Response:
        ids, cursor = await self._chosen_dead(request, await self.json_body(request, empty={}))
        deleted = 0
        for dlq_id in ids:
            try:
                job = await self._dead(dlq_id)
            except NotFound:
                continue
            deleted += await self.ctx.store.delete_dead(job_id=job.id)
        body: dict[str, Any] = {"deleted": deleted}
        if cursor is not None:
            body["cursor"] = cursor
        return answer(body)

    async def retry_dlq(self, request: Request) -> Response:
        job = await self._dead(request.path_params["id"])
        redriven = await self.ctx.store.redrive(job_id=job.id, now=self.ctx.clock())
        self.ctx.dispatcher.notify()
        return answer({"messageId": redriven.id})

    async def retry_dlq_many(self, request: Request) -> Response:
        """Redrives the chosen entries: {"responses": [{"messageId"}], "cursor"?}."""
        ids, cursor = await self._chosen_dead(request, await self.json_body(request, empty={}))
        responses = []
        for dlq_id in ids:
            try:
                job = await self._dead(dlq_id)
                redriven = await self.ctx.store.redrive(job_id=job.id, now=self.ctx.clock())
            except (NotFound, Conflict):
                continue  # gone meanwhile, or its unique key is held
            responses.append({"messageId": redriven.id})
        if responses:
            self.ctx.dispatcher.notify()
        body: dict[str, Any] = {"responses": responses}
        if cursor is not None:
            body["cursor"] = cursor
        return answer(body)

    # -- logs ----------------------------------------------------------------------
    async def list_events(self, request: Request) -> Response:
        params = request.query_params
        _check_filters(params)
        count = _count(params.get("count"), 100)
        wanted_ids = set(params.getlist("messageIds"))
        if params.get("messageId"):
            wanted_ids.add(params["messageId"])
        before = params.get("cursor")
        found: list[dict[str, Any]] = []
        next_cursor = last_id = None
        for job in await self._scan():  # a page holds every event of its messages
            if before is not None and job.id >= before:
                continue
            if wanted_ids and job.id not in wanted_ids:
                continue
            if len(found) >= count:
                next_cursor = last_id
                break
            attempts = await self.ctx.store.list_attempts(job_id=job.id)
            found.extend(e for e in render.events(job, attempts) if _matches(e, params))
            last_id = job.id
        key = "logs" if request.url.path.endswith("/logs") else "events"
        body: dict[str, Any] = {key: found}
        if next_cursor is not None:
            body["cursor"] = next_cursor
        return answer(body)


def is_url(destination: str) -> bool:
    return destination.startswith(("http://", "https://"))


def _shown(results: list[tuple[JobRecord, bool]], *, urls: bool) -> list[dict[str, Any]]:
    """Publish answers: {"messageId", "url"?, "deduplicated"?} per message."""
    out = []
    for stored, created in results:
        shown: dict[str, Any] = {"messageId": stored.id}
        if urls:
            shown["url"] = stored.url
        if not created:
            shown["deduplicated"] = True
        out.append(shown)
    return out


def _count(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= LIST_MAX:
        raise BadRequest(f"count must be an integer from 1 to {LIST_MAX}")
    return int(text)


_FILTERS = {
    "messageId": "messageId",
    "url": "url",
    "topicName": "topicName",
    "queueName": "queueName",
    "scheduleId": "scheduleId",
    "callerIp": "callerIP",
    "label": "label",
    "state": "state",
    "flowControlKey": "flowControlKey",
    "responseStatus": "responseStatus",
}
FILTER_PARAMS = frozenset({*_FILTERS, "host", "path", "fromDate", "toDate"})


def _check_filters(params: Any) -> None:
    """Refuse bad filter values before any item is looked at (none may match)."""
    for param in ("fromDate", "toDate"):
        text = params.get(param)
        if text and not text.isdigit():
            raise BadRequest(f"{param} must be Unix milliseconds")


def _matches(item: dict[str, Any], params: Any) -> bool:
    """Whether a Message, DlqMessage or event passes the query's filters. A filter
    given several times (the JS SDK's lists) matches any of its values."""
    for param, field in _FILTERS.items():
        wanted = [v for v in params.getlist(param) if v]
        if wanted and str(item.get(field)) not in wanted:
            return False
    parts = urlsplit(str(item.get("url", "")))
    for param, value in (("host", parts.netloc), ("path", parts.path)):
        wanted = [v for v in params.getlist(param) if v]
        if wanted and value not in wanted:
            return False
    at = int(item.get("time", item.get("createdAt", 0)))
    for param, sign in (("fromDate", 1), ("toDate", -1)):
        text = params.get(param)
        if text:
            if not text.isdigit():
                raise BadRequest(f"{param} must be Unix milliseconds")
            if sign * (at - int(text)) < 0:
                return False
    return True


async def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return answer({"error": exc.message}, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed here"}
    return answer({"error": message.get(exc.status_code, str(exc.detail))}, exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return answer({"error": "internal error; see the pushq log"}, 500)


def mount(ctx: Context, keys: SigningKeys) -> Mount:
    """The /v2 routes as one Mount for create_app."""
    v2 = V2(ctx, keys)
    table: list[tuple[str, str, Handler]] = [
        ("POST", "/publish/{destination:path}", v2.publish),
        ("POST", "/enqueue/{queue}/{destination:path}", v2.enqueue_message),
        ("POST", "/batch", v2.batch),
        ("GET", "/messages/{id}", v2.get_message),
        ("DELETE", "/messages/{id}", v2.cancel_message),
        ("DELETE", "/messages", v2.cancel_many),
        ("GET", "/keys", v2.get_keys),
        ("POST", "/keys/rotate", v2.rotate_keys),
        ("POST", "/queues", v2.upsert_queue),
        ("GET", "/queues", v2.list_queues),
        ("GET", "/queues/{queue}", v2.get_queue),
        ("DELETE", "/queues/{queue}", v2.delete_queue),
        ("POST", "/queues/{queue}/pause", v2.pause_queue),
        ("POST", "/queues/{queue}/resume", v2.resume_queue),
        ("GET", "/dlq", v2.list_dlq),
        ("DELETE", "/dlq", v2.delete_dlq_many),
        ("GET", "/dlq/{id}", v2.get_dlq),
        ("DELETE", "/dlq/{id}", v2.delete_dlq),
        ("POST", "/dlq/retry/{id}", v2.retry_dlq),
        ("POST", "/dlq/retry", v2.retry_dlq_many),
        ("GET", "/events", v2.list_events),
        ("GET", "/logs", v2.list_events),
        ("DELETE", "/workflows/runs/{id}", v2.workflows.delete_run),
        ("DELETE", "/workflows/runs", v2.workflows.delete_runs),
        ("GET", "/workflows/runs/{id}", v2.workflows.get_run),
        ("GET", "/workflows/logs", v2.workflows.logs),
    ]
    table += Schedules(v2).routes()
    table += UrlGroups(v2).routes()
    table += v2.flow.routes()
    routes = [Route(path, v2.guard(handler), methods=[method]) for method, path, handler in table]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    return Mount("/v2", app=app)
