"""GET /v1/stats/timeseries (the dashboard's charts) and the DLQ's filtered list and
bulk delete, against a real pushq process and a real worker on loopback."""

from __future__ import annotations

from ..harness import PushqProcess, Reply, Worker


def test_timeseries_counts_deliveries_and_failures_per_queue(
    pushq: PushqProcess, worker: Worker
) -> None:
    worker.script("stats/ok", Reply(200, b"{}", sleep=0.05))
    worker.script("stats/bad", 410)
    ok = [pushq.enqueue(url=worker.url("stats/ok"), queue="stats-ok") for _ in range(4)]
    bad = [pushq.enqueue(url=worker.url("stats/bad"), queue="stats-bad") for _ in range(2)]
    for job in ok:
        pushq.wait_state(job["id"], "succeeded")
    for job in bad:
        pushq.wait_state(job["id"], "dead")

    answer = pushq.client.get("/v1/stats/timeseries")
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert stats["interval_seconds"] == 60
    assert stats["from"] < stats["to"]
    by_queue = {q["queue"]: q for q in stats["queues"]}
    assert (by_queue["stats-ok"]["delivered"], by_queue["stats-ok"]["failed"]) == (4, 0)
    assert (by_queue["stats-bad"]["delivered"], by_queue["stats-bad"]["failed"]) == (0, 2)
    ok_series = by_queue["stats-ok"]
    assert len(ok_series["points"]) == 60
    assert sum(p["delivered"] for p in ok_series["points"]) == 4
    # the worker sleeps 50 ms: no attempt is faster, and the p99 is at least the p50
    assert 50 <= ok_series["latency_p50_ms"] <= ok_series["latency_p99_ms"]
    assert stats["total"]["delivered"] >= 4 and stats["total"]["failed"] >= 2
    at = [p["at"] for p in ok_series["points"]]
    assert at == sorted(at) and at[0] == stats["from"]

    narrowed = pushq.client.get("/v1/stats/timeseries?queue=stats-bad&minutes=5").json()
    assert [q["queue"] for q in narrowed["queues"]] == ["stats-bad"]
    assert len(narrowed["queues"][0]["points"]) == 5


def test_timeseries_refuses_bad_parameters_and_needs_the_token(pushq: PushqProcess) -> None:
    bad = (("minutes=0", "minutes"), ("minutes=61", "minutes"), ("queue=a b", "queue"))
    for query, word in bad:
        answer = pushq.client.get(f"/v1/stats/timeseries?{query}")
        assert answer.status_code == 400, answer.text
        assert word in answer.json()["error"]["message"]
    anonymous = pushq.client.get("/v1/stats/timeseries", headers={"authorization": ""})
    assert anonymous.status_code == 401


def test_dlq_lists_and_deletes_by_filter(pushq: PushqProcess, worker: Worker) -> None:
    worker.script("stats/acme", Reply(400, b'{"error": "acme account closed"}'))
    worker.script("stats/other", 410)
    common = {"queue": "stats-dlq", "max_attempts": 1}
    acme = [
        pushq.enqueue(url=worker.url("stats/acme"), tags=["stats-acme"], **common) for _ in range(3)
    ]
    other = pushq.enqueue(url=worker.url("stats/other"), **common)
    for job in [*acme, other]:
        pushq.wait_state(job["id"], "dead")

    prefix = worker.url("stats/acme")
    listed = pushq.client.get("/v1/dlq", params={"queue": "stats-dlq", "url_prefix": prefix})
    assert listed.status_code == 200, listed.text
    assert {j["id"] for j in listed.json()["jobs"]} == {j["id"] for j in acme}
    by_error = pushq.client.get(
        "/v1/dlq", params={"queue": "stats-dlq", "error_contains": "ACCOUNT CLOSED"}
    )
    assert len(by_error.json()["jobs"]) == 3
    by_status = pushq.client.get("/v1/dlq", params={"queue": "stats-dlq", "status": "410"})
    assert [j["id"] for j in by_status.json()["jobs"]] == [other["id"]]
    tagged = pushq.client.get("/v1/dlq", params={"tag": "stats-acme"})
    assert {j["id"] for j in tagged.json()["jobs"]} == {j["id"] for j in acme}
    recent = pushq.client.get("/v1/dlq", params={"queue": "stats-dlq", "since": "1h"})
    assert len(recent.json()["jobs"]) == 4
    for bad in ({"status": "abc"}, {"since": "yesterday"}, {"url_prefix": ""}):
        refused = pushq.client.get("/v1/dlq", params=bad)
        assert refused.status_code == 400, (bad, refused.text)

    body = {"queue": "stats-dlq", "error_contains": "account closed"}
    dry = pushq.client.post("/v1/dlq/delete", json={**body, "dry_run": True})
    assert dry.json() == {"matched": 3}
    assert len(pushq.client.get("/v1/dlq", params={"queue": "stats-dlq"}).json()["jobs"]) == 4
    gone = pushq.client.post("/v1/dlq/delete", json=body)
    assert gone.status_code == 200, gone.text
    assert gone.json()["deleted"] == 3
    for job in acme:
        assert pushq.client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert pushq.job(other["id"])["state"] == "dead"
    refused = pushq.client.post("/v1/dlq/delete", json={"rate_limit": "5/s"})
    assert refused.status_code == 400  # a delete has no rate
