"""Long-running jobs end to end: async completion, progress and heartbeats, long
polling, callbacks."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
from standardwebhooks.webhooks import Webhook

from ..harness import (
    FAST_RETRY,
    TEST_SECRET,
    TEST_TOKEN,
    PushqProcess,
    Reply,
    Worker,
    wait_until,
)

ASYNC = Reply(202, b"accepted", headers={"pushq-async": "true"})


def path(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def call(
    pushq: PushqProcess, job_id: str, verb: str, token: str | None, body: object
) -> httpx.Response:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return httpx.post(f"{pushq.base_url}/v1/jobs/{job_id}/{verb}", json=body, headers=headers)


def started_async(pushq: PushqProcess, worker: Worker, **job: object) -> tuple[dict, str]:
    target = path("async")
    worker.script(target, ASYNC, 200)
    created = pushq.enqueue(url=worker.url(target), **job)
    [delivery] = worker.wait_for(target)
    wait_until(lambda: pushq.job(created["id"])["attempts"] == 1)
    return created, delivery.headers["pushq-job-token"]


def test_202_async_then_complete(pushq: PushqProcess, worker: Worker) -> None:
    job, token = started_async(pushq, worker)
    time.sleep(0.3)
    assert pushq.job(job["id"])["state"] == "active"  # held, not succeeded
    done = call(pushq, job["id"], "complete", token, {"result": {"rows": 42}})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "succeeded"
    assert done.json()["result"] == {"status": None, "body": {"rows": 42}}
    again = call(pushq, job["id"], "complete", token, {"result": 1})
    assert again.status_code == 409  # finished already
    attempts = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
    assert len(attempts) == 1 and attempts[0]["duration_ms"] >= 300


def test_fail_with_retry_then_without(pushq: PushqProcess, worker: Worker) -> None:
    target = path("fails")
    worker.script(target, ASYNC)
    job = pushq.enqueue(url=worker.url(target), **FAST_RETRY)
    first = worker.wait_for(target)[0].headers["pushq-job-token"]
    wait_until(lambda: pushq.job(job["id"])["attempts"] == 1)
    response = call(pushq, job["id"], "fail", first, {"error": "upstream busy"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] in ("retrying", "pending", "active")
    second = worker.wait_for(target, 2)[1].headers["pushq-job-token"]
    wait_until(lambda: pushq.job(job["id"])["attempts"] == 2)
    # the first attempt's token is refused once the job was retried
    stale = call(pushq, job["id"], "complete", first, {"result": None})
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "stale_job_token"
    dead = call(pushq, job["id"], "fail", second, {"error": "bad input", "retry": False})
    assert dead.status_code == 200
    assert dead.json()["state"] == "dead"
    assert "bad input" in dead.json()["last_error"]["message"]


def test_tokens_are_checked(pushq: PushqProcess, worker: Worker) -> None:
    job, token = started_async(pushq, worker)
    assert call(pushq, job["id"], "complete", None, {}).status_code == 401
    assert call(pushq, job["id"], "complete", "1.forged", {}).status_code == 403
    other, other_token = started_async(pushq, worker)
    assert call(pushq, job["id"], "progress", other_token, {"percent": 5}).status_code == 403
    assert call(pushq, "no-such-job", "progress", token, {}).status_code == 404
    bad = call(pushq, job["id"], "progress", token, {"percent": 150})
    assert bad.status_code == 400 and "percent" in bad.json()["error"]["message"]
    # the API token works too
    assert call(pushq, job["id"], "complete", TEST_TOKEN, {"result": "ok"}).status_code == 200
    assert call(pushq, other["id"], "complete", other_token, {}).status_code == 200


def test_progress_is_visible_and_heartbeats_keep_the_job(
    pushq: PushqProcess, worker: Worker
) -> None:
    job, token = started_async(pushq, worker, timeout=1)
    for percent in (10, 40, 70, 90):
        time.sleep(0.4)  # 1.6 s in all: longer than the timeout, alive thanks to heartbeats
        response = call(
            pushq,
            job["id"],
            "progress",
            token,
            {
                "percent": percent,
                "current": percent,
                "total": 100,
                "message": "encoding",
                "meta": {"stage": "video"},
            },
        )
        assert response.status_code == 200, response.text
    shown = pushq.job(job["id"])
    assert shown["state"] == "active" and shown["attempts"] == 1
    assert shown["progress"]["percent"] == 90 and shown["progress"]["meta"] == {"stage": "video"}
    assert call(pushq, job["id"], "complete", token, {"result": "done"}).status_code == 200


def test_missing_heartbeats_retry_the_job(pushq: PushqProcess, worker: Worker) -> None:
    target = path("silent")
    worker.script(target, ASYNC, 200)
    job = pushq.enqueue(url=worker.url(target), timeout=0.5, **FAST_RETRY)
    worker.wait_for(target, 2, timeout=10)  # no heartbeat: timed out and delivered again
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["attempts"] == 2
    first = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"][0]
    assert "heartbeat" in first["error"]


def test_long_poll_returns_when_the_job_finishes(pushq: PushqProcess, worker: Worker) -> None:
    job, token = started_async(pushq, worker)
    answered: dict[str, object] = {}

    def long_poll() -> None:
        started = time.monotonic()
        response = pushq.client.get(f"/v1/jobs/{job['id']}", params={"wait": 20}, timeout=30)
        answered.update(response.json(), elapsed=time.monotonic() - started)

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.5)
    assert not answered  # still waiting
    call(pushq, job["id"], "complete", token, {"result": 7})
    poller.join(timeout=10)
    assert answered["state"] == "succeeded"
    assert 0.4 < float(answered["elapsed"]) < 2.0  # type: ignore[arg-type]
    quick = pushq.client.get(f"/v1/jobs/{job['id']}", params={"wait": 5})
    assert quick.json()["state"] == "succeeded"  # a finished job answers at once
    assert pushq.client.get(f"/v1/jobs/{job['id']}", params={"wait": "x"}).status_code == 400
    assert pushq.client.get(f"/v1/jobs/{job['id']}", params={"wait": 3600}).status_code == 400


def test_callbacks_are_signed_jobs(pushq: PushqProcess, worker: Worker) -> None:
    ok_target, bad_target = path("cb-ok"), path("cb-bad")
    on_success, on_failure = path("on-success"), path("on-failure")
    worker.script(bad_target, 400)
    good = pushq.enqueue(
        url=worker.url(ok_target),
        body={"n": 1},
        callback_url=worker.url(on_success),
        failure_callback_url=worker.url(on_failure),
    )
    bad = pushq.enqueue(
        url=worker.url(bad_target),
        permanent_statuses=[400],  # else a 400 is retried like any failure
        callback_url=worker.url(on_success),
        failure_callback_url=worker.url(on_failure),
    )
    [success] = worker.wait_for(on_success, timeout=10)
    [failure] = worker.wait_for(on_failure, timeout=10)
    Webhook(TEST_SECRET).verify(success.body, success.headers)
    Webhook(TEST_SECRET).verify(failure.body, failure.headers)
    reported = json.loads(success.body)
    assert reported["id"] == good["id"] and reported["state"] == "succeeded"
    assert reported["result"] == {"status": 200, "body": "ok"}
    died = json.loads(failure.body)
    assert died["id"] == bad["id"] and died["state"] == "dead"
    assert died["last_error"]["status"] == 400
    # a callback is a job of its own: visible, in the pushq.callbacks queue
    callback_id = success.headers["webhook-id"]
    shown = pushq.job(callback_id)
    assert shown["queue"] == "pushq.callbacks" and shown["url"] == worker.url(on_success)
