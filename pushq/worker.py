"""Helpers for worker endpoints: check that a request came from pushq, and run task
functions the way Celery users expect, as plain web handlers.

    router = TaskRouter(base_url="https://app.example.com/tasks")

    @router.task(queue="emails", max_attempts=5)
    def send_email(ctx: JobContext, to: str) -> dict[str, str]:
        ...
        return {"sent_to": to}

    app.mount("/tasks", router)          # Starlette / FastAPI; or serve `router` itself
    send_email.enqueue("ada@example.com")  # Celery's .delay()

What a task does decides the answer pushq gets, and so the job's fate:

    return a value          200 + the value as JSON      succeeded, the value is the result
    raise Retry(after=s)    503 (+ Retry-After: s)       retried (not before s seconds)
    raise Permanent(why)    422 + pushq-retry: false     dead at once
    Async() / ctx.defer()   202 + pushq-async: true      active until ctx.complete / ctx.fail
    raise anything else     500                          retried with backoff

Before a task runs, a request may be turned away; it runs nothing, and the answer
says whether another attempt could go better:

    signature does not verify      401                        retried: mid-rotation the
                                                              worker may lack pushq's secret
    no task of that name           404                        retried: mid-deploy the task
                                                              may not be here yet
    arguments do not fit the task  422                        retried: the enqueuer may run
                                                              newer code than this worker
    body not JSON, args not a list,
    or over max_body_size          400/413 + pushq-retry: false   dead at once: the same
                                                              body comes every time

Each retried answer still ends in the DLQ once the job's attempts run out; list
404 or 422 in the queue's `permanent_statuses` to end such jobs at once instead.
"""

from __future__ import annotations

import asyncio
import collections.abc
import inspect
import json
import logging
import math
import os
import time
import traceback
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple, Protocol, TypeVar, overload
from urllib.parse import quote

from . import signing
from .client import AsyncClient, Client, Job
from .errors import ConfigError, InvalidSignature, TaskArgumentError

log = logging.getLogger("pushq.worker")

R = TypeVar("R")
MAX_BODY = 16 * 1024 * 1024


def verify(
    secret: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float = signing.DEFAULT_TOLERANCE,
) -> None:
    """Raise pushq.InvalidSignature unless one of the secrets signed this body
    within `tolerance` seconds of now. Pass several secrets while rotating."""
    signing.verify(secret, body, headers, now=time.time(), tolerance=tolerance)


# -- what a task raises ---------------------------------------------------------------


class Retry(Exception):
    """Raise in a task to have the job tried again, not before `after` seconds if given
    (else per the job's backoff). Celery's `self.retry(countdown=...)`."""

    def __init__(self, message: str = "retry requested", *, after: float | timedelta | None = None):
        super().__init__(message)
        self.message = message
        self.after = after.total_seconds() if isinstance(after, timedelta) else after


class Permanent(Exception):
    """Raise in a task for a failure no retry can fix: the job goes straight to the DLQ."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Async(Exception):
    """Raise or return in a task to finish the job later: pushq keeps it active until
    `JobContext.complete` or `.fail` (the task must report progress within its timeout)."""

    def __init__(self, message: str = "accepted; completes asynchronously"):
        super().__init__(message)
        self.message = message


# -- the job a request carries ----------------------------------------------------------


@dataclass
class JobContext:
    """The job being run: its id (stable across attempts: your idempotency key), the
    attempt number, and calls back to pushq authenticated with the job token.

    The blocking calls (`progress`, `complete`, `fail`) suit sync tasks, which run in a
    thread; async tasks await `aprogress`, `acomplete`, `afail`."""

    id: str
    attempt: int
    max_attempts: int
    queue: str
    job_token: str | None
    # where pushq says it can be reached (PUSHQ_PUBLIC_URL); $PUSHQ_URL wins if set
    api_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    client: Client | None = field(default=None, repr=False)
    async_client: AsyncClient | None = field(default=None, repr=False)
    deferred: bool = False

    @classmethod
    def from_headers(
        cls,
        headers: Mapping[str, str],
        *,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
    ) -> JobContext:
        lowered = {k.lower(): v for k, v in headers.items()}
        return cls(
            id=lowered.get("webhook-id", ""),
            attempt=_int(lowered.get("pushq-attempt"), 1),
            max_attempts=_int(lowered.get("pushq-max-attempts"), 1),
            queue=lowered.get("pushq-queue", "default"),
            job_token=lowered.get("pushq-job-token"),
            api_url=lowered.get("pushq-api-url"),
            headers=lowered,
            client=client,
            async_client=async_client,
        )

    @property
    def last_attempt(self) -> bool:
        """True when a failure now sends the job to the DLQ."""
        return self.attempt >= self.max_attempts

    def defer(self) -> Async:
        """Answer 202 pushq-async: the job stays active until complete() or fail()."""
        self.deferred = True
        return Async()

    def _call(self, action: Callable[[Client], R]) -> R:
        if self.client is not None:
            return action(self.client)
        with Client(base_url=self._base_url()) as client:
            return action(client)

    async def _acall(self, action: Callable[[AsyncClient], Awaitable[R]]) -> R:
        if self.async_client is not None:
            return await action(self.async_client)
        async with AsyncClient(base_url=self._base_url()) as client:
            return await action(client)

    def _base_url(self) -> str | None:
        return None if os.environ.get("PUSHQ_URL") else self.api_url

    def progress(
        self,
        percent: float | None = None,
        current: int | None = None,
        total: int | None = None,
        message: str | None = None,
        meta: Any = None,
    ) -> None:
        """Report progress (Celery's update_state); it also counts as a heartbeat."""
        self._call(
            lambda c: c.progress(
                self.id,
                percent=percent,
                current=current,
                total=total,
                message=message,
                meta=meta,
                job_token=self.job_token,
            )
        )

    async def aprogress(
        self,
        percent: float | None = None,
        current: int | None = None,
        total: int | None = None,
        message: str | None = None,
        meta: Any = None,
    ) -> None:
        """`progress`, awaited."""
        await self._acall(
            lambda c: c.progress(
                self.id,
                percent=percent,
                current=current,
                total=total,
                message=message,
                meta=meta,
                job_token=self.job_token,
            )
        )

    def complete(self, result: Any = None) -> None:
        """Finish a deferred job as succeeded with `result`."""
        self._call(lambda c: c.complete(self.id, result, job_token=self.job_token))

    async def acomplete(self, result: Any = None) -> None:
        """`complete`, awaited."""
        await self._acall(lambda c: c.complete(self.id, result, job_token=self.job_token))

    def fail(self, error: str, *, retry: bool = True) -> None:
        """Fail a deferred job: retried per its backoff, or dead if not `retry`."""
        self._call(lambda c: c.fail(self.id, error, retry=retry, job_token=self.job_token))

    async def afail(self, error: str, *, retry: bool = True) -> None:
        """`fail`, awaited."""
        await self._acall(lambda c: c.fail(self.id, error, retry=retry, job_token=self.job_token))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


# -- from a request to an answer, framework-free ------------------------------------------


class WorkerResponse(NamedTuple):
    """What to answer pushq: unpack as `status, headers, body` in any framework."""

    status: int
    headers: dict[str, str]
    body: bytes


def _reply(status: int, data: Any, headers: dict[str, str] | None = None) -> WorkerResponse:
    body = json.dumps(data, separators=(",", ":")).encode()
    return WorkerResponse(status, {"content-type": "application/json", **(headers or {})}, body)


class _Rejected(Exception):
    def __init__(self, reply: WorkerResponse) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _unfixable(status: int, message: str) -> _Rejected:
    # pushq-retry: false: pushq retries every 4xx, but no retry can fix this one.
    return _Rejected(_reply(status, {"error": message}, {"pushq-retry": "false"}))


def _not_yet(status: int, message: str) -> _Rejected:
    # No pushq-retry header: another attempt (after a deploy, a rotation) may go better.
    return _Rejected(_reply(status, {"error": message}))


def _check(
    secrets: str | Iterable[str], body: bytes, headers: Mapping[str, str], tolerance: float
) -> None:
    try:
        verify(secrets, body, headers, tolerance=tolerance)
    except InvalidSignature as exc:
        raise _not_yet(401, f"invalid signature: {exc}") from None


def _arguments(body: bytes) -> tuple[list[Any], dict[str, Any]]:
    """A body `{"args": [...], "kwargs": {...}}` is a call; any other JSON is one argument."""
    if not body.strip():
        return [], {}
    try:
        data = json.loads(body)
    except ValueError:
        raise _unfixable(400, "the body is not JSON") from None
    if isinstance(data, dict) and data.keys() <= {"args", "kwargs"}:
        args, kwargs = data.get("args", []), data.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise _unfixable(400, "args must be a list and kwargs an object")
        return args, kwargs
    return [data], {}


def _wants_context(func: Callable[..., Any]) -> bool:
    """Whether the first parameter is a JobContext: annotated so, or named `ctx`."""
    params = list(inspect.signature(func).parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    annotation = params[0].annotation
    if annotation is JobContext:
        return True
    if isinstance(annotation, str) and annotation.rpartition(".")[2] == "JobContext":
        return True
    return params[0].name == "ctx"


def _bind(
    func: Callable[..., Any], ctx: JobContext | None, args: list[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    full = [ctx, *args] if ctx is not None else args
    try:
        inspect.signature(func).bind(*full, **kwargs)
    except TypeError as exc:
        raise _not_yet(422, f"arguments do not fit {func.__name__}: {exc}") from None
    return full, kwargs


def _answer(value: Any, ctx: JobContext) -> WorkerResponse:
    if ctx.deferred or isinstance(value, Async):
        return _reply(202, {"async": True}, {"pushq-async": "true"})
    try:
        return _reply(200, value)
    except (TypeError, ValueError) as exc:
        log.error("job %s: the task's return value is not JSON: %s", ctx.id, exc)
        return _reply(500, {"error": f"the return value is not JSON: {exc}"})


def _answer_error(exc: Exception, ctx: JobContext) -> WorkerResponse:
    if isinstance(exc, Retry):
        headers = {} if exc.after is None else {"retry-after": str(max(0, math.ceil(exc.after)))}
        return _reply(503, {"error": exc.message}, headers)
    if isinstance(exc, Permanent):
        return _reply(422, {"error": exc.reason}, {"pushq-retry": "false"})
    if isinstance(exc, Async) or ctx.deferred:
        return _reply(202, {"async": True}, {"pushq-async": "true"})
    log.exception("job %s attempt %d failed", ctx.id, ctx.attempt)
    # Only pushq (a signed request) sees this: it lands in the attempt log and the DLQ.
    return _reply(
        500,
        {
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc)[-20:]),
        },
    )


def handle(
    secret: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    func: Callable[..., Any],
    *,
    client: Client | None = None,
    tolerance: float = signing.DEFAULT_TOLERANCE,
) -> WorkerResponse:
    """Run a pushq delivery through a plain (sync) function, for Flask, Django or any
    framework: verify, call `func` with the job's arguments (and a JobContext first if it
    wants one), and map the outcome as TaskRouter does.

        status, headers, body = handle(SECRET, request.get_data(), request.headers, send_email)
        return body, status, headers
    """
    if inspect.iscoroutinefunction(func):
        raise TypeError("handle() runs sync functions; serve async ones with TaskRouter")
    ctx = JobContext.from_headers(headers, client=client)
    try:
        _check(secret, body, headers, tolerance)
        args, kwargs = _arguments(body)
        args, kwargs = _bind(func, ctx if _wants_context(func) else None, args, kwargs)
    except _Rejected as rejected:
        return rejected.reply
    try:
        value = func(*args, **kwargs)
    except Exception as exc:
        return _answer_error(exc, ctx)
    return _answer(value, ctx)


# -- the ASGI router -----------------------------------------------------------------------


JOB_FIELDS = frozenset(inspect.signature(Client.enqueue).parameters) - {"self", "url", "body"}


def _job_fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - JOB_FIELDS)
    if unknown:
        raise TypeError(
            f"not job fields: {', '.join(unknown)} (known: {', '.join(sorted(JOB_FIELDS))})"
        )
    return fields


# -- checking a call before it is enqueued ---------------------------------------------------

_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "None"
    if typing.get_args(hint):
        return str(hint).replace("typing.", "")
    return str(getattr(hint, "__name__", hint))


def _misfit(value: Any, hint: Any) -> str | None:
    """Why `value`, as JSON will carry it, cannot be `hint`; None when it fits or when
    the annotation says nothing checkable (a class of the application, a TypeVar...)."""
    if hint is Any or hint is inspect.Parameter.empty or isinstance(hint, TypeVar):
        return None
    if hint is None or hint is type(None):
        return None if value is None else f"expected None, got {type(value).__name__}"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        reasons = [_misfit(value, member) for member in args]
        if any(reason is None for reason in reasons):
            return None
        for member, reason in zip(args, reasons, strict=True):
            base = typing.get_origin(member) or member
            if isinstance(base, type) and isinstance(value, base):
                return reason  # the right kind, wrong inside: say where
        return f"expected {' | '.join(_type_name(m) for m in args)}, got {type(value).__name__}"
    if origin is typing.Literal:
        return None if value in args else f"expected one of {list(args)!r}, got {value!r}"
    if origin is typing.Annotated:
        return _misfit(value, args[0])
    base = origin or hint
    got = type(value).__name__
    if base is bool:
        return None if isinstance(value, bool) else f"expected bool, got {got}"
    if base is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
        return None if fits else f"expected int, got {got}"
    if base is float:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
        return None if fits else f"expected float, got {got}"
    if base is str:
        return None if isinstance(value, str) else f"expected str, got {got}"
    if base in _MAPPINGS:
        if not isinstance(value, Mapping):
            return f"expected {_type_name(base)}, got {got}"
        if len(args) == 2:
            for key, item in value.items():
                why = _misfit(key, args[0]) or _misfit(item, args[1])
                if why is not None:
                    return f"[{key!r}]: {why}"
        return None
    if base in _SEQUENCES:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
            return f"expected {_type_name(base)}, got {got}"
        if base is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                return f"expected {len(args)} items, got {len(value)}"
            items = list(zip(args, value, strict=True))
        else:
            items = [(args[0], item) for item in value] if args else []
        for index, (item_hint, item) in enumerate(items):
            why = _misfit(item, item_hint)
            if why is not None:
                return f"[{index}]: {why}"
        return None
    return None  # a type JSON cannot name: the task's own business


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # an annotation that does not resolve here: check arity only
        return {}


def _check_call(task: Task, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Raise `pushq.TaskArgumentError` unless the task function takes these arguments:
    they bind to its signature (as Celery's `typing=True` checks), each fits its
    annotation as far as JSON can carry it (int, float, str, bool, None, list / tuple /
    dict of those, unions, Literal), and the whole call is JSON."""
    signature = inspect.signature(task.func)
    parameters = list(signature.parameters.values())
    if task.wants_context:
        signature = signature.replace(parameters=parameters[1:])
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TaskArgumentError(f"task {task.name}: {exc}") from None
    hints = _hints(task.func)
    for name, value in bound.arguments.items():
        hint = hints.get(name)
        if hint is None:
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            checks = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            checks = [(k, v) for k, v in value.items()]
        else:
            checks = [(name, value)]
        for label, item in checks:
            why = _misfit(item, hint)
            if why is not None:
                raise TaskArgumentError(f"task {task.name}: argument {label}: {why}")
    try:
        json.dumps({"args": list(args), "kwargs": dict(kwargs)})
    except (TypeError, ValueError) as exc:
        raise TaskArgumentError(f"task {task.name}: arguments are not JSON: {exc}") from None


class Task:
    """A function registered with `@router.task`: call it directly as before, or
    `.enqueue(*args, **kwargs)` to have pushq run it through the router. With `typing`
    (the default), enqueue checks the arguments against the function first."""

    def __init__(
        self,
        router: TaskRouter,
        func: Callable[..., Any],
        name: str,
        defaults: dict[str, Any],
        *,
        typing: bool = True,
    ) -> None:
        self.router = router
        self.func = func
        self.name = name
        self.defaults = defaults
        self.typing = typing
        self.wants_context = _wants_context(func)
        self.is_async = inspect.iscoroutinefunction(func)
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    @property
    def url(self) -> str:
        """Where pushq delivers this task's jobs."""
        return self.router.url_for(self.name)

    def options(self, **job_fields: Any) -> Task:
        """The same task with other job fields for the next enqueue (Celery's
        apply_async options): `send.options(delay="1h", priority=5).enqueue(user_id)`."""
        defaults = {**self.defaults, **_job_fields(job_fields)}
        return Task(self.router, self.func, self.name, defaults, typing=self.typing)

    def check(self, *args: Any, **kwargs: Any) -> None:
        """Raise `pushq.TaskArgumentError` unless the task takes these arguments (what
        `enqueue` checks first, unless the task was registered with `typing=False`)."""
        _check_call(self, args, kwargs)

    def _body(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.typing:
            _check_call(self, args, kwargs)
        return {"args": list(args), "kwargs": kwargs}

    def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        """Enqueue a run of this task with these arguments (Celery's .delay()).
        `pushq.TaskArgumentError` before any request if they do not fit the function."""
        body = self._body(args, kwargs)
        return self.router.client.enqueue(self.url, body, **self.defaults)

    async def aenqueue(self, *args: Any, **kwargs: Any) -> Job:
        """`enqueue`, awaited, with the router's AsyncClient."""
        body = self._body(args, kwargs)
        return await self.router.async_client.enqueue(self.url, body, **self.defaults)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class WorkerRequest(Protocol):
    """What `TaskRouter.run` reads of a request: a Starlette `Request` fits."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def scope(self) -> Scope: ...

    def stream(self) -> AsyncIterator[bytes]: ...


class _AsgiRequest:
    """A request read straight off ASGI, so the SDK needs no web framework."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", ())
        }

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _unfixable(400, "the client went away mid-request")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class TaskRouter:
    """An ASGI app that runs registered tasks for signed pushq deliveries: POST
    <base_url>/<task name>. Mount it (`Mount("/tasks", router)`, FastAPI's
    `app.mount`) or serve it as the app.

    `secret` defaults to $PUSHQ_SIGNING_SECRET (several, space separated, while
    rotating). `base_url` is this router's public URL, the one pushq calls; it is
    needed only to enqueue. `client` / `async_client` talk to pushq (default: from
    $PUSHQ_URL and $PUSHQ_API_TOKEN, made when first needed, closed by `close()`)."""

    def __init__(
        self,
        *,
        secret: str | Iterable[str] | None = None,
        base_url: str | None = None,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        tolerance: float = signing.DEFAULT_TOLERANCE,
        max_body_size: int = MAX_BODY,
    ) -> None:
        if secret is None:
            secret = os.environ.get("PUSHQ_SIGNING_SECRET", "").split()
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        if not self.secrets:
            raise ConfigError(
                "TaskRouter needs a signing secret: pass secret= or set PUSHQ_SIGNING_SECRET"
            )
        self.base_url = base_url
        self.tolerance = tolerance
        self.max_body_size = max_body_size
        self.tasks: dict[str, Task] = {}
        self._client = client
        self._async_client = async_client
        self._owned: list[Client | AsyncClient] = []

    # -- registering and enqueueing

    @overload
    def task(self, func: Callable[..., Any], /) -> Task: ...

    @overload
    def task(
        self,
        func: None = None,
        /,
        *,
        name: str | None = None,
        typing: bool = True,
        **job_defaults: Any,
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        typing: bool = True,
        **job_defaults: Any,
    ) -> Task | Callable[[Callable[..., Any]], Task]:
        """Register a function as a task, bare (`@router.task`) or with a name and job
        defaults for its enqueues (`@router.task(queue="emails", max_attempts=5)`).
        `typing=False` skips the check of enqueued arguments against the function."""

        def register(f: Callable[..., Any]) -> Task:
            task_name = name or f.__name__
            if task_name in self.tasks:
                raise ValueError(f"a task named {task_name!r} is already registered")
            defaults = _job_fields(dict(job_defaults))
            registered = Task(self, f, task_name, defaults, typing=typing)
            self.tasks[task_name] = registered
            return registered

        return register(func) if func is not None else register

    def url_for(self, name: str) -> str:
        """The URL pushq delivers the task `name` to."""
        if self.base_url is None:
            raise ConfigError("set TaskRouter(base_url=...) to enqueue: the URL pushq calls")
        return f"{self.base_url.rstrip('/')}/{quote(name, safe='')}"

    @property
    def client(self) -> Client:
        """The Client tasks enqueue with and sync tasks report through."""
        if self._client is None:
            self._client = Client()
            self._owned.append(self._client)
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        """The AsyncClient for `aenqueue` and async tasks' reports."""
        if self._async_client is None:
            self._async_client = AsyncClient()
            self._owned.append(self._async_client)
        return self._async_client

    async def close(self) -> None:
        """Close the clients the router made itself."""
        for owned in self._owned:
            if isinstance(owned, Client):
                owned.close()
            else:
                await owned.aclose()
        self._owned.clear()
        self._client = self._async_client = None

    # -- serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"TaskRouter serves HTTP, not {scope['type']}")
        reply = await self.run(_AsgiRequest(scope, receive))
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()
        ]
        headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def run(self, request: WorkerRequest) -> WorkerResponse:
        """Verify the request, run the task its path names, and say what to answer."""
        ctx = JobContext.from_headers(
            request.headers, client=self._client, async_client=self._async_client
        )
        try:
            body = await self._body(request)
            _check(self.secrets, body, request.headers, self.tolerance)
            task = self._route(request)
            args, kwargs = _arguments(body)
            args, kwargs = _bind(task.func, ctx if task.wants_context else None, args, kwargs)
        except _Rejected as rejected:
            return rejected.reply
        if task.wants_context and not task.is_async:
            ctx.client = self.client  # a sync task reports from its thread with the sync client
        elif task.wants_context:
            ctx.async_client = self.async_client
        try:
            if task.is_async:
                value = await task.func(*args, **kwargs)
            else:
                value = await asyncio.to_thread(task.func, *args, **kwargs)
        except Exception as exc:
            return _answer_error(exc, ctx)
        return _answer(value, ctx)

    async def _body(self, request: WorkerRequest) -> bytes:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_size:
                raise _unfixable(413, f"the body is over {self.max_body_size} bytes")
        return bytes(body)

    def _route(self, request: WorkerRequest) -> Task:
        path: str = request.scope["path"]
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        name = path.strip("/")
        task = self.tasks.get(name)
        if task is None:
            raise _not_yet(404, f"no task {name!r} here")
        return task
