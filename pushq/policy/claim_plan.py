"""The claim plan: which queues a claim round takes jobs from, and how many from each.

A pure function of a snapshot of the queues (read by the store), the free
slots and the fair-share credit, so every backend claims by the same rules:

- a paused queue is not in the snapshot: it gets nothing;
- a queue gets at most its concurrency minus its active jobs (counting async
  jobs awaiting /complete), and at most the whole tokens its bucket holds;
- with several unpaused queues, one queue holds at most three quarters of the
  dispatcher's slots (counted over its deliveries in flight), so a queue whose
  endpoint hangs cannot take every slot;
- free slots are shared by weighted round robin (fairness.py), and what a
  queue cannot use (fewer jobs ready than its share) goes to the others;
- within a queue, flow keys (flow_keys.py) limit each key's jobs: the plan
  carries each queue's KeyLimits, and the store skips the jobs of a key at its
  limit while it claims (so one key never holds back another's).

A queue whose settings cannot be evaluated (say, a rate that overflows) is set
aside in `skipped`, and the others are planned as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .fairness import fair_shares
from .flow_keys import KeyLimits, KeySnapshot, key_limits
from .ratelimit import Rate, next_token_at, parse_rate, refill


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """One unpaused queue as a claim round sees it."""

    name: str
    priority: int = 0
    ready: int = 0  # pending jobs, counted up to the round's limit
    concurrency: int | None = None
    active: int = 0  # active jobs; counted when the queue has a concurrency (or asked)
    rate_limit: str | None = None
    tokens: float | None = None  # the bucket as last saved (None: full)
    tokens_at: float | None = None
    key_concurrency: int | None = None  # every flow key's default limits in this queue
    key_rate_limit: str | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket to save after the round: guarded by the rate it was computed for."""

    rate_limit: str
    tokens: float
    tokens_at: float


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    takes: tuple[tuple[str, int], ...] = ()  # (queue, how many), in claim order
    buckets: Mapping[str, Bucket] = field(default_factory=dict)
    credit: Mapping[str, float] = field(default_factory=dict)  # carry it to the next round
    wake_at: float | None = None  # e.g. a rate-limited queue's next token
    skipped: Mapping[str, str] = field(default_factory=dict)  # queue -> why it was set aside
    keys: Mapping[str, KeyLimits] = field(default_factory=dict)  # queue -> its keys' limits


@dataclass(slots=True)
class _Candidate:
    queue: QueueSnapshot
    allowance: int
    rate: Rate | None
    tokens: float | None


def plan_claim(
    queues: Sequence[QueueSnapshot],
    *,
    limit: int,
    slots: int,
    now: float,
    credit: Mapping[str, float],
    in_flight: Mapping[str, int] | None = None,
    keys: Sequence[KeySnapshot] = (),
) -> ClaimPlan:
    """Plan one round of at most `limit` jobs for a dispatcher of `slots` slots.

    `queues` are every unpaused queue, by name; `in_flight` the dispatcher's
    deliveries per queue (None: count the active jobs instead); `keys` the flow
    keys that may limit a claim (see flow_keys.py).
    """
    if limit <= 0 or not any(q.ready for q in queues):
        return ClaimPlan(credit=credit)
    share_cap = slots if len(queues) <= 1 else max(1, slots * 3 // 4)
    # Active jobs count only for a concurrency limit (or, without the dispatcher's
    # own in-flight counts, for the shared cap).
    needs_active = (in_flight is None and share_cap < slots) or any(
        q.concurrency is not None for q in queues if q.ready
    )
    active = {q.name: q.active for q in queues if q.active} if needs_active else {}
    busy = active if in_flight is None else in_flight

    wake_at: float | None = None
    skipped: dict[str, str] = {}
    candidates: list[_Candidate] = []
    limits_of: dict[str, KeyLimits] = {}
    for queue in queues:
        if not queue.ready:
            continue
        try:
            limits = key_limits(
                keys,
                key_concurrency=queue.key_concurrency,
                key_rate_limit=queue.key_rate_limit,
                now=now,
            )
            if not limits.unlimited:
                limits_of[queue.name] = limits
            if limits.wake_at is not None:
                wake_at = limits.wake_at if wake_at is None else min(wake_at, limits.wake_at)
            allowance = share_cap - busy.get(queue.name, 0)
            if queue.concurrency is not None:
                allowance = min(allowance, queue.concurrency - active.get(queue.name, 0))
            rate = tokens = None
            if queue.rate_limit:
                rate = parse_rate(queue.rate_limit)
                tokens = refill(rate, queue.tokens, queue.tokens_at, now)
                allowance = min(allowance, int(tokens))
                if tokens < 1:
                    wake = next_token_at(rate, tokens, now)
                    wake_at = wake if wake_at is None else min(wake_at, wake)
        except Exception as exc:  # one queue's bad settings must not stop the others
            skipped[queue.name] = f"{type(exc).__name__}: {exc}"
            continue
        if allowance > 0:
            candidates.append(_Candidate(queue, allowance, rate, tokens))
    candidates.sort(key=lambda c: -c.queue.priority)
    new_credit = dict(credit)
    shares = fair_shares(
        {c.queue.name: c.allowance for c in candidates},
        {c.queue.name: c.queue.priority for c in candidates},
        limit,
        new_credit,
    )

    takes: list[tuple[str, int]] = []
    granted: dict[str, int] = {}
    drained: set[str] = set()
    total = 0

    def take(queue: QueueSnapshot, count: int) -> None:
        nonlocal total
        given = min(count, queue.ready - granted.get(queue.name, 0))
        if given > 0:
            takes.append((queue.name, given))
            granted[queue.name] = granted.get(queue.name, 0) + given
            total += given
        if given < count:
            drained.add(queue.name)

    for c in candidates:
        if shares.get(c.queue.name):
            take(c.queue, shares[c.queue.name])
    # A queue with fewer ready jobs than its share leaves slots: the rest may use them.
    for c in candidates:
        room = limit - total
        if room <= 0:
            break
        extra = min(c.allowance - granted.get(c.queue.name, 0), room)
        if extra > 0 and c.queue.name not in drained:
            take(c.queue, extra)

    buckets: dict[str, Bucket] = {}
    for c in candidates:
        name = c.queue.name
        if c.rate is None or c.tokens is None or not granted.get(name):
            continue
        left = c.tokens - granted[name]
        assert c.queue.rate_limit is not None
        buckets[name] = Bucket(c.queue.rate_limit, left, now)
        if left < 1 and name not in drained:  # more is ready: come back at the next token
            wake = next_token_at(c.rate, left, now)
            wake_at = wake if wake_at is None else min(wake_at, wake)
    key_plan = {name: limits_of[name] for name, _ in takes if name in limits_of}
    return ClaimPlan(tuple(takes), buckets, new_credit, wake_at, skipped, key_plan)
