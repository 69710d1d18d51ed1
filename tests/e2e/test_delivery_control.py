"""Delivery control end to end (issue 13): fan-out topics, flow keys, endpoint
health, the circuit breaker and Retry-After holds, against a real pushq and real
misbehaving endpoints on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..harness import FAST_RETRY, PushqProcess, Reply, Worker, wait_until


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_topic_publish_makes_one_independent_job_per_endpoint(
    pushq: PushqProcess, worker: Worker
) -> None:
    topic, tag = name("topic"), name("t")
    ok_path, flaky_path = f"{tag}/ok", f"{tag}/flaky"
    worker.script(flaky_path, 500, 200)
    endpoints = [
        {"url": worker.url(ok_path), "name": "billing", "headers": {"x-sub": "billing"}},
        {"url": worker.url(flaky_path), "headers": {"x-sub": "audit"}},
    ]
    put = pushq.client.put(f"/v1/topics/{topic}", json={"endpoints": endpoints})
    assert put.status_code == 200, put.text
    assert put.json()["endpoints"][0] == endpoints[0]
    assert pushq.client.get(f"/v1/topics/{topic}").json()["name"] == topic
    assert topic in [t["name"] for t in pushq.client.get("/v1/topics").json()["topics"]]

    published = pushq.client.post(
        f"/v1/topics/{topic}/publish",
        json={"body": {"event": "paid"}, "headers": {"x-event": "paid"}, **FAST_RETRY},
    )
    assert published.status_code == 201, published.text
    jobs = published.json()["jobs"]
    assert len(jobs) == 2 and all(job["topic"] == topic for job in jobs)
    assert {job["url"] for job in jobs} == {e["url"] for e in endpoints}

    ok_job = pushq.wait_state(jobs[0]["id"], "succeeded")
    flaky_job = pushq.wait_state(jobs[1]["id"], "succeeded")
    assert ok_job["attempts"] == 1 and flaky_job["attempts"] == 2  # each retried on its own
    [ok_delivery] = worker.to(ok_path)
    assert ok_delivery.headers["x-sub"] == "billing" and ok_delivery.headers["x-event"] == "paid"
    assert worker.to(flaky_path)[0].headers["x-sub"] == "audit"
    listed = pushq.client.get("/v1/jobs", params={"topic": topic}).json()["jobs"]
    assert len(listed) == 2

    assert pushq.client.delete(f"/v1/topics/{topic}").status_code == 204
    assert pushq.client.get(f"/v1/topics/{topic}").status_code == 404
    assert pushq.client.post(f"/v1/topics/{topic}/publish", json={}).status_code == 404


def test_topic_endpoints_are_validated(pushq: PushqProcess) -> None:
    topic = name("topic")
    for endpoints in ([], [{"url": "ftp://x"}], [{"url": "http://x", "headers": {"host": "y"}}]):
        response = pushq.client.put(f"/v1/topics/{topic}", json={"endpoints": endpoints})
        assert response.status_code == 400, response.text
    response = pushq.client.put(
        f"/v1/topics/{topic}", json={"endpoints": [{"url": "http://169.254.169.254/"}]}
    )
    assert response.status_code == 400 and "target" in response.text
    put = pushq.client.put(f"/v1/topics/{topic}", json={"endpoints": [{"url": "http://x.test/"}]})
    assert put.status_code == 200
    response = pushq.client.post(f"/v1/topics/{topic}/publish", json={"url": "http://y.test/"})
    assert response.status_code == 400


def test_a_flow_key_at_concurrency_one_does_not_block_another_key(
    pushq: PushqProcess, worker: Worker
) -> None:
    queue, tag = name("keys"), name("k")
    slow, fast = f"{tag}/slow", f"{tag}/fast"
    worker.script(slow, Reply(sleep=1.0))
    put = pushq.client.put(f"/v1/queues/{queue}", json={"key_concurrency": 1})
    assert put.status_code == 200 and put.json()["key_concurrency"] == 1
    slow_jobs = [
        pushq.enqueue(url=worker.url(slow), queue=queue, flow_key="acme")["id"] for _ in range(3)
    ]
    fast_jobs = [
        pushq.enqueue(url=worker.url(fast), queue=queue, flow_key="globex")["id"] for _ in range(3)
    ]
    for job_id in fast_jobs:  # all three finish while acme's first is still being answered
        pushq.wait_state(job_id, "succeeded")
    acme = pushq.client.get("/v1/flow-keys/acme").json()
    assert acme["in_flight"] == 1 and acme["waiting"] >= 1
    for job_id in slow_jobs:
        assert pushq.wait_state(job_id, "succeeded", timeout=20)["attempts"] == 1
    assert worker.max_in_flight["/" + slow] == 1


def test_a_paused_flow_key_holds_only_its_jobs(pushq: PushqProcess, worker: Worker) -> None:
    tag = name("paused")
    key = name("customer")
    paused = pushq.client.post(f"/v1/flow-keys/{key}/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    held = pushq.enqueue(url=worker.url(f"{tag}/held"), flow_key=key)["id"]
    other = pushq.enqueue(url=worker.url(f"{tag}/other"), flow_key=name("other"))["id"]
    pushq.wait_state(other, "succeeded")
    record = pushq.client.get(f"/v1/flow-keys/{key}").json()
    assert (record["waiting"], record["in_flight"]) == (1, 0)
    assert pushq.job(held)["state"] == "pending" and pushq.job(held)["attempts"] == 0
    assert key in [k["key"] for k in pushq.client.get("/v1/flow-keys").json()["flow_keys"]]
    limits = pushq.client.put(f"/v1/flow-keys/{key}", json={"concurrency": 2, "rate_limit": "5/s"})
    assert limits.json()["concurrency"] == 2 and limits.json()["paused"] is True
    assert pushq.client.post(f"/v1/flow-keys/{key}/resume").json()["paused"] is False
    assert pushq.wait_state(held, "succeeded")["attempts"] == 1


CIRCUIT_ENV = {"PUSHQ_CIRCUIT_THRESHOLD": "3", "PUSHQ_CIRCUIT_COOLDOWN": "1s"}


def endpoint(pushq: PushqProcess, origin: str) -> dict[str, Any]:
    response = pushq.client.get(f"/v1/endpoints/{origin}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_an_endpoint_that_is_down_trips_the_circuit_and_its_jobs_keep_their_attempts(
    start_pushq: Callable[..., PushqProcess], tmp_path: Path
) -> None:
    down = Worker()  # its port is free: nothing listens until it starts
    origin = f"http://127.0.0.1:{down.port}"
    pushq = start_pushq(tmp_path / "data", **CIRCUIT_ENV)
    jobs = [
        pushq.enqueue(url=down.url(f"hook/{i}"), max_attempts=5, **FAST_RETRY)["id"]
        for i in range(6)
    ]
    wait_until(lambda: endpoint(pushq, origin)["state"] in ("open", "half_open"), timeout=20)
    view = endpoint(pushq, origin)
    assert view["consecutive_failures"] >= 3 and view["last_error"] is not None
    assert view["success_rate"] == 0.0
    # held jobs wait without using attempts: after the first round only probes use any
    wait_until(lambda: all(pushq.job(j)["state"] == "scheduled" for j in jobs[1:]), timeout=20)
    assert all(pushq.job(j)["state"] != "dead" for j in jobs)

    # the circuit survives a restart
    assert pushq.terminate() == 0
    pushq = start_pushq(tmp_path / "data", **CIRCUIT_ENV)
    assert endpoint(pushq, origin)["state"] in ("open", "half_open")

    down.start()  # the endpoint comes back: the next probe closes the circuit
    try:
        for job_id in jobs:
            done = pushq.wait_state(job_id, "succeeded", timeout=60)
            assert done["attempts"] <= 5
        view = endpoint(pushq, origin)
        assert view["state"] == "closed" and view["consecutive_failures"] == 0
        assert origin in [
            e["origin"] for e in pushq.client.get("/v1/endpoints").json()["endpoints"]
        ]
        metrics = pushq.client.get("/metrics").text
        assert f'pushq_endpoint_attempts_total{{ok="true",origin="{origin}"}}' in metrics
    finally:
        down.stop()


def test_a_429_with_retry_after_holds_back_sibling_jobs(
    start_pushq: Callable[..., PushqProcess], tmp_path: Path
) -> None:
    throttling = Worker()
    throttling.script("first", Reply(429, headers={"retry-after": "3"}), Reply(200))
    throttling.start()
    origin = f"http://127.0.0.1:{throttling.port}"
    try:
        pushq = start_pushq(tmp_path / "data", PUSHQ_ADAPTIVE_CONCURRENCY="true")
        first = pushq.enqueue(url=throttling.url("first"), **FAST_RETRY)["id"]
        [throttled] = throttling.wait_for("first")
        wait_until(lambda: endpoint(pushq, origin)["held_until"] is not None)
        assert endpoint(pushq, origin)["concurrency_limit"] is not None  # AIMD: halved
        siblings = [pushq.enqueue(url=throttling.url(f"sibling/{i}"))["id"] for i in range(3)]
        for job_id in [first, *siblings]:
            assert pushq.wait_state(job_id, "succeeded", timeout=30)["attempts"] <= 2
        for job_id in siblings:
            assert pushq.job(job_id)["attempts"] == 1  # held, not failed
        for i in range(3):
            [delivery] = throttling.to(f"sibling/{i}")
            assert delivery.at >= throttled.at + 2.5  # not before the endpoint asked
    finally:
        throttling.stop()


def test_a_queues_endpoint_concurrency_caps_its_deliveries_to_one_origin(
    pushq: PushqProcess, worker: Worker
) -> None:
    queue, path = name("capped"), name("cap")
    put = pushq.client.put(f"/v1/queues/{queue}", json={"endpoint_concurrency": 2})
    assert put.status_code == 200, put.text
    assert (put.json()["endpoint_concurrency"], put.json()["adaptive_concurrency"]) == (2, True)
    off = pushq.client.put(f"/v1/queues/{queue}", json={"adaptive_concurrency": False})
    assert (off.json()["endpoint_concurrency"], off.json()["adaptive_concurrency"]) == (2, False)
    got = pushq.client.get(f"/v1/queues/{queue}").json()
    assert (got["endpoint_concurrency"], got["adaptive_concurrency"]) == (2, False)
    for bad in ({"endpoint_concurrency": 0}, {"adaptive_concurrency": "yes"}):
        response = pushq.client.put(f"/v1/queues/{queue}", json=bad)
        assert response.status_code == 400, response.text
    worker.script(path, Reply(sleep=0.3))
    jobs = [pushq.enqueue(url=worker.url(path), queue=queue)["id"] for _ in range(6)]
    for job_id in jobs:  # held over the cap, not failed: one attempt each
        assert pushq.wait_state(job_id, "succeeded", timeout=30)["attempts"] == 1
    assert worker.max_in_flight["/" + path] == 2
    reset = pushq.client.put(
        f"/v1/queues/{queue}", json={"endpoint_concurrency": None, "adaptive_concurrency": None}
    )
    assert (reset.json()["endpoint_concurrency"], reset.json()["adaptive_concurrency"]) == (
        None,
        True,
    )


RAMP_ENV = {
    "PUSHQ_CIRCUIT_THRESHOLD": "2",
    "PUSHQ_CIRCUIT_COOLDOWN": "1s",
    "PUSHQ_CIRCUIT_MAX_COOLDOWN": "2s",
}
RAMP_SLEEP = 0.4  # each answer once the endpoint is back


def ramps_up_after_the_circuit_closes(pushq: PushqProcess) -> None:
    """An endpoint down, then back: after the probe closes the circuit, deliveries
    resume one at a time, then two at a time (not all at once)."""
    down = Worker()
    origin = f"http://127.0.0.1:{down.port}"
    jobs = [
        pushq.enqueue(url=down.url("hook"), max_attempts=20, **FAST_RETRY)["id"] for _ in range(8)
    ]
    wait_until(lambda: endpoint(pushq, origin)["state"] in ("open", "half_open"), timeout=30)
    down.script("hook", Reply(sleep=RAMP_SLEEP))
    down.start()
    try:
        for job_id in jobs:
            pushq.wait_state(job_id, "succeeded", timeout=60)
        arrivals = [d.at for d in down.to("hook")]
        # the probe, then one job alone, then two together: each step starts after
        # the step before it was answered
        probe, alone, pair = arrivals[0], arrivals[1], arrivals[2]
        assert alone >= probe + RAMP_SLEEP * 0.9
        assert pair >= alone + RAMP_SLEEP * 0.9
        assert down.max_in_flight["/hook"] > 1  # and it does climb back
    finally:
        down.stop()


def test_deliveries_ramp_up_after_a_circuit_closes(
    start_pushq: Callable[..., PushqProcess], tmp_path: Path
) -> None:
    ramps_up_after_the_circuit_closes(start_pushq(tmp_path / "data", **RAMP_ENV))
