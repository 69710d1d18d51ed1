"""pushq.server.endpoints: origins, the in-memory health view, bounded labels."""

from __future__ import annotations

import asyncio

from pushq.policy.circuit import PROBE_WAIT, CircuitConfig
from pushq.server.endpoints import ORIGIN_LABELS, Endpoints, QueueDelivery, origin_of
from pushq.server.models import CircuitRecord

NOW = 1_000_000.0


def test_origin_of_writes_the_port() -> None:
    assert origin_of("https://API.example.com/x?y") == "https://api.example.com:443"
    assert origin_of("http://10.0.0.1:8080/") == "http://10.0.0.1:8080"
    assert origin_of("http://[::1]/a") == "http://[::1]:80"


def test_health_counts_latency_and_the_circuit_change_to_store() -> None:
    endpoints = Endpoints(CircuitConfig(threshold=2, cooldown=5.0))
    origin = "http://w:80"
    for ms in (10.0, 20.0, 30.0, 40.0):
        assert endpoints.admit(origin, NOW) is None
        change = endpoints.finished(
            origin, now=NOW, status=200, failure=None, retry_after=None, duration_ms=ms, error=None
        )
        assert change is None
    view = endpoints.describe(origin, NOW)
    assert view is not None
    assert (view["latency_p50_ms"], view["latency_p99_ms"], view["success_rate"]) == (20, 40, 1)
    for _ in range(2):
        endpoints.admit(origin, NOW)
        change = endpoints.finished(
            origin,
            now=NOW,
            status=None,
            failure="connection",
            retry_after=None,
            duration_ms=1.0,
            error="refused",
        )
    assert change == CircuitRecord(origin, "open", 2, 1, NOW + 5)
    assert endpoints.admit(origin, NOW + 1) == NOW + 5
    view = endpoints.describe(origin, NOW + 1)
    assert view is not None and view["state"] == "open" and view["in_flight"] == 0
    assert view["last_error"]["message"] == "refused"


def test_restored_circuits_hold_until_their_cool_down() -> None:
    endpoints = Endpoints(CircuitConfig())
    endpoints.restore([CircuitRecord("http://w:80", "half_open", 10, 2, NOW + 7)])
    assert endpoints.admit("http://w:80", NOW) == NOW + 7
    assert endpoints.admit("http://w:80", NOW + 8) is None  # the probe


def test_metric_labels_are_bounded() -> None:
    endpoints = Endpoints(CircuitConfig())
    labels = {endpoints.label(f"http://h{i}:80") for i in range(ORIGIN_LABELS + 50)}
    assert len(labels) == ORIGIN_LABELS + 1 and "other" in labels
    assert endpoints.label("http://h0:80") == "http://h0:80"


class _Probes:
    """A SharedCircuits that grants the probe to whichever asks first."""

    def __init__(self) -> None:
        self.holder: Endpoints | None = None
        self.asked: list[Endpoints] = []

    def side(self, node: Endpoints) -> _Side:
        return _Side(self, node)


class _Side:
    def __init__(self, probes: _Probes, node: Endpoints) -> None:
        self.probes, self.node = probes, node

    async def take_probe(self, origin: str, now: float, until: float) -> CircuitRecord | None:
        self.probes.asked.append(self.node)
        if self.probes.holder in (None, self.node):
            self.probes.holder = self.node
            return None
        return CircuitRecord(origin, "half_open", 10, 1, now, "other", until)


def _open(endpoints: Endpoints, origin: str) -> CircuitRecord | None:
    change = None
    for _ in range(2):
        endpoints.admit(origin, NOW, "q")
        change = endpoints.finished(
            origin,
            queue="q",
            now=NOW,
            status=None,
            failure="connection",
            retry_after=None,
            duration_ms=1.0,
            error="refused",
        )
    return change


def test_one_node_probes_the_others_hold_then_all_ramp_up_when_it_closes() -> None:
    origin = "http://w:80"
    config = CircuitConfig(threshold=2, cooldown=5.0, ceiling=8)
    a, b = Endpoints(config), Endpoints(config)
    probes = _Probes()
    a.shared, b.shared = probes.side(a), probes.side(b)
    opened = _open(a, origin)
    assert opened is not None and opened.state == "open"
    b.apply(opened, NOW)  # told by NOTIFY
    assert asyncio.run(b.gate(origin, NOW + 1, queue="q", timeout=30)) == NOW + 5

    assert asyncio.run(a.gate(origin, NOW + 6, queue="q", timeout=30)) is None  # a probes
    held = asyncio.run(b.gate(origin, NOW + 6, queue="q", timeout=30))
    assert held == NOW + 6 + PROBE_WAIT  # asked again shortly: a's answer may come soon
    assert probes.asked == [a, b]

    closed = a.finished(
        origin,
        queue="q",
        now=NOW + 7,
        status=200,
        failure=None,
        retry_after=None,
        duration_ms=1.0,
        error=None,
    )
    assert closed is not None and closed.state == "closed"
    b.apply(closed, NOW + 7)
    for node in (a, b):  # deliveries resume one at a time on each node
        view = node.describe(origin, NOW + 7)
        assert view is not None and (view["state"], view["concurrency_limit"]) == ("closed", 1)
        assert asyncio.run(node.gate(origin, NOW + 7, queue="q", timeout=30)) is None
        assert asyncio.run(node.gate(origin, NOW + 7, queue="q", timeout=30)) is not None


def test_a_queues_cap_and_opt_out_of_aimd() -> None:
    origin = "http://w:80"
    endpoints = Endpoints(CircuitConfig(ceiling=8))
    endpoints.queues = {"capped": QueueDelivery(cap=2), "free": QueueDelivery(adaptive=False)}
    assert [endpoints.admit(origin, NOW, "capped") for _ in range(3)] == [None, None, NOW + 1]
    endpoints.released(origin, "capped")
    assert endpoints.admit(origin, NOW, "capped") is None  # room again
    endpoints.finished(
        origin,
        queue="capped",
        now=NOW,
        status=429,
        failure=None,
        retry_after=None,
        duration_ms=1.0,
        error="throttled",
    )
    view = endpoints.describe(origin, NOW)
    assert view is not None and view["concurrency_limit"] == 4 and view["in_flight"] == 1
    assert [endpoints.admit(origin, NOW, "other") for _ in range(4)] == [None, None, None, NOW + 1]
    assert endpoints.admit(origin, NOW, "free") is None  # opted out of AIMD
