"""End to end: a real pushq process delivering to a real worker endpoint."""

from __future__ import annotations

import time
import uuid

from standardwebhooks.webhooks import Webhook

from pushq.signing import verify

from ..harness import FAST_RETRY, TEST_SECRET, PushqProcess, Reply, Worker, wait_until


def unique_path(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_delivery_is_signed_per_standard_webhooks(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("signed")
    job = pushq.enqueue(url=worker.url(path), body={"hello": "world"}, headers={"X-Trace": "t1"})
    [delivery] = worker.wait_for(path)

    Webhook(TEST_SECRET).verify(delivery.body, delivery.headers)  # raises if not signed
    assert delivery.headers["webhook-id"] == job["id"]
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["pushq-attempt"] == "1"
    assert delivery.headers["pushq-max-attempts"] == str(job["max_attempts"])
    assert delivery.headers["pushq-queue"] == "default"
    assert delivery.headers["pushq-job-token"]
    assert delivery.headers["pushq-api-url"] == pushq.base_url  # where to send progress
    assert delivery.headers["user-agent"].startswith("pushq/")
    assert delivery.headers["x-trace"] == "t1"
    assert delivery.body == b'{"hello":"world"}'
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["result"] == {"status": 200, "body": "ok"}
    assert done["finished_at"] is not None


def test_job_without_body_is_sent_empty_without_content_type(
    pushq: PushqProcess, worker: Worker
) -> None:
    path = unique_path("nobody")
    pushq.enqueue(url=worker.url(path), method="PUT")
    [delivery] = worker.wait_for(path)
    assert delivery.method == "PUT"
    assert delivery.body == b""
    assert "content-type" not in delivery.headers
    # (the standardwebhooks package json-parses what it verifies, so not for an empty body)
    verify(TEST_SECRET, delivery.body, delivery.headers, now=time.time())


def test_retry_then_success_keeps_the_webhook_id(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("flaky")
    worker.script(path, 500, 503, Reply(200, b'{"done": true}'))
    job = pushq.enqueue(url=worker.url(path), body=1, **FAST_RETRY)
    deliveries = worker.wait_for(path, 3)
    assert {d.headers["webhook-id"] for d in deliveries} == {job["id"]}
    assert [d.headers["pushq-attempt"] for d in deliveries] == ["1", "2", "3"]
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["attempts"] == 3
    assert done["result"] == {"status": 200, "body": {"done": True}}
    attempts = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
    assert [a["status"] for a in attempts] == [500, 503, 200]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert all(a["duration_ms"] >= 0 and a["started_at"].endswith("Z") for a in attempts)


def test_a_404_is_retried_and_succeeds_on_the_second_attempt(
    pushq: PushqProcess, worker: Worker
) -> None:
    # a route that is still being deployed: 404 first, then there
    path = unique_path("deploying")
    worker.script(path, Reply(404, b"no such route"), 200)
    job = pushq.enqueue(url=worker.url(path), **FAST_RETRY)
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["attempts"] == 2
    attempts = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
    assert [a["status"] for a in attempts] == [404, 200]
    assert attempts[0]["response_body"] == "no such route"


def test_a_401_is_retried(pushq: PushqProcess, worker: Worker) -> None:
    # a worker whose signing secret is being rotated
    path = unique_path("rotating")
    worker.script(path, 401, 401, 200)
    job = pushq.enqueue(url=worker.url(path), **FAST_RETRY)
    assert pushq.wait_state(job["id"], "succeeded")["attempts"] == 3
    assert [d.headers["pushq-attempt"] for d in worker.to(path)] == ["1", "2", "3"]


def test_4xx_until_attempts_run_out_goes_to_the_dlq(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("bad-request")
    worker.script(path, 400)
    job = pushq.enqueue(url=worker.url(path), max_attempts=3, **FAST_RETRY)
    dead = pushq.wait_state(job["id"], "dead")
    assert dead["attempts"] == 3 and len(worker.to(path)) == 3
    assert dead["last_error"]["status"] == 400
    assert "exhausted" in dead["last_error"]["message"]


def test_410_gone_goes_straight_to_the_dlq(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("gone")
    worker.script(path, Reply(410, b"no such thing"))
    job = pushq.enqueue(url=worker.url(path), queue="perm", **FAST_RETRY)
    dead = pushq.wait_state(job["id"], "dead")
    assert dead["attempts"] == 1
    assert dead["last_error"]["status"] == 410
    assert dead["last_error"]["message"] == "HTTP 410 (permanent)"
    assert dead["failed_at"] is not None
    time.sleep(0.3)
    assert len(worker.to(path)) == 1  # never retried

    listed = pushq.client.get("/v1/dlq", params={"queue": "perm"}).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    detail = pushq.client.get(f"/v1/dlq/{job['id']}").json()
    assert detail["attempt_log"][0]["status"] == 410
    assert detail["attempt_log"][0]["response_body"] == "no such thing"


def test_a_queues_permanent_statuses_end_its_jobs_at_once(
    pushq: PushqProcess, worker: Worker
) -> None:
    queue = unique_path("strict")
    put = pushq.client.put(f"/v1/queues/{queue}", json={"permanent_statuses": [422, 400]})
    assert put.status_code == 200, put.text
    assert put.json()["permanent_statuses"] == [400, 422]
    assert pushq.client.get(f"/v1/queues/{queue}").json()["permanent_statuses"] == [400, 422]

    rejected, flaky = unique_path("rejected"), unique_path("flaky")
    worker.script(rejected, 422)
    worker.script(flaky, 404, 200)  # a status not in the list is still retried
    dead = pushq.enqueue(url=worker.url(rejected), queue=queue, **FAST_RETRY)
    alive = pushq.enqueue(url=worker.url(flaky), queue=queue, **FAST_RETRY)
    assert dead["permanent_statuses"] == [400, 422]  # what applies to the job
    killed = pushq.wait_state(dead["id"], "dead")
    assert killed["attempts"] == 1
    assert killed["last_error"]["message"] == "HTTP 422 (permanent)"
    assert pushq.wait_state(alive["id"], "succeeded")["attempts"] == 2


def test_a_jobs_own_permanent_statuses_override_its_queues(
    pushq: PushqProcess, worker: Worker
) -> None:
    queue = unique_path("strict-q")
    pushq.client.put(f"/v1/queues/{queue}", json={"permanent_statuses": [422]})
    own, none, inherited = unique_path("own"), unique_path("none"), unique_path("inherited")
    for path in (own, none, inherited):
        worker.script(path, 422, 409, 200)
    # the job's list replaces the queue's: 422 is retried, 409 is not
    by_own = pushq.enqueue(url=worker.url(own), queue=queue, permanent_statuses=[409], **FAST_RETRY)
    # an empty list of its own: everything (but 410) is retried
    by_none = pushq.enqueue(url=worker.url(none), queue=queue, permanent_statuses=[], **FAST_RETRY)
    by_queue = pushq.enqueue(url=worker.url(inherited), queue=queue, **FAST_RETRY)
    assert by_own["permanent_statuses"] == [409] and by_none["permanent_statuses"] == []

    dead = pushq.wait_state(by_own["id"], "dead")
    assert dead["attempts"] == 2 and dead["last_error"]["status"] == 409
    assert pushq.wait_state(by_none["id"], "succeeded")["attempts"] == 3
    assert pushq.wait_state(by_queue["id"], "dead")["attempts"] == 1


def test_a_job_without_permanent_statuses_does_not_show_them(
    pushq: PushqProcess, worker: Worker
) -> None:
    job = pushq.enqueue(url=worker.url(unique_path("plain")), queue=unique_path("plain-q"))
    assert "permanent_statuses" not in job
    assert "permanent_statuses" not in pushq.job(job["id"])


def test_permanent_statuses_are_validated(pushq: PushqProcess, worker: Worker) -> None:
    url = worker.url(unique_path("never"))
    # 404.0 is the integer 404 (JSON Schema's integers, as for every integer field)
    for bad in ([200], [204], [299], [600], [99], ["404"], [404.5], list(range(300, 351)), 404):
        response = pushq.client.post("/v1/jobs", json={"url": url, "permanent_statuses": bad})
        assert response.status_code == 400, (bad, response.text)
        assert "permanent_statuses" in response.json()["error"]["message"]
        queue = pushq.client.put("/v1/queues/validated", json={"permanent_statuses": bad})
        assert queue.status_code == 400, (bad, queue.text)
    fine = pushq.client.post(
        "/v1/jobs", json={"url": url, "permanent_statuses": [599, 300, 422, 422], "delay": "1h"}
    )
    assert fine.status_code == 201, fine.text
    assert fine.json()["permanent_statuses"] == [300, 422, 599]  # sorted, once each
    cleared = pushq.client.put("/v1/queues/validated", json={"permanent_statuses": None})
    assert cleared.status_code == 200 and cleared.json()["permanent_statuses"] is None


def test_exhausted_retries_go_to_the_dlq_and_redrive_brings_them_back(
    pushq: PushqProcess, worker: Worker
) -> None:
    path = unique_path("down")
    worker.script(path, 500)
    job = pushq.enqueue(url=worker.url(path), max_attempts=3, queue="exhaust", **FAST_RETRY)
    dead = pushq.wait_state(job["id"], "dead")
    assert dead["attempts"] == 3
    assert "exhausted" in dead["last_error"]["message"]
    assert len(worker.to(path)) == 3

    worker.script(path, 200)
    redriven = pushq.client.post(f"/v1/dlq/{job['id']}/retry")
    assert redriven.status_code == 200
    assert redriven.json()["state"] in ("pending", "active", "succeeded")
    assert redriven.json()["attempts"] == 0
    assert pushq.wait_state(job["id"], "succeeded")["attempts"] == 1
    assert pushq.client.get(f"/v1/dlq/{job['id']}").status_code == 404
    # the history of the first run is kept
    attempts = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
    assert [a["status"] for a in attempts] == [500, 500, 500, 200]


def test_bulk_redrive_and_delete(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("bulk")
    worker.script(path, 410)
    ids = [pushq.enqueue(url=worker.url(path), queue="bulk-q")["id"] for _ in range(3)]
    for job_id in ids:
        pushq.wait_state(job_id, "dead")
    assert pushq.client.delete(f"/v1/dlq/{ids[0]}").status_code == 204
    assert pushq.client.get(f"/v1/jobs/{ids[0]}").status_code == 404
    assert pushq.client.delete(f"/v1/dlq/{ids[0]}").status_code == 404

    worker.script(path, 200)
    response = pushq.client.post("/v1/dlq/retry", json={"queue": "bulk-q"})
    assert response.json() == {"retried": 2}
    for job_id in ids[1:]:
        pushq.wait_state(job_id, "succeeded")


def test_dlq_pages_newest_first(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("pages")
    worker.script(path, 410)
    ids = []
    for _ in range(5):
        job_id = pushq.enqueue(url=worker.url(path), queue="dlq-pages")["id"]
        pushq.wait_state(job_id, "dead")
        ids.append(job_id)
    seen, cursor = [], None
    while True:
        params = {"queue": "dlq-pages", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = pushq.client.get("/v1/dlq", params=params).json()
        seen += [j["id"] for j in page["jobs"]]
        assert all(j["last_error"] and j["failed_at"] for j in page["jobs"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_retry_after_is_honoured(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("later")
    worker.script(path, Reply(429, headers={"retry-after": "1"}), 200)
    job = pushq.enqueue(url=worker.url(path), **FAST_RETRY)
    first, second = worker.wait_for(path, 2, timeout=10)
    assert second.at - first.at >= 0.9  # backoff alone would have been 0.05 s
    pushq.wait_state(job["id"], "succeeded")


def test_delay_holds_the_job_until_due(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("delayed")
    before = time.time()
    job = pushq.enqueue(url=worker.url(path), delay="1s")
    assert job["state"] == "scheduled"
    listed = pushq.client.get("/v1/jobs", params={"state": "scheduled"}).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    [delivery] = worker.wait_for(path, timeout=5)
    assert delivery.at - before >= 1.0
    assert delivery.at - before < 2.0  # woken on time, not at a slow poll


def test_run_at_in_rfc3339(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("runat")
    when = time.time() + 0.8
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}Z"
    job = pushq.enqueue(url=worker.url(path), run_at=stamp)
    assert job["state"] == "scheduled"
    [delivery] = worker.wait_for(path, timeout=5)
    assert delivery.at >= when - 0.01


def test_idempotency_key_returns_the_same_job(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("idem")
    key = uuid.uuid4().hex
    first = pushq.client.post(
        "/v1/jobs", json={"url": worker.url(path)}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == 201
    assert first.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    again = pushq.client.post(
        "/v1/jobs", json={"url": worker.url("elsewhere"), "idempotency_key": key}
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["deduplicated"] is True
    assert again.json()["url"] == worker.url(path)  # the repeat call's own fields are ignored
    worker.wait_for(path)
    time.sleep(0.2)
    assert len(worker.to(path)) == 1


def test_unique_key_returns_the_unfinished_job(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("unique")
    first = pushq.enqueue(url=worker.url(path), unique_key="report-42", delay=60, queue="uq")
    again = pushq.client.post(
        "/v1/jobs", json={"url": worker.url(path), "unique_key": "report-42", "queue": "uq"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"] and again.json()["deduplicated"] is True
    other_queue = pushq.enqueue(url=worker.url(path), unique_key="report-42", queue="uq2")
    assert other_queue["id"] != first["id"]


def test_cancel_before_delivery(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("cancel")
    job = pushq.enqueue(url=worker.url(path), delay=1)
    cancelled = pushq.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    again = pushq.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"
    time.sleep(1.3)
    assert worker.to(path) == []
    assert pushq.client.post("/v1/jobs/nope/cancel").status_code == 404


def test_batch_is_one_transaction(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("batch")
    jobs = [{"url": worker.url(path), "body": {"n": n}} for n in range(20)]
    response = pushq.client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 201
    created = response.json()["jobs"]
    assert len(created) == 20 and len({j["id"] for j in created}) == 20
    worker.wait_for(path, 20)

    bad_path = unique_path("batch-bad")
    bad = [{"url": worker.url(bad_path)}, {"url": "ftp://nope"}, {"url": worker.url(bad_path)}]
    response = pushq.client.post("/v1/jobs/batch", json={"jobs": bad})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("jobs[1].url")
    time.sleep(0.3)
    assert worker.to(bad_path) == []  # nothing from the rejected batch was stored


def test_list_jobs_filters_and_pages(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("listing")
    ids = [pushq.enqueue(url=worker.url(path), queue="listing")["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"queue": "listing", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = pushq.client.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    wait_until(
        lambda: (
            len(
                pushq.client.get(
                    "/v1/jobs", params={"queue": "listing", "state": "succeeded"}
                ).json()["jobs"]
            )
            == 5
        )
    )


def test_timeout_cuts_a_hanging_endpoint(pushq: PushqProcess, worker: Worker) -> None:
    path = unique_path("hang")
    worker.script(path, Reply(200, sleep=5), 200)
    job = pushq.enqueue(url=worker.url(path), timeout=0.3, **FAST_RETRY)
    done = pushq.wait_state(job["id"], "succeeded", timeout=10)
    assert done["attempts"] == 2
    first = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"][0]
    assert first["status"] is None and "0.3s" in first["error"]


def test_health_metrics_and_openapi(pushq: PushqProcess) -> None:
    health = pushq.client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert "token" not in health.text.lower()
    metrics = pushq.client.get("/metrics", headers={"authorization": ""})
    assert metrics.status_code == 200
    assert "pushq_jobs_enqueued_total" in metrics.text
    assert 'pushq_jobs{queue="default",state="succeeded"}' in metrics.text
    spec = pushq.client.get("/openapi.json", headers={"authorization": ""}).json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/jobs" in spec["paths"] and "/v1/dlq/{id}/retry" in spec["paths"]
    assert "url" in spec["components"]["schemas"]["JobRequest"]["properties"]
