"""The Python SDK: `pushq.Client` (blocking) and `pushq.AsyncClient` (asyncio), on httpx.

Both clients have the same methods. Each request is described once, as a
`_Call` (method, path, body, how to read the answer, when a retry is safe), and
a client only runs calls, so the two cannot drift apart.

Retries:

- `enqueue` and `enqueue_many` retry transport faults, 5xx and 429 (honouring
  `Retry-After`) with jittered exponential waits, and always send an
  idempotency key (one is made per call when the caller gives none), so a
  retried enqueue never creates a second job.
- `GET` and `PUT` calls retry transport faults only; other calls never retry.

Errors: an error answer raises `pushq.ApiError` or its subclass for the status
(`NotFound`, `Unauthorized`, `RateLimited`, ...). When no answer arrives at all
(refused, reset, DNS, timeout) the call raises `pushq.PushqConnectionError`
(`pushq.PushqTimeout` for a timeout), never a bare httpx exception. No API token
anywhere the client looks raises `pushq.TokenNotFound` at the first call that needs one.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from .errors import (
    ApiError,
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PushqConnectionError,
    PushqError,
    PushqTimeout,
    RateLimited,
    TargetRefused,
    TokenNotFound,
    Unauthorized,
)
from .policy.backoff import parse_retry_after
from .policy.states import TERMINAL_STATES
from .version import __version__

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "PUSHQ_API_TOKEN"
DATA_DIR_ENV, DEFAULT_DATA_DIR = "PUSHQ_DATA_DIR", "pushq-data"
TOKEN_FILE = "api-token"  # where `pushq serve` saves a generated token (server.config agrees)
LONG_POLL_MAX = 30  # seconds one `wait` request asks the server to hold
POLL_PAUSE_FIRST, POLL_PAUSE_MAX = 0.05, 1.0  # between polls a server answered at once

Duration = float | int | str | timedelta
"""Seconds, a string like "30s" / "5m" / "2h" / "1d", or a timedelta."""


# -- results -----------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class LastError:
    """Why the last attempt failed: the HTTP status (None without a response), pushq's
    message, and `response`: the endpoint's own error message when its answer held one."""

    status: int | None
    message: str | None
    at: datetime | None
    response: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> LastError | None:
        if not isinstance(data, Mapping):
            return None
        return cls(
            data.get("status"), data.get("message"), _time(data.get("at")), data.get("response")
        )


@dataclass(frozen=True, slots=True)
class Result:
    """A finished job's outcome: the worker's status and its response body (JSON if it parsed)."""

    status: int | None
    body: Any


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of a job."""

    number: int
    started_at: datetime | None
    duration_ms: float | None
    status: int | None
    error: str | None
    response_body: str | None
    redrive: int = 0  # 0 before any redrive of the job, n after the n-th (numbers restart)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(
            number=int(data.get("number", 0)),
            started_at=_time(data.get("started_at")),
            duration_ms=data.get("duration_ms"),
            status=data.get("status"),
            error=data.get("error"),
            response_body=data.get("response_body"),
            redrive=int(data.get("redrive") or 0),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the API shows it. `raw` keeps the whole object, fields newer servers add too."""

    id: str
    queue: str
    url: str
    state: str
    attempts: int = 0
    max_attempts: int | None = None
    priority: int = 0
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    timeout: float | None = None
    backoff: dict[str, Any] | None = None
    created_at: datetime | None = None
    run_at: datetime | None = None
    finished_at: datetime | None = None
    failed_at: datetime | None = None
    attempt_started_at: datetime | None = None  # while active: when this attempt began
    last_error: LastError | None = None
    result: Result | None = None
    progress: Any = None
    idempotency_key: str | None = None
    unique_key: str | None = None
    ordering_key: str | None = None
    callback_url: str | None = None
    failure_callback_url: str | None = None
    tags: tuple[str, ...] = ()
    flow_key: str | None = None
    schedule: str | None = None
    topic: str | None = None
    replay_of: str | None = None
    permanent_statuses: tuple[int, ...] | None = None
    deduplicated: bool = False
    attempt_log: tuple[Attempt, ...] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        """True once the job is succeeded, dead or cancelled."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        error = data.get("last_error")
        result = data.get("result")
        log = data.get("attempt_log")
        return cls(
            id=data["id"],
            queue=data.get("queue", "default"),
            url=data.get("url", ""),
            state=data.get("state", ""),
            attempts=int(data.get("attempts") or 0),
            max_attempts=data.get("max_attempts"),
            priority=int(data.get("priority") or 0),
            method=data.get("method", "POST"),
            headers=dict(data.get("headers") or {}),
            body=data.get("body"),
            timeout=data.get("timeout"),
            backoff=data.get("backoff"),
            created_at=_time(data.get("created_at")),
            run_at=_time(data.get("run_at")),
            finished_at=_time(data.get("finished_at")),
            failed_at=_time(data.get("failed_at")),
            attempt_started_at=_time(data.get("attempt_started_at")),
            last_error=LastError.from_json(error),
            result=None
            if not isinstance(result, Mapping)
            else Result(result.get("status"), result.get("body")),
            progress=data.get("progress"),
            idempotency_key=data.get("idempotency_key"),
            unique_key=data.get("unique_key"),
            ordering_key=data.get("ordering_key"),
            callback_url=data.get("callback_url"),
            failure_callback_url=data.get("failure_callback_url"),
            tags=tuple(data.get("tags") or ()),
            flow_key=data.get("flow_key"),
            schedule=data.get("schedule"),
            topic=data.get("topic"),
            replay_of=data.get("replay_of"),
            permanent_statuses=_statuses(data.get("permanent_statuses")),
            deduplicated=bool(data.get("deduplicated")),
            attempt_log=None if log is None else tuple(Attempt.from_json(a) for a in log),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue's settings (None: the server default) and its live `stats`."""

    name: str
    paused: bool = False
    concurrency: int | None = None
    rate_limit: str | None = None
    max_attempts: int | None = None
    backoff: dict[str, Any] | None = None
    timeout: float | None = None
    max_size: int | None = None
    priority: int | None = None
    permanent_statuses: tuple[int, ...] | None = None
    key_concurrency: int | None = None
    key_rate_limit: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], name: str = "") -> Queue:
        return cls(
            name=data.get("name") or name,
            paused=bool(data.get("paused")),
            concurrency=data.get("concurrency"),
            rate_limit=data.get("rate_limit"),
            max_attempts=data.get("max_attempts"),
            backoff=data.get("backoff"),
            timeout=data.get("timeout"),
            max_size=data.get("max_size"),
            priority=data.get("priority"),
            permanent_statuses=_statuses(data.get("permanent_statuses")),
            key_concurrency=data.get("key_concurrency"),
            key_rate_limit=data.get("key_rate_limit"),
            stats=dict(data.get("stats") or {}),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """A job a schedule made (a firing or a trigger), with its outcome so far."""

    id: str
    state: str
    attempts: int = 0
    created_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: LastError | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScheduleRun:
        return cls(
            id=data["id"],
            state=data.get("state", ""),
            attempts=int(data.get("attempts") or 0),
            created_at=_time(data.get("created_at")),
            finished_at=_time(data.get("finished_at")),
            last_error=LastError.from_json(data.get("last_error")),
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule: when it fires, the job it enqueues each time, whether it is
    paused, and its `recent_runs`, newest first."""

    name: str
    cron: str
    timezone: str = "UTC"
    job: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    recent_runs: tuple[ScheduleRun, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], name: str = "") -> Schedule:
        return cls(
            name=data.get("name") or name,
            cron=data.get("cron", ""),
            timezone=data.get("timezone") or "UTC",
            job=dict(data.get("job") or {}),
            paused=bool(data.get("paused")),
            next_run_at=_time(data.get("next_run_at")),
            last_run_at=_time(data.get("last_run_at")),
            recent_runs=tuple(ScheduleRun.from_json(r) for r in data.get("recent_runs") or ()),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class FlowKey:
    """A flow key's own limits (None: the queue's `key_concurrency` / `key_rate_limit`
    apply, else none) and its live counts: jobs `in_flight` and `waiting` (due, held
    back by the key's limits or its pause)."""

    key: str
    concurrency: int | None = None
    rate_limit: str | None = None
    paused: bool = False
    in_flight: int = 0
    waiting: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], key: str = "") -> FlowKey:
        return cls(
            key=data.get("key") or key,
            concurrency=data.get("concurrency"),
            rate_limit=data.get("rate_limit"),
            paused=bool(data.get("paused")),
            in_flight=int(data.get("in_flight") or 0),
            waiting=int(data.get("waiting") or 0),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class TopicEndpoint:
    """One endpoint of a topic: where its job goes, an optional label, and headers
    added to that job's own."""

    url: str
    name: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TopicEndpoint:
        return cls(data["url"], data.get("name"), dict(data.get("headers") or {}))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        if self.name is not None:
            out["name"] = self.name
        if self.headers:
            out["headers"] = dict(self.headers)
        return out


@dataclass(frozen=True, slots=True)
class Topic:
    """A fan-out topic: publishing to it makes one job per endpoint."""

    name: str
    endpoints: tuple[TopicEndpoint, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], name: str = "") -> Topic:
        return cls(
            name=data.get("name") or name,
            endpoints=tuple(TopicEndpoint.from_json(e) for e in data.get("endpoints") or ()),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Delivery health of one destination origin (scheme://host:port), as this pushq
    node saw it since it started: circuit `state` (closed, open, half_open), in-flight
    deliveries and the adaptive limit, success rate and latency over recent attempts,
    failures in a row, the last error, and until when jobs are held back (`open_until`:
    an open circuit or the endpoint's Retry-After; `held_until`: the Retry-After alone)."""

    origin: str
    state: str
    in_flight: int = 0
    concurrency_limit: int | None = None
    success_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    consecutive_failures: int = 0
    last_error: LastError | None = None
    open_until: datetime | None = None
    held_until: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Endpoint:
        return cls(
            origin=data["origin"],
            state=data.get("state", ""),
            in_flight=int(data.get("in_flight") or 0),
            concurrency_limit=data.get("concurrency_limit"),
            success_rate=data.get("success_rate"),
            latency_p50_ms=data.get("latency_p50_ms"),
            latency_p99_ms=data.get("latency_p99_ms"),
            consecutive_failures=int(data.get("consecutive_failures") or 0),
            last_error=LastError.from_json(data.get("last_error")),
            open_until=_time(data.get("open_until")),
            held_until=_time(data.get("held_until")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: iterate it, and pass `next_cursor` (None on the last page) back."""

    items: list[T]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]


# -- retries -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the client retries: `attempts` in all, jittered exponential waits of
    `wait_base * 2^n` seconds (at most `wait_max`); a `Retry-After` longer than
    `retry_after_max` is not waited for, the error is raised instead."""

    attempts: int = 4
    wait_base: float = 0.25
    wait_max: float = 8.0
    retry_after_max: float = 30.0


def retry_wait(
    policy: RetryPolicy,
    retry_number: int,
    retry_after: float | None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry `retry_number` (1-based): full jitter over the exponential
    step, but never sooner than the server's Retry-After."""
    step = min(policy.wait_max, policy.wait_base * 2.0 ** (retry_number - 1))
    wait = step * rand()
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait


class _Retryable(Exception):
    """An error answer that may be retried; unwrapped to `error` when retries run out."""

    def __init__(self, error: ApiError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


RetryOn = Literal["never", "transport", "enqueue"]


def _should_retry(policy: RetryPolicy) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if isinstance(exc, PushqConnectionError):
            return True
        if isinstance(exc, _Retryable):
            return exc.retry_after is None or exc.retry_after <= policy.retry_after_max
        return False

    return check


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = exc.retry_after if isinstance(exc, _Retryable) else None
        return retry_wait(policy, state.attempt_number, retry_after)

    return wait


def _retry_options(policy: RetryPolicy) -> dict[str, Any]:
    return {
        "stop": stop_after_attempt(policy.attempts),
        "wait": _wait(policy),
        "retry": retry_if_exception(_should_retry(policy)),
        "reraise": True,
    }


# -- requests ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One API request: what to send, how to read the answer, and when a retry is safe."""

    method: str
    path: str
    read: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, str | int] | None = None
    headers: Mapping[str, str] | None = None
    retry: RetryOn = "never"
    hold: float = 0.0  # extra seconds the server may hold the answer (long-poll)


_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer: its status picks the class, its body the code/message."""
    status = response.status_code
    code, message = f"http_{status}", f"HTTP {status}"
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())  # one line, whatever page answered
        if text:
            message = f"{message}: {text[:200]}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), time.time(), math.inf)
        wait = 1.0 if retry_after is None else retry_after
        return RateLimited(message, code=code, retry_after=wait)
    if status == 400 and code == TargetRefused.code:
        return TargetRefused(message, code=code, status=status)
    return _ERRORS.get(status, ApiError)(message, code=code, status=status)


def _read_response(call: _Call[T], response: httpx.Response) -> T:
    if response.status_code >= 400:
        error = error_from_response(response)
        if call.retry == "enqueue" and (response.status_code == 429 or response.status_code >= 500):
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), time.time(), math.inf
            )
            raise _Retryable(error, retry_after)
        raise error
    try:
        return call.read(response.json() if response.content else None)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # Not what pushq answers: a proxy's page, or no pushq at this URL at all.
        raise ApiError(
            f"unexpected answer to {call.method} {call.path}: {type(exc).__name__}: {exc}",
            code="bad_response",
            status=response.status_code,
        ) from None


def _path(*parts: str) -> str:
    return "/v1/" + "/".join(quote(part, safe="") for part in parts)


def _seconds(value: Duration) -> float | int | str:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _rfc3339(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("run_at must be timezone-aware, e.g. datetime.now(UTC) + timedelta(...)")
    return value.isoformat()


def _backoff(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _seconds(v) if isinstance(v, timedelta) else v for k, v in value.items()}


def job_request(url: str, body: Any = None, **fields: Any) -> dict[str, Any]:
    """A job request as the API takes it: unset (None) fields left out, datetimes as
    RFC 3339, timedeltas as seconds."""
    request: dict[str, Any] = {"url": url}
    if body is not None:
        request["body"] = body
    for name, value in fields.items():
        if value is None:
            continue
        if name == "run_at":
            value = _rfc3339(value)
        elif name in ("delay", "timeout"):
            value = _seconds(value)
        elif name == "backoff":
            value = _backoff(value)
        elif name == "permanent_statuses":
            value = list(value)
        request[name] = value
    return request


def _statuses(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


def _normalized(job: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(job)
    if "url" not in fields:
        raise ValueError("every job needs a url")
    url = fields.pop("url")
    body = fields.pop("body", None)
    return job_request(url, body, **fields)


def _new_key() -> str:
    return str(uuid.uuid4())


def _one_job(data: Any) -> Job:
    return Job.from_json(data)


def _jobs(data: Any) -> builtins.list[Job]:
    return [Job.from_json(j) for j in data["jobs"]]


def _job_page(data: Any) -> Page[Job]:
    return Page([Job.from_json(j) for j in data["jobs"]], data.get("next_cursor"))


def _attempts(data: Any) -> builtins.list[Attempt]:
    return [Attempt.from_json(a) for a in data["attempts"]]


def _nothing(data: Any) -> None:
    return None


def _items(data: Any, key: str) -> tuple[builtins.list[Any], str | None]:
    if isinstance(data, list):
        return data, None
    return data.get(key, []), data.get("next_cursor")


def _queue_page(data: Any) -> Page[Queue]:
    items, cursor = _items(data, "queues")
    return Page([Queue.from_json(q) for q in items], cursor)


def _schedule_page(data: Any) -> Page[Schedule]:
    items, cursor = _items(data, "schedules")
    return Page([Schedule.from_json(s) for s in items], cursor)


def _flow_key_page(data: Any) -> Page[FlowKey]:
    items, cursor = _items(data, "flow_keys")
    return Page([FlowKey.from_json(k) for k in items], cursor)


def _topic_page(data: Any) -> Page[Topic]:
    items, cursor = _items(data, "topics")
    return Page([Topic.from_json(t) for t in items], cursor)


def _endpoint_page(data: Any) -> Page[Endpoint]:
    items, cursor = _items(data, "endpoints")
    return Page([Endpoint.from_json(e) for e in items], cursor)


class _Unset:
    """The default of an argument left out (None means "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Leave this setting as it is (`client.flow_keys.update`'s default)."""


def _topic_endpoint(value: str | Mapping[str, Any] | TopicEndpoint) -> dict[str, Any]:
    if isinstance(value, str):
        return {"url": value}
    if isinstance(value, TopicEndpoint):
        return value.to_json()
    if "url" not in value:
        raise ValueError("every topic endpoint needs a url")
    return {k: v for k, v in value.items() if v is not None}


def _query(**params: Any) -> dict[str, str | int]:
    return {k: v for k, v in params.items() if v is not None}


TimeBound = datetime | timedelta | str
"""A time: an aware datetime, an RFC 3339 string, or how long ago (timedelta, "1h")."""


def _bound(value: TimeBound) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}"
    if isinstance(value, datetime):
        return _rfc3339(value)
    return value


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Filter arguments as the API takes them: unset ones left out, times as text."""
    return {
        name: _bound(value) if name in ("since", "until") else value
        for name, value in filters.items()
        if value is not None
    }


class _Calls:
    """Builders of every request both clients make."""

    @staticmethod
    def enqueue(job: dict[str, Any]) -> _Call[Job]:
        key = job.pop("idempotency_key", None) or _new_key()
        return _Call(
            "POST",
            "/v1/jobs",
            _one_job,
            json=job,
            headers={"idempotency-key": key},
            retry="enqueue",
        )

    @staticmethod
    def enqueue_many(jobs: Iterable[Mapping[str, Any]]) -> _Call[builtins.list[Job]]:
        requests = [_normalized(job) for job in jobs]
        for request in requests:
            request.setdefault("idempotency_key", _new_key())
        return _Call("POST", "/v1/jobs/batch", _jobs, json={"jobs": requests}, retry="enqueue")

    @staticmethod
    def get(job_id: str, wait: int | None = None) -> _Call[Job]:
        params = None if wait is None else {"wait": wait}
        return _Call(
            "GET", _path("jobs", job_id), _one_job, params=params, retry="transport", hold=wait or 0
        )

    @staticmethod
    def list_jobs(
        queue: str | None,
        state: str | None,
        limit: int | None,
        cursor: str | None,
        filters: Mapping[str, Any] | None = None,
    ) -> _Call[Page[Job]]:
        params = _query(queue=queue, state=state, limit=limit, cursor=cursor)
        params |= _filters(filters or {})
        return _Call("GET", "/v1/jobs", _job_page, params=params, retry="transport")

    @staticmethod
    def retry(job_id: str) -> _Call[Job]:
        return _Call("POST", _path("jobs", job_id, "retry"), _one_job)

    @staticmethod
    def replay(job_id: str) -> _Call[Job]:
        return _Call("POST", _path("jobs", job_id, "replay"), _one_job)

    @staticmethod
    def delete(job_id: str) -> _Call[None]:
        return _Call("DELETE", _path("jobs", job_id), _nothing)

    @staticmethod
    def cancel_many(filters: Mapping[str, Any]) -> _Call[int]:
        body = _filters(filters)
        if not body:
            raise ValueError("cancel_many needs at least one filter")
        return _Call("POST", "/v1/jobs/cancel", lambda d: int(d["cancelled"]), json=body)

    @staticmethod
    def cancel(job_id: str) -> _Call[Job]:
        return _Call("POST", _path("jobs", job_id, "cancel"), _one_job)

    @staticmethod
    def attempts(job_id: str) -> _Call[builtins.list[Attempt]]:
        return _Call("GET", _path("jobs", job_id, "attempts"), _attempts, retry="transport")

    @staticmethod
    def _job_token(job_token: str | None) -> dict[str, str] | None:
        return None if job_token is None else {"authorization": f"Bearer {job_token}"}

    @staticmethod
    def progress(job_id: str, report: dict[str, Any], job_token: str | None) -> _Call[None]:
        return _Call(
            "POST",
            _path("jobs", job_id, "progress"),
            _nothing,
            json={k: v for k, v in report.items() if v is not None},
            headers=_Calls._job_token(job_token),
            retry="transport",  # a report repeated is harmless
        )

    @staticmethod
    def complete(job_id: str, result: Any, job_token: str | None) -> _Call[None]:
        return _Call(
            "POST",
            _path("jobs", job_id, "complete"),
            _nothing,
            json={"result": result},
            headers=_Calls._job_token(job_token),
        )

    @staticmethod
    def fail(job_id: str, error: str, retry: bool, job_token: str | None) -> _Call[None]:
        return _Call(
            "POST",
            _path("jobs", job_id, "fail"),
            _nothing,
            json={"error": error, "retry": retry},
            headers=_Calls._job_token(job_token),
        )

    # dlq
    @staticmethod
    def dlq_list(
        queue: str | None, limit: int | None, cursor: str | None, filters: Mapping[str, Any]
    ) -> _Call[Page[Job]]:
        params = {**_query(queue=queue, limit=limit, cursor=cursor), **_filters(filters)}
        return _Call("GET", "/v1/dlq", _job_page, params=params, retry="transport")

    @staticmethod
    def dlq_get(job_id: str) -> _Call[Job]:
        return _Call("GET", _path("dlq", job_id), _one_job, retry="transport")

    @staticmethod
    def dlq_retry(job_id: str) -> _Call[Job]:
        return _Call("POST", _path("dlq", job_id, "retry"), _one_job)

    @staticmethod
    def dlq_retry_all(queue: str | None) -> _Call[int]:
        return _Call(
            "POST", "/v1/dlq/retry", lambda data: int(data["retried"]), json=_query(queue=queue)
        )

    @staticmethod
    def dlq_retry_many(filters: Mapping[str, Any], dry_run: bool) -> _Call[int]:
        body: dict[str, Any] = dict(_filters(filters))
        if dry_run:
            body["dry_run"] = True
        key = "matched" if dry_run else "retried"
        return _Call("POST", "/v1/dlq/retry", lambda d: int(d[key]), json=body)

    @staticmethod
    def dlq_delete_many(filters: Mapping[str, Any], dry_run: bool) -> _Call[int]:
        body: dict[str, Any] = dict(_filters(filters))
        if dry_run:
            body["dry_run"] = True
        key = "matched" if dry_run else "deleted"
        return _Call("POST", "/v1/dlq/delete", lambda d: int(d[key]), json=body)

    @staticmethod
    def dlq_delete(job_id: str) -> _Call[None]:
        return _Call("DELETE", _path("dlq", job_id), _nothing)

    # queues
    @staticmethod
    def queue_get(name: str) -> _Call[Queue]:
        return _Call(
            "GET", _path("queues", name), lambda d: Queue.from_json(d, name), retry="transport"
        )

    @staticmethod
    def queue_update(name: str, settings: dict[str, Any]) -> _Call[Queue]:
        body = {
            k: _seconds(v) if k == "timeout" else _backoff(v) if k == "backoff" else v
            for k, v in settings.items()
            if v is not None
        }
        return _Call(
            "PUT",
            _path("queues", name),
            lambda d: Queue.from_json(d, name),
            json=body,
            retry="transport",
        )

    @staticmethod
    def queue_action(name: str, action: str) -> _Call[Queue]:
        path = _path("queues", name, action)
        return _Call("POST", path, lambda d: Queue.from_json(d or {}, name))

    @staticmethod
    def queue_purge(name: str, states: Iterable[str] | None) -> _Call[int]:
        body = None if states is None else {"states": builtins.list(states)}
        path = _path("queues", name, "purge")
        return _Call("POST", path, lambda d: int(d["cancelled"]), json=body)

    @staticmethod
    def queue_delete(name: str, force: bool) -> _Call[None]:
        params = {"force": "true"} if force else None
        return _Call("DELETE", _path("queues", name), _nothing, params=params)

    @staticmethod
    def queue_list() -> _Call[Page[Queue]]:
        return _Call("GET", "/v1/queues", _queue_page, retry="transport")

    # schedules
    @staticmethod
    def schedule_set(
        name: str, cron: str, job: Mapping[str, Any], timezone: str | None
    ) -> _Call[Schedule]:
        body: dict[str, Any] = {"cron": cron, "job": _normalized(job)}
        if timezone is not None:
            body["timezone"] = timezone
        return _Call(
            "PUT",
            _path("schedules", name),
            lambda d: Schedule.from_json(d, name),
            json=body,
            retry="transport",
        )

    @staticmethod
    def schedule_get(name: str) -> _Call[Schedule]:
        return _Call(
            "GET",
            _path("schedules", name),
            lambda d: Schedule.from_json(d, name),
            retry="transport",
        )

    @staticmethod
    def schedule_delete(name: str) -> _Call[None]:
        return _Call("DELETE", _path("schedules", name), _nothing)

    @staticmethod
    def schedule_action(name: str, action: str) -> _Call[Schedule]:
        path = _path("schedules", name, action)
        return _Call("POST", path, lambda d: Schedule.from_json(d, name))

    @staticmethod
    def schedule_trigger(name: str) -> _Call[Job]:
        return _Call("POST", _path("schedules", name, "trigger"), _one_job)

    @staticmethod
    def schedule_list() -> _Call[Page[Schedule]]:
        return _Call("GET", "/v1/schedules", _schedule_page, retry="transport")

    # flow keys
    @staticmethod
    def flow_key_get(key: str) -> _Call[FlowKey]:
        read = lambda d: FlowKey.from_json(d, key)  # noqa: E731
        return _Call("GET", _path("flow-keys", key), read, retry="transport")

    @staticmethod
    def flow_key_update(key: str, changes: Mapping[str, Any]) -> _Call[FlowKey]:
        body = {k: v for k, v in changes.items() if v is not UNSET}
        read = lambda d: FlowKey.from_json(d, key)  # noqa: E731
        return _Call("PUT", _path("flow-keys", key), read, json=body, retry="transport")

    @staticmethod
    def flow_key_action(key: str, action: str) -> _Call[FlowKey]:
        read = lambda d: FlowKey.from_json(d, key)  # noqa: E731
        return _Call("POST", _path("flow-keys", key, action), read, retry="transport")

    @staticmethod
    def flow_key_list() -> _Call[Page[FlowKey]]:
        return _Call("GET", "/v1/flow-keys", _flow_key_page, retry="transport")

    # topics
    @staticmethod
    def topic_set(
        name: str, endpoints: Iterable[str | Mapping[str, Any] | TopicEndpoint]
    ) -> _Call[Topic]:
        body = {"endpoints": [_topic_endpoint(e) for e in endpoints]}
        read = lambda d: Topic.from_json(d, name)  # noqa: E731
        return _Call("PUT", _path("topics", name), read, json=body, retry="transport")

    @staticmethod
    def topic_get(name: str) -> _Call[Topic]:
        read = lambda d: Topic.from_json(d, name)  # noqa: E731
        return _Call("GET", _path("topics", name), read, retry="transport")

    @staticmethod
    def topic_delete(name: str) -> _Call[None]:
        return _Call("DELETE", _path("topics", name), _nothing)

    @staticmethod
    def topic_list() -> _Call[Page[Topic]]:
        return _Call("GET", "/v1/topics", _topic_page, retry="transport")

    @staticmethod
    def topic_publish(name: str, job: dict[str, Any]) -> _Call[builtins.list[Job]]:
        # Always keyed (pushq makes it distinct per endpoint), so a retried publish
        # returns the jobs the first one made instead of making them twice.
        job.setdefault("idempotency_key", _new_key())
        path = _path("topics", name, "publish")
        return _Call("POST", path, _jobs, json=job, retry="enqueue")

    # endpoints
    @staticmethod
    def endpoint_list() -> _Call[Page[Endpoint]]:
        return _Call("GET", "/v1/endpoints", _endpoint_page, retry="transport")

    @staticmethod
    def endpoint_get(origin: str) -> _Call[Endpoint]:
        return _Call("GET", _path("endpoints", origin), Endpoint.from_json, retry="transport")


class _Waiter:
    """The long-poll loop's arithmetic, shared by both clients: how long to ask the
    server to hold, and how long to pause when it answered at once."""

    def __init__(self, job_id: str, timeout: float | None) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.pause = POLL_PAUSE_FIRST
        self.asked_at = 0.0
        self.hold = 0

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def next_call(self) -> _Call[Job]:
        self.hold = int(max(0.0, min(self.left(), LONG_POLL_MAX)))
        self.asked_at = time.monotonic()
        return _Calls.get(self.job_id, wait=self.hold)

    def after(self, job: Job) -> float:
        """Seconds to pause before the next poll; TimeoutError once the deadline passed."""
        left = self.left()
        if left <= 0:
            raise TimeoutError(f"job {self.job_id} is still {job.state} after {self.timeout:g}s")
        if time.monotonic() - self.asked_at >= self.hold / 2 and self.hold > 0:
            return 0.0  # the server held the request: ask again straight away
        pause = min(self.pause, left)
        self.pause = min(self.pause * 2, POLL_PAUSE_MAX)
        return pause


def find_token(data_dir: str | os.PathLike[str] | None = None) -> str:
    """The API token, where the CLI looks for it too: $PUSHQ_API_TOKEN, else the
    `api-token` file a local `pushq serve` saved in its data dir (`data_dir`, else
    $PUSHQ_DATA_DIR, else ./pushq-data). `pushq.TokenNotFound` names both places."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    directory = Path(data_dir or os.environ.get(DATA_DIR_ENV, "").strip() or DEFAULT_DATA_DIR)
    path = directory / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    except OSError as exc:
        raise ConfigError(f"cannot read the API token in {path}: {exc.strerror}") from None
    if token:
        return token
    raise TokenNotFound(
        f"no API token: {TOKEN_ENV} is not set and {path} does not exist "
        f"(pass the token, set {TOKEN_ENV}, or {DATA_DIR_ENV} to the data dir of "
        "`pushq serve`; `pushq token` there prints it)",
        path=str(path),
    )


class _Connection:
    """What both clients share about the server: its URL, their headers, and the
    token lookup's verdict (raised at the first call that needs the token)."""

    def __init__(self, base_url: str | None, token: str | None) -> None:
        self.url = (base_url or os.environ.get("PUSHQ_URL") or DEFAULT_URL).rstrip("/")
        self.headers = {"user-agent": f"pushq-python/{__version__}"}
        self.missing: ConfigError | None = None  # TokenNotFound, or an unreadable file
        if token is None:
            try:
                token = find_token()
            except ConfigError as exc:
                self.missing = exc
        if token:
            self.headers["authorization"] = f"Bearer {token}"

    def check(self, call: _Call[Any]) -> None:
        if self.missing is not None and not (call.headers and "authorization" in call.headers):
            raise self.missing

    def failed(self, exc: httpx.TransportError) -> PushqError:
        """The pushq error for a request that got no answer."""
        if isinstance(exc, httpx.UnsupportedProtocol):
            return ConfigError(f"base_url/PUSHQ_URL {self.url!r}: use http:// or https://")
        reason = _reason(exc)
        kind = PushqTimeout if isinstance(exc, httpx.TimeoutException) else PushqConnectionError
        return kind(
            f"cannot reach pushq at {self.url}: {reason} "
            "(is `pushq serve` running there? check base_url / PUSHQ_URL)",
            url=self.url,
            reason=reason,
        )


def _reason(exc: httpx.TransportError) -> str:
    """A few words on why no answer came: "connection refused", "timed out"."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    cause: BaseException | None = exc
    while cause is not None:  # asyncio says "all connection attempts failed": find why
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip()) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _http_options(connection: _Connection, timeout: float) -> dict[str, Any]:
    return {"base_url": connection.url, "headers": connection.headers, "timeout": timeout}


# -- the blocking client --------------------------------------------------------------


class Client:
    """The pushq API, blocking. `base_url` defaults to $PUSHQ_URL (else
    http://127.0.0.1:8080); `token` to what `find_token` finds ($PUSHQ_API_TOKEN,
    else the data dir's `api-token`), else the first call raises TokenNotFound.

        with pushq.Client() as client:
            job = client.enqueue("https://example.com/hook", {"to": "ada"}, delay="10s")
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._connection = _Connection(base_url, token)
        self.base_url = self._connection.url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        try:
            self._http = httpx.Client(
                **_http_options(self._connection, timeout), transport=transport
            )
        except httpx.InvalidURL as exc:
            raise ConfigError(f"base_url/PUSHQ_URL {self.base_url!r}: {exc}") from None
        self.dlq = DeadLetters(self)
        self.queues = Queues(self)
        self.schedules = Schedules(self)
        self.flow_keys = FlowKeys(self)
        self.topics = Topics(self)
        self.endpoints = Endpoints(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        self._connection.check(call)
        try:
            response = self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=call.headers,
                timeout=self.timeout + call.hold,
            )
        except httpx.TransportError as exc:
            raise self._connection.failed(exc) from exc
        return _read_response(call, response)

    def _run(self, call: _Call[T]) -> T:
        if call.retry == "never":
            return self._send(call)
        try:
            result: T = Retrying(**_retry_options(self.retry))(self._send, call)
            return result
        except _Retryable as exc:
            raise exc.error from None

    def enqueue(
        self,
        url: str,
        body: Any = None,
        *,
        queue: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        delay: Duration | None = None,
        run_at: datetime | str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        backoff: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        idempotency_key: str | None = None,
        unique_key: str | None = None,
        ordering_key: str | None = None,
        callback_url: str | None = None,
        failure_callback_url: str | None = None,
        tags: Iterable[str] | None = None,
        flow_key: str | None = None,
        permanent_statuses: Iterable[int] | None = None,
    ) -> Job:
        """Enqueue one job; `job.deduplicated` is True when an idempotency or unique key
        matched an existing job, which is returned instead.

        Every failed attempt is retried (4xx included) until `max_attempts`; a status in
        `permanent_statuses` (else the queue's), a 410 or `pushq-retry: false` ends the
        job at once."""
        return self._run(
            _Calls.enqueue(
                job_request(
                    url,
                    body,
                    queue=queue,
                    headers=headers,
                    method=method,
                    delay=delay,
                    run_at=run_at,
                    priority=priority,
                    max_attempts=max_attempts,
                    backoff=backoff,
                    timeout=timeout,
                    idempotency_key=idempotency_key,
                    unique_key=unique_key,
                    ordering_key=ordering_key,
                    callback_url=callback_url,
                    failure_callback_url=failure_callback_url,
                    tags=None if tags is None else builtins.list(tags),
                    flow_key=flow_key,
                    permanent_statuses=permanent_statuses,
                )
            )
        )

    def enqueue_many(self, jobs: Iterable[Mapping[str, Any]]) -> builtins.list[Job]:
        """Enqueue several jobs (dicts with `url` and any job fields) in one transaction."""
        return self._run(_Calls.enqueue_many(jobs))

    def get(self, job_id: str) -> Job:
        """The job now."""
        return self._run(_Calls.get(job_id))

    def wait(self, job_id: str, *, timeout: float | None = 60.0) -> Job:
        """Block until the job is succeeded, dead or cancelled and return it; TimeoutError
        after `timeout` seconds (None: no limit). Long-polls; never a tight loop."""
        waiter = _Waiter(job_id, timeout)
        while True:
            job = self._run(waiter.next_call())
            if job.terminal:
                return job
            time.sleep(waiter.after(job))

    def list(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        url_prefix: str | None = None,
        tag: str | None = None,
        flow_key: str | None = None,
        schedule: str | None = None,
        topic: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
    ) -> Page[Job]:
        """A page of jobs, newest first, matching every filter given: `url_prefix`,
        `tag`, `flow_key`, `schedule` (jobs a schedule made), `topic`, and created
        `since` / `until` (an aware datetime, RFC 3339, or how long ago: "1h")."""
        filters = {
            "url_prefix": url_prefix,
            "tag": tag,
            "flow_key": flow_key,
            "schedule": schedule,
            "topic": topic,
            "since": since,
            "until": until,
        }
        return self._run(_Calls.list_jobs(queue, state, limit, cursor, filters))

    def cancel(self, job_id: str) -> Job:
        """Cancel an unfinished job; `pushq.Conflict` if it has finished."""
        return self._run(_Calls.cancel(job_id))

    def attempts(self, job_id: str) -> builtins.list[Attempt]:
        """Every delivery attempt of the job, first to last."""
        return self._run(_Calls.attempts(job_id))

    def progress(
        self,
        job_id: str,
        *,
        percent: float | None = None,
        current: int | None = None,
        total: int | None = None,
        message: str | None = None,
        meta: Any = None,
        job_token: str | None = None,
    ) -> None:
        """Report an active job's progress (also a heartbeat); auth: its job token or the API
        token."""
        report = {
            "percent": percent,
            "current": current,
            "total": total,
            "message": message,
            "meta": meta,
        }
        self._run(_Calls.progress(job_id, report, job_token))

    def complete(self, job_id: str, result: Any = None, *, job_token: str | None = None) -> None:
        """Finish an async job (one whose worker answered 202 pushq-async) with a result."""
        self._run(_Calls.complete(job_id, result, job_token))

    def fail(
        self, job_id: str, error: str, *, retry: bool = True, job_token: str | None = None
    ) -> None:
        """Fail an async job: retried per its backoff, or straight to the DLQ if not `retry`."""
        self._run(_Calls.fail(job_id, error, retry, job_token))

    def run_now(self, job_id: str) -> Job:
        """Run the job now (POST /v1/jobs/{id}/retry): a scheduled, pending or retrying
        job becomes due at once (no attempt is added), a dead one is redriven;
        `pushq.Conflict` if it is active, succeeded or cancelled (replay those)."""
        return self._run(_Calls.retry(job_id))

    def replay(self, job_id: str) -> Job:
        """A new job with the same request as `job_id` (any state), due now; its
        `replay_of` names the original. Idempotency and unique keys are not copied."""
        return self._run(_Calls.replay(job_id))

    def delete(self, job_id: str) -> None:
        """Remove a finished job and its attempts; `pushq.Conflict` if unfinished."""
        self._run(_Calls.delete(job_id))

    def cancel_many(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        url_prefix: str | None = None,
        tag: str | None = None,
        flow_key: str | None = None,
    ) -> int:
        """Cancel every unfinished job matching all the filters given (at least one);
        returns how many were cancelled."""
        filters = {
            "queue": queue,
            "state": state,
            "url_prefix": url_prefix,
            "tag": tag,
            "flow_key": flow_key,
        }
        return self._run(_Calls.cancel_many(filters))


class DeadLetters:
    """`client.dlq`: dead jobs, newest failure first."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        queue: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        url_prefix: str | None = None,
        status: int | None = None,
        error_contains: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        tag: str | None = None,
    ) -> Page[Job]:
        """A page of dead jobs, those matching every filter given (the filters of
        `retry_many` and `delete_many`, so a listing shows what a bulk action touches)."""
        filters = {
            "url_prefix": url_prefix,
            "status": status,
            "error_contains": error_contains,
            "since": since,
            "until": until,
            "tag": tag,
        }
        return self._client._run(_Calls.dlq_list(queue, limit, cursor, filters))

    def get(self, job_id: str) -> Job:
        """One dead job with its `attempt_log`."""
        return self._client._run(_Calls.dlq_get(job_id))

    def retry(self, job_id: str) -> Job:
        """Redrive one dead job: back to pending with its attempts reset."""
        return self._client._run(_Calls.dlq_retry(job_id))

    def retry_all(self, *, queue: str | None = None) -> int:
        """Redrive every dead job (of `queue`); the number redriven."""
        return self._client._run(_Calls.dlq_retry_all(queue))

    def retry_many(
        self,
        *,
        queue: str | None = None,
        url_prefix: str | None = None,
        status: int | None = None,
        error_contains: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        tag: str | None = None,
        rate_limit: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Redrive the dead jobs matching every filter given (`status`: the last HTTP
        status; `error_contains`: part of the last error; `since`/`until`: when they
        failed; `tag`: one of their tags). `rate_limit` ("50/s") spreads their run_at so
        a recovering endpoint is not stampeded. Returns how many were redriven, or with
        `dry_run` how many match."""
        filters = {
            "queue": queue,
            "url_prefix": url_prefix,
            "status": status,
            "error_contains": error_contains,
            "since": since,
            "until": until,
            "tag": tag,
            "rate_limit": rate_limit,
        }
        return self._client._run(_Calls.dlq_retry_many(filters, dry_run))

    def delete_many(
        self,
        *,
        queue: str | None = None,
        url_prefix: str | None = None,
        status: int | None = None,
        error_contains: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        tag: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Drop for good the dead jobs matching every filter given (every dead job when
        none is). Returns how many were deleted, or with `dry_run` how many match."""
        filters = {
            "queue": queue,
            "url_prefix": url_prefix,
            "status": status,
            "error_contains": error_contains,
            "since": since,
            "until": until,
            "tag": tag,
        }
        return self._client._run(_Calls.dlq_delete_many(filters, dry_run))

    def delete(self, job_id: str) -> None:
        """Drop a dead job for good."""
        self._client._run(_Calls.dlq_delete(job_id))


class Queues:
    """`client.queues`: settings and live stats of queues."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, name: str) -> Queue:
        """A queue's settings and stats; NotFound for a name never used."""
        return self._client._run(_Calls.queue_get(name))

    def update(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate_limit: str | None = None,
        max_attempts: int | None = None,
        backoff: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        max_size: int | None = None,
        priority: int | None = None,
        paused: bool | None = None,
        permanent_statuses: Iterable[int] | None = None,
        key_concurrency: int | None = None,
        key_rate_limit: str | None = None,
    ) -> Queue:
        """Change the settings given (None leaves one as it is); creates the queue.
        `priority` ranks queues against each other under contention (higher first);
        `permanent_statuses` are the HTTP statuses that end the queue's jobs at once
        (a job's own list overrides it; `[]` clears it). `key_concurrency` and
        `key_rate_limit` are the limits of each flow key of the queue's jobs that has
        none of its own (see `client.flow_keys`)."""
        settings = {
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "max_attempts": max_attempts,
            "backoff": backoff,
            "timeout": timeout,
            "max_size": max_size,
            "priority": priority,
            "paused": paused,
            "permanent_statuses": None if permanent_statuses is None else list(permanent_statuses),
            "key_concurrency": key_concurrency,
            "key_rate_limit": key_rate_limit,
        }
        return self._client._run(_Calls.queue_update(name, settings))

    def pause(self, name: str) -> Queue:
        """Stop deliveries of the queue; enqueues are still accepted."""
        return self._client._run(_Calls.queue_action(name, "pause"))

    def resume(self, name: str) -> Queue:
        """Restart deliveries of a paused queue."""
        return self._client._run(_Calls.queue_action(name, "resume"))

    def purge(self, name: str, *, states: Iterable[str] | None = None) -> int:
        """Cancel every unfinished job of the queue (or only those in `states`, e.g.
        ["pending"]); returns how many were cancelled."""
        return self._client._run(_Calls.queue_purge(name, states))

    def delete(self, name: str, *, force: bool = False) -> None:
        """Forget the queue; `pushq.Conflict` while it holds unfinished jobs, unless
        `force`, which cancels them first."""
        self._client._run(_Calls.queue_delete(name, force))

    def list(self) -> Page[Queue]:
        """Every queue."""
        return self._client._run(_Calls.queue_list())


class Schedules:
    """`client.schedules`: cron schedules that enqueue a job template."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def set(
        self, name: str, cron: str, job: Mapping[str, Any], *, timezone: str | None = None
    ) -> Schedule:
        """Create or replace a schedule; `job` is a job request (a dict with `url`, ...)."""
        return self._client._run(_Calls.schedule_set(name, cron, job, timezone))

    def get(self, name: str) -> Schedule:
        """A schedule with its next and last run."""
        return self._client._run(_Calls.schedule_get(name))

    def delete(self, name: str) -> None:
        """Remove a schedule."""
        self._client._run(_Calls.schedule_delete(name))

    def pause(self, name: str) -> Schedule:
        """Stop the schedule's firings until `resume`."""
        return self._client._run(_Calls.schedule_action(name, "pause"))

    def resume(self, name: str) -> Schedule:
        """Restart the schedule's firings from its next time (missed ones are skipped)."""
        return self._client._run(_Calls.schedule_action(name, "resume"))

    def trigger(self, name: str) -> Job:
        """Enqueue one job from the schedule now, besides its firings (paused or not)."""
        return self._client._run(_Calls.schedule_trigger(name))

    def list(self) -> Page[Schedule]:
        """Every schedule."""
        return self._client._run(_Calls.schedule_list())


class FlowKeys:
    """`client.flow_keys`: per-key limits for jobs with a `flow_key` (a customer, an
    upstream account), across queues and nodes, and live counts."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, key: str) -> FlowKey:
        """A key's own limits and live counts (a key never configured shows none)."""
        return self._client._run(_Calls.flow_key_get(key))

    def update(
        self,
        key: str,
        *,
        concurrency: int | None = UNSET,
        rate_limit: str | None = UNSET,
        paused: bool = UNSET,
    ) -> FlowKey:
        """Set the key's own limits: `concurrency` (jobs in flight at once), `rate_limit`
        ("10/s", "100/m", "1000/h"), `paused`. A limit left out keeps its value; None
        removes it, so the queue's `key_concurrency` / `key_rate_limit` apply again."""
        changes = {"concurrency": concurrency, "rate_limit": rate_limit, "paused": paused}
        return self._client._run(_Calls.flow_key_update(key, changes))

    def pause(self, key: str) -> FlowKey:
        """Hold the key's jobs (they wait without using attempts; other keys go on)."""
        return self._client._run(_Calls.flow_key_action(key, "pause"))

    def resume(self, key: str) -> FlowKey:
        """Release a paused key's jobs."""
        return self._client._run(_Calls.flow_key_action(key, "resume"))

    def list(self) -> Page[FlowKey]:
        """The keys with settings of their own, or paused (up to 1000)."""
        return self._client._run(_Calls.flow_key_list())


class Topics:
    """`client.topics`: fan-out. A topic is a named list of endpoints; publishing to it
    makes one independent job per endpoint, all in one transaction."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def set(self, name: str, endpoints: Iterable[str | Mapping[str, Any] | TopicEndpoint]) -> Topic:
        """Create the topic or replace its endpoints: URLs, `TopicEndpoint`s, or dicts
        with `url` and optional `name` and `headers` (added to that endpoint's job)."""
        return self._client._run(_Calls.topic_set(name, endpoints))

    def get(self, name: str) -> Topic:
        """A topic and its endpoints; NotFound if there is none of that name."""
        return self._client._run(_Calls.topic_get(name))

    def delete(self, name: str) -> None:
        """Forget a topic (the jobs it made stay)."""
        self._client._run(_Calls.topic_delete(name))

    def list(self) -> Page[Topic]:
        """Every topic."""
        return self._client._run(_Calls.topic_list())

    def publish(
        self,
        name: str,
        body: Any = None,
        *,
        queue: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        delay: Duration | None = None,
        run_at: datetime | str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        backoff: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        idempotency_key: str | None = None,
        unique_key: str | None = None,
        ordering_key: str | None = None,
        callback_url: str | None = None,
        failure_callback_url: str | None = None,
        tags: Iterable[str] | None = None,
        flow_key: str | None = None,
        permanent_statuses: Iterable[int] | None = None,
    ) -> builtins.list[Job]:
        """One job per endpoint of the topic, with these job fields (as `enqueue`,
        without the URL) and `topic` set; each is retried, dead-lettered and redriven
        on its own. Returns the jobs in the topic's endpoint order. Safe to retry: an
        idempotency key is always sent (one is made when none is given)."""
        job = job_request(
            "",
            body,
            queue=queue,
            headers=headers,
            method=method,
            delay=delay,
            run_at=run_at,
            priority=priority,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
            idempotency_key=idempotency_key,
            unique_key=unique_key,
            ordering_key=ordering_key,
            callback_url=callback_url,
            failure_callback_url=failure_callback_url,
            tags=None if tags is None else builtins.list(tags),
            flow_key=flow_key,
            permanent_statuses=permanent_statuses,
        )
        del job["url"]
        return self._client._run(_Calls.topic_publish(name, job))


class Endpoints:
    """`client.endpoints`: delivery health per destination origin, as the node that
    answers saw it since it started (circuit breaker, Retry-After hold, AIMD limit)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> Page[Endpoint]:
        """Every origin delivered to since the node started."""
        return self._client._run(_Calls.endpoint_list())

    def get(self, origin: str) -> Endpoint:
        """One origin's health: `origin` is scheme://host:port, or any URL there
        (`http://api.example.com/hooks/x` reads as `http://api.example.com:80`);
        NotFound if nothing was delivered there."""
        return self._client._run(_Calls.endpoint_get(origin))


# -- the asyncio client ---------------------------------------------------------------


class AsyncClient:
    """The pushq API for asyncio: the same methods as `pushq.Client`, awaited.

    async with pushq.AsyncClient() as client:
        job = await client.enqueue("https://example.com/hook", {"to": "ada"})
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._connection = _Connection(base_url, token)
        self.base_url = self._connection.url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        try:
            self._http = httpx.AsyncClient(
                **_http_options(self._connection, timeout), transport=transport
            )
        except httpx.InvalidURL as exc:
            raise ConfigError(f"base_url/PUSHQ_URL {self.base_url!r}: {exc}") from None
        self.dlq = AsyncDeadLetters(self)
        self.queues = AsyncQueues(self)
        self.schedules = AsyncSchedules(self)
        self.flow_keys = AsyncFlowKeys(self)
        self.topics = AsyncTopics(self)
        self.endpoints = AsyncEndpoints(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        self._connection.check(call)
        try:
            response = await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=call.headers,
                timeout=self.timeout + call.hold,
            )
        except httpx.TransportError as exc:
            raise self._connection.failed(exc) from exc
        return _read_response(call, response)

    async def _run(self, call: _Call[T]) -> T:
        if call.retry == "never":
            return await self._send(call)
        try:
            return await AsyncRetrying(**_retry_options(self.retry))(self._send, call)
        except _Retryable as exc:
            raise exc.error from None

    async def enqueue(
        self,
        url: str,
        body: Any = None,
        *,
        queue: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        delay: Duration | None = None,
        run_at: datetime | str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        backoff: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        idempotency_key: str | None = None,
        unique_key: str | None = None,
        ordering_key: str | None = None,
        callback_url: str | None = None,
        failure_callback_url: str | None = None,
        tags: Iterable[str] | None = None,
        flow_key: str | None = None,
        permanent_statuses: Iterable[int] | None = None,
    ) -> Job:
        """Enqueue one job (see `Client.enqueue`)."""
        return await self._run(
            _Calls.enqueue(
                job_request(
                    url,
                    body,
                    queue=queue,
                    headers=headers,
                    method=method,
                    delay=delay,
                    run_at=run_at,
                    priority=priority,
                    max_attempts=max_attempts,
                    backoff=backoff,
                    timeout=timeout,
                    idempotency_key=idempotency_key,
                    unique_key=unique_key,
                    ordering_key=ordering_key,
                    callback_url=callback_url,
                    failure_callback_url=failure_callback_url,
                    tags=None if tags is None else builtins.list(tags),
                    flow_key=flow_key,
                    permanent_statuses=permanent_statuses,
                )
            )
        )

    async def enqueue_many(self, jobs: Iterable[Mapping[str, Any]]) -> builtins.list[Job]:
        """Enqueue several jobs in one transaction."""
        return await self._run(_Calls.enqueue_many(jobs))

    async def get(self, job_id: str) -> Job:
        """The job now."""
        return await self._run(_Calls.get(job_id))

    async def wait(self, job_id: str, *, timeout: float | None = 60.0) -> Job:
        """Wait until the job is succeeded, dead or cancelled (see `Client.wait`)."""
        waiter = _Waiter(job_id, timeout)
        while True:
            job = await self._run(waiter.next_call())
            if job.terminal:
                return job
            await asyncio.sleep(waiter.after(job))

    async def list(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        url_prefix: str | None = None,
        tag: str | None = None,
        flow_key: str | None = None,
        schedule: str | None = None,
        topic: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
    ) -> Page[Job]:
        """A page of jobs, newest first, matching every filter given (see `Client.list`)."""
        filters = {
            "url_prefix": url_prefix,
            "tag": tag,
            "flow_key": flow_key,
            "schedule": schedule,
            "topic": topic,
            "since": since,
            "until": until,
        }
        return await self._run(_Calls.list_jobs(queue, state, limit, cursor, filters))

    async def cancel(self, job_id: str) -> Job:
        """Cancel an unfinished job."""
        return await self._run(_Calls.cancel(job_id))

    async def attempts(self, job_id: str) -> builtins.list[Attempt]:
        """Every delivery attempt of the job."""
        return await self._run(_Calls.attempts(job_id))

    async def progress(
        self,
        job_id: str,
        *,
        percent: float | None = None,
        current: int | None = None,
        total: int | None = None,
        message: str | None = None,
        meta: Any = None,
        job_token: str | None = None,
    ) -> None:
        """Report an active job's progress (also a heartbeat)."""
        report = {
            "percent": percent,
            "current": current,
            "total": total,
            "message": message,
            "meta": meta,
        }
        await self._run(_Calls.progress(job_id, report, job_token))

    async def complete(
        self, job_id: str, result: Any = None, *, job_token: str | None = None
    ) -> None:
        """Finish an async job with a result."""
        await self._run(_Calls.complete(job_id, result, job_token))

    async def fail(
        self, job_id: str, error: str, *, retry: bool = True, job_token: str | None = None
    ) -> None:
        """Fail an async job (retried unless `retry` is False)."""
        await self._run(_Calls.fail(job_id, error, retry, job_token))

    async def run_now(self, job_id: str) -> Job:
        """Run the job now (POST /v1/jobs/{id}/retry): a scheduled, pending or retrying
        job becomes due at once (no attempt is added), a dead one is redriven;
        `pushq.Conflict` if it is active, succeeded or cancelled (replay those)."""
        return await self._run(_Calls.retry(job_id))

    async def replay(self, job_id: str) -> Job:
        """A new job with the same request as `job_id` (any state), due now; its
        `replay_of` names the original. Idempotency and unique keys are not copied."""
        return await self._run(_Calls.replay(job_id))

    async def delete(self, job_id: str) -> None:
        """Remove a finished job and its attempts; `pushq.Conflict` if unfinished."""
        await self._run(_Calls.delete(job_id))

    async def cancel_many(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        url_prefix: str | None = None,
        tag: str | None = None,
        flow_key: str | None = None,
    ) -> int:
        """Cancel every unfinished job matching all the filters given (at least one);
        returns how many were cancelled."""
        filters = {
            "queue": queue,
            "state": state,
            "url_prefix": url_prefix,
            "tag": tag,
            "flow_key": flow_key,
        }
        return await self._run(_Calls.cancel_many(filters))


class AsyncDeadLetters:
    """`client.dlq` of an AsyncClient."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(
        self,
        *,
        queue: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        url_prefix: str | None = None,
        status: int | None = None,
        error_contains: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        tag: str | None = None,
    ) -> Page[Job]:
        """A page of dead jobs, those matching every filter given (the filters of
        `retry_many` and `delete_many`, so a listing shows what a bulk action touches)."""
        filters = {
            "url_prefix": url_prefix,
            "status": status,
            "error_contains": error_contains,
            "since": since,
            "until": until,
            "tag": tag,
        }
        return await self._client._run(_Calls.dlq_list(queue, limit, cursor, filters))

    async def get(self, job_id: str) -> Job:
        """One dead job with its `attempt_log`."""
        return await self._client._run(_Calls.dlq_get(job_id))

    async def retry(self, job_id: str) -> Job:
        """Redrive one dead job."""
        return await self._client._run(_Calls.dlq_retry(job_id))

    async def retry_all(self, *, queue: str | None = None) -> int:
        """Redrive every dead job (of `queue`)."""
        return await self._client._run(_Calls.dlq_retry_all(queue))

    async def retry_many(
        self,
        *,
        queue: str | None = None,
        url_prefix: str | None = None,
        status: int | None = None,
        error_contains: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        tag: str | None = None,
        rate_limit: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Redrive the dead jobs matching every filter given (`status`: the last HTTP
        status; `error_contains`: part of the last error; `since`/`until`: when they
        failed; `tag`: one of their tags). `rate_limit` ("50/s") spreads their run_at so
        a recovering endpoint is not stampeded. Returns how many were redriven, or with
        `dry_run` how many match."""
        filters = {
            "queue": queue,
            "url_prefix": url_prefix,
            "status": status,
            "error_contains": error_contains,
            "since": since,
            "until": until,
            "tag": tag,
            "rate_limit": rate_limit,
        }
        return await self._client._run(_Calls.dlq_retry_many(filters, dry_run))

    async def delete_many(
        self,
        *,
        queue: str | None = None,
        url_prefix: str | None = None,
        status: int | None = None,
        error_contains: str | None = None,
        since: TimeBound | None = None,
        until: TimeBound | None = None,
        tag: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Drop for good the dead jobs matching every filter given (every dead job when
        none is). Returns how many were deleted, or with `dry_run` how many match."""
        filters = {
            "queue": queue,
            "url_prefix": url_prefix,
            "status": status,
            "error_contains": error_contains,
            "since": since,
            "until": until,
            "tag": tag,
        }
        return await self._client._run(_Calls.dlq_delete_many(filters, dry_run))

    async def delete(self, job_id: str) -> None:
        """Drop a dead job."""
        await self._client._run(_Calls.dlq_delete(job_id))


class AsyncQueues:
    """`client.queues` of an AsyncClient."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, name: str) -> Queue:
        """A queue's settings and stats."""
        return await self._client._run(_Calls.queue_get(name))

    async def update(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate_limit: str | None = None,
        max_attempts: int | None = None,
        backoff: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        max_size: int | None = None,
        priority: int | None = None,
        paused: bool | None = None,
        permanent_statuses: Iterable[int] | None = None,
        key_concurrency: int | None = None,
        key_rate_limit: str | None = None,
    ) -> Queue:
        """Change the settings given."""
        settings = {
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "max_attempts": max_attempts,
            "backoff": backoff,
            "timeout": timeout,
            "max_size": max_size,
            "priority": priority,
            "paused": paused,
            "permanent_statuses": None if permanent_statuses is None else list(permanent_statuses),
            "key_concurrency": key_concurrency,
            "key_rate_limit": key_rate_limit,
        }
        return await self._client._run(_Calls.queue_update(name, settings))

    async def pause(self, name: str) -> Queue:
        """Stop deliveries of the queue."""
        return await self._client._run(_Calls.queue_action(name, "pause"))

    async def resume(self, name: str) -> Queue:
        """Restart deliveries of the queue."""
        return await self._client._run(_Calls.queue_action(name, "resume"))

    async def purge(self, name: str, *, states: Iterable[str] | None = None) -> int:
        """Cancel every unfinished job of the queue (or only those in `states`, e.g.
        ["pending"]); returns how many were cancelled."""
        return await self._client._run(_Calls.queue_purge(name, states))

    async def delete(self, name: str, *, force: bool = False) -> None:
        """Forget the queue; `pushq.Conflict` while it holds unfinished jobs, unless
        `force`, which cancels them first."""
        await self._client._run(_Calls.queue_delete(name, force))

    async def list(self) -> Page[Queue]:
        """Every queue."""
        return await self._client._run(_Calls.queue_list())


class AsyncSchedules:
    """`client.schedules` of an AsyncClient."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def set(
        self, name: str, cron: str, job: Mapping[str, Any], *, timezone: str | None = None
    ) -> Schedule:
        """Create or replace a schedule."""
        return await self._client._run(_Calls.schedule_set(name, cron, job, timezone))

    async def get(self, name: str) -> Schedule:
        """A schedule with its next and last run."""
        return await self._client._run(_Calls.schedule_get(name))

    async def delete(self, name: str) -> None:
        """Remove a schedule."""
        await self._client._run(_Calls.schedule_delete(name))

    async def pause(self, name: str) -> Schedule:
        """Stop the schedule's firings until `resume`."""
        return await self._client._run(_Calls.schedule_action(name, "pause"))

    async def resume(self, name: str) -> Schedule:
        """Restart the schedule's firings from its next time (missed ones are skipped)."""
        return await self._client._run(_Calls.schedule_action(name, "resume"))

    async def trigger(self, name: str) -> Job:
        """Enqueue one job from the schedule now, besides its firings (paused or not)."""
        return await self._client._run(_Calls.schedule_trigger(name))

    async def list(self) -> Page[Schedule]:
        """Every schedule."""
        return await self._client._run(_Calls.schedule_list())


class AsyncFlowKeys:
    """`client.flow_keys` of an AsyncClient (see `FlowKeys`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, key: str) -> FlowKey:
        """A key's own limits and live counts (a key never configured shows none)."""
        return await self._client._run(_Calls.flow_key_get(key))

    async def update(
        self,
        key: str,
        *,
        concurrency: int | None = UNSET,
        rate_limit: str | None = UNSET,
        paused: bool = UNSET,
    ) -> FlowKey:
        """Set the key's own limits: `concurrency` (jobs in flight at once), `rate_limit`
        ("10/s", "100/m", "1000/h"), `paused`. A limit left out keeps its value; None
        removes it, so the queue's `key_concurrency` / `key_rate_limit` apply again."""
        changes = {"concurrency": concurrency, "rate_limit": rate_limit, "paused": paused}
        return await self._client._run(_Calls.flow_key_update(key, changes))

    async def pause(self, key: str) -> FlowKey:
        """Hold the key's jobs (they wait without using attempts; other keys go on)."""
        return await self._client._run(_Calls.flow_key_action(key, "pause"))

    async def resume(self, key: str) -> FlowKey:
        """Release a paused key's jobs."""
        return await self._client._run(_Calls.flow_key_action(key, "resume"))

    async def list(self) -> Page[FlowKey]:
        """The keys with settings of their own, or paused (up to 1000)."""
        return await self._client._run(_Calls.flow_key_list())


class AsyncTopics:
    """`client.topics` of an AsyncClient (see `Topics`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def set(
        self, name: str, endpoints: Iterable[str | Mapping[str, Any] | TopicEndpoint]
    ) -> Topic:
        """Create the topic or replace its endpoints: URLs, `TopicEndpoint`s, or dicts
        with `url` and optional `name` and `headers` (added to that endpoint's job)."""
        return await self._client._run(_Calls.topic_set(name, endpoints))

    async def get(self, name: str) -> Topic:
        """A topic and its endpoints; NotFound if there is none of that name."""
        return await self._client._run(_Calls.topic_get(name))

    async def delete(self, name: str) -> None:
        """Forget a topic (the jobs it made stay)."""
        await self._client._run(_Calls.topic_delete(name))

    async def list(self) -> Page[Topic]:
        """Every topic."""
        return await self._client._run(_Calls.topic_list())

    async def publish(
        self,
        name: str,
        body: Any = None,
        *,
        queue: str | None = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        delay: Duration | None = None,
        run_at: datetime | str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        backoff: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        idempotency_key: str | None = None,
        unique_key: str | None = None,
        ordering_key: str | None = None,
        callback_url: str | None = None,
        failure_callback_url: str | None = None,
        tags: Iterable[str] | None = None,
        flow_key: str | None = None,
        permanent_statuses: Iterable[int] | None = None,
    ) -> builtins.list[Job]:
        """One job per endpoint of the topic, with these job fields (as `enqueue`,
        without the URL) and `topic` set; each is retried, dead-lettered and redriven
        on its own. Returns the jobs in the topic's endpoint order. Safe to retry: an
        idempotency key is always sent (one is made when none is given)."""
        job = job_request(
            "",
            body,
            queue=queue,
            headers=headers,
            method=method,
            delay=delay,
            run_at=run_at,
            priority=priority,
            max_attempts=max_attempts,
            backoff=backoff,
            timeout=timeout,
            idempotency_key=idempotency_key,
            unique_key=unique_key,
            ordering_key=ordering_key,
            callback_url=callback_url,
            failure_callback_url=failure_callback_url,
            tags=None if tags is None else builtins.list(tags),
            flow_key=flow_key,
            permanent_statuses=permanent_statuses,
        )
        del job["url"]
        return await self._client._run(_Calls.topic_publish(name, job))


class AsyncEndpoints:
    """`client.endpoints` of an AsyncClient (see `Endpoints`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> Page[Endpoint]:
        """Every origin delivered to since the node started."""
        return await self._client._run(_Calls.endpoint_list())

    async def get(self, origin: str) -> Endpoint:
        """One origin's health: `origin` is scheme://host:port, or any URL there
        (`http://api.example.com/hooks/x` reads as `http://api.example.com:80`);
        NotFound if nothing was delivered there."""
        return await self._client._run(_Calls.endpoint_get(origin))
