"""Maintenance: the small loops beside the dispatcher, each its own service.

- Promoter: scheduled and retrying jobs whose time came become pending.
- Rescuer: active jobs whose lease expired go back to the queue or to the DLQ;
  at start-up (Rescuer.recover, before the dispatcher claims), the attempts the
  previous process left in flight are due again at once.
- IdempotencyPruner: forgets idempotency keys past their window.
- RetentionPruner: deletes finished jobs past their retention.

(The Scheduler, scheduler.py, fires cron schedules and is started the same way.)

Each service runs only while `leadership.is_leader()` says this node leads, so
that in a cluster one node does the work; on SQLite this node always leads
(ThisNode). A service survives any exception from a round: it logs it and tries
again at its next round; one job that cannot be handled is logged once and set
aside, and the rest are served.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from ..policy.backoff import retry_or_dead
from .config import Settings
from .metrics import Metrics
from .models import JobRecord
from .settle import Settler
from .store.base import Rescue, Store
from .store.errors import StoreUnavailable

log = logging.getLogger("pushq.maintenance")

PROMOTE_BATCH = 10_000
RESCUE_BATCH = 500
PRUNE_BATCH = 500
PRUNE_INTERVAL = 60.0
LEASE_EXPIRED = (
    "lease expired: no outcome in time (pushq stopped mid-attempt, or an async job "
    "stopped sending heartbeats)"
)
ORPHANED = "interrupted: pushq stopped mid-attempt; retried at once on start-up"


class Background(Protocol):
    """A service serve.py starts beside the dispatcher and cancels on stop."""

    async def run(self) -> None: ...


class Leadership(Protocol):
    """Whether this node should run the cluster's maintenance now."""

    def is_leader(self) -> bool: ...


class ThisNode:
    """One node owns the database (SQLite): it always leads."""

    def is_leader(self) -> bool:
        return True


class Service:
    """A loop: while leading, run `step`; then wait `timeout()` seconds or for `wake()`.

    `step` returns True when it left work behind (a full batch): the next round
    then starts at once.
    """

    name = "service"
    pause_between_batches = 0.0  # seconds to leave other writes between full batches

    def __init__(self, *, leadership: Leadership, clock: Callable[[], float]) -> None:
        self.leadership = leadership
        self.clock = clock
        self._wake = asyncio.Event()

    async def step(self) -> bool:
        raise NotImplementedError

    def timeout(self) -> float:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            more = False
            if self.leadership.is_leader():
                try:
                    more = await self.step()
                except StoreUnavailable as exc:  # disk full and the like: the store logs it
                    if exc.kind == "busy":
                        log.warning("%s: %s; trying again at its next round", self.name, exc)
                except Exception:
                    log.exception("%s failed; trying again at its next round", self.name)
            if more:
                await asyncio.sleep(self.pause_between_batches)
                continue
            try:
                async with asyncio.timeout(max(self.timeout(), 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass


class Promoter(Service):
    """Makes due scheduled and retrying jobs pending, then wakes the dispatcher.

    It sleeps until the earliest waiting job is due (the store says when), or
    until `due_at` hears of an earlier one, and polls at least every
    poll_interval (jittered) for jobs it was not told about.
    """

    name = "promoter"

    def __init__(
        self,
        *,
        store: Store,
        on_due: Callable[[], None],
        poll_interval: float,
        leadership: Leadership,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(leadership=leadership, clock=clock)
        self.store = store
        self.on_due = on_due
        self.poll_interval = poll_interval
        self.rand = rand
        self._next_at = 0.0  # look at once on start

    def due_at(self, run_at: float) -> None:
        """Jobs will be due at `run_at`: be awake then."""
        if run_at < self._next_at:
            self._next_at = run_at
            self._wake.set()

    async def step(self) -> bool:
        self._next_at = math.inf  # an enqueue during the step lowers it again
        done = await self.store.promote_due(now=self.clock(), limit=PROMOTE_BATCH)
        if done.next_at is not None:
            self._next_at = min(self._next_at, done.next_at)
        if done.promoted:
            self.on_due()
        return done.promoted >= PROMOTE_BATCH

    def timeout(self) -> float:
        poll = self.poll_interval * (0.5 + self.rand())
        return min(poll, self._next_at - self.clock())


class Rescuer(Service):
    """River's rescuer: read the jobs whose lease expired, decide above the store
    (retry_or_dead, the same rule as a settle), apply the decisions in one
    guarded statement per batch. A job killed here has its failure callback
    stored in the same transaction."""

    name = "rescuer"

    def __init__(
        self,
        *,
        store: Store,
        settler: Settler,
        metrics: Metrics,
        settings: Settings,
        notify: Callable[[], None],
        leadership: Leadership,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(leadership=leadership, clock=clock)
        self.store = store
        self.settler = settler
        self.metrics = metrics
        self.settings = settings
        self.notify = notify
        self.rand = rand
        self._set_aside: set[str] = set()  # jobs whose decision raised, logged once

    def decide(self, job: JobRecord, now: float, error: dict[str, object]) -> Rescue:
        """What becomes of one job whose lease expired: the attempt counts, and on its
        last the job goes to the DLQ. One that was in flight in pushq (a node crashed
        mid-delivery: pushq's fault) is due again at once; one an async worker held
        and let go quiet (the worker's fault) waits out its backoff."""
        run_at = retry_or_dead(
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            retryable=True,
            now=now,
            policy=job.backoff,
            rand=self.rand,
            interrupted=not job.awaiting,
        )
        callback = None
        if run_at is None:
            callback = self.settler.callback_job(
                replace(job, run_at=now), job.failure_callback_url, "dead", now, error=error
            )
        return Rescue(job.id, job.lease or "", job.attempts, run_at, callback)

    async def step(self) -> bool:
        now = self.clock()
        expired = await self.store.expired_leases(now=now, limit=RESCUE_BATCH)
        error: dict[str, object] = {"status": None, "message": LEASE_EXPIRED, "at": now}
        rescues = []
        for job in expired:
            try:
                rescues.append(self.decide(job, now, error))
            except Exception:
                if job.id not in self._set_aside:
                    self._set_aside.add(job.id)
                    log.exception("rescuing job=%s queue=%s failed; set aside", job.id, job.queue)
        rescued = await self.store.rescue(
            rescues=rescues, error=error, now=now, defaults=self.settings.job_defaults
        )
        self._rescued(rescued)
        return len(expired) >= RESCUE_BATCH and bool(rescues)

    def _rescued(self, rescued: list[JobRecord]) -> None:
        for job in rescued:
            log.warning("rescued job=%s attempt=%d -> %s", job.id, job.attempts, job.state)
            if job.state == "dead":
                self.metrics.dead.labels(queue=job.queue).inc()
                self.settler.waiters.wake(job.id)
        if rescued:
            self.notify()  # a freed ordering key, or a callback, may be claimed now

    def timeout(self) -> float:
        return self.settings.rescue_interval

    async def recover(self) -> int:
        """At start-up, before the dispatcher claims: retry at once the attempts the
        previous process left in flight (store.orphaned_attempts: on SQLite the
        data-dir lock proves that process gone), so that they need not wait out
        their leases and no longer fill their queues' concurrency. Decided as a
        rescue (counted, the DLQ on the last attempt, with its failure callback).
        Returns how many jobs it rescued."""
        recovered = 0
        while True:
            now = self.clock()
            orphans = await self.store.orphaned_attempts(limit=RESCUE_BATCH)
            error: dict[str, object] = {"status": None, "message": ORPHANED, "at": now}
            rescues = []
            for job in orphans:
                try:
                    rescues.append(replace(self.decide(job, now, error), orphaned=True))
                except Exception:
                    log.exception("recovering job=%s queue=%s failed; set aside", job.id, job.queue)
            rescued = await self.store.rescue(
                rescues=rescues, error=error, now=now, defaults=self.settings.job_defaults
            )
            self._rescued(rescued)
            recovered += len(rescued)
            if len(orphans) < RESCUE_BATCH or not rescued:
                break
        if recovered:
            log.warning(
                "recovered %d attempt(s) left in flight by the previous run: due again now",
                recovered,
            )
        return recovered


class IdempotencyPruner(Service):
    """Forgets idempotency keys whose window has passed, a batch at a time."""

    name = "idempotency-pruner"

    def __init__(
        self,
        *,
        store: Store,
        interval: float,
        leadership: Leadership,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(leadership=leadership, clock=clock)
        self.store = store
        self.interval = interval

    async def step(self) -> bool:
        pruned = await self.store.prune_idempotency_keys(now=self.clock(), limit=PRUNE_BATCH)
        return pruned >= PRUNE_BATCH

    def timeout(self) -> float:
        return self.interval


class RetentionPruner(Service):
    """Deletes finished jobs past retention (succeeded and cancelled, dead), with
    their attempts, a batch at a time."""

    name = "retention-pruner"
    pause_between_batches = 0.05  # let deliveries' writes in between batches

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        leadership: Leadership,
        clock: Callable[[], float] = time.time,
        interval: float = PRUNE_INTERVAL,
    ) -> None:
        super().__init__(leadership=leadership, clock=clock)
        self.store = store
        self.settings = settings
        self.interval = interval

    async def step(self) -> bool:
        now = self.clock()
        pruned = await self.store.prune_finished(
            succeeded_before=now - self.settings.retention_succeeded,
            dead_before=now - self.settings.retention_dead,
            limit=PRUNE_BATCH,
        )
        return pruned >= PRUNE_BATCH

    async def prune(self) -> int:
        """Prune everything past retention now; how many jobs went."""
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
            await asyncio.sleep(self.pause_between_batches)

    def timeout(self) -> float:
        return self.interval
