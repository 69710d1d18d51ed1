"""Observability end to end: /health limits on backlog and age, /metrics per queue,
JSON logs, against a real pushq and a real worker."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest

from pushq.errors import ConfigError
from pushq.server.config import read_options
from pushq.server.logs import JsonFormatter

from ..harness import FAST_RETRY, TEST_SECRET, TEST_TOKEN, PushqProcess, Reply, Worker, wait_until

MAX_BACKLOG = 3


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushqProcess]:
    """One pushq with a backlog limit, JSON logs and /metrics behind the token."""
    server = PushqProcess(
        tmp_path_factory.mktemp("observed"),
        {
            "PUSHQ_HEALTH_MAX_BACKLOG": str(MAX_BACKLOG),
            "PUSHQ_LOG_FORMAT": "json",
            "PUSHQ_METRICS_AUTH": "true",
        },
    )
    server.start()
    yield server
    server.close()


def sample(metrics: str, series: str) -> float | None:
    """The value of one series (`name{label="v",...}`, labels sorted) in an exposition."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.MULTILINE)
    return None if match is None else float(match.group(1))


def scrape(pushq: PushqProcess) -> str:
    response = pushq.client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


# -- /health ------------------------------------------------------------------------------


def test_health_fails_while_a_queue_holds_more_ready_jobs_than_the_limit(
    observed: PushqProcess, worker: Worker
) -> None:
    queue = name("backlog")
    observed.client.post(f"/v1/queues/{queue}/pause").raise_for_status()
    jobs = [
        observed.enqueue(url=worker.url(name("x")), queue=queue, body={"n": n})
        for n in range(MAX_BACKLOG)
    ]
    health = observed.client.get("/health", headers={"authorization": ""})
    assert health.status_code == 200, health.text  # at the limit is fine
    assert health.json()["backlog"] == "ok"

    jobs.append(observed.enqueue(url=worker.url(name("x")), queue=queue))
    health = observed.client.get("/health", headers={"authorization": ""})
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unavailable" and body["backlog"] == "over_limit"
    assert body["database"] == "ok" and body["dispatcher"] == "ok"
    [reason] = body["reasons"]
    assert queue in reason and f"{MAX_BACKLOG + 1} ready jobs" in reason
    assert TEST_TOKEN not in health.text and TEST_SECRET not in health.text
    assert "127.0.0.1" not in health.text  # no job URLs either

    # Delayed jobs are not ready: they don't count against the limit.
    other = name("delayed")
    for _ in range(MAX_BACKLOG + 1):
        jobs.append(observed.enqueue(url=worker.url(name("x")), queue=other, delay=60))
    observed.client.post(f"/v1/jobs/{jobs[0]['id']}/cancel").raise_for_status()
    health = observed.client.get("/health")
    assert health.status_code == 200, health.text
    for job in jobs[1:]:
        observed.client.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status()


def test_health_fails_when_the_oldest_ready_job_waited_too_long(
    start_pushq: Callable[..., PushqProcess], worker: Worker
) -> None:
    pushq = start_pushq(PUSHQ_HEALTH_MAX_AGE="300ms")
    queue = name("aging")
    pushq.client.post(f"/v1/queues/{queue}/pause").raise_for_status()
    job = pushq.enqueue(url=worker.url(name("x")), queue=queue)

    def unhealthy() -> dict[str, object] | None:
        response = pushq.client.get("/health")
        body: dict[str, object] = response.json()
        return body if response.status_code == 503 else None

    body = wait_until(unhealthy, timeout=10)
    [reason] = body["reasons"]
    assert queue in reason and "oldest ready job" in reason and "0.3s" in reason
    pushq.client.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status()
    assert pushq.client.get("/health").status_code == 200


def test_health_limits_are_validated_naming_the_variable() -> None:
    values = read_options(
        {"health_max_age": "5m"}, {"PUSHQ_HEALTH_MAX_BACKLOG": "10000", "PUSHQ_LOG_FORMAT": "JSON"}
    )
    assert values == {"health_max_age": 300.0, "health_max_backlog": 10000, "log_format": "json"}
    for env, bad in (
        ("PUSHQ_HEALTH_MAX_BACKLOG", "0"),
        ("PUSHQ_HEALTH_MAX_AGE", "soon"),
        ("PUSHQ_LOG_FORMAT", "xml"),
    ):
        with pytest.raises(ConfigError, match=env):
            read_options({}, {env: bad})


# -- /metrics -----------------------------------------------------------------------------


def test_metrics_per_queue_after_deliveries(observed: PushqProcess, worker: Worker) -> None:
    assert observed.client.get("/metrics", headers={"authorization": ""}).status_code == 401
    wrong = observed.client.get("/metrics", headers={"authorization": "Bearer nope-nope-nope"})
    assert wrong.status_code == 401

    queue, path = name("metered"), name("flaky")
    worker.script(path, 500, Reply(503), 200)
    job = observed.enqueue(url=worker.url(path), queue=queue, **FAST_RETRY)
    assert observed.wait_state(job["id"], "succeeded")["attempts"] == 3
    paused = name("paused")
    observed.client.post(f"/v1/queues/{paused}/pause").raise_for_status()

    text = scrape(observed)
    assert (sample(text, f'pushq_delivery_latency_seconds_count{{queue="{queue}"}}') or 0) >= 1
    assert (sample(text, f'pushq_endpoint_response_seconds_count{{queue="{queue}"}}') or 0) >= 3
    assert sample(text, f'pushq_attempts_failed_total{{class="5xx",queue="{queue}"}}') == 2
    assert sample(text, f'pushq_jobs_retried_total{{queue="{queue}"}}') == 2
    assert sample(text, f'pushq_jobs_delivered_total{{queue="{queue}"}}') == 1
    assert sample(text, f'pushq_jobs_enqueued_total{{queue="{queue}"}}') == 1
    assert sample(text, f'pushq_jobs{{queue="{queue}",state="succeeded"}}') == 1
    assert sample(text, f'pushq_oldest_pending_age_seconds{{queue="{queue}"}}') == 0
    assert sample(text, f'pushq_queue_paused{{queue="{queue}"}}') == 0
    assert sample(text, f'pushq_queue_paused{{queue="{paused}"}}') == 1
    assert sample(text, "pushq_dispatcher_slots") == 64
    # bounded labels: queue, state, class, and the origin (at most 100, then "other",
    # docs/delivery.md); never a job id or a URL
    labels = set(re.findall(r"[{,](\w+)=", text))
    assert labels <= {"queue", "state", "class", "le", "origin", "ok"}
    assert job["id"] not in text and worker.url(path) not in text


def test_oldest_pending_age_gauge_grows_while_a_queue_is_paused(
    observed: PushqProcess, worker: Worker
) -> None:
    queue = name("waiting")
    observed.client.post(f"/v1/queues/{queue}/pause").raise_for_status()
    job = observed.enqueue(url=worker.url(name("x")), queue=queue)
    series = f'pushq_oldest_pending_age_seconds{{queue="{queue}"}}'
    wait_until(lambda: (sample(scrape(observed), series) or 0) > 0.1, timeout=5)
    observed.client.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status()
    assert sample(scrape(observed), series) == 0


# -- logs ---------------------------------------------------------------------------------


def test_json_logs_one_line_per_attempt_without_secrets(
    observed: PushqProcess, worker: Worker
) -> None:
    queue, path = name("logged"), name("logged")
    marker = f"body-marker-{uuid.uuid4().hex}"
    query = f"sig={uuid.uuid4().hex}"
    worker.script(path, 500, 200)
    job = observed.enqueue(
        url=worker.url(path) + "?" + query,
        queue=queue,
        body={"secret": marker},
        headers={"x-api-key": marker},
        **FAST_RETRY,
    )
    observed.wait_state(job["id"], "succeeded")

    def attempt_lines() -> list[dict[str, object]] | None:
        # every line parses: nothing else (prints, tracebacks) goes to the log
        lines = [json.loads(line) for line in observed.log().splitlines() if line.strip()]
        mine = [
            line
            for line in lines
            if line.get("job_id") == job["id"] and line.get("logger") == "pushq.dispatcher"
        ]
        return mine if len(mine) >= 2 else None  # written just after the settle

    lines = wait_until(attempt_lines, timeout=5)
    first, second = lines[:2]
    for line in (first, second):
        assert set(line) >= {"time", "level", "logger", "message", "queue", "attempt", "host"}
        assert line["logger"] == "pushq.dispatcher" and line["level"] == "INFO"
        assert line["queue"] == queue and line["host"] == "127.0.0.1"
        assert isinstance(line["duration_ms"], float)
    assert (first["attempt"], first["status"], second["attempt"], second["status"]) == (
        1,
        500,
        2,
        200,
    )
    assert str(first["verdict"]).startswith("retrying") and second["verdict"] == "succeeded"

    log = observed.log()
    assert TEST_TOKEN not in log
    for secret in TEST_SECRET.split():
        assert secret not in log and secret.removeprefix("whsec_") not in log
    assert marker not in log and query not in log


def test_json_formatter_fields_and_exceptions() -> None:
    record = logging.LogRecord("pushq.test", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.job_id = "j1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "a b" and line["level"] == "WARNING" and line["job_id"] == "j1"
    assert line["logger"] == "pushq.test" and line["time"].endswith("Z")
    assert "args" not in line and "msg" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "x", None, sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exception"]
