"""pushq: a self-hosted HTTP push queue.

`pushq.Client` / `pushq.AsyncClient` enqueue and inspect jobs; `pushq.worker`
(`TaskRouter`, `verify`, `handle`) runs them in your web app.
"""

from __future__ import annotations

from .client import (
    AsyncClient,
    Attempt,
    Client,
    Job,
    LastError,
    Page,
    Queue,
    Result,
    RetryPolicy,
    Schedule,
    ScheduleRun,
)
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidSignature,
    NotFound,
    PayloadTooLarge,
    PushqError,
    RateLimited,
    TargetRefused,
    Unauthorized,
)
from .version import __version__
from .worker import Async, JobContext, Permanent, Retry, Task, TaskRouter

__all__ = [
    "ApiError",
    "Async",
    "AsyncClient",
    "Attempt",
    "BadRequest",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidSignature",
    "Job",
    "JobContext",
    "LastError",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Permanent",
    "PushqError",
    "Queue",
    "RateLimited",
    "Result",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "ScheduleRun",
    "TargetRefused",
    "Task",
    "TaskRouter",
    "Unauthorized",
    "__version__",
]
