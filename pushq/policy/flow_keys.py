"""Per-key flow control (DESIGN.md "Flow keys"): how many jobs of each flow key a
claim round may still take, and which keys take none.

Pure: the store reads a `KeySnapshot` per relevant key (keys with jobs in flight,
paused keys, keys whose token bucket was spent recently); `key_limits` turns them
and a queue's key_* defaults into a `KeyLimits`, and `pick` chooses, from the
queue's pending jobs in claim order, those the limits allow. A key at its limit
is skipped, never waited on, so it delays no other key's jobs (no head-of-line
blocking), and a job that is not picked stays pending: waiting costs no attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field

from .ratelimit import next_token_at, parse_rate, refill


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """One flow key as a claim round sees it: its own settings (None: the queue's
    default), its jobs in flight across every queue, its saved token bucket."""

    key: str
    concurrency: int | None = None
    rate_limit: str | None = None
    paused: bool = False
    active: int = 0
    tokens: float | None = None
    tokens_at: float | None = None
    bucket_rate: str | None = None  # the rate the saved bucket was counted for


@dataclass(frozen=True, slots=True)
class KeyBucket:
    """A key's bucket at the start of the round, to spend from and save."""

    rate_limit: str
    tokens: float


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What the keys of one queue may take this round."""

    held: frozenset[str] = frozenset()  # keys that take nothing (paused, at a limit)
    allowance: Mapping[str, int] = field(default_factory=dict)  # keys with a finite allowance
    default: int | None = None  # any other key's allowance (None: unlimited)
    buckets: Mapping[str, KeyBucket] = field(default_factory=dict)  # keys with a rate
    default_rate: str | None = None  # another key's rate: its bucket starts full
    wake_at: float | None = None  # a held key's next token

    @property
    def unlimited(self) -> bool:
        """No key of the queue is limited: claim as if there were no flow keys."""
        return not self.held and not self.allowance and self.default is None

    def rate_of(self, key: str) -> str | None:
        bucket = self.buckets.get(key)
        return bucket.rate_limit if bucket is not None else self.default_rate


def key_limits(
    keys: Iterable[KeySnapshot],
    *,
    key_concurrency: int | None,
    key_rate_limit: str | None,
    now: float,
) -> KeyLimits:
    """The limits of one queue's keys, from the relevant keys' snapshots and the
    queue's defaults. A bad default rate raises ValueError (the plan sets the queue
    aside); a key's own bad rate holds only that key."""
    held: set[str] = set()
    allowance: dict[str, int] = {}
    buckets: dict[str, KeyBucket] = {}
    wake_at: float | None = None
    default: int | None = key_concurrency
    if key_rate_limit is not None:
        capacity = parse_rate(key_rate_limit).count
        default = capacity if default is None else min(default, capacity)
    for snap in keys:
        if snap.paused:
            held.add(snap.key)
            continue
        concurrency = snap.concurrency if snap.concurrency is not None else key_concurrency
        rate_text = snap.rate_limit if snap.rate_limit is not None else key_rate_limit
        room: int | None = None if concurrency is None else concurrency - snap.active
        if rate_text is not None:
            try:
                rate = parse_rate(rate_text)
            except ValueError:  # a key's unreadable rate holds that key, not the queue
                held.add(snap.key)
                continue
            saved = snap.bucket_rate == rate_text
            tokens = refill(
                rate,
                snap.tokens if saved else None,
                snap.tokens_at if saved else None,
                now,
            )
            buckets[snap.key] = KeyBucket(rate_text, tokens)
            room = int(tokens) if room is None else min(room, int(tokens))
            if tokens < 1:
                wake = next_token_at(rate, tokens, now)
                wake_at = wake if wake_at is None else min(wake_at, wake)
        if room is None:
            continue
        if room <= 0:
            held.add(snap.key)
        else:
            allowance[snap.key] = room
    return KeyLimits(frozenset(held), allowance, default, buckets, key_rate_limit, wake_at)


def pick(
    candidates: Iterable[tuple[str, str | None]],
    limits: KeyLimits,
    taken: MutableMapping[str, int],
    count: int,
) -> tuple[list[str], set[str]]:
    """From (job id, flow key) pairs in claim order, the ids to claim (at most
    `count`) and the keys that became full. `taken` counts each key's jobs taken
    so far this round (across queues) and is updated."""
    ids: list[str] = []
    full: set[str] = set()
    for job_id, key in candidates:
        if len(ids) >= count:
            break
        if key is None:
            ids.append(job_id)
            continue
        if key in limits.held:
            continue
        room = limits.allowance.get(key, limits.default)
        if room is not None and taken.get(key, 0) >= room:
            full.add(key)
            continue
        ids.append(job_id)
        taken[key] = taken.get(key, 0) + 1
        if room is not None and taken[key] >= room:
            full.add(key)
    return ids, full


def spent_buckets(
    limits: KeyLimits, taken: Mapping[str, int], now: float
) -> dict[str, tuple[str, float, float]]:
    """{key: (rate_limit, tokens left, tokens_at)} to save for each rated key that
    took jobs this round."""
    out: dict[str, tuple[str, float, float]] = {}
    for key, n in taken.items():
        if not n:
            continue
        bucket = limits.buckets.get(key)
        if bucket is not None:
            out[key] = (bucket.rate_limit, bucket.tokens - n, now)
        elif limits.default_rate is not None:
            out[key] = (limits.default_rate, parse_rate(limits.default_rate).count - n, now)
    return out
