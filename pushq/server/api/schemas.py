"""Request and response models. Handlers validate with them and /openapi.json is
generated from them, so the document and the behaviour cannot drift apart."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from ...policy.durations import parse_duration
from ...policy.ratelimit import parse_rate
from ..delivery import HOP_BY_HOP_HEADERS, RESERVED_HEADERS

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Header values may hold tabs (RFC 9110 allows HTAB inside a field value).
_HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MAX_URL_LENGTH = 2048
MAX_KEY_LENGTH = 255
MAX_HEADERS = 64
MAX_TIMEOUT = 3600.0
MAX_DELAY = 10 * 366 * 86400.0  # ten years: far enough for any plan, short of year 9999
MAX_PERMANENT_STATUSES = 50


def _duration(value: object) -> float:
    return parse_duration(value)


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _url(value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    try:
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"has an invalid port: {exc}") from None
    if not host:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        # refused rather than stored: the URL is shown by the API, the dashboard and logs
        raise ValueError("must not hold credentials (user:password@); send them in a header")
    return value


def _key(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name, header_value in value.items():
        lowered = name.lower()
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if _HEADER_VALUE_CONTROL.search(header_value):
            raise ValueError(f"the value of {name!r} contains control characters")
        if not header_value.isascii():
            raise ValueError(
                f"the value of {name!r} must be ASCII (percent- or RFC 8187-encode it)"
            )
        if lowered in RESERVED_HEADERS or lowered.startswith(("pushq-", "webhook-")):
            raise ValueError(f"{name!r} is set by pushq and cannot be overridden")
        if lowered in HOP_BY_HOP_HEADERS:
            raise ValueError(f"{name!r} is a connection header and cannot be set")
        if lowered in seen:
            raise ValueError(f"{name!r} is given twice")
        seen.add(lowered)
    if sum(len(k) + len(v) for k, v in value.items()) > 16 * 1024:
        raise ValueError("headers must total at most 16 KiB")
    return value


def _method(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must be an RFC 3339 time with a zone offset, e.g. 2026-01-01T09:00:00Z")
    return value


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)?$"},
    ],
    "description": "seconds, or a string like '30s', '5m', '2h', '1d'",
}
Duration = Annotated[float, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH), AfterValidator(_key)]
Url = Annotated[str, AfterValidator(_url)]
MAX_TAGS, MAX_TAG_LENGTH, MAX_FLOW_KEY_LENGTH = 10, 64, 256
Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH), AfterValidator(_key)]
FlowKey = Annotated[str, Field(min_length=1, max_length=MAX_FLOW_KEY_LENGTH), AfterValidator(_key)]


def _distinct(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))  # a tag given twice counts once; order kept


Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_distinct)]
UrlPrefix = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_key)]
UnfinishedState = Literal["scheduled", "pending", "active", "retrying"]


def _sorted_unique(value: list[int]) -> list[int]:
    return sorted(set(value))


PermanentStatuses = Annotated[
    list[Annotated[int, Field(ge=300, le=599)]],
    Field(
        max_length=MAX_PERMANENT_STATUSES,
        description=(
            "HTTP statuses (300-599) that end the job at once instead of being retried; "
            "410 and pushq-retry: false always do"
        ),
    ),
    AfterValidator(_sorted_unique),
]


class Strict(BaseModel):
    # strict: "5" is not an int and 1 is not a bool; forbid: typos are errors, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class BackoffIn(Strict):
    base: Annotated[PositiveDuration, Field(le=MAX_DELAY)] | None = None
    max: Annotated[PositiveDuration, Field(le=MAX_DELAY)] | None = None
    jitter: bool | None = None


class JobFields(Strict):
    """A job's fields other than its url (a topic publish: the url is each endpoint's)."""

    body: Any = Field(None, description="any JSON value, sent as application/json")
    headers: Annotated[dict[str, str], AfterValidator(_headers)] = Field(
        default_factory=dict, description="extra request headers"
    )
    method: Annotated[
        Literal["POST", "PUT", "PATCH", "DELETE", "GET"], BeforeValidator(_method)
    ] = "POST"
    queue: Name = "default"
    delay: Annotated[Duration, Field(le=MAX_DELAY)] | None = None
    run_at: Annotated[datetime, Field(strict=False), AfterValidator(_aware)] | None = Field(
        None, description="RFC 3339 time of the first attempt"
    )
    priority: Annotated[int, Field(ge=-1_000_000, le=1_000_000)] = 0
    max_attempts: Annotated[int, Field(ge=1, le=1000)] | None = None
    backoff: BackoffIn | None = None
    timeout: Annotated[PositiveDuration, Field(le=MAX_TIMEOUT)] | None = Field(
        None, description="deadline of each attempt"
    )
    idempotency_key: Key | None = None
    unique_key: Key | None = None
    ordering_key: Key | None = Field(
        None, description="jobs sharing it are delivered one at a time, in enqueue order"
    )
    callback_url: Url | None = Field(None, description="receives the job once it succeeded")
    failure_callback_url: Url | None = Field(None, description="receives the job once it is dead")
    tags: Tags = Field(
        default_factory=list, description=f"up to {MAX_TAGS} strings of up to 64 characters"
    )
    flow_key: FlowKey | None = Field(None, description="per-key flow control (a customer id)")
    permanent_statuses: PermanentStatuses | None = Field(
        None, description="HTTP statuses that end the job at once; replaces the queue's list"
    )

    @model_validator(mode="after")
    def _one_start_time(self) -> JobFields:
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give either delay or run_at, not both")
        return self


class JobRequest(JobFields):
    """A job to enqueue."""

    url: Url = Field(description="where the job is delivered (http or https)")


MAX_TOPIC_ENDPOINTS = 100


class TopicEndpoint(Strict):
    url: Url = Field(description="where this endpoint's job is delivered")
    name: Name | None = Field(None, description="a label for the endpoint")
    headers: Annotated[dict[str, str], AfterValidator(_headers)] = Field(
        default_factory=dict, description="added to the headers of this endpoint's job"
    )


class TopicRequest(Strict):
    """A topic's endpoints (replacing any it had)."""

    endpoints: Annotated[list[TopicEndpoint], Field(min_length=1, max_length=MAX_TOPIC_ENDPOINTS)]


class TopicOut(BaseModel):
    name: str
    endpoints: list[TopicEndpoint]
    created_at: str
    updated_at: str


class TopicList(BaseModel):
    topics: list[TopicOut]


def _rate(value: str) -> str:
    parse_rate(value)
    return "".join(value.split())


class QueueRequest(Strict):
    """Queue settings to change; a field left out keeps its value, null clears it."""

    concurrency: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="most jobs of the queue in flight at once"
    )
    rate_limit: Annotated[str, AfterValidator(_rate)] | None = Field(
        None, description="'N/s', 'N/m' or 'N/h': a token bucket of capacity N"
    )
    max_attempts: Annotated[int, Field(ge=1, le=1000)] | None = None
    backoff: BackoffIn | None = None
    timeout: Annotated[PositiveDuration, Field(le=MAX_TIMEOUT)] | None = None
    max_size: Annotated[int, Field(ge=1)] | None = Field(
        None, description="unfinished jobs before enqueue answers 429"
    )
    paused: bool | None = None
    priority: Annotated[int, Field(ge=-5, le=5)] | None = Field(
        None, description="under contention a queue gets slots in proportion to 4^priority"
    )
    permanent_statuses: PermanentStatuses | None = None
    key_concurrency: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="default: most jobs of each flow key in flight at once"
    )
    key_rate_limit: Annotated[str, Field(max_length=32), AfterValidator(_rate)] | None = Field(
        None, description="default rate of each flow key: 'N/s', 'N/m' or 'N/h'"
    )


class FlowKeyRequest(Strict):
    """A flow key's own limits; a field left out keeps its value, null clears it."""

    concurrency: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="most jobs of the key in flight at once, across queues"
    )
    rate_limit: Annotated[str, Field(max_length=32), AfterValidator(_rate)] | None = Field(
        None, description="'N/s', 'N/m' or 'N/h': a token bucket of capacity N"
    )
    paused: bool | None = None


class FlowKeyOut(BaseModel):
    key: str
    concurrency: int | None
    rate_limit: str | None
    paused: bool
    in_flight: int
    waiting: int


class FlowKeyList(BaseModel):
    flow_keys: list[FlowKeyOut]


class EndpointError(BaseModel):
    status: int | None
    message: str | None
    at: str | None


class EndpointOut(BaseModel):
    origin: str = Field(description="scheme://host:port")
    state: Literal["closed", "open", "half_open"]
    in_flight: int
    concurrency_limit: int | None = Field(description="the adaptive in-flight limit, or null")
    success_rate: float | None = Field(description="over the last 256 deliveries")
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    consecutive_failures: int
    last_error: EndpointError | None
    open_until: str | None = Field(description="until when nothing is sent (circuit or hold)")
    held_until: str | None = Field(description="a Retry-After hold from a 429 or 503")


class EndpointList(BaseModel):
    endpoints: list[EndpointOut]


class QueueStats(BaseModel):
    scheduled: int
    pending: int
    active: int
    retrying: int
    succeeded: int
    dead: int
    cancelled: int
    oldest_pending_age: float | None
    delivered_last_minute: int
    failed_last_minute: int


class BackoffSettings(BaseModel):
    base: float | None
    max: float | None
    jitter: bool | None


class QueueOut(BaseModel):
    name: str
    concurrency: int | None
    rate_limit: str | None
    max_attempts: int | None
    backoff: BackoffSettings | None
    timeout: float | None
    max_size: int | None
    paused: bool
    priority: int
    permanent_statuses: list[int] | None
    key_concurrency: int | None = None
    key_rate_limit: str | None = None
    stats: QueueStats


class QueueList(BaseModel):
    queues: list[QueueOut]


class ScheduleRequest(Strict):
    cron: str = Field(description="5 fields: minute hour day-of-month month day-of-week")
    timezone: str = "UTC"
    job: dict[str, Any] = Field(description="a job request, without delay or run_at")


class ScheduleRun(BaseModel):
    """A job a schedule made, with its outcome so far."""

    id: str
    state: str
    attempts: int
    created_at: str
    finished_at: str | None
    last_error: LastError | None


class ScheduleOut(BaseModel):
    name: str
    cron: str
    timezone: str
    job: dict[str, Any]
    paused: bool
    next_run_at: str
    last_run_at: str | None
    recent_runs: list[ScheduleRun] = Field(
        description="the newest jobs it made (firings and triggers), newest first; "
        "GET /v1/jobs?schedule=NAME lists them all"
    )


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class ProgressRequest(Strict):
    """A worker's progress report; every field optional. Also a heartbeat."""

    percent: Annotated[float, Field(ge=0, le=100)] | None = None
    current: Annotated[float, Field(ge=0)] | None = None
    total: Annotated[float, Field(ge=0)] | None = None
    message: Annotated[str, Field(max_length=2000)] | None = None
    meta: Any = None


class CompleteRequest(Strict):
    result: Any = Field(None, description="any JSON value, kept as the job's result body")


class FailRequest(Strict):
    error: Annotated[str, Field(min_length=1, max_length=4000)]
    retry: bool = Field(True, description="false sends the job straight to the DLQ")


class IdempotencyKey(Strict):
    key: Key


class BatchRequest(Strict):
    jobs: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10_000)]


_TIME_BOUND = "an RFC 3339 time (2026-01-01T09:00:00Z) or a duration ago ('1h')"


def _time_bound(value: str) -> str:
    time_bound(value, 0.0)
    return value


def time_bound(text: str, now: float) -> float:
    """Unix seconds from an RFC 3339 time, or from a duration meaning that long ago."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not {_TIME_BOUND}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no zone offset; give {_TIME_BOUND}")
    return moment.timestamp()


TimeBound = Annotated[str, AfterValidator(_time_bound), Field(description=_TIME_BOUND)]


class RedriveRequest(Strict):
    """Which dead jobs to redrive (every one, when no filter is given)."""

    queue: Name | None = None
    url_prefix: UrlPrefix | None = None
    status: Annotated[int, Field(ge=100, le=599)] | None = Field(
        None, description="the last attempt's HTTP status"
    )
    error_contains: Annotated[str, Field(min_length=1, max_length=1000)] | None = Field(
        None, description="a case-blind part of the last error (pushq's or the endpoint's)"
    )
    since: TimeBound | None = Field(None, description="failed at or after")
    until: TimeBound | None = Field(None, description="failed before")
    dry_run: bool = Field(False, description="count the matching jobs, change nothing")
    rate_limit: Annotated[str, AfterValidator(_rate)] | None = Field(
        None, description="'N/s', 'N/m' or 'N/h': spread the redriven jobs' run_at"
    )


class CancelRequest(Strict):
    """Which unfinished jobs to cancel; at least one filter."""

    queue: Name | None = None
    state: UnfinishedState | None = None
    url_prefix: UrlPrefix | None = None
    tag: Tag | None = None
    flow_key: FlowKey | None = None

    @model_validator(mode="after")
    def _some_filter(self) -> CancelRequest:
        if not self.model_fields_set:
            raise ValueError(
                "give at least one filter (queue, state, url_prefix, tag, flow_key); "
                "to empty a queue use POST /v1/queues/{name}/purge"
            )
        return self


class PurgeRequest(Strict):
    """Which unfinished states to cancel (default: all of them)."""

    states: Annotated[list[UnfinishedState], Field(min_length=1)] | None = None


class CancelResult(BaseModel):
    cancelled: int


# -- responses (documented in /openapi.json; tests check real responses against them) ---


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class LastError(BaseModel):
    status: int | None
    message: str | None
    response: str | None = Field(
        None, description="the endpoint's own error: its JSON error/message, else its first line"
    )
    at: str


class Result(BaseModel):
    status: int | None
    body: Any


class BackoffOut(BaseModel):
    base: float
    max: float
    jitter: bool


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    queue: str
    url: str
    method: str
    headers: dict[str, str]
    body: Any
    state: Literal["scheduled", "pending", "active", "retrying", "succeeded", "dead", "cancelled"]
    attempts: int
    max_attempts: int
    priority: int
    timeout: float
    backoff: BackoffOut
    created_at: str
    run_at: str
    finished_at: str | None
    failed_at: str | None
    last_error: LastError | None
    result: Result | None
    progress: Any
    idempotency_key: str | None
    unique_key: str | None
    ordering_key: str | None
    callback_url: str | None
    failure_callback_url: str | None
    tags: list[str]
    flow_key: str | None
    schedule: str | None
    topic: str | None
    replay_of: str | None
    permanent_statuses: list[int] | None = Field(
        None, description="present when the job or its queue set it at enqueue"
    )
    deduplicated: bool | None = None


class JobList(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = None


class AttemptOut(BaseModel):
    number: int
    started_at: str
    duration_ms: float
    status: int | None
    error: str | None
    response_body: str | None
    redrive: int = Field(description="0 before any redrive, n after the n-th (numbers restart)")


class AttemptList(BaseModel):
    attempts: list[AttemptOut]


class DeadJob(JobOut):
    attempt_log: list[AttemptOut]


class RedriveResult(BaseModel):
    retried: int | None = Field(None, description="how many were redriven")
    matched: int | None = Field(None, description="with dry_run: how many match")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    database: str
    dispatcher: str
    reasons: list[str] = []
