"""The records that cross the storage seam: what is stored, claimed and settled.

Times are Unix seconds (float) inside pushq; the API renders them as RFC 3339.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..policy.backoff import BackoffPolicy, PartialBackoff

State = Literal[
    "scheduled", "pending", "blocked", "active", "retrying", "succeeded", "dead", "cancelled"
]
# "blocked" (waiting behind an earlier job with its ordering key) is stored but
# shown as "pending" (or "scheduled" while its run_at is ahead).

# Base32 in Crockford's alphabet, whose ASCII order is the order of the values, so
# ids sort as their numbers do (the 128 bits are padded at the end, not the start).
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_last_id_value = 0


def new_job_id(now: float | None = None) -> str:
    """26 characters: 48 bits of milliseconds then 80 random bits, so ids sort by
    creation time (a ULID's content).

    Monotonic within this process: an id made in the same millisecond as the
    previous one is the previous one plus one, so enqueue order is id order.
    """
    global _last_id_value
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    if value <= _last_id_value:
        value = _last_id_value + 1
    _last_id_value = value
    return base64.b32encode(value.to_bytes(16, "big"))[:26].translate(_TO_CROCKFORD).decode()


def id_floor(at: float) -> str:
    """The smallest id a job created at `at` (Unix seconds) or later can have: a
    created_at range becomes an id range, which the primary key serves."""
    millis = max(0, int(at * 1000))
    value = min(millis, (1 << 48) - 1) << 80
    return base64.b32encode(value.to_bytes(16, "big"))[:26].translate(_TO_CROCKFORD).decode()


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """The server's defaults, for what neither the job nor its queue sets."""

    max_attempts: int
    timeout: float
    backoff: BackoffPolicy
    max_unfinished: int | None = None  # the global backpressure limit


@dataclass(slots=True)
class QueueSettings:
    """A queue's settings (PUT /v1/queues/{name}); None means not set."""

    name: str
    concurrency: int | None = None
    rate_limit: str | None = None
    max_attempts: int | None = None
    backoff: PartialBackoff | None = None
    timeout: float | None = None
    max_size: int | None = None
    paused: bool = False
    priority: int = 0
    unfinished: int = 0
    permanent_statuses: tuple[int, ...] | None = None
    key_concurrency: int | None = None  # every flow key's default limits in the queue
    key_rate_limit: str | None = None
    adaptive_concurrency: bool = True  # the origins' AIMD limits apply to its jobs
    endpoint_concurrency: int | None = None  # its most deliveries in flight to one origin


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    name: str
    cron: str
    timezone: str
    job: dict[str, Any]
    next_run_at: float
    last_run_at: float | None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim round handed out, and when the next one may find more."""

    jobs: list[JobRecord]
    wake_at: float | None  # e.g. when a rate-limited queue has its next token


@dataclass(slots=True)
class NewJob:
    """A validated job request, ready to be stored."""

    url: str
    queue: str = "default"
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    run_at: float = 0.0
    priority: int = 0
    max_attempts: int | None = None
    backoff: PartialBackoff | None = None
    timeout: float | None = None
    idempotency_key: str | None = None
    unique_key: str | None = None
    ordering_key: str | None = None
    callback_url: str | None = None
    failure_callback_url: str | None = None
    tags: list[str] = field(default_factory=list)
    flow_key: str | None = None
    schedule: str | None = None  # what made the job: a schedule's name,
    topic: str | None = None  # a topic's name,
    replay_of: str | None = None  # or a replay of another job
    permanent_statuses: tuple[int, ...] | None = None  # None: the queue's
    # What an API other than /v1 knows about the job (QStash's /v2: its delivery rules,
    # callbacks, labels...); meta["kind"] picks the delivery hook (delivery.DeliveryHook).
    meta: dict[str, Any] | None = None
    # An id made beforehand with new_job_id (a workflow step names its own message in
    # its body); None: the store makes one.
    id: str | None = None


@dataclass(slots=True)
class JobRecord:
    """A stored job, as the store returns it."""

    id: str
    queue: str
    url: str
    method: str
    headers: dict[str, str]
    body: bytes | None
    state: State
    priority: int
    attempts: int
    max_attempts: int
    backoff: BackoffPolicy
    timeout: float
    created_at: float
    run_at: float
    finished_at: float | None = None
    failed_at: float | None = None
    lease: str | None = None
    lease_expires_at: float | None = None
    attempt_started_at: float | None = None
    last_error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    progress: Any = None
    idempotency_key: str | None = None
    unique_key: str | None = None
    ordering_key: str | None = None
    callback_url: str | None = None
    failure_callback_url: str | None = None
    tags: list[str] = field(default_factory=list)
    flow_key: str | None = None
    schedule: str | None = None
    topic: str | None = None
    replay_of: str | None = None
    redrives: int = 0  # times redriven from the DLQ; each attempt records the count
    # statuses that end the job at once: its own list, else its queue's at enqueue
    permanent_statuses: tuple[int, ...] | None = None
    meta: dict[str, Any] | None = None  # as NewJob.meta
    # active and held by an async worker (it answered 202 pushq-async), not in flight
    awaiting: bool = False


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing or a bulk cancel means; None matches anything.

    `states` are public states ("pending" includes due scheduled jobs); `since`
    and `until` bound created_at (until excluded)."""

    queue: str | None = None
    states: tuple[str, ...] | None = None
    url_prefix: str | None = None
    tag: str | None = None
    flow_key: str | None = None
    schedule: str | None = None
    topic: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead jobs a bulk redrive means; None matches anything.

    `status` is the last attempt's HTTP status, `error_contains` a case-blind
    substring of the last error (pushq's message or the endpoint's), `since` and
    `until` bound failed_at (until excluded), `tag` is one of the job's tags."""

    queue: str | None = None
    url_prefix: str | None = None
    status: int | None = None
    error_contains: str | None = None
    since: float | None = None
    until: float | None = None
    tag: str | None = None  # one of the job's tags


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job: JobRecord
    created: bool  # False when an idempotency key returned an existing job


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt, recorded when it settles."""

    job_id: str
    number: int
    started_at: float
    duration_ms: float
    status: int | None
    error: str | None
    response_body: str | None
    redrive: int = 0  # 0 before any redrive, n after the n-th (numbers restart at 1)


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """A fan-out topic: its endpoints, each {"url", "name"?, "headers"?}."""

    name: str
    endpoints: list[dict[str, Any]]
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class FlowKeyRecord:
    """A flow key's own limits (None: the queue's key_* default) and live counts."""

    key: str
    concurrency: int | None = None
    rate_limit: str | None = None
    paused: bool = False
    in_flight: int = 0
    waiting: int = 0


@dataclass(frozen=True, slots=True)
class CircuitRecord:
    """The circuit breaker's saved state for one destination origin."""

    origin: str
    state: str  # closed | open | half_open
    failures: int
    opened: int  # times opened in a row
    open_until: float | None
    probe_by: str | None = None  # PostgreSQL: the node whose half-open probe is in flight
    probe_until: float | None = None  # and until when that probe is taken to be alive
