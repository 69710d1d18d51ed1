"""Flow control end to end: queues, concurrency, rate limits, priorities, backpressure,
unique and ordered jobs, against a real pushq and a real worker."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from ..harness import PushqProcess, Reply, Worker, wait_until


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def put_queue(pushq: PushqProcess, queue: str, **settings: object) -> dict[str, object]:
    response = pushq.client.put(f"/v1/queues/{queue}", json=settings)
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def test_queue_settings_round_trip(pushq: PushqProcess) -> None:
    queue = name("settings")
    assert pushq.client.get(f"/v1/queues/{queue}").status_code == 404
    body = put_queue(
        pushq,
        queue,
        concurrency=3,
        rate_limit="10/m",
        max_attempts=4,
        backoff={"base": "2s", "max": "1m"},
        timeout="10s",
        max_size=100,
        priority=2,
    )
    assert body["concurrency"] == 3 and body["rate_limit"] == "10/m"
    assert body["backoff"] == {"base": 2.0, "max": 60.0, "jitter": None}
    assert body["timeout"] == 10.0 and body["max_size"] == 100 and body["priority"] == 2
    stats = body["stats"]
    assert isinstance(stats, dict)
    assert set(stats) >= {
        "scheduled",
        "pending",
        "active",
        "retrying",
        "succeeded",
        "dead",
        "cancelled",
        "oldest_pending_age",
        "delivered_last_minute",
        "failed_last_minute",
    }
    # a partial PUT changes only what it names; null clears
    body = put_queue(pushq, queue, concurrency=None)
    assert body["concurrency"] is None and body["rate_limit"] == "10/m"
    listed = pushq.client.get("/v1/queues").json()["queues"]
    assert queue in [q["name"] for q in listed]


def test_jobs_take_their_queues_settings(pushq: PushqProcess, worker: Worker) -> None:
    queue = name("inherit")
    put_queue(pushq, queue, max_attempts=2, timeout="7s", backoff={"base": 0.05, "max": 0.1})
    job = pushq.enqueue(url=worker.url(name("x")), queue=queue, delay=60)
    assert job["max_attempts"] == 2 and job["timeout"] == 7.0
    assert job["backoff"]["base"] == 0.05
    own = pushq.enqueue(url=worker.url(name("x")), queue=queue, max_attempts=5, delay=60)
    assert own["max_attempts"] == 5  # a job's own settings override its queue's


def test_enqueue_creates_the_queue(pushq: PushqProcess, worker: Worker) -> None:
    queue = name("auto")
    pushq.enqueue(url=worker.url(name("x")), queue=queue, delay=60)
    body = pushq.client.get(f"/v1/queues/{queue}").json()
    assert body["concurrency"] is None and body["paused"] is False
    assert body["stats"]["scheduled"] == 1


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "3"}, "concurrency"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"rate_limit": "10/y"}, "rate_limit"),
        ({"rate_limit": "0/s"}, "rate_limit"),
        ({"max_size": -1}, "max_size"),
        ({"timeout": 0}, "timeout"),
        ({"paused": "yes"}, "paused"),
        ({"priority": 99}, "priority"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_queue_settings_are_4xx(
    pushq: PushqProcess, settings: dict[str, object], field: str
) -> None:
    response = pushq.client.put(f"/v1/queues/{name('bad')}", json=settings)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


def test_bad_queue_names_are_4xx(pushq: PushqProcess) -> None:
    response = pushq.client.put("/v1/queues/" + "q" * 65, json={})
    assert response.status_code == 400
    assert pushq.client.post("/v1/queues/a%20b/pause").status_code == 400


def test_concurrency_is_never_exceeded(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("conc"), name("conc-path")
    put_queue(pushq, queue, concurrency=3)
    worker.script(path, Reply(200, sleep=0.2))
    jobs = [{"url": worker.url(path), "queue": queue} for _ in range(12)]
    assert pushq.client.post("/v1/jobs/batch", json={"jobs": jobs}).status_code == 201
    worker.wait_for(path, 12, timeout=20)
    assert worker.max_in_flight["/" + path] == 3


def test_rate_limit_holds_in_every_window(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("rate"), name("rate-path")
    put_queue(pushq, queue, rate_limit="4/s")
    jobs = [{"url": worker.url(path), "queue": queue} for _ in range(16)]
    pushq.client.post("/v1/jobs/batch", json={"jobs": jobs}).raise_for_status()
    deliveries = worker.wait_for(path, 16, timeout=20)
    times = sorted(d.at for d in deliveries)
    for start in times:
        in_window = [t for t in times if start <= t < start + 1.0]
        assert len(in_window) <= 8  # a bucket of N: no one-second window holds more than 2N
    # and over the run the rate is N/s: 16 jobs from a full bucket of 4 take >= 3 s
    assert times[-1] - times[0] >= 2.7


def test_pause_holds_and_resume_releases(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("pause"), name("pause-path")
    paused = pushq.client.post(f"/v1/queues/{queue}/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    job = pushq.enqueue(url=worker.url(path), queue=queue)  # enqueue is still accepted
    time.sleep(0.6)
    assert worker.to(path) == []
    assert pushq.job(job["id"])["state"] == "pending"
    resumed = pushq.client.post(f"/v1/queues/{queue}/resume")
    assert resumed.json()["paused"] is False
    worker.wait_for(path, timeout=5)


def test_max_size_answers_429_and_stores_nothing(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("full"), name("full-path")
    put_queue(pushq, queue, max_size=2)
    for _ in range(2):
        pushq.enqueue(url=worker.url(path), queue=queue, delay=60)
    response = pushq.client.post("/v1/jobs", json={"url": worker.url(path), "queue": queue})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "queue_full"
    batch = {"jobs": [{"url": worker.url(path), "queue": queue}]}
    assert pushq.client.post("/v1/jobs/batch", json=batch).status_code == 429
    stats = pushq.client.get(f"/v1/queues/{queue}").json()["stats"]
    assert stats["scheduled"] == 2 and stats["pending"] == 0


def test_priority_order_within_a_queue(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("prio"), name("prio-path")
    put_queue(pushq, queue, concurrency=1, paused=True)
    for n, priority in enumerate([0, 5, 0, 10, 5]):
        pushq.enqueue(url=worker.url(path), queue=queue, priority=priority, body={"n": n})
    pushq.client.post(f"/v1/queues/{queue}/resume")
    order = [json.loads(d.body)["n"] for d in worker.wait_for(path, 5)]
    assert order == [3, 1, 4, 0, 2]  # higher first, FIFO among equals


def test_concurrent_unique_enqueues_make_one_job(pushq: PushqProcess, worker: Worker) -> None:
    queue, key = name("uniq"), name("key")
    ids: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def enqueue() -> None:
        with httpx.Client(base_url=pushq.base_url, headers=pushq.client.headers) as client:
            response = client.post(
                "/v1/jobs",
                json={"url": worker.url("u"), "queue": queue, "unique_key": key, "delay": 60},
            )
        with lock:
            ids.append(response.json()["id"])
            statuses.append(response.status_code)

    threads = [threading.Thread(target=enqueue) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1
    assert sorted(statuses) == [200] * 11 + [201]


def test_ordering_key_waits_for_retries_while_other_keys_flow(
    pushq: PushqProcess, worker: Worker
) -> None:
    queue, path, other = name("order"), name("order-path"), name("other-path")
    worker.script(path, Reply(500), Reply(500), 200)
    first = pushq.enqueue(
        url=worker.url(path),
        queue=queue,
        ordering_key="acct-1",
        body={"n": 1},
        backoff={"base": 0.3, "max": 0.3, "jitter": False},
    )
    second = pushq.enqueue(url=worker.url(path), queue=queue, ordering_key="acct-1", body={"n": 2})
    assert second["state"] == "pending"  # blocked behind the first, shown as pending
    flowing = [
        pushq.enqueue(url=worker.url(other), queue=queue, ordering_key="acct-2")["id"]
        for _ in range(3)
    ]
    # acct-2 flows while acct-1 is retrying
    worker.wait_for(other, 3, timeout=5)
    assert pushq.job(first["id"])["state"] in ("retrying", "pending", "active")
    assert pushq.job(second["id"])["state"] == "pending"
    pushq.wait_state(second["id"], "succeeded", timeout=10)
    numbers = [json.loads(d.body)["n"] for d in worker.to(path)]
    assert numbers == [1, 1, 1, 2]  # the second only after the first succeeded
    assert all(pushq.job(job_id)["state"] == "succeeded" for job_id in flowing)


def test_a_dead_head_releases_its_ordering_key(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("order-dead"), name("order-dead-path")
    worker.script(path, Reply(400), 200)
    # 400 is permanent for this job only (by default a 400 is retried)
    first = pushq.enqueue(
        url=worker.url(path), queue=queue, ordering_key="k", permanent_statuses=[400]
    )
    second = pushq.enqueue(url=worker.url(path), queue=queue, ordering_key="k")
    assert pushq.wait_state(first["id"], "dead")["attempts"] == 1
    pushq.wait_state(second["id"], "succeeded")


def test_a_slow_queue_does_not_starve_a_fast_one(pushq: PushqProcess, worker: Worker) -> None:
    slow_queue, slow = name("slow"), name("slow-path")
    fast_queue, fast = name("fast"), name("fast-path")
    worker.script(slow, Reply(200, sleep=4))
    jobs = [{"url": worker.url(slow), "queue": slow_queue} for _ in range(100)]
    pushq.client.post("/v1/jobs/batch", json={"jobs": jobs}).raise_for_status()
    wait_until(lambda: worker.in_flight.get("/" + slow, 0) >= 20, timeout=10)
    started = time.time()
    pushq.enqueue(url=worker.url(fast), queue=fast_queue)
    [delivery] = worker.wait_for(fast, timeout=3)
    assert delivery.at - started < 1.5
    pushq.client.post(f"/v1/queues/{slow_queue}/pause")  # let the rest of the suite go on


def test_queue_stats_count_jobs(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("stats"), name("stats-path")
    worker.script(path, 200)
    done = pushq.enqueue(url=worker.url(path), queue=queue)
    pushq.wait_state(done["id"], "succeeded")
    pushq.enqueue(url=worker.url(path), queue=queue, delay=60)
    put_queue(pushq, queue, paused=True)
    pushq.enqueue(url=worker.url(path), queue=queue)
    stats = pushq.client.get(f"/v1/queues/{queue}").json()["stats"]
    assert stats["succeeded"] == 1 and stats["scheduled"] == 1 and stats["pending"] == 1
    assert stats["delivered_last_minute"] == 1
    assert stats["oldest_pending_age"] is not None and stats["oldest_pending_age"] >= 0
