"""Operators' actions end to end (issue 14): run now, replay, delete, cancel by filter,
purge and remove queues, filtered and spread DLQ redrive, job search, schedule actions."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import pytest

from pushq.server.api.schemas import CancelResult, JobList, JobOut, RedriveResult, ScheduleOut

from ..harness import PushqProcess, Reply, Worker


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post(pushq: PushqProcess, path: str, body: Any = None, status: int = 200) -> Any:
    response = pushq.client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(pushq: PushqProcess, method: str, path: str, status: int, **kwargs: Any) -> str:
    response = pushq.client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    message: str = response.json()["error"]["message"]
    return message


def listed(pushq: PushqProcess, **params: Any) -> list[str]:
    response = pushq.client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    JobList.model_validate(response.json())
    return [job["id"] for job in response.json()["jobs"]]


# -- run now, replay, delete ---------------------------------------------------------


def test_retry_runs_a_scheduled_job_now_without_an_attempt(
    pushq: PushqProcess, worker: Worker
) -> None:
    path = name("later")
    job = pushq.enqueue(url=worker.url(path), delay="1h")
    ran = JobOut.model_validate(post(pushq, f"/v1/jobs/{job['id']}/retry"))
    assert ran.state == "pending" and ran.attempts == 0
    worker.wait_for(path)
    assert pushq.wait_state(job["id"], "succeeded")["attempts"] == 1


def test_retry_cuts_a_retry_wait_short(pushq: PushqProcess, worker: Worker) -> None:
    path = name("flaky")
    worker.script(path, 500, 200)
    job = pushq.enqueue(url=worker.url(path), backoff={"base": 3600, "jitter": False})
    pushq.wait_state(job["id"], "retrying")
    post(pushq, f"/v1/jobs/{job['id']}/retry")
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["attempts"] == 2 and done["last_error"] is None


def test_retry_redrives_a_dead_job_and_the_attempt_log_marks_it(
    pushq: PushqProcess, worker: Worker
) -> None:
    path = name("dead-then-ok")
    worker.script(path, Reply(500, b'{"error": "database is down"}'), 200)
    job = pushq.enqueue(url=worker.url(path), max_attempts=1)
    dead = pushq.wait_state(job["id"], "dead")
    assert dead["last_error"]["response"] == "database is down"

    assert post(pushq, f"/v1/jobs/{job['id']}/retry")["state"] in ("pending", "active")
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["last_error"] is None and done["attempts"] == 1
    attempts = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
    assert [(a["number"], a["redrive"]) for a in attempts] == [(1, 0), (1, 1)]


def test_retry_answers_409_for_active_and_finished_jobs(
    pushq: PushqProcess, worker: Worker
) -> None:
    slow = name("slow")
    worker.script(slow, Reply(200, sleep=1.0))
    active = pushq.enqueue(url=worker.url(slow))
    pushq.wait_state(active["id"], "active")
    message = error(pushq, "POST", f"/v1/jobs/{active['id']}/retry", 409)
    assert "active" in message
    pushq.wait_state(active["id"], "succeeded")
    assert "succeeded" in error(pushq, "POST", f"/v1/jobs/{active['id']}/retry", 409)
    later = pushq.enqueue(url=worker.url(slow), delay="1h")
    post(pushq, f"/v1/jobs/{later['id']}/cancel")
    assert "cancelled" in error(pushq, "POST", f"/v1/jobs/{later['id']}/retry", 409)
    assert error(pushq, "POST", "/v1/jobs/NOSUCHJOB/retry", 404) == "no job NOSUCHJOB"


def test_replay_makes_a_new_linked_job(pushq: PushqProcess, worker: Worker) -> None:
    path = name("replay")
    job = pushq.enqueue(url=worker.url(path), body={"n": 1}, tags=["t"], idempotency_key=path)
    pushq.wait_state(job["id"], "succeeded")
    response = pushq.client.post(f"/v1/jobs/{job['id']}/replay")
    assert response.status_code == 201, response.text
    replay = JobOut.model_validate(response.json())
    assert replay.replay_of == job["id"] and replay.id != job["id"]
    assert replay.body == {"n": 1} and replay.tags == ["t"] and replay.idempotency_key is None
    assert response.headers["location"] == f"/v1/jobs/{replay.id}"
    pushq.wait_state(replay.id, "succeeded")
    assert len(worker.wait_for(path, 2)) == 2
    assert error(pushq, "POST", "/v1/jobs/NOSUCHJOB/replay", 404) == "no job NOSUCHJOB"


def test_delete_a_finished_job(pushq: PushqProcess, worker: Worker) -> None:
    job = pushq.enqueue(url=worker.url(name("del")))
    waiting = pushq.enqueue(url=worker.url(name("del")), delay="1h")
    pushq.wait_state(job["id"], "succeeded")
    assert "not finished" in error(pushq, "DELETE", f"/v1/jobs/{waiting['id']}", 409)
    assert pushq.client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert pushq.client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert pushq.client.delete(f"/v1/jobs/{job['id']}").status_code == 404


# -- cancel by filter, purge, remove a queue ---------------------------------------------


def test_bulk_cancel_by_filter(pushq: PushqProcess, worker: Worker) -> None:
    tag, queue = name("customer"), name("bulk")
    mine = [pushq.enqueue(url=worker.url("x"), queue=queue, tags=[tag], delay="1h")["id"]]
    mine.append(pushq.enqueue(url=worker.url("x"), queue=queue, tags=[tag, "b"], delay=60)["id"])
    other = pushq.enqueue(url=worker.url("x"), queue=queue, delay="1h")["id"]

    result = CancelResult.model_validate(post(pushq, "/v1/jobs/cancel", {"tag": tag}))
    assert result.cancelled == 2
    assert {pushq.job(job_id)["state"] for job_id in mine} == {"cancelled"}
    assert pushq.job(other)["state"] == "scheduled"
    assert post(pushq, "/v1/jobs/cancel", {"tag": tag}) == {"cancelled": 0}
    assert "at least one filter" in error(pushq, "POST", "/v1/jobs/cancel", 400, json={})
    assert "state" in error(
        pushq, "POST", "/v1/jobs/cancel", 400, json={"queue": queue, "state": "dead"}
    )
    assert "not a known field" in error(pushq, "POST", "/v1/jobs/cancel", 400, json={"x": 1})


def test_purge_and_remove_a_queue(pushq: PushqProcess, worker: Worker) -> None:
    queue = name("purge")
    later = pushq.enqueue(url=worker.url("x"), queue=queue, delay="1h")["id"]
    pushq.client.post(f"/v1/queues/{queue}/pause")
    due = pushq.enqueue(url=worker.url("x"), queue=queue)["id"]

    assert post(pushq, f"/v1/queues/{queue}/purge", {"states": ["pending"]}) == {"cancelled": 1}
    assert pushq.job(due)["state"] == "cancelled" and pushq.job(later)["state"] == "scheduled"
    message = error(pushq, "DELETE", f"/v1/queues/{queue}", 409)
    assert "1 unfinished" in message and "force=true" in message
    assert pushq.client.delete(f"/v1/queues/{queue}", params={"force": "true"}).status_code == 204
    assert pushq.job(later)["state"] == "cancelled"
    assert pushq.client.get(f"/v1/queues/{queue}").status_code == 404
    assert error(pushq, "POST", f"/v1/queues/{queue}/purge", 404) == f"no queue {queue}"
    assert error(pushq, "DELETE", f"/v1/queues/{queue}", 404) == f"no queue {queue}"
    assert "force" in error(pushq, "DELETE", "/v1/queues/x", 400, params={"force": "yes"})
    bad = {"states": ["succeeded"]}
    assert "states" in error(pushq, "POST", f"/v1/queues/{queue}/purge", 400, json=bad)


def test_purge_without_a_body_cancels_every_unfinished_job(
    pushq: PushqProcess, worker: Worker
) -> None:
    queue = name("purge-all")
    pushq.client.post(f"/v1/queues/{queue}/pause")  # nothing is delivered before the purge
    for delay in (0, 3600):
        pushq.enqueue(url=worker.url("x"), queue=queue, delay=delay)
    before = 2
    assert post(pushq, f"/v1/queues/{queue}/purge")["cancelled"] == before
    assert pushq.client.delete(f"/v1/queues/{queue}").status_code == 204


# -- the DLQ: filtered, spread redrive ---------------------------------------------------


def test_dlq_redrive_by_filter_with_dry_run_and_a_rate(pushq: PushqProcess, worker: Worker) -> None:
    queue, path = name("redrive"), name("down")
    worker.script(path, Reply(503, b"upstream down\nretry later"))
    ids = [
        pushq.enqueue(url=worker.url(f"{path}"), queue=queue, max_attempts=1)["id"]
        for _ in range(4)
    ]
    rejected = name("other")
    worker.script(rejected, 400)
    other = pushq.enqueue(url=worker.url(rejected), queue=queue, max_attempts=1)
    for job_id in [*ids, other["id"]]:
        pushq.wait_state(job_id, "dead")
    dead = pushq.client.get("/v1/dlq", params={"queue": queue}).json()["jobs"]
    entry = next(job for job in dead if job["id"] == ids[0])
    assert entry["url"] == worker.url(path) and entry["last_error"]["response"] == "upstream down"

    filters = {"queue": queue, "url_prefix": worker.url(path), "status": 503}
    dry = RedriveResult.model_validate(post(pushq, "/v1/dlq/retry", {**filters, "dry_run": True}))
    assert dry.matched == 4 and dry.retried is None
    assert post(
        pushq, "/v1/dlq/retry", {"queue": queue, "error_contains": "UPSTREAM", "dry_run": True}
    ) == {"matched": 4}
    assert post(pushq, "/v1/dlq/retry", {"queue": queue, "since": "1h", "dry_run": True}) == {
        "matched": 5
    }
    assert post(
        pushq, "/v1/dlq/retry", {"queue": queue, "until": "2000-01-01T00:00:00Z", "dry_run": True}
    ) == {"matched": 0}

    pushq.client.post(f"/v1/queues/{queue}/pause")  # hold them to read their run_at
    assert post(pushq, "/v1/dlq/retry", {**filters, "rate_limit": "2/s"}) == {"retried": 4}
    run_at = sorted(datetime.fromisoformat(pushq.job(job_id)["run_at"]) for job_id in ids)
    gaps = [(b - a).total_seconds() for a, b in zip(run_at, run_at[1:], strict=False)]
    assert gaps == pytest.approx([0.5, 0.5, 0.5], abs=0.01)
    assert pushq.job(other["id"])["state"] == "dead"
    pushq.client.post(f"/v1/queues/{queue}/resume")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"since": "yesterday"}, "since"),
        ({"status": 42}, "status"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"url_prefix": ""}, "url_prefix"),
    ],
)
def test_bad_redrive_filters_are_400(
    pushq: PushqProcess, body: dict[str, Any], fragment: str
) -> None:
    assert fragment in error(pushq, "POST", "/v1/dlq/retry", 400, json=body)


# -- finding jobs ------------------------------------------------------------------------


def test_list_filters(pushq: PushqProcess, worker: Worker) -> None:
    tag, key = name("tag"), name("acct")
    base = worker.url(name("cust"))
    a = pushq.enqueue(url=f"{base}/a", tags=[tag, "x"], flow_key=key, delay="1h")
    b = pushq.enqueue(url=f"{base}/b", tags=[tag], delay="1h")
    c = pushq.enqueue(url=worker.url(name("else")), flow_key=key, delay="1h")
    assert a["tags"] == [tag, "x"] and a["flow_key"] == key and a["schedule"] is None

    assert listed(pushq, tag=tag) == [b["id"], a["id"]]
    assert listed(pushq, url_prefix=base) == [b["id"], a["id"]]
    assert listed(pushq, flow_key=key) == [c["id"], a["id"]]
    assert listed(pushq, flow_key=key, tag=tag) == [a["id"]]
    assert listed(pushq, tag=tag, state="scheduled", limit=1) == [b["id"]]
    assert listed(pushq, tag=tag, since=a["created_at"]) == [b["id"], a["id"]]
    assert listed(pushq, tag=tag, until=a["created_at"]) == []
    assert listed(pushq, tag=tag, since="1h") == [b["id"], a["id"]]
    assert listed(pushq, topic="none-such") == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"tag": "x" * 65}, "tag"),
        ({"since": "soon"}, "since"),
        ({"until": "2026-01-01T00:00:00"}, "zone offset"),
        ({"schedule": "bad name"}, "schedule"),
        ({"url_prefix": ""}, "url_prefix"),
    ],
)
def test_bad_list_filters_are_400(
    pushq: PushqProcess, params: dict[str, str], fragment: str
) -> None:
    assert fragment in error(pushq, "GET", "/v1/jobs", 400, params=params)


@pytest.mark.parametrize(
    ("job", "fragment"),
    [
        ({"tags": ["x"] * 11}, "tags"),
        ({"tags": ["x" * 65]}, "tags[0]"),
        ({"tags": "x"}, "tags"),
        ({"flow_key": "k" * 257}, "flow_key"),
    ],
)
def test_bad_tags_and_flow_keys_are_400(
    pushq: PushqProcess, job: dict[str, Any], fragment: str
) -> None:
    message = error(pushq, "POST", "/v1/jobs", 400, json={"url": "http://127.0.0.1:9/x", **job})
    assert message.startswith(fragment)


def test_a_dead_jobs_entry_shows_the_endpoints_own_message(
    pushq: PushqProcess, worker: Worker
) -> None:
    replies = {
        name("json"): (
            Reply(422, json.dumps({"message": "email is invalid"}).encode()),
            "email is invalid",
        ),
        name("nested"): (
            Reply(400, b'{"error": {"message": "no such customer"}}'),
            "no such customer",
        ),
        name("text"): (
            Reply(500, b"\n  Internal Server Error\n<html>...</html>"),
            "Internal Server Error",
        ),
        name("empty"): (Reply(500, b""), None),
    }
    for path, (reply, _) in replies.items():
        worker.script(path, reply)
    jobs = {path: pushq.enqueue(url=worker.url(path), max_attempts=1)["id"] for path in replies}
    for path, (_, expected) in replies.items():
        dead = pushq.wait_state(jobs[path], "dead")
        assert dead["last_error"]["response"] == expected, path


# -- schedules ---------------------------------------------------------------------------


def test_schedule_pause_resume_trigger_and_recent_runs(pushq: PushqProcess, worker: Worker) -> None:
    schedule, path = name("sched"), name("nightly")
    put = pushq.client.put(
        f"/v1/schedules/{schedule}", json={"cron": "@daily", "job": {"url": worker.url(path)}}
    )
    assert put.status_code == 200, put.text
    body = ScheduleOut.model_validate(put.json())
    assert body.cron == "@daily" and body.paused is False and body.recent_runs == []
    assert body.next_run_at.endswith("T00:00:00.000Z")

    paused = ScheduleOut.model_validate(post(pushq, f"/v1/schedules/{schedule}/pause"))
    assert paused.paused
    assert pushq.client.get(f"/v1/schedules/{schedule}").json()["paused"] is True
    response = pushq.client.post(f"/v1/schedules/{schedule}/trigger")
    assert response.status_code == 201, response.text
    job = JobOut.model_validate(response.json())
    assert job.schedule == schedule and job.url == worker.url(path)
    pushq.wait_state(job.id, "succeeded")

    shown = ScheduleOut.model_validate(pushq.client.get(f"/v1/schedules/{schedule}").json())
    assert [(run.id, run.state) for run in shown.recent_runs] == [(job.id, "succeeded")]
    assert listed(pushq, schedule=schedule) == [job.id]
    resumed = ScheduleOut.model_validate(post(pushq, f"/v1/schedules/{schedule}/resume"))
    assert not resumed.paused and resumed.next_run_at == body.next_run_at
    listing = pushq.client.get("/v1/schedules").json()["schedules"]
    assert next(s for s in listing if s["name"] == schedule)["recent_runs"][0]["id"] == job.id
    for action in ("pause", "resume", "trigger"):
        assert error(pushq, "POST", f"/v1/schedules/nope-{schedule}/{action}", 404)
    pushq.client.delete(f"/v1/schedules/{schedule}")


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 0 * * 9", "cron: day-of-week: 9 is out of range 0-6"),
        ("60 * * * *", "cron: minute: 60 is out of range 0-59"),
        ("0 24 * * *", "cron: hour: 24 is out of range 0-23"),
        ("0 0 0 * *", "cron: day-of-month: 0 is out of range 1-31"),
        ("0 0 1 13 *", "cron: month: 13 is out of range 1-12"),
        ("0 0 * foo *", "cron: month: 'foo' is not a number or a name (jan-dec)"),
        ("*/0 * * * *", "cron: minute: the step in '*/0' must be a whole number from 1"),
        ("0 5-1 * * *", "cron: hour: the range '5-1' runs backwards"),
        ("@often", "cron: '@often' is not a macro"),
        ("0 0 * *", "cron: a cron expression has 5 fields"),
    ],
)
def test_cron_errors_name_the_field(pushq: PushqProcess, cron: str, message: str) -> None:
    body = {"cron": cron, "job": {"url": "http://127.0.0.1:9/x"}}
    assert error(pushq, "PUT", "/v1/schedules/bad-cron", 400, json=body).startswith(message)


@pytest.mark.parametrize("macro", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"])
def test_cron_macros(pushq: PushqProcess, macro: str) -> None:
    body = {"cron": macro.upper(), "job": {"url": "http://127.0.0.1:9/x"}}
    response = pushq.client.put(f"/v1/schedules/macro{macro[1:]}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["cron"] == macro
    pushq.client.delete(f"/v1/schedules/macro{macro[1:]}")
