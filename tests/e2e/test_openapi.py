"""/openapi.json describes what the server really answers: real responses validate
against the response models the document is generated from."""

from __future__ import annotations

import uuid

from pushq.server.api.schemas import (
    AttemptList,
    DeadJob,
    JobList,
    JobOut,
    QueueList,
    QueueOut,
    ScheduleList,
    ScheduleOut,
)
from pushq.server.app import ENDPOINTS

from ..harness import PushqProcess, Reply, Worker


def test_responses_match_their_documented_models(pushq: PushqProcess, worker: Worker) -> None:
    path = f"doc-{uuid.uuid4().hex[:6]}"
    worker.script(path, Reply(404, b"gone"))
    put = pushq.client.put("/v1/queues/documented", json={"permanent_statuses": [404]})
    QueueOut.model_validate(put.json())
    job = pushq.enqueue(
        url=worker.url(path),
        queue="documented",
        body={"a": [1, 2]},
        ordering_key="k",
        callback_url=worker.url("cb"),
    )
    assert job["permanent_statuses"] == [404]  # the queue's, as the job carries it
    JobOut.model_validate(job)
    pushq.wait_state(job["id"], "dead")
    client = pushq.client
    JobOut.model_validate(client.get(f"/v1/jobs/{job['id']}").json())
    JobList.model_validate(client.get("/v1/jobs", params={"queue": "documented"}).json())
    AttemptList.model_validate(client.get(f"/v1/jobs/{job['id']}/attempts").json())
    DeadJob.model_validate(client.get(f"/v1/dlq/{job['id']}").json())
    JobList.model_validate(client.get("/v1/dlq").json())
    QueueOut.model_validate(client.get("/v1/queues/documented").json())
    QueueList.model_validate(client.get("/v1/queues").json())
    put = client.put(
        "/v1/schedules/documented", json={"cron": "0 * * * *", "job": {"url": worker.url(path)}}
    )
    ScheduleOut.model_validate(put.json())
    ScheduleList.model_validate(client.get("/v1/schedules").json())
    client.delete("/v1/schedules/documented")


def test_permanent_statuses_are_documented(pushq: PushqProcess) -> None:
    schemas = pushq.client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("JobRequest", "QueueRequest"):
        [given, _null] = schemas[model]["properties"]["permanent_statuses"]["anyOf"]
        assert given["type"] == "array" and given["maxItems"] == 50
        assert given["items"] == {"type": "integer", "minimum": 300, "maximum": 599}
    assert "permanent_statuses" in schemas["QueueOut"]["properties"]
    assert "permanent_statuses" in schemas["JobOut"]["properties"]


def test_every_route_is_documented(pushq: PushqProcess) -> None:
    spec = pushq.client.get("/openapi.json").json()
    for endpoint in ENDPOINTS:
        operation = spec["paths"][endpoint.path][endpoint.method.lower()]
        assert operation["summary"]
        assert str(endpoint.status) in operation["responses"]
        if endpoint.auth:
            assert operation["security"] == [{"bearer": []}]


def test_v2_is_deliberately_separate(pushq: PushqProcess) -> None:
    """The QStash-compatible /v2 routes follow QStash's API reference, not this document
    (docs/qstash.md): they are mounted apart from ENDPOINTS and left out on purpose."""
    spec = pushq.client.get("/openapi.json").json()
    assert not any(path.startswith("/v2") for path in spec["paths"])
    assert not any(endpoint.path.startswith("/v2") for endpoint in ENDPOINTS)
    assert pushq.client.get("/v2/keys").status_code == 200  # yet served
