"""pushq: a self-hosted HTTP push queue.

`pushq.Client` / `pushq.AsyncClient` enqueue and inspect jobs; `pushq.worker`
(`TaskRouter`, `verify`, `handle`) runs them in your web app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ApiError,
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidSignature,
    NotFound,
    PayloadTooLarge,
    PushqConnectionError,
    PushqError,
    PushqTimeout,
    RateLimited,
    TargetRefused,
    TaskArgumentError,
    TokenNotFound,
    Unauthorized,
)
from .version import __version__

if TYPE_CHECKING:
    from .client import (
        AsyncClient,
        Attempt,
        Client,
        Endpoint,
        FlowKey,
        Job,
        LastError,
        Page,
        Queue,
        Result,
        RetryPolicy,
        Schedule,
        ScheduleRun,
        Topic,
        TopicEndpoint,
    )
    from .worker import Async, JobContext, Permanent, Retry, Task, TaskRouter

# The client and the worker helpers load on first use (PEP 562), so `import pushq` costs
# only the errors and the version: an application that imports pushq at start-up pays
# for httpx when it first makes a Client, not before.
_LAZY = {
    **dict.fromkeys(
        (
            "AsyncClient",
            "Attempt",
            "Client",
            "Endpoint",
            "FlowKey",
            "Job",
            "LastError",
            "Page",
            "Queue",
            "Result",
            "RetryPolicy",
            "Schedule",
            "ScheduleRun",
            "Topic",
            "TopicEndpoint",
        ),
        "client",
    ),
    **dict.fromkeys(("Async", "JobContext", "Permanent", "Retry", "Task", "TaskRouter"), "worker"),
}


_SUBMODULES = frozenset({"client", "worker", "signing"})


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:  # `import pushq; pushq.worker.verify(...)` as before
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pushq' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ApiError",
    "Async",
    "AsyncClient",
    "Attempt",
    "BadRequest",
    "Client",
    "ConfigError",
    "Conflict",
    "Endpoint",
    "FlowKey",
    "Forbidden",
    "InvalidSignature",
    "Job",
    "JobContext",
    "LastError",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Permanent",
    "PushqConnectionError",
    "PushqError",
    "PushqTimeout",
    "Queue",
    "RateLimited",
    "Result",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "ScheduleRun",
    "TargetRefused",
    "Task",
    "TaskArgumentError",
    "TaskRouter",
    "TokenNotFound",
    "Topic",
    "TopicEndpoint",
    "Unauthorized",
    "__version__",
]
