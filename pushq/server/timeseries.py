"""Deliveries, failed attempts and attempt latency per queue over the last hour,
kept in memory for the dashboard's charts (GET /v1/stats/timeseries).

Each queue has a ring of MINUTES one-minute slots. A slot holds two counters and
a latency histogram with log-spaced buckets (four per doubling, so a percentile
read from it is within 19% of the true value), allocated the first time the
minute sees an attempt. Recording an attempt is a dict lookup, an integer
division, two increments and one bisect over a short tuple: cheap enough for the
delivery path. The figures are this process's own (a restart starts them afresh;
with PostgreSQL each node answers for its deliveries only).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

MINUTES = 60  # the ring: one hour of one-minute slots
INTERVAL = 60  # seconds per slot
MAX_QUEUES = 1000  # queues with a series of their own; the rest share OTHER
OTHER = "(other)"  # not a valid queue name, so it cannot clash with one
# Histogram bucket upper bounds in ms: 0.25 ms to about 17 minutes, 2^(1/4) apart.
BOUNDS: tuple[float, ...] = tuple(0.25 * 2 ** (i / 4) for i in range(88))


class _Slot:
    __slots__ = ("minute", "delivered", "failed", "hist", "peak")

    def __init__(self) -> None:
        self.minute = -1
        self.delivered = 0
        self.failed = 0
        self.hist: list[int] | None = None
        self.peak = 0.0


def _percentile(hist: list[int], count: int, peak: float, pct: float) -> float | None:
    """The pct-th percentile of a histogram: its bucket's upper bound, at most `peak`."""
    if count == 0:
        return None
    rank = max(1, -(-count * pct // 100))  # ceil(count * pct / 100), at least 1
    seen = 0
    for index, n in enumerate(hist):
        seen += n
        if seen >= rank:
            bound = BOUNDS[index] if index < len(BOUNDS) else peak
            return round(min(bound, peak), 3)
    return round(peak, 3)


class DeliverySeries:
    """The last hour of attempts per queue, minute by minute."""

    def __init__(self) -> None:
        self._rings: dict[str, list[_Slot]] = {}

    def record(self, queue: str, now: float, duration_ms: float, *, failed: bool) -> None:
        """One finished attempt: a delivery (failed=False) or a failed attempt."""
        ring = self._rings.get(queue)
        if ring is None:
            ring = self._ring(queue)
        minute = int(now) // INTERVAL
        slot = ring[minute % MINUTES]
        if slot.minute != minute:
            slot.minute, slot.delivered, slot.failed, slot.peak = minute, 0, 0, 0.0
            slot.hist = [0] * (len(BOUNDS) + 1)
        if failed:
            slot.failed += 1
        else:
            slot.delivered += 1
        slot.hist[bisect_left(BOUNDS, duration_ms)] += 1  # type: ignore[index]
        if duration_ms > slot.peak:
            slot.peak = duration_ms

    def _ring(self, queue: str) -> list[_Slot]:
        if len(self._rings) >= MAX_QUEUES:
            queue = OTHER
            if queue in self._rings:
                return self._rings[queue]
        ring = self._rings[queue] = [_Slot() for _ in range(MINUTES)]
        return ring

    def queues(self) -> list[str]:
        return sorted(self._rings)

    def snapshot(
        self, now: float, *, minutes: int = MINUTES, queue: str | None = None
    ) -> dict[str, Any]:
        """The last `minutes` minutes (the current one included), oldest first: per
        queue with attempts in that window, and all queues together. Times are Unix
        seconds (the minute's start)."""
        last = int(now) // INTERVAL
        first = last - minutes + 1
        names = [queue] if queue is not None else self.queues()
        total = _Series(first, minutes)
        series = []
        for name in names:
            ring = self._rings.get(name)
            if ring is None:
                continue
            one = _Series(first, minutes)
            for slot in ring:
                if first <= slot.minute <= last:
                    one.add(slot.minute - first, slot)
                    total.add(slot.minute - first, slot)
            if one.count:
                series.append({"queue": name, **one.render(first)})
        return {
            "interval_seconds": INTERVAL,
            "from": first * INTERVAL,
            "to": (last + 1) * INTERVAL,
            "total": total.render(first),
            "queues": series,
        }


class _Series:
    """Slots added up minute by minute, and over the whole window."""

    def __init__(self, first: int, minutes: int) -> None:
        self.points: list[list[Any]] = [[0, 0, None, 0.0] for _ in range(minutes)]
        self.hist = [0] * (len(BOUNDS) + 1)
        self.count = 0
        self.peak = 0.0

    def add(self, index: int, slot: _Slot) -> None:
        point = self.points[index]
        point[0] += slot.delivered
        point[1] += slot.failed
        if slot.hist is None:
            return
        if point[2] is None:
            point[2] = [0] * len(slot.hist)
        point[2] = [a + b for a, b in zip(point[2], slot.hist, strict=True)]
        point[3] = max(point[3], slot.peak)
        self.hist = [a + b for a, b in zip(self.hist, slot.hist, strict=True)]
        self.count += slot.delivered + slot.failed
        self.peak = max(self.peak, slot.peak)

    def render(self, first: int) -> dict[str, Any]:
        points = []
        delivered = failed = 0
        for offset, (ok, bad, hist, peak) in enumerate(self.points):
            delivered += ok
            failed += bad
            n = ok + bad
            points.append(
                {
                    "at": (first + offset) * INTERVAL,
                    "delivered": ok,
                    "failed": bad,
                    "latency_p50_ms": None if hist is None else _percentile(hist, n, peak, 50),
                    "latency_p99_ms": None if hist is None else _percentile(hist, n, peak, 99),
                }
            )
        return {
            "delivered": delivered,
            "failed": failed,
            "latency_p50_ms": _percentile(self.hist, self.count, self.peak, 50),
            "latency_p99_ms": _percentile(self.hist, self.count, self.peak, 99),
            "points": points,
        }
