"""The claim -> deliver -> settle loop. No SQL here and no HTTP parsing:
the store and the sender do those."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import sqlite3
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from .backoff import next_run_at
from .config import Settings
from .delivery import (
    DeliveryFailed,
    DeliveryResponse,
    Outcome,
    Sender,
    build_request,
    classify,
    response_excerpt,
    result_body,
)
from .metrics import Metrics, RecentActivity
from .models import Attempt, Job
from .signing import job_token_key
from .store.base import Store

log = logging.getLogger("pushq.dispatcher")
RESCUE_BATCH = 500


class Dispatcher:
    """Claims due jobs into free delivery slots and settles each attempt."""

    def __init__(
        self,
        *,
        store: Store,
        sender: Sender,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.sender = sender
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rand = rand
        self.slots = settings.delivery_concurrency
        self.last_loop_at = 0.0  # /health reads this to tell a stalled loop
        self._signing_keys = settings.signing_keys
        self._token_key = job_token_key(settings.api_token)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._next_due = math.inf
        self._stopping = False
        self.activity = RecentActivity()
        metrics.slots.set(self.slots)

    def notify(self, run_at: float | None = None) -> None:
        """A job became due (or will at `run_at`): wake the loop now, not at the next poll."""
        if run_at is not None:
            self._next_due = min(self._next_due, run_at)
        self._wake.set()

    async def run(self) -> None:
        """Loop until stop(): claim as many due jobs as there are free slots, then wait."""
        rescuer = asyncio.create_task(self._rescue_periodically())
        try:
            while not self._stopping:
                self.last_loop_at = self.clock()
                self._wake.clear()
                free = self.slots - len(self._in_flight)
                claimed = await self._claim(free) if free > 0 else 0
                if claimed and claimed == free:
                    continue  # slots filled; more may be due
                await self._wait()
        finally:
            rescuer.cancel()

    async def stop(self, grace: float) -> None:
        """Stop claiming; give in-flight attempts `grace` seconds, then interrupt them."""
        self._stopping = True
        self._wake.set()
        if self._in_flight:
            _, unfinished = await asyncio.wait(self._in_flight, timeout=grace)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)

    async def _wait(self) -> None:
        now = self.clock()
        timeout = self.settings.poll_interval * (0.5 + self.rand())  # jittered fallback poll
        if self._next_due - now < timeout:
            timeout = max(self._next_due - now, 0.0)
            self._next_due = math.inf  # the claim after this wait picks it up
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _claim(self, free: int) -> int:
        try:
            claim = await self.store.claim_due(
                limit=free,
                slots=self.slots,
                now=self.clock(),
                lease=secrets.token_hex(8),
                lease_margin=self.settings.lease_margin,
            )
        except sqlite3.Error:
            log.exception("claiming due jobs failed; trying again shortly")
            await asyncio.sleep(0.5)
            return 0
        if claim.wake_at is not None:
            self._next_due = min(self._next_due, claim.wake_at)
        jobs = claim.jobs
        for job in jobs:
            task = asyncio.create_task(self._attempt(job))
            self._in_flight.add(task)
            task.add_done_callback(self._slot_freed)
        self.metrics.slots_in_use.set(len(self._in_flight))
        return len(jobs)

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self.metrics.slots_in_use.set(len(self._in_flight))
        self._wake.set()

    async def _attempt(self, job: Job) -> None:
        started = self.clock()
        t0 = time.perf_counter()
        request = build_request(
            job, now=started, signing_keys=self._signing_keys, token_key=self._token_key
        )
        response: DeliveryResponse | DeliveryFailed
        try:
            response = await self.sender.send(request)
        except DeliveryFailed as failure:
            response = failure
        except asyncio.CancelledError:
            interrupted = DeliveryFailed("connection", "interrupted: pushq shut down mid-attempt")
            await self._record(job, started, t0, interrupted)
            raise
        await self._record(job, started, t0, response)

    async def _record(
        self, job: Job, started: float, t0: float, response: DeliveryResponse | DeliveryFailed
    ) -> None:
        duration_ms = (time.perf_counter() - t0) * 1000
        now = self.clock()
        outcome = classify(response, now=now, retry_after_cap=self.settings.retry_after_cap)
        body = b"" if isinstance(response, DeliveryFailed) else response.body
        attempt = Attempt(
            job_id=job.id,
            number=job.attempts,
            started_at=started,
            duration_ms=round(duration_ms, 3),
            status=outcome.status,
            error=outcome.error,
            response_body=response_excerpt(body),
        )
        try:
            try:
                verdict = await self._settle(job, outcome, attempt, body, now)
            except sqlite3.OperationalError:  # e.g. the disk is busy: try a few more times
                async for retrying in AsyncRetrying(
                    retry=retry_if_exception_type(sqlite3.OperationalError),
                    stop=stop_after_attempt(4),
                    wait=wait_random_exponential(multiplier=0.05, max=1.0),
                    reraise=True,
                ):
                    with retrying:
                        verdict = await self._settle(job, outcome, attempt, body, now)
        except sqlite3.Error:
            # The lease stays; the rescuer returns the job once it expires.
            log.exception("could not record attempt %d of job %s", attempt.number, job.id)
            return
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "attempt job=%s queue=%s attempt=%d/%d host=%s status=%s duration_ms=%.1f -> %s%s",
            job.id,
            job.queue,
            attempt.number,
            job.max_attempts,
            urlsplit(job.url).hostname,
            outcome.status,
            duration_ms,
            verdict,
            f" ({outcome.error})" if outcome.error else "",
        )

    async def _settle(
        self, job: Job, outcome: Outcome, attempt: Attempt, body: bytes, now: float
    ) -> str:
        """Write the attempt's outcome; returns the state the job moved to."""
        store, queue = self.store, job.queue
        self.metrics.response_time.labels(queue=queue).observe(attempt.duration_ms / 1000)
        if attempt.number == 1:
            waited = max(0.0, attempt.started_at - max(job.created_at, job.run_at))
            self.metrics.delivery_latency.labels(queue=queue).observe(waited)
        if outcome.verdict == "succeeded":
            self.activity.record(queue, now, delivered=True)
        elif outcome.failure_class is not None:
            self.activity.record(queue, now, delivered=False)
        if outcome.failure_class is not None:
            self.metrics.failed_attempts.labels(
                queue=queue, **{"class": outcome.failure_class}
            ).inc()
        if outcome.verdict == "succeeded":
            result = {"status": outcome.status, "body": result_body(body)}
            if not await store.complete(
                job_id=job.id, lease=job.lease or "", attempt=attempt, result=result, now=now
            ):
                return "stale"
            self.metrics.delivered.labels(queue=queue).inc()
            return "succeeded"
        if outcome.verdict == "async":
            deadline = now + job.timeout
            if not await store.await_completion(
                job_id=job.id, lease=job.lease or "", attempt=attempt.number, deadline=deadline
            ):
                return "stale"
            return "active (awaiting completion)"
        error = {"status": outcome.status, "message": outcome.error, "at": now}
        if outcome.verdict == "retry" and job.attempts < job.max_attempts:
            run_at = next_run_at(
                now=now,
                retry_number=job.attempts,
                policy=job.backoff,
                retry_after=outcome.retry_after,
                rand=self.rand,
            )
            if not await store.schedule_retry(
                job_id=job.id, lease=job.lease or "", attempt=attempt, run_at=run_at, error=error
            ):
                return "stale"
            self.metrics.retried.labels(queue=queue).inc()
            self.notify(run_at)
            return f"retrying in {run_at - now:.1f}s"
        if outcome.verdict == "retry":
            error["message"] = f"attempts exhausted; last: {outcome.error}"
        if not await store.kill(
            job_id=job.id, lease=job.lease or "", attempt=attempt, error=error, now=now
        ):
            return "stale"
        self.metrics.dead.labels(queue=queue).inc()
        return "dead"

    async def _rescue_periodically(self) -> None:
        """Return expired leases to the queue; forget expired idempotency keys."""
        while True:
            try:
                rescued = await self.store.rescue_expired(now=self.clock(), limit=RESCUE_BATCH)
                await self.store.prune_idempotency_keys(now=self.clock(), limit=RESCUE_BATCH)
            except sqlite3.Error:
                log.exception("rescuing expired leases failed")
                rescued = []
            for job in rescued:
                log.warning("rescued job=%s attempt=%d -> %s", job.id, job.attempts, job.state)
                if job.state == "dead":
                    self.metrics.dead.labels(queue=job.queue).inc()
            if rescued:
                self.notify()
            if len(rescued) < RESCUE_BATCH:
                await asyncio.sleep(self.settings.rescue_interval)
