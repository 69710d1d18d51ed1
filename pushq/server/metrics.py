"""Prometheus metrics. Per-queue series carry a `queue` label; nothing unbounded
(job ids, URLs) ever becomes a label."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from ..policy.states import PUBLIC_STATES
from .models import QueueSettings

# The *_created series double every counter and no alert rule reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The metrics of one pushq instance, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.enqueued = Counter(
            "pushq_jobs_enqueued", "Jobs accepted by enqueue.", ["queue"], registry=self.registry
        )
        self.delivered = Counter(
            "pushq_jobs_delivered",
            "Jobs whose delivery succeeded.",
            ["queue"],
            registry=self.registry,
        )
        self.failed_attempts = Counter(
            "pushq_attempts_failed",
            "Failed delivery attempts by class (timeout, connection, 3xx, 4xx, 5xx).",
            ["queue", "class"],
            registry=self.registry,
        )
        self.retried = Counter(
            "pushq_jobs_retried",
            "Attempts followed by a scheduled retry.",
            ["queue"],
            registry=self.registry,
        )
        self.dead = Counter(
            "pushq_jobs_dead",
            "Jobs moved to the dead-letter queue.",
            ["queue"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "pushq_jobs",
            "Stored jobs by queue and state.",
            ["queue", "state"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "pushq_delivery_latency_seconds",
            "From enqueue (or run_at) to the start of a job's first attempt.",
            ["queue"],
            buckets=(
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
                300,
            ),
            registry=self.registry,
        )
        self.response_time = Histogram(
            "pushq_endpoint_response_seconds",
            "Duration of delivery attempts, from sending to the response (or the failure).",
            ["queue"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.oldest_pending_age = Gauge(
            "pushq_oldest_pending_age_seconds",
            "How long the queue's oldest ready job has waited (0 when none waits).",
            ["queue"],
            registry=self.registry,
        )
        self.paused = Gauge(
            "pushq_queue_paused",
            "1 while the queue is paused, else 0.",
            ["queue"],
            registry=self.registry,
        )
        # Per destination origin: at most ORIGIN_LABELS origins get their own label
        # (the first seen), every other one is counted as "other" (endpoints.py).
        self.endpoint_attempts = Counter(
            "pushq_endpoint_attempts",
            "Delivery attempts per destination origin (ok: a 1xx-3xx answer).",
            ["origin", "ok"],
            registry=self.registry,
        )
        self.endpoint_circuit_open = Gauge(
            "pushq_endpoint_circuit_open",
            "1 while the origin's circuit is open or half-open, else 0.",
            ["origin"],
            registry=self.registry,
        )
        self.slots_in_use = Gauge(
            "pushq_dispatcher_slots_in_use", "Deliveries in flight.", registry=self.registry
        )
        self.slots = Gauge(
            "pushq_dispatcher_slots", "Delivery slots configured.", registry=self.registry
        )

        self._queue_series: dict[str, QueueSeries] = {}
        self._children: dict[tuple[object, ...], Any] = {}

    def queue(self, name: str) -> QueueSeries:
        """The per-attempt series of one queue, looked up once (a delivery counts
        into several: `labels()` on every attempt costs more than the count)."""
        series = self._queue_series.get(name)
        if series is None:
            series = self._queue_series[name] = QueueSeries(self, name)
        return series

    def failed(self, queue: str, failure_class: str) -> Any:
        """The failed-attempts counter of a queue and failure class."""
        key = ("failed", queue, failure_class)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.failed_attempts.labels(
                queue=queue, **{"class": failure_class}
            )
        return child

    def endpoint(self, origin: str, ok: bool) -> Any:
        """The attempts counter of a destination origin's label."""
        key = ("endpoint", origin, ok)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.endpoint_attempts.labels(
                origin=origin, ok=str(ok).lower()
            )
        return child

    def set_depths(self, counts: dict[tuple[str, str], int]) -> None:
        """Replace the per-state gauges with fresh counts (every state shown, zeros too)."""
        self.jobs.clear()
        for queue in {queue for queue, _ in counts}:
            for state in PUBLIC_STATES:
                self.jobs.labels(queue=queue, state=state).set(counts.get((queue, state), 0))

    def set_queues(self, queues: list[QueueSettings], oldest: dict[str, float], now: float) -> None:
        """Replace the per-queue gauges: paused, and the age of the oldest ready job
        (`oldest` maps a queue to that job's run_at)."""
        self.oldest_pending_age.clear()
        self.paused.clear()
        for queue in queues:
            self.paused.labels(queue=queue.name).set(1 if queue.paused else 0)
        for name in {queue.name for queue in queues} | oldest.keys():
            since = oldest.get(name)
            age = 0.0 if since is None else max(0.0, now - since)
            self.oldest_pending_age.labels(queue=name).set(age)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class QueueSeries:
    """One queue's children of the per-attempt metrics."""

    __slots__ = ("delivered", "retried", "dead", "response_time", "delivery_latency")

    def __init__(self, metrics: Metrics, queue: str) -> None:
        self.delivered = metrics.delivered.labels(queue=queue)
        self.retried = metrics.retried.labels(queue=queue)
        self.dead = metrics.dead.labels(queue=queue)
        self.response_time = metrics.response_time.labels(queue=queue)
        self.delivery_latency = metrics.delivery_latency.labels(queue=queue)


class RecentActivity:
    """Deliveries and failed attempts per queue over the last minute, in 1-second buckets."""

    WINDOW = 60

    def __init__(self) -> None:
        self._buckets: dict[str, dict[int, list[int]]] = {}

    def record(self, queue: str, now: float, *, delivered: bool) -> None:
        buckets = self._buckets.setdefault(queue, {})
        second = int(now)
        bucket = buckets.get(second)
        if bucket is None:
            bucket = buckets[second] = [0, 0]
            for old in [s for s in buckets if s <= second - self.WINDOW]:
                del buckets[old]
        bucket[0 if delivered else 1] += 1

    def last_minute(self, queue: str, now: float) -> tuple[int, int]:
        """(delivered, failed attempts) in the 60 seconds before `now`."""
        since = int(now) - self.WINDOW
        delivered = failed = 0
        for second, (ok, bad) in self._buckets.get(queue, {}).items():
            if second > since:
                delivered += ok
                failed += bad
        return delivered, failed
