"""Cron schedules: each firing enqueues exactly one job.

The store advances a schedule and enqueues its job in one transaction guarded
by the firing time it read, and the job's idempotency key names the firing,
so a firing happens once even when several nodes share the database. After
downtime, the missed firing is made up once and the schedule moves on to the
next time after now, not once per missed slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import PushqError
from ..policy.cron import next_fire
from .config import Settings
from .maintenance import Leadership, ThisNode
from .models import NewJob
from .store.base import Store
from .store.errors import StoreUnavailable

log = logging.getLogger("pushq.scheduler")
# A schedule's job template (a POST /v1/jobs body) made into a job at `now`; the API
# layer owns that validation, and serve.py hands it in, so the scheduler imports no API.
JobFromTemplate = Callable[[dict[str, Any], float], NewJob]
MAX_SLEEP = 30.0  # re-read schedules at least this often (other nodes may change them)


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        notify: Callable[[float | None], None],
        job_from_template: JobFromTemplate,
        clock: Callable[[], float] = time.time,
        leadership: Leadership | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.notify = notify
        self.job_from_template = job_from_template
        self.clock = clock
        self.leadership = leadership or ThisNode()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A schedule changed: look again now."""
        self._wake.set()

    async def fire_due(self) -> int:
        """Fire every schedule that is due; returns how many jobs were enqueued."""
        fired = 0
        now = self.clock()
        for schedule in await self.store.due_schedules(now=now):
            fire_at = schedule.next_run_at
            template = dict(schedule.job)
            template["idempotency_key"] = f"schedule:{schedule.name}:{fire_at:.0f}"
            try:
                job = self.job_from_template(template, now)
                job.schedule = schedule.name
                following = next_fire(schedule.cron, schedule.timezone, max(now, fire_at))
                result = await self.store.fire_schedule(
                    schedule=schedule,
                    next_run_at=following,
                    job=job,
                    now=now,
                    idempotency_ttl=max(self.settings.idempotency_ttl, 86400.0),
                    defaults=self.settings.job_defaults,
                )
            except StoreUnavailable:  # the database, not this schedule: wait for it quietly
                raise
            except (PushqError, ValueError) as exc:  # e.g. its queue is full: try next round
                log.warning("schedule %s could not fire: %s", schedule.name, exc)
                continue
            except Exception:  # a bug with this schedule: the others still fire
                log.exception("schedule %s could not fire", schedule.name)
                continue
            if result is not None:
                fired += 1
                self.notify(None)
                log.info("schedule %s fired job %s", schedule.name, result.job.id)
        return fired

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                if self.leadership.is_leader():
                    await self.fire_due()
                next_at = await self.store.next_schedule_at()
            except StoreUnavailable:  # disk full or the like: the store logs it once
                next_at = None
            except Exception:
                log.exception("firing schedules failed; trying again shortly")
                next_at = None
            timeout = MAX_SLEEP if next_at is None else min(MAX_SLEEP, next_at - self.clock())
            if next_at is not None and timeout <= 0:
                timeout = 1.0  # still due after a round: it could not fire (queue full?)
            try:
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass
