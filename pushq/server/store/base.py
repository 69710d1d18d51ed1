"""The storage seam: everything pushq asks of a database, as one narrow protocol.

Every state change is one guarded statement: a claim takes a lease, and each
settle (complete, schedule_retry, kill) applies only while the job is still
active under that lease and attempt, so a stale attempt can never overwrite a
job the rescuer has already handed to someone else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..models import (
    AttemptRecord,
    Claim,
    DeadFilter,
    EnqueueResult,
    JobDefaults,
    JobFilter,
    JobRecord,
    NewJob,
    QueueSettings,
    ScheduleRecord,
)


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[JobRecord]
    next_cursor: str | None


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending migrations; StoreUnavailable (with everything
        closed again) when the database is corrupt or cannot be written."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise (StoreUnavailable when the cause is known) unless the database
        accepts a write. Any write method raises StoreUnavailable while the
        database cannot take writes (disk full, read-only, I/O error)."""

    # -- producers ---------------------------------------------------------
    async def enqueue(
        self,
        *,
        jobs: Sequence[NewJob],
        now: float,
        idempotency_ttl: float,
        defaults: JobDefaults,
        backpressure: bool = True,
    ) -> list[EnqueueResult]:
        """Store all jobs in one transaction (all or nothing).

        A job whose idempotency key was used within the TTL, or whose unique
        key names an unfinished job of its queue, returns that job instead.
        What neither the job nor its queue sets comes from `defaults`. A queue
        over its max_size (or pushq over defaults.max_unfinished) raises
        RateLimited and stores nothing, unless `backpressure` is off (callbacks).
        """

    async def get(self, *, job_id: str) -> JobRecord | None: ...

    async def list_jobs(
        self, *, queue: str | None, state: str | None, limit: int, cursor: str | None, now: float
    ) -> JobPage: ...

    async def list_attempts(self, *, job_id: str) -> list[AttemptRecord]: ...

    async def cancel(self, *, job_id: str, now: float) -> JobRecord:
        """Cancel an unfinished job; NotFound or Conflict otherwise."""

    # -- the dispatcher ------------------------------------------------------
    async def claim_due(
        self,
        *,
        limit: int,
        slots: int,
        now: float,
        lease: str,
        lease_margin: float,
        busy: Mapping[str, int] | None = None,
    ) -> Claim:
        """Mark up to `limit` due jobs active under `lease`, counting the attempt.

        Honours each queue's pause, concurrency and rate limit, shares the
        slots fairly between queues (`slots` is the dispatcher's total), and
        delivers jobs sharing an ordering key one at a time, oldest first.
        """

    async def complete(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        result: dict[str, Any],
        now: float,
        callback: NewJob | None = None,
        defaults: JobDefaults | None = None,
    ) -> bool:
        """Succeed the job and record the attempt; enqueue `callback` in the same transaction."""

    async def schedule_retry(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        run_at: float,
        error: dict[str, Any],
    ) -> bool: ...

    async def kill(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        error: dict[str, Any],
        now: float,
        callback: NewJob | None = None,
        defaults: JobDefaults | None = None,
    ) -> bool:
        """Move the job to the DLQ and record the attempt; enqueue `callback` with it."""

    async def report_progress(
        self, *, job_id: str, lease: str, attempt: int, progress: Any, deadline: float
    ) -> bool:
        """Store the worker's progress and hold the lease at least until `deadline`."""

    async def prune_finished(
        self, *, succeeded_before: float, dead_before: float, limit: int
    ) -> int:
        """Delete up to `limit` (each) finished jobs past retention, with their attempts."""

    async def await_completion(
        self, *, job_id: str, lease: str, attempt: int, deadline: float
    ) -> bool:
        """Keep an active job (the worker answered 202 async) until `deadline`."""

    async def rescue_expired(
        self, *, now: float, limit: int, retry_at: Callable[[JobRecord], float] | None = None
    ) -> list[JobRecord]:
        """Return jobs whose lease expired to the queue (or to the DLQ when out of
        attempts), the interrupted attempt counted; `retry_at` says when each may
        run again (default: at once)."""

    async def prune_idempotency_keys(self, *, now: float, limit: int) -> int:
        """Forget up to `limit` idempotency keys whose window has passed."""

    # -- the dead-letter queue -----------------------------------------------
    async def list_dead(self, *, queue: str | None, limit: int, cursor: str | None) -> JobPage: ...

    async def redrive(self, *, job_id: str, now: float) -> JobRecord:
        """Dead job back to pending with attempts reset; NotFound unless dead."""

    async def redrive_many(self, *, queue: str | None, now: float) -> int: ...

    async def delete_dead(self, *, job_id: str) -> bool: ...

    # -- queues and schedules ----------------------------------------------------
    async def get_queue(self, *, name: str) -> QueueSettings | None: ...

    async def list_queues(self) -> list[QueueSettings]: ...

    async def put_queue(self, *, name: str, changes: dict[str, Any], now: float) -> QueueSettings:
        """Create the queue if need be and change the given settings."""

    async def oldest_pending(self) -> dict[str, float]: ...

    async def put_schedule(
        self,
        *,
        name: str,
        cron: str,
        timezone: str,
        job: dict[str, Any],
        next_run_at: float,
        now: float,
    ) -> ScheduleRecord: ...

    async def get_schedule(self, *, name: str) -> ScheduleRecord | None: ...

    async def list_schedules(self) -> list[ScheduleRecord]: ...

    async def delete_schedule(self, *, name: str) -> bool: ...

    async def due_schedules(self, *, now: float) -> list[ScheduleRecord]: ...

    async def next_schedule_at(self) -> float | None: ...

    async def fire_schedule(
        self,
        *,
        schedule: ScheduleRecord,
        next_run_at: float,
        job: NewJob,
        now: float,
        idempotency_ttl: float,
        defaults: JobDefaults,
    ) -> EnqueueResult | None:
        """Enqueue one firing and advance the schedule atomically; None if already fired."""

    # -- observability -------------------------------------------------------
    async def count_by_state(self, *, now: float) -> dict[tuple[str, str], int]:
        """{(queue, public state): count} over every stored job."""

    # -- operators' actions and search ------------------------------------------
    async def find_jobs(
        self, *, match: JobFilter, limit: int, cursor: str | None, now: float
    ) -> JobPage:
        """Jobs the filter matches, newest first, each filter served by an index."""

    async def run_now(self, *, job_id: str, now: float) -> JobRecord:
        """Make a waiting job (scheduled, pending, retrying) due now without adding an
        attempt, or redrive a dead one; NotFound, or Conflict (active, succeeded,
        cancelled)."""

    async def delete_job(self, *, job_id: str) -> None:
        """Remove a finished job and its attempts; NotFound, or Conflict if unfinished."""

    async def cancel_matching(self, *, match: JobFilter, now: float) -> int:
        """Cancel every unfinished job the filter matches; how many."""

    async def delete_queue(self, *, name: str, force: bool, now: float) -> int:
        """Forget a queue; Conflict while it holds unfinished jobs unless `force`, which
        cancels them first (their number is returned). Finished jobs stay until pruned."""

    async def count_dead(self, *, match: DeadFilter) -> int:
        """How many dead jobs the filter matches (a bulk redrive's dry run)."""

    async def redrive_matching(self, *, match: DeadFilter, now: float, interval: float) -> int:
        """Redrive the dead jobs the filter matches, oldest first, the n-th due at
        now + n * interval; those whose unique key is held stay dead. How many went."""

    async def set_schedule_paused(
        self, *, name: str, paused: bool, next_run_at: float | None, now: float
    ) -> ScheduleRecord:
        """Pause or resume a schedule (moving its next firing to `next_run_at` if given);
        NotFound for an unknown name."""
