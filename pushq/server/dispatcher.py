"""The claim -> deliver -> settle loop. No SQL here and no HTTP parsing:
the store and the sender do those."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from ..policy.circuit import CircuitConfig
from ..signing import job_token_key
from .claimer import Claimer
from .config import Settings
from .delivery import (
    DeliveryFailed,
    DeliveryHook,
    DeliveryResponse,
    Sender,
    build_request,
    classify,
    hook_for,
    response_excerpt,
    result_body,
)
from .endpoints import Endpoints, origin_of
from .metrics import Metrics
from .models import AttemptRecord, JobRecord
from .settle import INTERRUPTED, Settler
from .store.base import Store
from .store.errors import StoreError, StoreUnavailable
from .waiters import JobWaiters

log = logging.getLogger("pushq.dispatcher")
CLAIM_FAILED_PAUSE = 0.5  # seconds before the next claim after a failed one


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
        hooks: Mapping[str, DeliveryHook] | None = None,
        endpoints: Endpoints | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.hooks = hooks or {}  # per-job delivery rules by job.meta["kind"] (QStash /v2)
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rand = rand
        self.slots = settings.delivery_concurrency
        self.claimer = Claimer(store)
        self.endpoints = endpoints or Endpoints(
            CircuitConfig(
                threshold=settings.circuit_threshold,
                cooldown=settings.circuit_cooldown,
                max_cooldown=settings.circuit_max_cooldown,
                adaptive=settings.adaptive_concurrency,
                ceiling=settings.delivery_concurrency,
            )
        )
        self.last_loop_at = 0.0  # /health reads this to tell a stalled loop
        self._signing_keys = settings.signing_keys
        self._token_key = job_token_key(settings.api_token)
        self._in_flight: dict[asyncio.Task[None], str] = {}  # delivery -> its queue
        self._busy: dict[str, int] = {}  # deliveries in flight per queue
        self._wake = asyncio.Event()
        self._next_due = math.inf
        self._stopping = False
        # Jobs that will be due later are the promoter's (serve.py sets this to its due_at).
        self.on_waiting: Callable[[float], None] = lambda run_at: None
        self.settler = Settler(
            store=store,
            settings=settings,
            metrics=metrics,
            notify=self.notify,
            waiters=waiters or JobWaiters(),
            rand=rand,
            hooks=self.hooks,
        )
        self.activity = self.settler.activity
        metrics.slots.set(self.slots)
        # read when /metrics renders, not written on every claim and settle
        metrics.slots_in_use.set_function(lambda: len(self._in_flight))
        store.listen(self.notify)

    def notify(self, run_at: float | None = None) -> None:
        """Jobs became due (None: wake the loop now, not at the next poll), or will at
        `run_at` (the promoter makes them pending then, and wakes the loop)."""
        if run_at is None:
            self._wake.set()
        else:
            self.on_waiting(run_at)

    async def run(self) -> None:
        """Loop until stop(): claim as many due jobs as there are free slots, then wait."""
        await self.restore_circuits()
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

    async def restore_circuits(self) -> None:
        """Reopen the circuits that were open when pushq stopped."""
        try:
            self.endpoints.restore(await self.store.load_circuits())
        except Exception:  # the database is down: start with every circuit closed
            log.exception("could not read the stored circuits; starting with all closed")

    async def claim_round(self) -> int:
        """One claim into the free slots (what each turn of `run` does); how many started."""
        free = self.slots - len(self._in_flight)
        return await self._claim(free) if free > 0 else 0

    async def settled(self) -> None:
        """Wait until every attempt in flight has been settled."""
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))

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
            claim = await self.claimer.claim(
                limit=free,
                slots=self.slots,
                now=self.clock(),
                lease=secrets.token_hex(8),
                lease_margin=self.settings.lease_margin,
                busy=self._busy,
            )
        except StoreUnavailable as exc:  # disk full or the like: the store logs it once
            if exc.kind == "busy":
                log.warning("claiming due jobs: %s; trying again shortly", exc)
            await asyncio.sleep(CLAIM_FAILED_PAUSE * 2)
            return 0
        except Exception:  # the store, or a bug: the loop must outlive it
            log.exception("claiming due jobs failed; trying again shortly")
            await asyncio.sleep(CLAIM_FAILED_PAUSE)
            return 0
        if claim.wake_at is not None:
            self._next_due = min(self._next_due, claim.wake_at)
        jobs = claim.jobs
        for job in jobs:
            task = asyncio.create_task(self._attempt(job))
            self._in_flight[task] = job.queue
            self._busy[job.queue] = self._busy.get(job.queue, 0) + 1
            task.add_done_callback(self._slot_freed)
        return len(jobs)

    async def _health(
        self,
        job: JobRecord,
        response: DeliveryResponse | DeliveryFailed,
        retry_after: float | None,
        error: str | None,
        duration_ms: float,
        now: float,
    ) -> None:
        """Tell the origin's health how the attempt went; store its circuit if it changed."""
        origin = origin_of(job.url)
        failed = isinstance(response, DeliveryFailed)
        status = None if isinstance(response, DeliveryFailed) else response.status
        changed = self.endpoints.finished(
            origin,
            queue=job.queue,
            now=now,
            status=status,
            failure=response.kind if isinstance(response, DeliveryFailed) else None,
            retry_after=retry_after,
            duration_ms=duration_ms,
            error=error,
        )
        label = self.endpoints.label(origin)
        ok = not failed and status is not None and status < 400
        self.metrics.endpoint(label, ok).inc()
        if changed is None:
            return
        self.metrics.endpoint_circuit_open.labels(origin=label).set(
            0 if changed.state == "closed" else 1
        )
        log.warning(
            "circuit of %s is %s%s",
            origin,
            changed.state,
            "" if changed.open_until is None else f" until {changed.open_until:.0f}",
        )
        try:
            await self.store.save_circuit(circuit=changed, now=now)
        except Exception:  # kept in memory; stored again at its next change
            log.exception("could not store the circuit of %s", origin)

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        queue = self._in_flight.pop(task, None)
        if queue is not None:
            self._busy[queue] -= 1
            if not self._busy[queue]:
                del self._busy[queue]
        self._wake.set()

    async def _attempt(self, job: JobRecord) -> None:
        try:
            await self._deliver(job)
        except Exception:  # a bug with this one job: log it, serve the others
            # The lease stays; the rescuer returns the job once it expires.
            log.exception(
                "attempt %d of job %s (queue %s) failed in pushq", job.attempts, job.id, job.queue
            )

    async def _deliver(self, job: JobRecord) -> None:
        started = self.clock()
        origin = origin_of(job.url)
        hold = await self.endpoints.gate(origin, started, queue=job.queue, timeout=job.timeout)
        if hold is not None:  # circuit open or Retry-After: back unsent, no attempt used
            await self.store.release(
                job_id=job.id, lease=job.lease or "", attempt=job.attempts, run_at=hold
            )
            return
        t0 = time.perf_counter()
        try:
            response = await self._send(job, started, t0)
        except BaseException:  # not answered after all (shutdown, a bug): free its place
            self.endpoints.released(origin, job.queue)
            raise
        await self._record(job, started, t0, response)

    async def _send(
        self, job: JobRecord, started: float, t0: float
    ) -> DeliveryResponse | DeliveryFailed:
        request = build_request(
            job,
            now=started,
            signing_keys=self._signing_keys,
            token_key=self._token_key,
            api_url=self.settings.base_url,
        )
        hook = hook_for(self.hooks, job)
        if hook is not None:
            request = hook.request(job, request, started)
        try:
            return await self.sender.send(request)
        except DeliveryFailed as failure:
            return failure
        except asyncio.CancelledError:  # stop(): the grace period ran out
            await self._give_back(job, started, t0)
            raise

    async def _give_back(self, job: JobRecord, started: float, t0: float) -> None:
        """The attempt was cut off by pushq itself: due again at once, not counted."""
        attempt = AttemptRecord(
            job_id=job.id,
            number=job.attempts,
            started_at=started,
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
            status=None,
            error=INTERRUPTED,
            response_body=None,
        )
        try:
            await self.settler.interrupted(job, attempt, self.clock())
        except StoreError as exc:  # the rescuer returns it on the next start
            log.warning("could not give back attempt %d of job %s: %s", job.attempts, job.id, exc)
        else:
            log.info(
                "attempt job=%s attempt=%d interrupted by shutdown -> pending", job.id, job.attempts
            )

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
        await self._health(job, response, outcome.retry_after, outcome.error, duration_ms, now)
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
                settled = await self.settler.settle(job, outcome, attempt, result, now, response)
            except StoreUnavailable:  # e.g. the disk is busy: try a few more times
                async for retrying in AsyncRetrying(
                    retry=retry_if_exception_type(StoreUnavailable),
                    stop=stop_after_attempt(4),
                    wait=wait_random_exponential(multiplier=0.05, max=1.0),
                    reraise=True,
                ):
                    with retrying:
                        settled = await self.settler.settle(
                            job, outcome, attempt, result, now, response
                        )
        except StoreUnavailable as exc:
            log.warning("could not record attempt %d of job %s: %s", attempt.number, job.id, exc)
            return
        except StoreError:
            # The lease stays; the rescuer returns the job once it expires.
            log.exception("could not record attempt %d of job %s", attempt.number, job.id)
            return
        if not log.isEnabledFor(logging.INFO):
            return
        verdict = settled.describe(now)
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
