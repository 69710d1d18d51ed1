"""What a worker's response means for its job: a pure function, tested as a table.

The rule (DESIGN.md, Delivery), as push systems apply it (QStash, Cloud Tasks,
Svix): every failure is retried with backoff unless it says it is permanent.

| response                                                  | kind        |
|-----------------------------------------------------------|-------------|
| 2xx                                                       | `succeeded` |
| 202 with `pushq-async: true`                              | `async`     |
| non-2xx with `pushq-retry: false`                         | `dead`      |
| 410 Gone, or a status in `permanent_statuses`             | `dead`      |
| any other status (1xx, 3xx, 4xx, 5xx)                     | `retry`     |
| no response (connection error, timeout)                   | `retry`     |

A retry carries the seconds `Retry-After` asked for (clamped to the cap), or
None. Running out of attempts is the settler's business, not this table's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from .backoff import parse_retry_after

Kind = Literal["succeeded", "async", "retry", "dead"]

GONE = 410  # permanent whatever the lists say: the endpoint told us it is gone for good


@dataclass(frozen=True, slots=True)
class Classification:
    """The outcome kind of one response, the wait it asked for, and why (None on success)."""

    kind: Kind
    retry_after: float | None = None  # seconds; only for "retry"
    reason: str | None = None  # "HTTP 404", "HTTP 410 (permanent)", ...


def _true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _false(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "false"


def classify_response(
    status: int,
    headers: Mapping[str, str],
    *,
    permanent_statuses: Collection[int],
    retry_after_cap: float,
    now: float,
) -> Classification:
    """Read one HTTP response. `headers` needs lower-cased names; only `pushq-async`,
    `pushq-retry` and `retry-after` are looked at. `permanent_statuses` is the job's
    list, else its queue's (the caller resolves which)."""
    if 200 <= status < 300:
        if status == 202 and _true(headers.get("pushq-async")):
            return Classification("async")
        return Classification("succeeded")
    error = f"HTTP {status}"
    if _false(headers.get("pushq-retry")):
        return Classification("dead", reason=f"{error} with pushq-retry: false")
    if status == GONE or status in permanent_statuses:
        return Classification("dead", reason=f"{error} (permanent)")
    retry_after = parse_retry_after(headers.get("retry-after"), now, retry_after_cap)
    return Classification("retry", retry_after=retry_after, reason=error)
