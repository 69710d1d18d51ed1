"""create_app(settings, store, ...) -> the Starlette app. Routes only: every
endpoint is declared once here, and both the router and /openapi.json read it."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ApiError
from ..version import __version__
from .api import (
    dlq,
    endpoints,
    flow_keys,
    jobs,
    queues,
    schedules,
    stats,
    system,
    topics,
    ui,
    worker_calls,
)
from .api.common import Context, DatabaseUnavailable, Notifier, error_parts, require_token
from .api.fast import FastEnqueue
from .api.schemas import (
    KEY_PATTERN,
    MAX_FLOW_KEY_LENGTH,
    MAX_KEY_LENGTH,
    NAME_PATTERN,
    QUERY_SCHEMAS,
    AttemptList,
    BatchRequest,
    CancelRequest,
    CancelResult,
    CompleteRequest,
    DeadDeleteRequest,
    DeadDeleteResult,
    DeadJob,
    EndpointList,
    EndpointOut,
    ErrorResponse,
    FailRequest,
    FlowKeyList,
    FlowKeyOut,
    FlowKeyRequest,
    Health,
    JobList,
    JobOut,
    JobRequest,
    ProgressRequest,
    PublishRequest,
    PurgeRequest,
    QueueList,
    QueueOut,
    QueueRequest,
    Ready,
    RedriveRequest,
    RedriveResult,
    ScheduleList,
    ScheduleOut,
    ScheduleRequest,
    Timeseries,
    TopicList,
    TopicOut,
    TopicRequest,
)
from .config import Settings
from .endpoints import Endpoints
from .metrics import Metrics
from .qstash.keys import SigningKeys
from .qstash.routes import mount as qstash_mount
from .settle import Settler
from .store.base import Store
from .store.errors import StoreUnavailable
from .ui.session import Sessions
from .waiters import JobWaiters

log = logging.getLogger("pushq.api")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    query: tuple[str, ...] = ()
    # error statuses besides those every route of its kind can answer (see _statuses)
    errors: tuple[int, ...] = ()


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST", "/v1/jobs", jobs.enqueue, "Enqueue a job", JobRequest, JobOut, 201, errors=(429,)
    ),
    Endpoint(
        "POST",
        "/v1/jobs/batch",
        jobs.enqueue_batch,
        "Enqueue many jobs in one transaction (all or nothing)",
        BatchRequest,
        JobList,
        201,
        errors=(429,),
    ),
    Endpoint(
        "GET",
        "/v1/jobs",
        jobs.list_jobs,
        "List jobs, newest first",
        None,
        JobList,
        query=(
            "queue",
            "state",
            "url_prefix",
            "tag",
            "flow_key",
            "schedule",
            "topic",
            "since",
            "until",
            "limit",
            "cursor",
        ),
    ),
    Endpoint(
        "POST",
        "/v1/jobs/cancel",
        jobs.cancel_many,
        "Cancel every unfinished job a filter matches",
        CancelRequest,
        CancelResult,
    ),
    Endpoint("GET", "/v1/jobs/{id}", jobs.get_job, "Get a job", None, JobOut, query=("wait",)),
    Endpoint(
        "DELETE",
        "/v1/jobs/{id}",
        jobs.delete_job,
        "Remove a finished job and its attempts",
        None,
        None,
        204,
    ),
    Endpoint(
        "GET",
        "/v1/jobs/{id}/attempts",
        jobs.list_attempts,
        "Every delivery attempt of a job",
        None,
        AttemptList,
    ),
    Endpoint(
        "POST",
        "/v1/jobs/{id}/cancel",
        jobs.cancel,
        "Cancel an unfinished job",
        None,
        JobOut,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/v1/jobs/{id}/retry",
        jobs.retry,
        "Run a waiting job now (no attempt added); redrive a dead one",
        None,
        JobOut,
    ),
    Endpoint(
        "POST",
        "/v1/jobs/{id}/replay",
        jobs.replay,
        "A new job with the same request (linked by replay_of)",
        None,
        JobOut,
        201,
    ),
    Endpoint(
        "GET",
        "/v1/dlq",
        dlq.list_dead,
        "Dead jobs, newest failure first",
        None,
        JobList,
        query=(
            "queue",
            "url_prefix",
            "status",
            "error_contains",
            "since",
            "until",
            "tag",
            "limit",
            "cursor",
        ),
    ),
    Endpoint(
        "POST",
        "/v1/dlq/retry",
        dlq.redrive_many,
        "Redrive the dead jobs a filter matches (dry_run counts them; rate_limit spreads them)",
        RedriveRequest,
        RedriveResult,
    ),
    Endpoint(
        "POST",
        "/v1/dlq/delete",
        dlq.delete_many,
        "Delete the dead jobs a filter matches for good (dry_run counts them)",
        DeadDeleteRequest,
        DeadDeleteResult,
    ),
    Endpoint("GET", "/v1/dlq/{id}", dlq.get_dead, "A dead job with its attempt log", None, DeadJob),
    Endpoint("POST", "/v1/dlq/{id}/retry", dlq.redrive, "Redrive one dead job", None, JobOut),
    Endpoint("DELETE", "/v1/dlq/{id}", dlq.delete_dead, "Drop a dead job", None, None, 204),
    Endpoint(
        "POST",
        "/v1/jobs/{id}/progress",
        worker_calls.progress,
        "A worker reports progress (and heartbeats); job token or API token",
        ProgressRequest,
        JobOut,
        auth=False,
    ),
    Endpoint(
        "POST",
        "/v1/jobs/{id}/complete",
        worker_calls.complete,
        "A worker finishes an async job; job token or API token",
        CompleteRequest,
        JobOut,
        auth=False,
    ),
    Endpoint(
        "POST",
        "/v1/jobs/{id}/fail",
        worker_calls.fail,
        "A worker fails an async job (retried unless retry is false); job token or API token",
        FailRequest,
        JobOut,
        auth=False,
    ),
    Endpoint(
        "GET",
        "/v1/queues",
        queues.list_queues,
        "Every queue with settings and stats",
        None,
        QueueList,
    ),
    Endpoint(
        "GET", "/v1/queues/{name}", queues.get_queue, "A queue's settings and stats", None, QueueOut
    ),
    Endpoint(
        "PUT",
        "/v1/queues/{name}",
        queues.put_queue,
        "Create a queue or change its settings",
        QueueRequest,
        QueueOut,
    ),
    Endpoint(
        "POST",
        "/v1/queues/{name}/pause",
        queues.pause,
        "Stop deliveries of a queue (enqueue still accepted)",
        None,
        QueueOut,
    ),
    Endpoint(
        "POST",
        "/v1/queues/{name}/resume",
        queues.resume,
        "Restart deliveries of a queue",
        None,
        QueueOut,
    ),
    Endpoint(
        "POST",
        "/v1/queues/{name}/purge",
        queues.purge,
        "Cancel every unfinished job of a queue (or of the given states)",
        PurgeRequest,
        CancelResult,
    ),
    Endpoint(
        "DELETE",
        "/v1/queues/{name}",
        queues.delete_queue,
        "Forget a queue with no unfinished jobs (force=true cancels them first)",
        None,
        None,
        204,
        query=("force",),
    ),
    Endpoint(
        "GET", "/v1/schedules", schedules.list_schedules, "Every cron schedule", None, ScheduleList
    ),
    Endpoint(
        "GET", "/v1/schedules/{name}", schedules.get_schedule, "A cron schedule", None, ScheduleOut
    ),
    Endpoint(
        "PUT",
        "/v1/schedules/{name}",
        schedules.put_schedule,
        "Create or replace a cron schedule",
        ScheduleRequest,
        ScheduleOut,
    ),
    Endpoint(
        "DELETE",
        "/v1/schedules/{name}",
        schedules.delete_schedule,
        "Delete a cron schedule",
        None,
        None,
        204,
    ),
    Endpoint(
        "POST",
        "/v1/schedules/{name}/pause",
        schedules.pause,
        "Stop a schedule's firings",
        None,
        ScheduleOut,
    ),
    Endpoint(
        "POST",
        "/v1/schedules/{name}/resume",
        schedules.resume,
        "Restart a schedule's firings (from its next time; missed ones are skipped)",
        None,
        ScheduleOut,
    ),
    Endpoint(
        "POST",
        "/v1/schedules/{name}/trigger",
        schedules.trigger,
        "Enqueue one job from the schedule now, besides its firings",
        None,
        JobOut,
        201,
    ),
    Endpoint(
        "GET",
        "/v1/flow-keys",
        flow_keys.list_flow_keys,
        "Flow keys with own settings",
        None,
        FlowKeyList,
    ),
    Endpoint(
        "GET",
        "/v1/flow-keys/{key}",
        flow_keys.get_flow_key,
        "A flow key's limits and live counts",
        None,
        FlowKeyOut,
    ),
    Endpoint(
        "PUT",
        "/v1/flow-keys/{key}",
        flow_keys.put_flow_key,
        "Set a flow key's own limits",
        FlowKeyRequest,
        FlowKeyOut,
    ),
    Endpoint(
        "POST",
        "/v1/flow-keys/{key}/pause",
        flow_keys.pause,
        "Hold a flow key's jobs (others go on)",
        None,
        FlowKeyOut,
    ),
    Endpoint(
        "POST",
        "/v1/flow-keys/{key}/resume",
        flow_keys.resume,
        "Release a paused flow key",
        None,
        FlowKeyOut,
    ),
    Endpoint(
        "GET",
        "/v1/endpoints",
        endpoints.list_endpoints,
        "Delivery health per destination origin",
        None,
        EndpointList,
    ),
    Endpoint(
        "GET",
        "/v1/endpoints/{origin}",
        endpoints.get_endpoint,
        "Delivery health of one origin (scheme://host:port)",
        None,
        EndpointOut,
    ),
    Endpoint("GET", "/v1/topics", topics.list_topics, "Every fan-out topic", None, TopicList),
    Endpoint("GET", "/v1/topics/{name}", topics.get_topic, "A fan-out topic", None, TopicOut),
    Endpoint(
        "PUT",
        "/v1/topics/{name}",
        topics.put_topic,
        "Create or replace a fan-out topic (its list of endpoints)",
        TopicRequest,
        TopicOut,
    ),
    Endpoint("DELETE", "/v1/topics/{name}", topics.delete_topic, "Forget a topic", None, None, 204),
    Endpoint(
        "POST",
        "/v1/topics/{name}/publish",
        topics.publish,
        "One job per endpoint of the topic, in one transaction",
        PublishRequest,
        JobList,
        201,
    ),
    Endpoint(
        "GET",
        "/v1/stats/timeseries",
        stats.timeseries,
        "Deliveries, failed attempts and latency per queue, minute by minute (last hour)",
        None,
        Timeseries,
        query=("queue", "minutes"),
    ),
    Endpoint(
        "GET",
        "/health",
        system.health,
        "Health of the database and dispatcher",
        None,
        Health,
        auth=False,
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/ready",
        system.ready,
        "Readiness for load balancers: 503 while starting or shutting down",
        None,
        Ready,
        auth=False,
        errors=(503,),
    ),
    Endpoint(
        "GET",
        "/metrics",
        system.metrics,
        "Prometheus metrics (behind the token with --metrics-auth)",
        auth=False,
        errors=(401, 403),
    ),
)


OPTIONAL_BODIES: tuple[type[BaseModel], ...] = (RedriveRequest, PurgeRequest, DeadDeleteRequest)


def _guarded(endpoint: Endpoint, token: str) -> Handler:
    handler = endpoint.handler
    if not endpoint.auth:
        return handler

    async def guarded(request: Request) -> Response:
        require_token(request, token)
        return await handler(request)

    return guarded


WORKER_CALLS = frozenset({"progress", "complete", "fail"})
ERROR_DESCRIPTIONS = {
    400: "Invalid request",
    401: "No valid token",
    403: "The token may not do this",
    404: "No such resource",
    409: "Conflicts with the resource's state",
    413: "Request body too large",
    429: "Over a queue's max_size or the server's backlog limit; see Retry-After",
    500: "Internal error (see the pushq log)",
    503: "Unavailable",
}


def _statuses(ep: Endpoint) -> set[int]:
    """Every error status `ep` can answer: by its kind, plus its own `errors`."""
    codes = set(ep.errors) | {500}
    worker_call = ep.path.rsplit("/", 1)[-1] in WORKER_CALLS and ep.path.startswith("/v1/jobs/{")
    if ep.auth or worker_call:
        codes |= {401, 403, 500}  # 403: a dashboard session without the CSRF header
        codes.add(503)  # the database is unavailable (disk full): see Retry-After
    if worker_call:
        codes |= {409}  # the job is no longer active
    if ep.request is not None or ep.query or "{name}" in ep.path or "{key}" in ep.path:
        codes.add(400)
    if ep.request is not None:
        codes.add(413)
    if "{" in ep.path:
        codes.add(404)
        if ep.method in ("POST", "DELETE"):
            codes.add(409)  # an action the resource's state forbids (finished, unfinished…)
    return codes


def _parameters(ep: Endpoint) -> list[dict[str, object]]:
    parameters: list[dict[str, object]] = []
    for name in re.findall(r"{(\w+)}", ep.path):
        schema: dict[str, object] = {"type": "string"}
        if name == "name":
            schema["pattern"] = NAME_PATTERN
        elif name == "key":  # a flow key
            schema.update(minLength=1, maxLength=MAX_FLOW_KEY_LENGTH, pattern=KEY_PATTERN)
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name in ep.query:
        schema = QUERY_SCHEMAS.get(f"{ep.path} {name}") or QUERY_SCHEMAS.get(name, {})
        parameters.append(
            {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"}}
        )
    if ep.path == "/v1/jobs" and ep.method == "POST":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_LENGTH,
                    "pattern": KEY_PATTERN,
                },
            }
        )
    return parameters


def openapi_document(endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> dict[str, object]:
    """The OpenAPI 3.1 document, built from the same endpoints and models the app serves.

    It lists every status each route can answer, and its request schemas hold every
    bound and pattern the server enforces (tests/e2e/test_schemathesis.py holds the two
    to each other)."""
    schemas: dict[str, object] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = {"content": {"application/json": {"schema": ref(ErrorResponse)}}}
    paths: dict[str, dict[str, object]] = {}
    for ep in endpoints:
        responses: dict[str, object] = {}
        if ep.response is not None:
            body = {"application/json": {"schema": ref(ep.response)}}
            responses[str(ep.status)] = {"description": "OK", "content": body}
            if ep.path == "/v1/jobs" and ep.method == "POST":
                responses["200"] = {
                    "description": "Deduplicated: the existing job",
                    "content": body,
                }
                location = {"schema": {"type": "string"}, "description": "the new job's URL"}
                responses[str(ep.status)] = {
                    "description": "Created",
                    "content": body,
                    "headers": {"Location": location},
                }
        elif ep.path == "/metrics":
            text = {"text/plain": {"schema": {"type": "string"}}}
            responses[str(ep.status)] = {"description": "OK", "content": text}
        else:
            responses[str(ep.status)] = {"description": "OK"}
        for code in sorted(_statuses(ep)):
            answer: dict[str, object] = {"description": ERROR_DESCRIPTIONS[code], **error}
            if code == 503 and ep.response is not None:
                answer["content"] = {"application/json": {"schema": ref(ep.response)}}
            if code == 429:
                retry = {"schema": {"type": "string"}, "description": "seconds to wait"}
                answer["headers"] = {"Retry-After": retry}
            responses[str(code)] = answer
        operation: dict[str, object] = {"summary": ep.summary, "responses": responses}
        if ep.request is not None:
            operation["requestBody"] = {
                "required": ep.request not in OPTIONAL_BODIES,
                "content": {"application/json": {"schema": ref(ep.request)}},
            }
        parameters = _parameters(ep)
        if parameters:
            operation["parameters"] = parameters
        if ep.auth or 401 in _statuses(ep) and ep.path != "/metrics":
            operation["security"] = [{"bearer": []}]
        paths.setdefault(ep.path, {})[ep.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "pushq", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    status, body, headers = error_parts(exc)
    return JSONResponse(body, status_code=status, headers=headers)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    # Logged once per episode by the store, not once per request.
    assert isinstance(exc, StoreUnavailable)
    status, body, headers = error_parts(DatabaseUnavailable.from_store(exc))
    return JSONResponse(body, status_code=status, headers=headers)


def _allowed_methods(request: Request) -> str:
    """The methods of the path the request names (Starlette's Allow names only those of
    the first route declared for it): the routes of the first path template that
    matches, so /v1/dlq/retry allows POST, not the methods of /v1/dlq/{id}."""
    path = request.scope["path"]
    routes = [r for r in request.app.router.routes if isinstance(r, Route) and r.methods]
    first = next((r.path for r in routes if r.path_regex.match(path)), None)
    methods = {m for r in routes if r.path == first for m in r.methods or ()}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed here"}
    body = {"error": {"code": code, "message": message.get(exc.status_code, str(exc.detail))}}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


INTERNAL_ERROR = orjson.dumps(
    {"error": {"code": "internal_error", "message": "internal error; see the pushq log"}}
)


class CatchAll:
    """Answers an unexpected exception with a JSON 500 and keeps the connection.

    Starlette's own last-resort handler sends its response and then re-raises, and
    uvicorn closes the client's keep-alive connection on any exception that leaves
    the app. Here the exception ends where it is logged (once, with the traceback).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # half a response is out: only closing the connection is honest
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(INTERNAL_ERROR)).encode()),
            ]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": INTERNAL_ERROR})


def create_app(
    settings: Settings,
    store: Store,
    *,
    dispatcher: Notifier,
    metrics: Metrics,
    dispatcher_last_loop: Callable[[], float] = lambda: time.time(),
    shutting_down: Callable[[], bool] = lambda: False,
    queue_activity: Callable[[str], tuple[int, int]] = lambda queue: (0, 0),
    scheduler_wake: Callable[[], None] = lambda: None,
    settler: Settler | None = None,
    waiters: JobWaiters | None = None,
    clock: Callable[[], float] = time.time,
    qstash_keys: SigningKeys | None = None,
    endpoints: Endpoints | None = None,
) -> Starlette:
    """The pushq HTTP app over a store that is already open.

    The QStash-compatible /v2 routes (pushq.server.qstash) are mounted beside the
    endpoints; they are left out of /openapi.json (docs/qstash.md says why)."""
    routes: list[BaseRoute] = [
        # an origin holds slashes (http://host:port): its route takes the rest of the path
        Route(
            ep.path.replace("{origin}", "{origin:path}"),
            _guarded(ep, settings.api_token),
            methods=[ep.method],
        )
        for ep in ENDPOINTS
    ]
    routes += ui.routes()
    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    context = Context(
        settings=settings,
        store=store,
        dispatcher=dispatcher,
        metrics=metrics,
        clock=clock,
        dispatcher_last_loop=dispatcher_last_loop,
        shutting_down=shutting_down,
        queue_activity=queue_activity,
        scheduler_wake=scheduler_wake,
        settler=settler,
        waiters=waiters or JobWaiters(),
        sessions=Sessions(settings.api_token, clock=clock),
        endpoints=endpoints,
    )
    routes.append(qstash_mount(context, qstash_keys or SigningKeys.from_settings(settings)))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(CatchAll), Middleware(FastEnqueue, ctx=context)],
        exception_handlers={
            ApiError: _api_error,
            StoreUnavailable: _store_unavailable,
            HTTPException: _http_error,
        },
    )
    app.state.pushq = context
    return app
