"""Request and response models. Handlers validate with them and /openapi.json is
generated from them, so the document and the behaviour cannot drift apart."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from ...policy.cron import CRON_PATTERN, TIMEZONES, check_cron, zone
from ...policy.durations import duration_pattern, parse_duration
from ...policy.patterns import int_range
from ...policy.ratelimit import RATE_PATTERN, parse_rate
from ...policy.states import PUBLIC_STATES
from ..cursors import DEAD_CURSOR_PATTERN, JOBS_CURSOR_PATTERN
from ..delivery import HOP_BY_HOP_HEADERS, RESERVED_HEADERS

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_URL_LENGTH = 2048
MAX_KEY_LENGTH = 255
MAX_HEADERS = 64
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8192
MAX_TIMEOUT = 3600.0
MAX_DELAY = 10 * 366 * 86400.0  # ten years: far enough for any plan, short of year 9999
MAX_PRIORITY = 1_000_000
MAX_ATTEMPTS = 1000
MAX_CONCURRENCY = 100_000
MAX_QUEUE_SIZE = 1_000_000_000
MAX_PROGRESS_COUNT = 1e15
MAX_BATCH_JOBS = 10_000
MAX_PERMANENT_STATUSES = 50


def _case_free(word: str) -> str:
    """`word` as a pattern that ignores case ("te" -> "[Tt][Ee]"): JSON Schema has no flags."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# -- URLs: the pattern is the rule (RFC 3986 authority, ASCII host, port 0-65535) -----------
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = (
    "(?:"
    + "|".join(
        [
            rf"(?:{_H16}:){{6}}{_LS32}",
            rf"::(?:{_H16}:){{5}}{_LS32}",
            rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        ]
    )
    + ")"
)
URL_PATTERN = (
    "^" + _case_free("http") + "[Ss]?://"
    # host: a name, an IPv4 or a bracketed IPv6 (with an RFC 6874 zone, "%25eth0")
    rf"(?:[A-Za-z0-9._~-]+|\[{_IPV6}(?:%25[A-Za-z0-9._~-]+)?\])"
    r"(?::0*" + int_range(0, 65535) + ")?"
    r"(?::)?"
    r"(?:[/?#][^\x00-\x20\x7f]*)?$"
)
_URL = re.compile(URL_PATTERN)

# -- headers ---------------------------------------------------------------------------------
HEADER_NAME_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
RESERVED_HEADER_PATTERN = (
    "^(?:(?:"
    + "|".join(_case_free(name) for name in sorted(RESERVED_HEADERS | HOP_BY_HOP_HEADERS))
    + ")$|"
    + _case_free("pushq-")
    + "|"
    + _case_free("webhook-")
    + ")"
)
# Visible ASCII and spaces; tabs too (RFC 9110 allows HTAB inside a field value).
HEADER_VALUE_PATTERN = r"^[\t\x20-\x7e]*$"
_HEADER_NAME = re.compile(HEADER_NAME_PATTERN)
_RESERVED_HEADER = re.compile(RESERVED_HEADER_PATTERN)
_HEADER_VALUE = re.compile(HEADER_VALUE_PATTERN)
KEY_PATTERN = r"^[^\x00-\x1f\x7f]*$"
METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")
METHOD_PATTERN = "^(?:" + "|".join(_case_free(m) for m in METHODS) + ")$"
# RFC 3339 with T and Z as written here, seconds and at most microseconds, year 1970-2099.
# Dates that exist, to the month's length and leap years (1970-2099), so that the
# pattern /openapi.json states accepts exactly what the parser does.
RUN_AT_PATTERN = (
    r"^(?:(?:19[7-9][0-9]|20[0-9]{2})-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:19(?:7[26]|8[048]|9[26])|20(?:[02468][048]|[13579][26]))-02-29)"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RUN_AT = re.compile(RUN_AT_PATTERN)
_KEY = re.compile(KEY_PATTERN)


def _key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise ValueError("must not contain control characters")
    return value


@lru_cache(maxsize=1024)  # producers send the same few URLs again and again
def _url_matches(value: str) -> bool:
    return _URL.fullmatch(value) is not None


def _url(value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if not _url_matches(value):
        if "@" in value.split("//", 1)[-1].split("/", 1)[0]:
            # refused rather than stored: the URL is shown by the API, the dashboard and logs
            raise ValueError("must not hold credentials (user:password@); send them in a header")
        raise ValueError(
            "must be an http:// or https:// URL with a host (ASCII: punycode an IDN), "
            "a port up to 65535 and no spaces or control characters"
        )
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    for name, header_value in value.items():
        if len(name) > MAX_HEADER_NAME or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name[:80]!r} is not a valid header name")
        if len(header_value) > MAX_HEADER_VALUE:
            raise ValueError(f"the value of {name!r} is over {MAX_HEADER_VALUE} characters")
        if not _HEADER_VALUE.fullmatch(header_value):
            raise ValueError(
                f"the value of {name!r} must be printable ASCII (percent- or RFC 8187-encode "
                "it) without control characters"
            )
        if _RESERVED_HEADER.match(name):
            lowered = name.lower()
            if lowered in HOP_BY_HOP_HEADERS:
                raise ValueError(f"{name!r} is a connection header and cannot be set")
            raise ValueError(f"{name!r} is set by pushq and cannot be overridden")
    return value


_HEADERS_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_HEADERS,
    "propertyNames": {
        "pattern": HEADER_NAME_PATTERN,
        "maxLength": MAX_HEADER_NAME,
        "not": {"pattern": RESERVED_HEADER_PATTERN},
    },
    "additionalProperties": {
        "type": "string",
        "maxLength": MAX_HEADER_VALUE,
        "pattern": HEADER_VALUE_PATTERN,
    },
    "description": "extra request headers; pushq's own (webhook-*, pushq-*, user-agent) "
    "and connection headers are refused",
}


def _method(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _run_at(value: object) -> datetime:
    if not isinstance(value, str) or not _RUN_AT.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 time with a zone offset between 1970 and 2099, "
            "e.g. 2026-01-01T09:00:00Z"
        )
    return datetime.fromisoformat(value)  # ValueError for a day the month lacks


def _integral(value: object) -> object:
    """1.0 is the integer 1 (as in JSON Schema); 1.5, "1" and true are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integral = BeforeValidator(_integral)


def duration_rule(high: float, *, positive: bool) -> tuple[BeforeValidator, WithJsonSchema]:
    """Seconds, or a string like '30s', up to `high` (and above zero when `positive`):
    the validator and the schema of one rule. The validator checks a string against the
    same pattern /openapi.json publishes."""
    pattern = duration_pattern(high, positive=positive)
    compiled = re.compile(pattern)
    bounds = f"{'above 0' if positive else 'from 0'} to {high:g} seconds"

    def check(value: object) -> float:
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise ValueError(
                f"{value[:40]!r} is not a duration {bounds}; use seconds or a string like "
                "'30s', '5m', '2h', '1d'"
            )
        seconds = parse_duration(value)
        if seconds > high or (positive and seconds <= 0):
            raise ValueError(f"must be {bounds}")
        return seconds

    number: dict[str, Any] = {"type": "number", "maximum": high}
    number["exclusiveMinimum" if positive else "minimum"] = 0
    schema = {
        "anyOf": [number, {"type": "string", "pattern": pattern}],
        "description": f"seconds, or a string like '30s', '5m', '2h', '1d'; {bounds}",
    }
    return BeforeValidator(check), WithJsonSchema(schema)


_DELAY = duration_rule(MAX_DELAY, positive=False)
_TIMEOUT = duration_rule(MAX_TIMEOUT, positive=True)
_BACKOFF = duration_rule(MAX_DELAY, positive=True)
Delay = Annotated[float, _DELAY[0], _DELAY[1]]
Timeout = Annotated[float, _TIMEOUT[0], _TIMEOUT[1]]
BackoffDuration = Annotated[float, _BACKOFF[0], _BACKOFF[1]]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Key = Annotated[
    str,
    Field(min_length=1, max_length=MAX_KEY_LENGTH),
    AfterValidator(_key),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN}
    ),
]
Url = Annotated[
    str,
    AfterValidator(_url),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_URL_LENGTH,
            "pattern": URL_PATTERN,
            "description": "an http or https URL",
        }
    ),
]
Method = Annotated[
    Literal["POST", "PUT", "PATCH", "DELETE", "GET"],
    BeforeValidator(_method),
    WithJsonSchema({"type": "string", "pattern": METHOD_PATTERN, "default": "POST"}),
]
RunAt = Annotated[
    datetime,
    BeforeValidator(_run_at),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": RUN_AT_PATTERN,
            "description": "RFC 3339 time of the first attempt, with its zone, 1970-2099",
        }
    ),
]


LIST_LIMIT_MAX = 1000
LIMIT_PATTERN = "^0*" + int_range(1, LIST_LIMIT_MAX) + "$"
MAX_WAIT = 60.0
WAIT_PATTERN = duration_pattern(MAX_WAIT, positive=False)

# Query parameters as /openapi.json states them (by name; "<path> <name>" where a route
# differs); the handlers check each against the same pattern.
QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "queue": {"type": "string", "pattern": NAME_PATTERN},
    "state": {"enum": list(PUBLIC_STATES)},
    "limit": {
        "type": "string",
        "pattern": LIMIT_PATTERN,
        "description": f"page size, 1 to {LIST_LIMIT_MAX} (default 50)",
    },
    "cursor": {
        "type": "string",
        "pattern": JOBS_CURSOR_PATTERN,
        "description": "next_cursor of the previous page",
    },
    "/v1/dlq cursor": {
        "type": "string",
        "pattern": DEAD_CURSOR_PATTERN,
        "description": "next_cursor of the previous page",
    },
    "force": {"enum": ["true", "false"]},
    "url_prefix": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_URL_LENGTH,
        "pattern": KEY_PATTERN,
    },
    "tag": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": KEY_PATTERN},
    "flow_key": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": KEY_PATTERN},
    "schedule": {"type": "string", "pattern": NAME_PATTERN},
    "topic": {"type": "string", "pattern": NAME_PATTERN},
    "wait": {
        "type": "string",
        "pattern": WAIT_PATTERN,
        "description": f"hold the answer up to this many seconds (at most {MAX_WAIT:g}) "
        "until the job finishes",
    },
}
MAX_TAGS, MAX_TAG_LENGTH, MAX_FLOW_KEY_LENGTH = 10, 64, 256


def _text(most: int) -> WithJsonSchema:
    """The schema of 1 to `most` characters without control characters."""
    return WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": most, "pattern": KEY_PATTERN}
    )


Tag = Annotated[
    str, Field(min_length=1, max_length=MAX_TAG_LENGTH), AfterValidator(_key), _text(MAX_TAG_LENGTH)
]
FlowKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_FLOW_KEY_LENGTH),
    AfterValidator(_key),
    _text(MAX_FLOW_KEY_LENGTH),
]


def _distinct(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))  # a tag given twice counts once; order kept


Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_distinct)]
UrlPrefix = Annotated[
    str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_key), _text(MAX_URL_LENGTH)
]
UnfinishedState = Literal["scheduled", "pending", "active", "retrying"]


def _sorted_unique(value: list[int]) -> list[int]:
    return sorted(set(value))


PermanentStatuses = Annotated[
    list[Annotated[int, Field(ge=300, le=599), Integral]],
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
    """A max below the base is raised to the base (as when levels combine)."""

    base: BackoffDuration | None = None
    max: BackoffDuration | None = None
    jitter: bool | None = None


class JobFields(Strict):
    """A job's fields other than its url and start (a topic publish: each endpoint's url)."""

    body: Any = Field(None, description="any JSON value, sent as application/json")
    headers: Annotated[
        dict[str, str], AfterValidator(_headers), WithJsonSchema(_HEADERS_SCHEMA)
    ] = Field(default_factory=dict)
    method: Method = "POST"
    queue: Name = "default"
    priority: Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY), Integral] = 0
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS), Integral] | None = None
    backoff: BackoffIn | None = None
    timeout: Timeout | None = Field(None, description="deadline of each attempt")
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


# A request with both start times set (neither null) is refused; JSON Schema says so too.
_ONE_START_TIME: dict[str, Any] = {
    "not": {
        "required": ["delay", "run_at"],
        "properties": {"delay": {"not": {"type": "null"}}, "run_at": {"not": {"type": "null"}}},
    }
}


class JobTemplate(JobFields):
    """A job's fields, as a schedule fires it (no start time, no idempotency key)."""

    url: Url = Field(description="where the job is delivered (http or https)")


class _Start(Strict):
    """When a new job starts, and its idempotency key: an enqueue's or a publish's."""

    model_config = ConfigDict(json_schema_extra=_ONE_START_TIME)

    delay: Delay | None = None
    run_at: RunAt | None = None
    idempotency_key: Key | None = None

    @model_validator(mode="after")
    def _one_start_time(self) -> _Start:
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give either delay or run_at, not both")
        return self


class JobRequest(JobTemplate, _Start):
    """A job to enqueue."""


class PublishRequest(JobFields, _Start):
    """A job for each endpoint of a topic: the fields of POST /v1/jobs without url."""


MAX_TOPIC_ENDPOINTS = 100


class TopicEndpoint(Strict):
    url: Url = Field(description="where this endpoint's job is delivered")
    name: Name | None = Field(None, description="a label for the endpoint")
    headers: Annotated[
        dict[str, str], AfterValidator(_headers), WithJsonSchema(_HEADERS_SCHEMA)
    ] = Field(default_factory=dict, description="added to the headers of this endpoint's job")


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


_RATE_SCHEMA = {"type": "string", "pattern": RATE_PATTERN}


def _rate(value: str) -> str:
    parse_rate(value)
    return "".join(value.split())


Rate = Annotated[str, AfterValidator(_rate), WithJsonSchema(_RATE_SCHEMA)]


class QueueRequest(Strict):
    """Queue settings to change; a field left out keeps its value, null clears it."""

    concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY), Integral] | None = Field(
        None, description="most jobs of the queue in flight at once"
    )
    rate_limit: Annotated[str, AfterValidator(_rate), WithJsonSchema(_RATE_SCHEMA)] | None = Field(
        None, description="'N/s', 'N/m' or 'N/h' (N up to 1,000,000): a token bucket"
    )
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS), Integral] | None = None
    backoff: BackoffIn | None = None
    timeout: Timeout | None = None
    max_size: Annotated[int, Field(ge=1, le=MAX_QUEUE_SIZE), Integral] | None = Field(
        None, description="unfinished jobs before enqueue answers 429"
    )
    paused: bool | None = None
    priority: Annotated[int, Field(ge=-5, le=5), Integral] | None = Field(
        None, description="under contention a queue gets slots in proportion to 4^priority"
    )
    permanent_statuses: PermanentStatuses | None = None
    key_concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY), Integral] | None = Field(
        None, description="default: most jobs of each flow key in flight at once"
    )
    key_rate_limit: Annotated[str, AfterValidator(_rate), WithJsonSchema(_RATE_SCHEMA)] | None = (
        Field(None, description="default rate of each flow key: 'N/s', 'N/m' or 'N/h'")
    )
    adaptive_concurrency: bool | None = Field(
        None, description="whether the origins' adaptive in-flight limits apply (null: true)"
    )
    endpoint_concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY), Integral] | None = Field(
        None, description="most jobs of the queue in flight to any one origin"
    )


class FlowKeyRequest(Strict):
    """A flow key's own limits; a field left out keeps its value, null clears it."""

    concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY), Integral] | None = Field(
        None, description="most jobs of the key in flight at once, across queues"
    )
    rate_limit: Rate | None = Field(
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
    adaptive_concurrency: bool = True
    endpoint_concurrency: int | None = None
    stats: QueueStats


class QueueList(BaseModel):
    queues: list[QueueOut]


def _cron(value: str) -> str:
    return check_cron(value)


def _zone(value: str) -> str:
    zone(value)
    return value


class ScheduleRequest(Strict):
    cron: Annotated[
        str,
        AfterValidator(_cron),
        WithJsonSchema({"type": "string", "pattern": CRON_PATTERN}),
    ] = Field(
        description="5 fields: minute hour day-of-month month day-of-week, or @hourly, "
        "@daily, @weekly, @monthly, @yearly; it must fire at some time (not '0 0 30 2 *')"
    )
    timezone: Annotated[
        str,
        AfterValidator(_zone),
        WithJsonSchema({"enum": list(TIMEZONES), "default": "UTC"}),
    ] = "UTC"
    job: JobTemplate = Field(description="a job request, without delay, run_at or idempotency_key")


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
    current: Annotated[float, Field(ge=0, le=MAX_PROGRESS_COUNT)] | None = None
    total: Annotated[float, Field(ge=0, le=MAX_PROGRESS_COUNT)] | None = None
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
    jobs: Annotated[list[JobRequest], Field(min_length=1, max_length=MAX_BATCH_JOBS)]


_TIME_BOUND = "an RFC 3339 time (2026-01-01T09:00:00Z) or a duration ago ('1h')"


def _time_bound(value: str) -> str:
    time_bound(value, 0.0)
    return value


# A duration ago (digits bounded so it stays finite) or an RFC 3339 time as run_at takes
# it: the pattern /openapi.json states, checked before parsing.
TIME_BOUND_PATTERN = (
    r"^(?: *[0-9]{1,15}(?:\.[0-9]{1,15})? *(?:ms|s|m|h|d)? *|" + RUN_AT_PATTERN[1:-1] + ")$"
)
_TIME_BOUND_RE = re.compile(TIME_BOUND_PATTERN)
QUERY_SCHEMAS["since"] = QUERY_SCHEMAS["until"] = {
    "type": "string",
    "pattern": TIME_BOUND_PATTERN,
    "description": "created at or after (since) / before (until): an RFC 3339 time or a "
    "duration ago ('1h')",
}


def time_bound(text: str, now: float) -> float:
    """Unix seconds from an RFC 3339 time, or from a duration meaning that long ago."""
    if not _TIME_BOUND_RE.fullmatch(text):
        try:
            zoneless = datetime.fromisoformat(text.strip()).tzinfo is None
        except ValueError:
            zoneless = False
        if zoneless:
            raise ValueError(f"{text!r} has no zone offset; give {_TIME_BOUND}")
        raise ValueError(f"{text[:40]!r} is not {_TIME_BOUND}")
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


TimeBound = Annotated[
    str,
    AfterValidator(_time_bound),
    WithJsonSchema({"type": "string", "pattern": TIME_BOUND_PATTERN, "description": _TIME_BOUND}),
]


class DeadMatch(Strict):
    """Which dead jobs (every one, when no filter is given)."""

    queue: Name | None = None
    url_prefix: UrlPrefix | None = None
    status: Annotated[int, Field(ge=100, le=599), Integral] | None = Field(
        None, description="the last attempt's HTTP status"
    )
    error_contains: Annotated[str, Field(min_length=1, max_length=1000)] | None = Field(
        None, description="a case-blind part of the last error (pushq's or the endpoint's)"
    )
    since: TimeBound | None = Field(None, description="failed at or after")
    until: TimeBound | None = Field(None, description="failed before")
    tag: Tag | None = Field(None, description="one of the job's tags")
    dry_run: bool = Field(False, description="count the matching jobs, change nothing")


class RedriveRequest(DeadMatch):
    """Which dead jobs to redrive (every one, when no filter is given)."""

    rate_limit: Rate | None = Field(
        None, description="'N/s', 'N/m' or 'N/h': spread the redriven jobs' run_at"
    )


class DeadDeleteRequest(DeadMatch):
    """Which dead jobs to delete for good (every one, when no filter is given)."""


class CancelRequest(Strict):
    """Which unfinished jobs to cancel; at least one filter."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

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
    progress: Any = Field(
        description="null, or the worker's last report (percent, current, total, message, "
        "meta) and when it came: at, RFC 3339"
    )
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
    attempt_started_at: str | None = Field(
        None, description="while the job is active: when its running attempt started"
    )
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


class DeadDeleteResult(BaseModel):
    deleted: int | None = Field(None, description="how many were deleted")
    matched: int | None = Field(None, description="with dry_run: how many match")


class Ready(BaseModel):
    status: Literal["ready", "starting", "stopping"]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    database: str
    dispatcher: str
    reasons: list[str] = []


class StatsPoint(BaseModel):
    at: str = Field(description="the start of the minute")
    delivered: int = Field(description="attempts answered 2xx")
    failed: int = Field(description="failed attempts (non-2xx, timeout, connection error)")
    latency_p50_ms: float | None = Field(description="attempt duration; null: no attempts")
    latency_p99_ms: float | None


class StatsSeries(BaseModel):
    delivered: int = Field(description="over the whole window")
    failed: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    points: list[StatsPoint] = Field(description="one per minute, oldest first")


class QueueSeries(StatsSeries):
    queue: str = Field(description="the queue ('(other)' past 1,000 queues)")


class Timeseries(BaseModel):
    interval_seconds: int
    from_: str = Field(alias="from", description="the first minute's start")
    to: str = Field(description="the end of the current minute")
    total: StatsSeries = Field(description="every queue together")
    queues: list[QueueSeries] = Field(description="queues with attempts in the window")


QUERY_SCHEMAS["/v1/stats/timeseries minutes"] = {
    "type": "string",
    "pattern": r"^([1-9]|[1-5][0-9]|60)$",
    "description": "how many minutes back, 1 to 60 (default 60)",
}

QUERY_SCHEMAS["status"] = {"type": "string", "pattern": r"^[1-5][0-9]{2}$"}
QUERY_SCHEMAS["error_contains"] = {"type": "string", "minLength": 1, "maxLength": 1000}
QUERY_SCHEMAS["/v1/dlq since"] = QUERY_SCHEMAS["/v1/dlq until"] = {
    **QUERY_SCHEMAS["since"],
    "description": "failed at or after (since) / before (until): an RFC 3339 time or a "
    "duration ago ('1h')",
}
