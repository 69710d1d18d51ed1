"""Delivery health per destination origin (scheme://host:port), kept in memory on
the hot path: the circuit breaker and Retry-After holds (policy.circuit), the
in-flight count and AIMD limit, success rate and latency percentiles over the
last RING deliveries, consecutive failures and the last error.

The dispatcher asks `admit` before each delivery and tells `finished` after; a
circuit that opened or closed is handed to the store (`save_circuit`) so it
survives a restart (`restore` at start-up). Only MAX_ORIGINS origins are kept;
the least recently used is forgotten past that (its circuit stays stored).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from ..policy.circuit import Circuit, CircuitConfig, admit, record
from .models import CircuitRecord

RING = 256  # deliveries kept per origin for the success rate and percentiles
MAX_ORIGINS = 10_000
ORIGIN_LABELS = 100  # origins with a metrics label of their own; the rest are "other"
_DEFAULT_PORTS = {"http": 80, "https": 443}


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

    def admit(self, origin: str, now: float) -> float | None:
        """None: deliver now (counted in flight); else hold the job until then."""
        health = self._get(origin)
        health.circuit, hold = admit(health.circuit, now=now, in_flight=health.in_flight)
        if hold is None:
            health.in_flight += 1
        return hold

    def finished(
        self,
        origin: str,
        *,
        now: float,
        status: int | None,
        failure: str | None,
        retry_after: float | None,
        duration_ms: float,
        error: str | None,
    ) -> CircuitRecord | None:
        """Record one delivery; the circuit to save when its state changed."""
        health = self._get(origin)
        health.in_flight = max(0, health.in_flight - 1)
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

    def released(self, origin: str) -> None:
        """A delivery admitted but not sent after all."""
        health = self._get(origin)
        health.in_flight = max(0, health.in_flight - 1)

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
