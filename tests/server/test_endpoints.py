"""pushq.server.endpoints: origins, the in-memory health view, bounded labels."""

from __future__ import annotations

from pushq.policy.circuit import CircuitConfig
from pushq.server.endpoints import ORIGIN_LABELS, Endpoints, origin_of
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
