"""Settling an attempt: write its outcome, count it, and send callbacks.

Shared by the dispatcher (the outcome of an HTTP response) and the API (a
worker finishing an async job with /complete or /fail), so both paths move
jobs the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson

from ..policy.backoff import retry_or_dead
from .config import Settings
from .delivery import (
    DeliveryFailed,
    DeliveryHook,
    DeliveryResponse,
    Outcome,
    endpoint_message,
    hook_for,
)
from .metrics import Metrics, RecentActivity
from .models import AttemptRecord, JobRecord, NewJob
from .render import job_json
from .store.base import Store
from .timeseries import DeliverySeries
from .waiters import JobWaiters

CALLBACK_QUEUE = "pushq.callbacks"
INTERRUPTED = "interrupted: pushq shut down mid-attempt; due again at once, not counted"


class Verdict(StrEnum):
    """What became of a job when one of its attempts was settled."""

    SUCCEEDED = "succeeded"
    RETRY_SCHEDULED = "retrying"
    DEAD = "dead"
    AWAITING = "awaiting"  # the worker answered 202 async: active until /complete or /fail
    STALE = "stale"  # the job had moved on (rescued, cancelled, finished): nothing written


@dataclass(frozen=True, slots=True)
class Settled:
    """A settle's result: the verdict, and when a RETRY_SCHEDULED job runs again."""

    verdict: Verdict
    run_at: float | None = None

    def describe(self, now: float) -> str:
        """The verdict as log lines show it ("retrying in 30.0s")."""
        if self.verdict is Verdict.RETRY_SCHEDULED and self.run_at is not None:
            return f"retrying in {self.run_at - now:.1f}s"
        if self.verdict is Verdict.AWAITING:
            return "active (awaiting completion)"
        return str(self.verdict)


SUCCEEDED = Settled(Verdict.SUCCEEDED)
DEAD = Settled(Verdict.DEAD)
AWAITING = Settled(Verdict.AWAITING)
STALE = Settled(Verdict.STALE)


class Settler:
    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        notify: Callable[[float | None], None],
        waiters: JobWaiters,
        rand: Callable[[], float] = random.random,
        hooks: Mapping[str, DeliveryHook] | None = None,
    ) -> None:
        self.store = store
        self.hooks = hooks or {}
        self.settings = settings
        self.metrics = metrics
        self.notify = notify
        self.waiters = waiters
        self.rand = rand
        self.activity = RecentActivity()
        self.timeseries = DeliverySeries()  # the dashboard's charts (GET /v1/stats/timeseries)

    async def settle(
        self,
        job: JobRecord,
        outcome: Outcome,
        attempt: AttemptRecord,
        result: Any,
        now: float,
        response: DeliveryResponse | DeliveryFailed | None = None,
    ) -> Settled:
        """Write the attempt's outcome; returns what became of the job (STALE if it
        had moved on: rescued, cancelled, or finished by an async call).

        A job with a delivery hook (a /v2 message) has the hook read `response`, and
        the jobs the hook makes of the attempt (its callbacks) are stored with the
        outcome when it ends the job (the first of them; a workflow's context.call
        and failure function depend on it), else just after it."""
        hook = None if response is None else hook_for(self.hooks, job)
        if hook is None or response is None:
            return await self._settle(job, outcome, attempt, result, now)
        outcome = hook.outcome(job, response, outcome)
        follow_ups = hook.after_attempt(job, response, outcome, now)
        settled = await self._settle(job, outcome, attempt, result, now, follow_ups)
        if settled.verdict is Verdict.STALE:
            return settled
        if follow_ups:
            # Not in the settle's transaction: a crash in between loses these (their
            # idempotency keys make a repeat harmless).
            await self.store.enqueue(
                jobs=follow_ups,
                now=now,
                idempotency_ttl=86400.0,
                defaults=self.settings.job_defaults,
                backpressure=False,
            )
            self.notify(None)
        return settled

    async def _settle(
        self,
        job: JobRecord,
        outcome: Outcome,
        attempt: AttemptRecord,
        result: Any,
        now: float,
        follow_ups: list[NewJob] | None = None,
    ) -> Settled:
        self._count(job, outcome, attempt, now)
        store, queue, lease = self.store, job.queue, job.lease or ""
        defaults = self.settings.job_defaults
        if outcome.verdict == "succeeded":
            result = {"status": outcome.status, "body": result}
            callback = self.callback_job(job, job.callback_url, "succeeded", now, result=result)
            if callback is None and follow_ups:
                callback = follow_ups.pop(0)  # stored with the outcome
            if not await store.complete(
                job_id=job.id,
                lease=lease,
                attempt=attempt,
                result=result,
                now=now,
                callback=callback,
                defaults=defaults,
            ):
                return STALE
            self.metrics.queue(queue).delivered.inc()
            self._finished(job, callback)
            return SUCCEEDED
        if outcome.verdict == "async":
            deadline = now + job.timeout
            if not await store.await_completion(
                job_id=job.id, lease=lease, attempt=attempt.number, deadline=deadline
            ):
                return STALE
            return AWAITING
        error = {
            "status": outcome.status,
            "message": outcome.error,
            "response": endpoint_message(attempt.response_body),
            "at": now,
        }
        run_at = retry_or_dead(
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            retryable=outcome.verdict == "retry",
            now=now,
            policy=job.backoff,
            retry_after=outcome.retry_after,
            rand=self.rand,
        )
        if run_at is not None:
            if not await store.schedule_retry(
                job_id=job.id, lease=lease, attempt=attempt, run_at=run_at, error=error
            ):
                return STALE
            self.metrics.queue(queue).retried.inc()  # the store announces run_at
            return Settled(Verdict.RETRY_SCHEDULED, run_at)
        if outcome.verdict == "retry":
            error["message"] = f"attempts exhausted; last: {outcome.error}"
        callback = self.callback_job(job, job.failure_callback_url, "dead", now, error=error)
        if callback is None and follow_ups:
            callback = follow_ups.pop(0)  # stored with the outcome
        if not await store.kill(
            job_id=job.id,
            lease=lease,
            attempt=attempt,
            error=error,
            now=now,
            callback=callback,
            defaults=defaults,
        ):
            return STALE
        self.metrics.queue(queue).dead.inc()
        self._finished(job, callback)
        return DEAD

    async def interrupted(self, job: JobRecord, attempt: AttemptRecord, now: float) -> bool:
        """Give back an attempt pushq cut off itself (the shutdown grace ran out): the
        job is due again at once, the attempt recorded as interrupted but not charged
        to max_attempts (it was pushq's fault, not the endpoint's). False if the job
        had moved on."""
        error = {"status": None, "message": INTERRUPTED, "at": now}
        return await self.store.release_interrupted(
            job_id=job.id, lease=job.lease or "", attempt=attempt, error=error
        )

    def _count(self, job: JobRecord, outcome: Outcome, attempt: AttemptRecord, now: float) -> None:
        queue = job.queue
        series = self.metrics.queue(queue)
        series.response_time.observe(attempt.duration_ms / 1000)
        if attempt.number == 1:
            waited = max(0.0, attempt.started_at - max(job.created_at, job.run_at))
            series.delivery_latency.observe(waited)
        if outcome.verdict == "succeeded":
            self.activity.record(queue, now, delivered=True)
            self.timeseries.record(queue, now, attempt.duration_ms, failed=False)
        elif outcome.failure_class is not None:
            self.activity.record(queue, now, delivered=False)
            self.timeseries.record(queue, now, attempt.duration_ms, failed=True)
            self.metrics.failed(queue, outcome.failure_class).inc()

    def _finished(self, job: JobRecord, callback: NewJob | None) -> None:
        self.waiters.wake(job.id)
        # A finished job may free a concurrency slot or an ordering key (and a
        # callback may be waiting): claim now rather than at the next poll.
        self.notify(None)

    def callback_job(
        self,
        job: JobRecord,
        url: str | None,
        state: str,
        now: float,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> NewJob | None:
        """The callback job for a finished job: the job object, POSTed to `url`.

        It is a pushq job like any other (signed, retried, visible in the DLQ),
        stored in the same transaction as the outcome it reports.
        """
        if url is None:
            return None
        finished = replace(
            job,
            state=state,  # type: ignore[arg-type]
            finished_at=now,
            failed_at=now if state == "dead" else None,
            result=result if result is not None else job.result,
            last_error=error if error is not None else job.last_error,
            lease=None,
        )
        return NewJob(
            url=url,
            queue=CALLBACK_QUEUE,
            body=orjson.dumps(job_json(finished, now)),
            run_at=now,
            # unique per attempt, also across a redrive (which numbers attempts anew)
            idempotency_key=f"callback:{job.id}:{job.attempts}:{job.attempt_started_at}",
            headers={"pushq-callback-for": job.id},
        )
