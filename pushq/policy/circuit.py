"""The circuit breaker and the endpoint's own back-pressure, per destination
origin (DESIGN.md "Endpoints"), as pure functions of a small state and the clock.

- closed: deliveries go; `threshold` transient failures in a row (timeouts,
  connection errors, 5xx) open the circuit.
- open: nothing is sent until `open_until`; the cool-down doubles each time the
  circuit opens again without a success between (base, 2 x base, ... up to max).
- half_open: once the cool-down has passed, one delivery (the probe) goes; its
  success closes the circuit, its failure opens it again for a longer cool-down.
- a 429 or 503 with Retry-After holds every delivery to the origin until then,
  whatever the circuit's state.
- adaptive concurrency (AIMD): a 429, 503 or timeout halves the origin's
  in-flight limit (down to 1); each window of `limit` successes in a row raises it
  by one, until it reaches `ceiling` and the limit is lifted (None).
- the ramp: when a circuit that was open closes, deliveries resume gradually: the
  in-flight limit starts at 1 and doubles with each window of `limit` successes
  (slow start) until it reaches `ceiling`; a 429, 503 or timeout on the way ends
  the ramp and AIMD takes over from half the limit.
- a queue may cap its own deliveries in flight to one origin (`cap`) and may opt
  out of the AIMD limit (`adaptive=False`); it does not opt out of the ramp, which
  is the circuit's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

State = Literal["closed", "open", "half_open"]
PROBE_WAIT = 1.0  # seconds other jobs are held while a probe is in flight


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    threshold: int = 10  # transient failures in a row that open the circuit
    cooldown: float = 10.0  # the first cool-down, seconds
    max_cooldown: float = 600.0
    adaptive: bool = True  # AIMD on the in-flight limit
    ceiling: int = 64  # the limit AIMD climbs back to (the dispatcher's slots)


@dataclass(frozen=True, slots=True)
class Circuit:
    state: State = "closed"
    failures: int = 0  # transient failures in a row
    opened: int = 0  # times opened in a row: the cool-down grows with it
    open_until: float | None = None
    probing: bool = False  # a half-open probe is in flight
    hold_until: float | None = None  # Retry-After from a 429 / 503
    limit: int | None = None  # AIMD in-flight limit (None: no limit of its own)
    streak: int = 0  # successes since the limit last changed
    ramping: bool = False  # the limit is the ramp after the circuit closed


def closed_after_open(c: Circuit) -> Circuit:
    """The circuit closed after being open: healthy, with deliveries ramping up from one."""
    return replace(
        c,
        state="closed",
        failures=0,
        opened=0,
        open_until=None,
        probing=False,
        limit=1,
        streak=0,
        ramping=True,
    )


def admit(
    circuit: Circuit,
    *,
    now: float,
    in_flight: int,
    adaptive: bool = True,
    cap: int | None = None,
    queue_in_flight: int = 0,
) -> tuple[Circuit, float | None]:
    """May a delivery to the origin start now? (new state, None) to send it, or
    (state, time) to hold it back until that time without using an attempt.
    `adaptive`, `cap` and `queue_in_flight` are the job's queue's: whether the AIMD
    limit applies to it, and its own most deliveries in flight to the origin."""
    if circuit.hold_until is not None and now < circuit.hold_until:
        return circuit, circuit.hold_until
    if circuit.state == "open":
        assert circuit.open_until is not None
        if now < circuit.open_until:
            return circuit, circuit.open_until
        return replace(circuit, state="half_open", probing=True), None
    if circuit.state == "half_open":
        if circuit.probing:
            return circuit, now + PROBE_WAIT
        return replace(circuit, probing=True), None
    limited = circuit.limit is not None and (adaptive or circuit.ramping)
    if limited and circuit.limit is not None and in_flight >= circuit.limit:
        return circuit, now + PROBE_WAIT
    if cap is not None and queue_in_flight >= cap:
        return circuit, now + PROBE_WAIT
    return circuit, None


def record(
    circuit: Circuit,
    config: CircuitConfig,
    *,
    now: float,
    status: int | None,
    failure: str | None,
    retry_after: float | None,
) -> Circuit:
    """The state after one delivery: `status` its HTTP status (None: no response),
    `failure` "timeout" / "connection" when no response came, `retry_after` the
    seconds a 429 / 503 asked for."""
    transient = failure in ("timeout", "connection") or (status is not None and status >= 500)
    throttled = status in (429, 503) or failure == "timeout"
    c = circuit
    if status in (429, 503) and retry_after is not None:
        until = now + retry_after
        c = replace(c, hold_until=until if c.hold_until is None else max(c.hold_until, until))
    if throttled and config.adaptive:
        base = c.limit if c.limit is not None else config.ceiling
        c = replace(c, limit=max(1, base // 2), streak=0, ramping=False)
    elif status is not None and status < 400 and c.limit is not None:
        streak = c.streak + 1
        if streak >= c.limit:  # a window of successes: slow start doubles, AIMD adds one
            raised = c.limit * 2 if c.ramping else c.limit + 1
            if raised >= config.ceiling:
                c = replace(c, limit=None, streak=0, ramping=False)
            else:
                c = replace(c, limit=raised, streak=0)
        else:
            c = replace(c, streak=streak)
    if not transient:  # the origin answered: it is up
        if c.state != "closed":  # the probe succeeded: resume gradually
            return closed_after_open(c)
        return replace(c, failures=0, opened=0, open_until=None, probing=False)
    failures = c.failures + 1
    if c.state == "open":  # a delivery that started before the circuit opened
        return replace(c, failures=failures)
    if c.state == "half_open" or failures >= config.threshold:
        cooldown = min(config.max_cooldown, config.cooldown * 2**c.opened)
        return replace(
            c,
            state="open",
            failures=failures,
            opened=c.opened + 1,
            open_until=now + cooldown,
            probing=False,
        )
    return replace(c, failures=failures)
