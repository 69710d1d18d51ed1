"""The SDK's delivery control (issue 13 part 8) and its failure modes (issue 14 part 6)
against a real server: flow keys, topics and endpoints, blocking and asyncio; an
unreachable or silent server; the token lookup; progress formats."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pushq import (
    AsyncClient,
    Client,
    Endpoint,
    FlowKey,
    NotFound,
    PushqConnectionError,
    PushqError,
    PushqTimeout,
    RetryPolicy,
    TokenNotFound,
    Topic,
    TopicEndpoint,
)

from ..harness import TEST_TOKEN, PushqProcess, Reply, Worker, free_port, wait_until

ONCE = RetryPolicy(attempts=1)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(pushq: PushqProcess) -> Iterator[Client]:
    with Client(pushq.base_url, token=TEST_TOKEN) as sdk:
        yield sdk


# -- flow keys ---------------------------------------------------------------------------


def test_a_paused_flow_key_holds_its_jobs_shows_them_waiting_and_resume_frees_them(
    client: Client, worker: Worker
) -> None:
    key, path = name("customer"), name("fk")
    fresh = client.flow_keys.get(key)
    assert fresh == FlowKey(key=key, concurrency=None, rate_limit=None, paused=False)

    limited = client.flow_keys.update(key, concurrency=2, rate_limit="50/s")
    assert (limited.concurrency, limited.rate_limit, limited.paused) == (2, "50/s", False)
    paused = client.flow_keys.pause(key)
    assert paused.paused and paused.concurrency == 2  # pausing keeps the limits

    held = [client.enqueue(worker.url(path), {"n": n}, flow_key=key) for n in range(3)]
    other = client.enqueue(worker.url(path), {"n": "other"}, flow_key=name("other"))
    assert client.wait(other.id, timeout=10).state == "succeeded"  # no head-of-line blocking
    counts = wait_until(lambda: (k := client.flow_keys.get(key)).waiting == 3 and k)
    assert counts.in_flight == 0 and counts.paused
    assert all(client.get(job.id).attempts == 0 for job in held)
    assert key in [k.key for k in client.flow_keys.list()]

    cleared = client.flow_keys.update(key, concurrency=None)  # rate limit left as it is
    assert (cleared.concurrency, cleared.rate_limit, cleared.paused) == (None, "50/s", True)
    assert not client.flow_keys.resume(key).paused
    assert [client.wait(job.id, timeout=10).state for job in held] == ["succeeded"] * 3
    assert wait_until(lambda: client.flow_keys.get(key).waiting == 0)


def test_flow_key_input_errors_are_api_errors(client: Client) -> None:
    with pytest.raises(PushqError) as raised:
        client.flow_keys.update(name("k"), rate_limit="fast")
    assert getattr(raised.value, "status", None) == 400


# -- topics ------------------------------------------------------------------------------


def test_publish_makes_one_job_per_endpoint_with_its_headers(
    client: Client, worker: Worker
) -> None:
    topic_name, tag = name("orders"), name("pub")
    endpoints: list[Any] = [
        worker.url(f"{tag}/billing"),
        TopicEndpoint(worker.url(f"{tag}/crm"), name="crm", headers={"X-Team": "crm"}),
        {"url": worker.url(f"{tag}/audit"), "name": "audit"},
    ]
    topic = client.topics.set(topic_name, endpoints)
    assert isinstance(topic, Topic) and topic.name == topic_name
    assert [e.name for e in topic.endpoints] == [None, "crm", "audit"]
    assert topic.endpoints[1].headers == {"X-Team": "crm"}
    assert topic.created_at is not None and topic.created_at.tzinfo is not None
    assert client.topics.get(topic_name) == topic
    assert topic_name in [t.name for t in client.topics.list()]

    jobs = client.topics.publish(
        topic_name, {"order": 7}, tags=[tag], headers={"X-Order": "7"}, **FAST_JOB
    )
    assert [j.url for j in jobs] == [worker.url(f"{tag}/{p}") for p in ("billing", "crm", "audit")]
    assert {j.topic for j in jobs} == {topic_name} and len({j.id for j in jobs}) == 3
    assert all(j.tags == (tag,) and not j.deduplicated for j in jobs)
    for job in jobs:
        assert client.wait(job.id, timeout=10).state == "succeeded"
    crm = worker.wait_for(f"{tag}/crm")[0]
    assert crm.headers["x-team"] == "crm" and crm.headers["x-order"] == "7"
    assert json.loads(crm.body) == {"order": 7}
    assert "x-team" not in worker.wait_for(f"{tag}/billing")[0].headers
    assert {j.id for j in client.list(topic=topic_name)} == {j.id for j in jobs}

    again = client.topics.publish(topic_name, {"order": 8}, idempotency_key=f"{tag}-8")
    repeat = client.topics.publish(topic_name, {"order": 8}, idempotency_key=f"{tag}-8")
    assert [j.id for j in repeat] == [j.id for j in again] and all(j.deduplicated for j in repeat)

    client.topics.delete(topic_name)
    with pytest.raises(NotFound):
        client.topics.get(topic_name)
    with pytest.raises(NotFound):
        client.topics.publish(topic_name, {"order": 9})
    assert client.get(jobs[0].id).topic == topic_name  # its jobs stay


def test_a_topic_endpoint_needs_a_url(client: Client) -> None:
    with pytest.raises(ValueError, match="needs a url"):
        client.topics.set(name("t"), [{"name": "no-url"}])


FAST_JOB: dict[str, Any] = {"backoff": {"base": 0.05, "max": 0.2, "jitter": False}}


# -- endpoints ---------------------------------------------------------------------------


def test_endpoints_show_the_health_of_an_origin_delivered_to(
    client: Client, worker: Worker
) -> None:
    path = name("health")
    client.wait(client.enqueue(worker.url(path)).id, timeout=10)
    origin = f"http://127.0.0.1:{worker.port}"
    listed = {e.origin: e for e in client.endpoints.list()}
    assert origin in listed and isinstance(listed[origin], Endpoint)
    health = client.endpoints.get(origin)
    assert health.state == "closed" and health.consecutive_failures == 0
    assert health.success_rate is not None and 0 < health.success_rate <= 1
    assert health.latency_p50_ms is not None and health.latency_p99_ms is not None
    assert client.endpoints.get(worker.url(path)).origin == origin  # any URL there
    with pytest.raises(NotFound, match="no deliveries"):
        client.endpoints.get(f"http://127.0.0.1:{free_port()}")


def test_the_async_client_has_the_same_namespaces(client: Client, worker: Worker) -> None:
    key, topic_name, path = name("akey"), name("atopic"), name("async")

    async def scenario() -> None:
        async with AsyncClient(client.base_url, token=TEST_TOKEN) as sdk:
            assert (await sdk.flow_keys.update(key, concurrency=1)).concurrency == 1
            assert (await sdk.flow_keys.pause(key)).paused
            assert key in [k.key for k in await sdk.flow_keys.list()]
            assert not (await sdk.flow_keys.resume(key)).paused
            assert (await sdk.flow_keys.get(key)).concurrency == 1

            await sdk.topics.set(topic_name, [worker.url(path)])
            (job,) = await sdk.topics.publish(topic_name, {"a": 1}, flow_key=key)
            assert job.topic == topic_name and job.flow_key == key
            assert (await sdk.wait(job.id, timeout=10)).state == "succeeded"
            assert [t.name for t in await sdk.topics.list() if t.name == topic_name]
            assert (await sdk.topics.get(topic_name)).endpoints[0].url == worker.url(path)
            await sdk.topics.delete(topic_name)

            origin = f"http://127.0.0.1:{worker.port}"
            assert (await sdk.endpoints.get(origin)).origin == origin
            assert origin in [e.origin for e in await sdk.endpoints.list()]

    asyncio.run(scenario())


# -- when no answer comes ----------------------------------------------------------------


def test_an_unreachable_server_raises_a_pushq_error_sync_and_async() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, token="t", retry=ONCE) as sdk, pytest.raises(PushqConnectionError) as sync:
        sdk.get("X")
    assert sync.value.url == url and sync.value.reason == "connection refused"
    assert f"cannot reach pushq at {url}: connection refused" in str(sync.value)

    async def scenario() -> PushqConnectionError:
        async with AsyncClient(url, token="t", retry=ONCE) as sdk:
            try:
                await sdk.enqueue("http://example.test/")
            except PushqConnectionError as exc:
                return exc
        raise AssertionError("no error")

    assert asyncio.run(scenario()).reason == "connection refused"


def test_a_server_that_never_answers_raises_pushq_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Client(url, token="t", timeout=0.3, retry=ONCE) as sdk:
            with pytest.raises(PushqTimeout) as raised:
                sdk.queues.list()
        assert raised.value.reason == "timed out" and isinstance(raised.value, PushqConnectionError)

        async def scenario() -> None:
            async with AsyncClient(url, token="t", timeout=0.3, retry=ONCE) as sdk:
                await sdk.topics.list()

        with pytest.raises(PushqTimeout):
            asyncio.run(scenario())


# -- the token, found as the CLI finds it ------------------------------------------------


def test_client_reads_the_token_a_local_pushq_serve_saved(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "pushq-data"
    data_dir.mkdir()
    (data_dir / "api-token").write_text(TEST_TOKEN + "\n")
    monkeypatch.delenv("PUSHQ_API_TOKEN", raising=False)
    monkeypatch.setenv("PUSHQ_DATA_DIR", str(data_dir))
    with Client(client.base_url) as sdk:
        assert isinstance(sdk.queues.list().items, list)

    monkeypatch.delenv("PUSHQ_DATA_DIR")
    monkeypatch.chdir(tmp_path)  # the default data dir, ./pushq-data
    with Client(client.base_url) as sdk:
        assert isinstance(sdk.flow_keys.list().items, list)


def test_without_a_token_anywhere_the_error_names_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUSHQ_API_TOKEN", raising=False)
    monkeypatch.setenv("PUSHQ_DATA_DIR", str(tmp_path / "nowhere"))
    url = f"http://127.0.0.1:{free_port()}"  # never contacted: the error comes first
    with Client(url, retry=ONCE) as sdk, pytest.raises(TokenNotFound) as raised:
        sdk.list()
    message = str(raised.value)
    assert "PUSHQ_API_TOKEN" in message and str(tmp_path / "nowhere" / "api-token") in message
    assert raised.value.path == str(tmp_path / "nowhere" / "api-token")


# -- progress, in the API's formats ------------------------------------------------------


def test_progress_at_is_rfc3339_and_counts_are_whole(
    client: Client, pushq: PushqProcess, worker: Worker
) -> None:
    path = name("long")
    worker.script(path, Reply(202, b"{}", {"pushq-async": "true"}))  # active until /complete
    job = client.enqueue(worker.url(path), timeout="1m")
    token = worker.wait_for(path)[0].headers["pushq-job-token"]
    wait_until(lambda: client.get(job.id).state == "active")
    before = datetime.now(UTC) - timedelta(seconds=5)
    client.progress(job.id, current=3, total=10, percent=30, message="3 of 10", job_token=token)
    shown = client.get(job.id).progress
    assert shown["current"] == 3 and isinstance(shown["current"], int)
    assert shown["total"] == 10 and isinstance(shown["total"], int)
    assert shown["message"] == "3 of 10"
    at = datetime.fromisoformat(shown["at"])  # a string, like created_at
    assert shown["at"].endswith("Z") and at.tzinfo is not None and at >= before
    raw = pushq.job(job.id)["progress"]
    assert raw["at"] == shown["at"] and raw["current"] == 3
    client.complete(job.id, {"done": True}, job_token=token)
    assert client.wait(job.id, timeout=10).state == "succeeded"
