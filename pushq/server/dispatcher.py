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

from ..policy.backoff import next_run_at
from ..signing import job_token_key
from .config import Settings
from .delivery import (
    DeliveryFailed,
    DeliveryResponse,
    Sender,
    build_request,
    classify,
    response_excerpt,
    result_body,
)
from .metrics import Metrics
from .models import AttemptRecord, JobRecord
from .settle import Settler
from .store.base import Store
from .store.errors import StoreUnavailable
from .waiters import JobWaiters

log = logging.getLogger("pushq.dispatcher")
RESCUE_BATCH = 500
PRUNE_BATCH = 500
PRUNE_INTERVAL = 60.0


class Dispatcher:
    """Claims due jobs into free delivery slots and settles each attempt."""

    def __init__(
        self,
        *,
        store: Store,
        sender: Sender,
        settings: Settings,
        metrics: Metrics,
        waiters: JobWaiters | None = None,
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
        self._in_flight: dict[asyncio.Task[None], str] = {}  # delivery -> its queue
        self._busy: dict[str, int] = {}  # deliveries in flight per queue
        self._wake = asyncio.Event()
        self._next_due = math.inf
        self._stopping = False
        self.settler = Settler(
            store=store,
            settings=settings,
            metrics=metrics,
            notify=self.notify,
            waiters=waiters or JobWaiters(),
            rand=rand,
        )
        self.activity = self.settler.activity
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
                # Settles finish in batches (group commit): let the rest of a batch
                # free its slots too, so that one claim round fills them all.
                await asyncio.sleep(0)
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
                busy=self._busy,
            )
        except StoreUnavailable:  # disk full or the like: the store logs it once
            await asyncio.sleep(1.0)
            return 0
        except sqlite3.Error:
            log.exception("claiming due jobs failed; trying again shortly")
            await asyncio.sleep(0.5)
            return 0
        if claim.wake_at is not None:
            self._next_due = min(self._next_due, claim.wake_at)
        jobs = claim.jobs
        for job in jobs:
            task = asyncio.create_task(self._attempt(job))
            self._in_flight[task] = job.queue
            self._busy[job.queue] = self._busy.get(job.queue, 0) + 1
            task.add_done_callback(self._slot_freed)
        self.metrics.slots_in_use.set(len(self._in_flight))
        return len(jobs)

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        queue = self._in_flight.pop(task, None)
        if queue is not None:
            self._busy[queue] -= 1
            if not self._busy[queue]:
                del self._busy[queue]
        self.metrics.slots_in_use.set(len(self._in_flight))
        self._wake.set()

    async def _attempt(self, job: JobRecord) -> None:
        started = self.clock()
        t0 = time.perf_counter()
        request = build_request(
            job,
            now=started,
            signing_keys=self._signing_keys,
            token_key=self._token_key,
            api_url=self.settings.base_url,
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
        self, job: JobRecord, started: float, t0: float, response: DeliveryResponse | DeliveryFailed
    ) -> None:
        duration_ms = (time.perf_counter() - t0) * 1000
        now = self.clock()
        outcome = classify(
            response,
            now=now,
            retry_after_cap=self.settings.retry_after_cap,
            permanent_statuses=job.permanent_statuses or (),
        )
        body = b"" if isinstance(response, DeliveryFailed) else response.body
        result = result_body(body)
        attempt = AttemptRecord(
            job_id=job.id,
            number=job.attempts,
            started_at=started,
            duration_ms=round(duration_ms, 3),
            status=outcome.status,
            error=outcome.error,
            # a success's body is stored once, as the job's result
            response_body=None if outcome.verdict == "succeeded" else response_excerpt(body),
        )
        try:
            try:
                verdict = await self.settler.settle(job, outcome, attempt, result, now)
            except sqlite3.OperationalError:  # e.g. the disk is busy: try a few more times
                async for retrying in AsyncRetrying(
                    retry=retry_if_exception_type(sqlite3.OperationalError),
                    stop=stop_after_attempt(4),
                    wait=wait_random_exponential(multiplier=0.05, max=1.0),
                    reraise=True,
                ):
                    with retrying:
                        verdict = await self.settler.settle(job, outcome, attempt, result, now)
        except StoreUnavailable as exc:
            log.warning("could not record attempt %d of job %s: %s", attempt.number, job.id, exc)
            return
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
            extra={
                "job_id": job.id,
                "queue": job.queue,
                "attempt": attempt.number,
                "max_attempts": job.max_attempts,
                "host": urlsplit(job.url).hostname,
                "status": outcome.status,
                "duration_ms": round(duration_ms, 1),
                "verdict": verdict,
                "error": outcome.error,
            },
        )

    async def _rescue_periodically(self) -> None:
        """Return expired leases to the queue, forget expired idempotency keys, and
        prune finished jobs past their retention, a small batch at a time."""
        next_prune = 0.0
        while True:
            try:
                rescued = await self.store.rescue_expired(
                    now=self.clock(), limit=RESCUE_BATCH, retry_at=self._retry_at
                )
                await self.store.prune_idempotency_keys(now=self.clock(), limit=RESCUE_BATCH)
                if self.clock() >= next_prune:
                    await self.prune()
                    next_prune = self.clock() + PRUNE_INTERVAL
            except StoreUnavailable:  # the store logs the episode once
                rescued = []
            except sqlite3.Error:
                log.exception("maintenance (rescue, pruning) failed")
                rescued = []
            for job in rescued:
                log.warning("rescued job=%s attempt=%d -> %s", job.id, job.attempts, job.state)
                if job.state == "dead":
                    self.metrics.dead.labels(queue=job.queue).inc()
                    await self.settler.rescued_dead(job, self.clock())
            if rescued:
                self.notify()
            if len(rescued) < RESCUE_BATCH:
                await asyncio.sleep(self.settings.rescue_interval)

    def _retry_at(self, job: JobRecord) -> float:
        """A rescued attempt failed like any other: the job waits out its backoff."""
        return next_run_at(
            now=self.clock(),
            retry_number=job.attempts,
            policy=job.backoff,
            retry_after=None,
            rand=self.rand,
        )

    async def prune(self) -> int:
        """Delete finished jobs past retention in batches, yielding between them."""
        pruned = 0
        while True:
            now = self.clock()
            count = await self.store.prune_finished(
                succeeded_before=now - self.settings.retention_succeeded,
                dead_before=now - self.settings.retention_dead,
                limit=PRUNE_BATCH,
            )
            pruned += count
            if count < PRUNE_BATCH:
                return pruned
            await asyncio.sleep(0.05)  # let deliveries' writes in between batches
