"""One claim round, above the store: read the snapshot, plan it, apply the plan.

The decision (pause, concurrency, the 3/4 slot cap, token buckets, fair shares)
is policy.claim_plan.plan_claim, a pure function; the store only reads the
snapshot and applies the plan in guarded statements, so every backend claims by
the same rules. The fair-share credit is kept here between rounds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..policy.claim_plan import plan_claim
from .models import Claim
from .store.base import Store

log = logging.getLogger("pushq.dispatcher")


class Claimer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.credit: Mapping[str, float] = {}
        self._set_aside: dict[str, str] = {}  # queue -> the error already logged for it

    async def claim(
        self,
        *,
        limit: int,
        slots: int,
        now: float,
        lease: str,
        lease_margin: float,
        busy: Mapping[str, int] | None = None,
    ) -> Claim:
        """Mark up to `limit` due jobs active under `lease`, honouring each queue's
        pause, concurrency and rate limit and sharing the slots fairly (`slots` is the
        dispatcher's total, `busy` its deliveries in flight per queue)."""
        if limit <= 0:
            return Claim([], None)
        queues = await self.store.claim_snapshot(limit=limit, count_active=busy is None)
        keys = await self.store.flow_key_snapshot(now=now) if any(q.ready for q in queues) else []
        plan = plan_claim(
            queues,
            limit=limit,
            slots=slots,
            now=now,
            credit=self.credit,
            in_flight=busy,
            keys=keys,
        )
        self.credit = plan.credit
        for queue, why in plan.skipped.items():
            if self._set_aside.get(queue) != why:
                self._set_aside[queue] = why
                log.error("queue %s set aside from claims: %s", queue, why)
        if not plan.takes:
            return Claim([], plan.wake_at)
        jobs = await self.store.claim(plan=plan, now=now, lease=lease, lease_margin=lease_margin)
        return Claim(jobs, plan.wake_at)
