"""The storage seam: everything pushq asks of a database, as one narrow protocol.

Every state change is one guarded statement: a claim takes a lease, and each
settle (complete, schedule_retry, kill) applies only while the job is still
active under that lease and attempt, so a stale attempt can never overwrite a
job the rescuer has already handed to someone else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..models import Attempt, EnqueueResult, Job, NewJob


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise unless the database accepts a write."""

    # -- producers ---------------------------------------------------------
    async def enqueue(
        self, *, jobs: Sequence[NewJob], now: float, idempotency_ttl: float
    ) -> list[EnqueueResult]:
        """Store all jobs in one transaction (all or nothing).

        A job whose idempotency key was used within the TTL, or whose unique
        key names an unfinished job of its queue, returns that job instead.
        """

    async def get(self, *, job_id: str) -> Job | None: ...

    async def list_jobs(
        self, *, queue: str | None, state: str | None, limit: int, cursor: str | None, now: float
    ) -> Page: ...

    async def list_attempts(self, *, job_id: str) -> list[Attempt]: ...

    async def cancel(self, *, job_id: str, now: float) -> Job:
        """Cancel an unfinished job; NotFound or Conflict otherwise."""

    # -- the dispatcher ------------------------------------------------------
    async def claim_due(
        self, *, limit: int, now: float, lease: str, lease_margin: float
    ) -> list[Job]:
        """Mark up to `limit` due jobs active under `lease`, counting the attempt."""

    async def complete(
        self, *, job_id: str, lease: str, attempt: Attempt, result: dict[str, Any], now: float
    ) -> bool: ...

    async def schedule_retry(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: Attempt,
        run_at: float,
        error: dict[str, Any],
    ) -> bool: ...

    async def kill(
        self, *, job_id: str, lease: str, attempt: Attempt, error: dict[str, Any], now: float
    ) -> bool: ...

    async def await_completion(
        self, *, job_id: str, lease: str, attempt: int, deadline: float
    ) -> bool:
        """Keep an active job (the worker answered 202 async) until `deadline`."""

    async def rescue_expired(self, *, now: float, limit: int) -> list[Job]:
        """Return jobs whose lease expired to the queue (or to the DLQ when out of attempts)."""

    async def prune_idempotency_keys(self, *, now: float, limit: int) -> int:
        """Forget up to `limit` idempotency keys whose window has passed."""

    # -- the dead-letter queue -----------------------------------------------
    async def list_dead(self, *, queue: str | None, limit: int, cursor: str | None) -> Page: ...

    async def redrive(self, *, job_id: str, now: float) -> Job:
        """Dead job back to pending with attempts reset; NotFound unless dead."""

    async def redrive_many(self, *, queue: str | None, now: float) -> int: ...

    async def delete_dead(self, *, job_id: str) -> bool: ...

    # -- observability -------------------------------------------------------
    async def count_by_state(self, *, now: float) -> dict[tuple[str, str], int]:
        """{(queue, public state): count} over every stored job."""
