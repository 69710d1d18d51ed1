"""The dashboard's per-minute series (pushq.server.timeseries): counts per minute,
percentiles from the histogram, the ring forgetting minutes past the hour, and the
queue bound."""

from __future__ import annotations

import pytest

from pushq.server import timeseries
from pushq.server.timeseries import INTERVAL, MINUTES, OTHER, DeliverySeries

T0 = 1_700_000_000 // INTERVAL * INTERVAL  # the start of a minute


def test_counts_land_in_their_minute_oldest_first() -> None:
    series = DeliverySeries()
    series.record("emails", T0 + 1, 10.0, failed=False)
    series.record("emails", T0 + 59, 20.0, failed=True)
    series.record("emails", T0 + 60, 30.0, failed=False)
    snap = series.snapshot(T0 + 61, minutes=3)
    assert snap["from"] == T0 - INTERVAL and snap["to"] == T0 + 2 * INTERVAL
    [emails] = snap["queues"]
    assert emails["queue"] == "emails"
    points = [(p["at"], p["delivered"], p["failed"]) for p in emails["points"]]
    assert points == [(T0 - INTERVAL, 0, 0), (T0, 1, 1), (T0 + INTERVAL, 1, 0)]
    assert emails["points"][0]["latency_p50_ms"] is None
    assert (emails["delivered"], emails["failed"]) == (2, 1)
    assert snap["total"]["delivered"] == 2 and snap["total"]["failed"] == 1


def test_percentiles_are_within_a_bucket_of_the_truth() -> None:
    series = DeliverySeries()
    for ms in range(1, 1001):  # 1 ms .. 1000 ms, evenly
        series.record("q", T0, float(ms), failed=False)
    [q] = series.snapshot(T0, minutes=1)["queues"]
    assert 500 <= q["latency_p50_ms"] <= 500 * 2**0.25
    assert 990 <= q["latency_p99_ms"] <= 1000  # clamped to the slowest seen
    assert q["points"][0]["latency_p99_ms"] == q["latency_p99_ms"]


def test_a_minute_an_hour_old_is_forgotten() -> None:
    series = DeliverySeries()
    series.record("q", T0, 5.0, failed=False)
    later = T0 + MINUTES * INTERVAL  # the same ring slot, an hour on
    assert series.snapshot(later)["queues"] == []  # outside the window
    series.record("q", later, 7.0, failed=True)
    [q] = series.snapshot(later)["queues"]
    assert (q["delivered"], q["failed"]) == (0, 1)  # the old minute's counts are gone


def test_the_total_merges_every_queue_and_a_queue_filter_narrows() -> None:
    series = DeliverySeries()
    series.record("a", T0, 1.0, failed=False)
    series.record("b", T0, 1000.0, failed=False)
    snap = series.snapshot(T0)
    assert [q["queue"] for q in snap["queues"]] == ["a", "b"]
    assert snap["total"]["delivered"] == 2
    assert snap["total"]["latency_p99_ms"] == 1000.0
    only = series.snapshot(T0, queue="b")
    assert [q["queue"] for q in only["queues"]] == ["b"]
    assert series.snapshot(T0, queue="never")["queues"] == []


def test_queues_past_the_bound_share_one_series(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timeseries, "MAX_QUEUES", 2)
    series = DeliverySeries()
    for name in ("a", "b", "c", "d"):
        series.record(name, T0, 1.0, failed=False)
    snap = series.snapshot(T0)
    assert {q["queue"]: q["delivered"] for q in snap["queues"]} == {"a": 1, "b": 1, OTHER: 2}
