"""Delivery health per destination origin (scheme://host:port), kept in memory on
the hot path: the circuit breaker and Retry-After holds (policy.circuit), the
in-flight count and AIMD limit, success rate and latency percentiles over the
last RING deliveries, consecutive failures and the last error.

The dispatcher asks `gate` before each delivery and tells `finished` after; a
circuit that opened or closed is handed to the store (`save_circuit`) so it
survives a restart (`restore` at start-up). Only MAX_ORIGINS origins are kept;
the least recently used is forgotten past that (its circuit stays stored).

Each queue's own rules (`adaptive_concurrency`, `endpoint_concurrency`) come from
`queues`, a copy of the queues' settings that serve.py refreshes.

With several nodes (PostgreSQL), `shared` is the cluster's side (cluster.py): the
half-open probe is taken in the database, so one node in the cluster sends it,
and the circuits other nodes store reach this node through `apply`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..policy.circuit import PROBE_WAIT, Circuit, CircuitConfig, admit, closed_after_open, record
from .models import CircuitRecord, QueueSettings
from .store.base import Store

log = logging.getLogger("pushq.dispatcher")

RING = 256  # deliveries kept per origin for the success rate and percentiles
MAX_ORIGINS = 10_000
ORIGIN_LABELS = 100  # origins with a metrics label of their own; the rest are "other"
_DEFAULT_PORTS = {"http": 80, "https": 443}
PROBE_MARGIN = 5.0  # seconds past the probe's timeout before another node may probe


@dataclass(frozen=True, slots=True)
class QueueDelivery:
    """A queue's own say over delivery to an origin."""

    adaptive: bool = True  # the AIMD limit applies to its jobs
    cap: int | None = None  # its most deliveries in flight to any one origin


class SharedCircuits(Protocol):
    """The cluster's side of the circuits (PostgreSQL)."""

    async def take_probe(self, origin: str, now: float, until: float) -> CircuitRecord | None:
        """Take the origin's half-open probe for this node until `until`: None when
        taken, else the stored circuit that stands in the way (another node probes,
        or the circuit closed meanwhile)."""
        ...


@lru_cache(maxsize=4096)  # twice per attempt, on a handful of distinct URLs
def origin_of(url: str) -> str:
    """scheme://host:port of a URL (the port always written)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}"


@dataclass(slots=True)
class Health:
    circuit: Circuit = field(default_factory=Circuit)
    in_flight: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)  # in flight per queue
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=RING))
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=RING))
    last_error: dict[str, Any] | None = None


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


class Endpoints:
    """Every origin's health, in memory."""

    def __init__(self, config: CircuitConfig) -> None:
        self.config = config
        self._by_origin: OrderedDict[str, Health] = OrderedDict()
        self._labelled: set[str] = set()
        self.queues: dict[str, QueueDelivery] = {}
        self.shared: SharedCircuits | None = None

    def label(self, origin: str) -> str:
        """The origin's metrics label: itself for the first ORIGIN_LABELS origins
        seen, "other" for the rest, so the series stay bounded."""
        if origin in self._labelled:
            return origin
        if len(self._labelled) < ORIGIN_LABELS:
            self._labelled.add(origin)
            return origin
        return "other"

    def _get(self, origin: str) -> Health:
        health = self._by_origin.get(origin)
        if health is None:
            health = self._by_origin[origin] = Health()
            if len(self._by_origin) > MAX_ORIGINS:
                self._by_origin.popitem(last=False)
        else:
            self._by_origin.move_to_end(origin)
        return health

    def restore(self, records: list[CircuitRecord]) -> None:
        """The circuits saved before a restart."""
        for r in records:
            if r.state == "closed":
                circuit = Circuit(failures=r.failures)
            else:  # a half-open probe in flight at the restart was lost: probe again
                until = r.open_until or 0.0
                circuit = Circuit("open", r.failures, r.opened, until)
            self._get(r.origin).circuit = circuit

    def set_queues(self, queues: list[QueueSettings]) -> None:
        """Every queue's own rules (those of queues that set none are the defaults)."""
        self.queues = {q.name: rules for q in queues if (rules := _rules(q)) != QueueDelivery()}

    def set_queue(self, queue: QueueSettings) -> None:
        """One queue's rules changed (PUT /v1/queues on this node)."""
        rules = _rules(queue)
        if rules == QueueDelivery():
            self.queues.pop(queue.name, None)
        else:
            self.queues[queue.name] = rules

    def admit(self, origin: str, now: float, queue: str | None = None) -> float | None:
        """None: deliver now (counted in flight); else hold the job until then."""
        health = self._get(origin)
        rules = self.queues.get(queue, QueueDelivery()) if queue is not None else QueueDelivery()
        health.circuit, hold = admit(
            health.circuit,
            now=now,
            in_flight=health.in_flight,
            adaptive=rules.adaptive,
            cap=rules.cap,
            queue_in_flight=health.by_queue.get(queue, 0) if queue is not None else 0,
        )
        if hold is None:
            health.in_flight += 1
            if queue is not None:
                health.by_queue[queue] = health.by_queue.get(queue, 0) + 1
        return hold

    async def gate(self, origin: str, now: float, *, queue: str, timeout: float) -> float | None:
        """`admit`, with the half-open probe taken for the whole cluster: when this
        node's circuit lets a probe go, the database decides whether this node sends
        it or another node already does (then the job is held as for an open circuit).
        The database unreachable: the probe goes, as with one node."""
        before = self._get(origin).circuit.state
        hold = self.admit(origin, now, queue)
        health = self._get(origin)
        if hold is not None or self.shared is None or before not in ("open", "half_open"):
            return hold
        if health.circuit.state != "half_open":
            return hold
        try:
            standing = await self.shared.take_probe(origin, now, now + timeout + PROBE_MARGIN)
        except Exception as exc:  # the store says why; one node's probe is no harm
            log.warning("could not take the probe of %s for the cluster: %s", origin, exc)
            return None
        if standing is None:
            return None  # this node's probe
        self.released(origin, queue)
        health.circuit = replace(health.circuit, state="open", probing=False)
        self.apply(standing, now)
        return self.admit(origin, now, queue)

    def apply(self, r: CircuitRecord, now: float) -> None:
        """A circuit another node stored (never this node's own probe): take its
        state, keep this node's own counts and AIMD limit. Another node's probe in
        flight holds this node's jobs for PROBE_WAIT at a time, as a probe of its
        own would (its answer reaches this node by NOTIFY; if that node died, this
        node takes the probe once the dead one's time runs out)."""
        health = self._get(r.origin)
        c = health.circuit
        if r.state == "closed":
            if c.state != "closed":
                health.circuit = closed_after_open(c)
            return
        if r.state == "half_open":  # asked again each PROBE_WAIT: the probe may end soon
            until = min(r.probe_until or now, now + PROBE_WAIT)
            until = max(until, now + 0.1)
        else:
            until = r.open_until if r.open_until is not None else now
        health.circuit = replace(
            c, state="open", failures=r.failures, opened=r.opened, open_until=until, probing=False
        )

    def finished(
        self,
        origin: str,
        *,
        queue: str | None = None,
        now: float,
        status: int | None,
        failure: str | None,
        retry_after: float | None,
        duration_ms: float,
        error: str | None,
    ) -> CircuitRecord | None:
        """Record one delivery; the circuit to save when its state changed."""
        health = self._get(origin)
        self._leave(health, queue)
        before = health.circuit
        health.circuit = record(
            before,
            self.config,
            now=now,
            status=status,
            failure=failure,
            retry_after=retry_after,
        )
        ok = failure is None and status is not None and status < 400
        health.outcomes.append(ok)
        health.latencies.append(duration_ms)
        if not ok:
            health.last_error = {"status": status, "message": error, "at": now}
        after = health.circuit
        if (before.state, before.opened) == (after.state, after.opened):
            return None
        return CircuitRecord(origin, after.state, after.failures, after.opened, after.open_until)

    def released(self, origin: str, queue: str | None = None) -> None:
        """A delivery admitted but not sent after all."""
        self._leave(self._get(origin), queue)

    @staticmethod
    def _leave(health: Health, queue: str | None) -> None:
        health.in_flight = max(0, health.in_flight - 1)
        if queue is not None and queue in health.by_queue:
            health.by_queue[queue] -= 1
            if health.by_queue[queue] <= 0:
                del health.by_queue[queue]

    def origins(self) -> list[str]:
        return sorted(self._by_origin)

    def describe(self, origin: str, now: float) -> dict[str, Any] | None:
        """The /v1/endpoints view of one origin (None: never seen)."""
        health = self._by_origin.get(origin)
        if health is None:
            return None
        c = health.circuit
        state = c.state
        if state == "open" and c.open_until is not None and now >= c.open_until:
            state = "half_open"  # the next delivery is the probe
        outcomes = list(health.outcomes)
        latencies = list(health.latencies)
        open_until = c.open_until if state != "closed" else None
        if c.hold_until is not None and c.hold_until > now:
            open_until = max(open_until or 0.0, c.hold_until)
        return {
            "origin": origin,
            "state": state,
            "in_flight": health.in_flight,
            "concurrency_limit": c.limit,
            "success_rate": (sum(outcomes) / len(outcomes)) if outcomes else None,
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p99_ms": _percentile(latencies, 99),
            "consecutive_failures": c.failures,
            "last_error": health.last_error,
            "open_until": open_until,
            "held_until": c.hold_until if c.hold_until is not None and c.hold_until > now else None,
        }


def _rules(queue: QueueSettings) -> QueueDelivery:
    return QueueDelivery(adaptive=queue.adaptive_concurrency, cap=queue.endpoint_concurrency)


class QueueRules:
    """Keeps the dispatcher's copy of each queue's delivery rules: read again every
    `interval` seconds, so a change made on another node holds within that."""

    def __init__(self, *, store: Store, endpoints: Endpoints, interval: float = 1.0) -> None:
        self.store, self.endpoints, self.interval = store, endpoints, interval

    async def refresh(self) -> None:
        self.endpoints.set_queues(await self.store.list_queues())

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the store logs its outages; keep the last rules
                log.debug("reading the queues' delivery rules failed: %s", exc)
            await asyncio.sleep(self.interval)
