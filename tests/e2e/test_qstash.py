"""/v2 end to end with the official QStash SDK: `qstash.QStash(token, base_url=...)`
against a real pushq, delivering to a real receiver on loopback that verifies every
delivery with the SDK's own `qstash.Receiver`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from qstash import QStash, Receiver
from qstash.errors import QStashError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..harness import TEST_TOKEN, PushqProcess, free_port, wait_until

FAST = "100"  # Upstash-Retry-Delay in ms: retries within the test's patience


@dataclass
class Received:
    path: str
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    verified: str | None  # None when the signature verified, else why not


@dataclass
class QStashReceiver:
    """A real endpoint: verifies each delivery with qstash.Receiver, answers as scripted."""

    keys: dict[str, str]
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def script(self, path: str, *replies: int | tuple[int, dict[str, str]]) -> None:
        self.scripts["/" + path] = [r if isinstance(r, tuple) else (r, {}) for r in replies]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        why = None
        try:
            receiver = Receiver(self.keys["current"], self.keys["next"])
            receiver.verify(
                signature=request.headers.get("upstash-signature", ""),
                body=body.decode(),
                url=str(request.url),
            )
        except Exception as exc:  # recorded; the test asserts on it
            why = f"{type(exc).__name__}: {exc}"
        path = request.url.path
        with self.lock:
            self.received.append(
                Received(path, str(request.url), request.method, dict(request.headers), body, why)
            )
            script = self.scripts.get(path, [])
            status, headers = script.pop(0) if len(script) > 1 else (script or [(200, {})])[0]
            self.lock.notify_all()
        return Response(b"answer of " + path.encode(), status_code=status, headers=headers)

    def to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == "/" + path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        with self.lock:
            ok = self.lock.wait_for(lambda: len(self.to(path)) >= count, timeout)
        assert ok, f"{len(self.to(path))} of {count} deliveries to /{path}"
        return self.to(path)


@pytest.fixture(scope="module")
def qstash(pushq: PushqProcess) -> Iterator[QStash]:
    client = QStash(TEST_TOKEN, base_url=pushq.base_url, retry=False)
    yield client
    client.http._client.close()  # the SDK never closes its httpx client


@pytest.fixture(scope="module")
def receiver(qstash: QStash) -> Iterator[QStashReceiver]:
    keys = qstash.signing_key.get()
    endpoint = QStashReceiver({"current": keys.current, "next": keys.next})
    app = Starlette(
        routes=[Route("/{p:path}", endpoint.handle, methods=["GET", "POST", "PUT", "DELETE"])]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=endpoint.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10)
    yield endpoint
    server.should_exit = True
    thread.join(timeout=10)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def test_publish_json_is_delivered_signed_and_is_a_pushq_job(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    path = unique("hello")
    sent = qstash.message.publish_json(
        url=receiver.url(path) + "?a=1&b=two",
        body={"hello": "world"},
        headers={"X-Custom": "yes", "Upstash-Forward-Upstash-Workflow-Sdk-Version": "1"},
    )
    [got] = receiver.wait_for(path)
    assert got.verified is None, got.verified
    assert got.url.endswith("?a=1&b=two")  # the raw destination kept its query
    assert json.loads(got.body) == {"hello": "world"}
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-custom"] == "yes"
    assert got.headers["upstash-workflow-sdk-version"] == "1"  # Upstash-* forwards too
    assert got.headers["upstash-message-id"] == sent.message_id
    assert got.headers["upstash-retried"] == "0"
    assert got.headers["user-agent"] == "Upstash-QStash"
    assert "authorization" not in got.headers
    job = pushq.wait_state(sent.message_id, "succeeded")
    assert job["queue"] == "qstash" and job["max_attempts"] == 4  # 3 retries by default


def test_every_non_2xx_is_retried_with_the_retry_delay_expression(
    qstash: QStash, receiver: QStashReceiver
) -> None:
    path = unique("flaky")
    receiver.script(path, 404, 500, 200)
    sent = qstash.message.publish(
        url=receiver.url(path), body="plain text", retries=2, retry_delay=f"{FAST} * (1 + retried)"
    )
    attempts = receiver.wait_for(path, 3)
    assert [a.headers["upstash-retried"] for a in attempts] == ["0", "1", "2"]
    assert {a.headers["upstash-message-id"] for a in attempts} == {sent.message_id}
    assert all(a.verified is None for a in attempts)
    assert {a.headers["upstash-signature"] for a in attempts}.__len__() == 3  # re-signed


def test_489_goes_to_the_dlq_at_once_and_the_dlq_answers(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    path = unique("nonretryable")
    receiver.script(path, (489, {"Upstash-NonRetryable-Error": "true"}))
    sent = qstash.message.publish_json(url=receiver.url(path), body={"n": 1}, label="billing")
    receiver.wait_for(path)
    pushq.wait_state(sent.message_id, "dead")
    assert len(receiver.to(path)) == 1
    page = qstash.dlq.list(filter={"label": "billing"})
    [entry] = [m for m in page.messages if m.message_id == sent.message_id]
    assert entry.response_status == 489 and entry.label == "billing"
    assert qstash.dlq.get(entry.dlq_id).url == receiver.url(path)
    with pytest.raises(QStashError, match="404"):
        qstash.message.get(sent.message_id)  # finished messages are gone from /messages
    qstash.dlq.delete(entry.dlq_id)
    with pytest.raises(QStashError, match="404"):
        qstash.dlq.get(entry.dlq_id)


def test_callbacks_after_each_attempt_and_the_failure_callback(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    path, cb, fail = unique("failing"), unique("cb"), unique("failed")
    receiver.script(path, 503)
    sent = qstash.message.publish(
        url=receiver.url(path),
        body="source",
        retries=1,
        retry_delay=FAST,
        callback=receiver.url(cb),
        failure_callback=receiver.url(fail),
        failure_callback_headers={"X-Why": "it failed"},
    )
    callbacks = receiver.wait_for(cb, 2)
    [failure] = receiver.wait_for(fail)
    bodies = sorted((json.loads(c.body) for c in callbacks), key=lambda b: b["retried"])
    assert [b["retried"] for b in bodies] == [0, 1]
    assert all(b["maxRetries"] == 1 and b["status"] == 503 for b in bodies)
    assert base64.b64decode(bodies[0]["body"]) == f"answer of /{path}".encode()
    assert base64.b64decode(bodies[0]["sourceBody"]) == b"source"
    assert bodies[0]["sourceMessageId"] == sent.message_id
    assert bodies[0]["url"] == receiver.url(path)
    assert all(c.verified is None for c in [*callbacks, failure])
    payload = json.loads(failure.body)
    assert payload["dlqId"] and payload["status"] == 503
    assert failure.headers["x-why"] == "it failed"  # callback_headers' unknown <X> forwards
    assert failure.headers["content-type"] == "application/json"
    pushq.wait_state(sent.message_id, "dead")


def test_delay_get_and_cancel(qstash: QStash, receiver: QStashReceiver) -> None:
    path = unique("later")
    sent = qstash.message.publish_json(
        url=receiver.url(path), body=[1], delay="1h", callback=receiver.url("cb-never")
    )
    message = qstash.message.get(sent.message_id)
    assert message.url == receiver.url(path) and message.max_retries == 3
    assert message.not_before - message.created_at >= 3600 * 1000 - 1000
    assert message.body == "[1]" and message.callback == receiver.url("cb-never")
    qstash.message.cancel(sent.message_id)
    with pytest.raises(QStashError, match="404"):
        qstash.message.cancel(sent.message_id)
    others = [qstash.message.publish(url=receiver.url(path), delay=3600) for _ in range(2)]
    assert qstash.message.cancel_many([m.message_id for m in others]) == 2  # type: ignore[union-attr]


def test_deduplication_by_id_and_by_content(qstash: QStash, receiver: QStashReceiver) -> None:
    path = unique("dedup")
    first = qstash.message.publish(url=receiver.url(path), body="x", deduplication_id=path)
    again = qstash.message.publish(url=receiver.url(path), body="y", deduplication_id=path)
    assert again.message_id == first.message_id and again.deduplicated  # type: ignore[union-attr]
    one = qstash.message.publish(url=receiver.url(path), body="z", content_based_deduplication=True)
    two = qstash.message.publish(url=receiver.url(path), body="z", content_based_deduplication=True)
    other = qstash.message.publish(
        url=receiver.url(path), body="w", content_based_deduplication=True
    )
    assert two.message_id == one.message_id and two.deduplicated  # type: ignore[union-attr]
    assert other.message_id != one.message_id


def test_batch_and_fifo_queue(qstash: QStash, receiver: QStashReceiver) -> None:
    queue, path, plain = unique("orders"), unique("fifo"), unique("batched")
    receiver.script(path, 500, 200)  # the head fails once and keeps its slot
    results = qstash.message.batch_json(
        [{"queue": queue, "url": receiver.url(path), "body": {"n": n}} for n in range(3)]
        + [{"url": receiver.url(plain), "body": {"plain": True}}]
    )
    assert len(results) == 4
    got = receiver.wait_for(path, 4)
    assert [json.loads(g.body)["n"] for g in got] == [0, 0, 1, 2]
    receiver.wait_for(plain)
    info = qstash.queue.get(queue)
    assert info.parallelism == 1 and info.paused is False
    qstash.queue.upsert(queue, parallelism=2)
    assert qstash.queue.get(queue).parallelism == 2
    qstash.queue.pause(queue)
    sent = qstash.message.enqueue_json(queue=queue, url=receiver.url(path), body={"n": 9})
    assert qstash.queue.get(queue).paused and qstash.queue.get(queue).lag == 1
    qstash.queue.resume(queue)
    wait_until(
        lambda: any(g.headers["upstash-message-id"] == sent.message_id for g in receiver.to(path))
    )  # type: ignore[union-attr]
    assert queue in [q.name for q in qstash.queue.list()]


def test_events_list_the_life_of_a_message(qstash: QStash, receiver: QStashReceiver) -> None:
    path = unique("logged")
    receiver.script(path, 500, 200)
    sent = qstash.message.publish(url=receiver.url(path), retry_delay=FAST)
    receiver.wait_for(path, 2)

    def states() -> list[str]:
        logs = qstash.log.list(filter={"message_id": sent.message_id}).logs  # type: ignore[union-attr]
        return [log.state.value for log in logs]

    wait_until(lambda: states() == ["DELIVERED", "RETRY", "ERROR", "CREATED"])
    qstash.message.cancel(qstash.message.publish(url=receiver.url(path), delay=60).message_id)  # type: ignore[union-attr]


def test_signing_keys_rotate(qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess) -> None:
    before = qstash.signing_key.get()
    assert before.current.startswith("sig_") and before.next.startswith("sig_")
    after = qstash.signing_key.rotate()
    assert after.current == before.next and after.next != before.next
    receiver.keys.update(current=after.current, next=after.next)
    path = unique("rotated")
    qstash.message.publish(url=receiver.url(path), body="after rotation")
    [got] = receiver.wait_for(path)
    assert got.verified is None, got.verified
    keys = (pushq.data_dir / "qstash-current-signing-key").read_text().strip()
    assert keys == after.current


def test_errors_are_qstash_shaped(qstash: QStash, pushq: PushqProcess) -> None:
    wrong = QStash("wrong-token-0123456789", base_url=pushq.base_url, retry=False)
    with pytest.raises(QStashError, match="401"):
        wrong.queue.list()
    wrong.http._client.close()
    with pytest.raises(QStashError, match="400"):
        qstash.message.publish(url="http://127.0.0.1:1/x", retry_delay="__import__('os')")
    with pytest.raises(QStashError, match="404"):
        qstash.message.get("no-such-message")
    bad = httpx.post(
        pushq.base_url + "/v2/batch",
        headers={"authorization": f"Bearer {TEST_TOKEN}"},
        content=b"{not json",
    )
    assert bad.status_code == 400 and "error" in bad.json()
    for path, headers in (
        ("/v2/publish/http://127.0.0.1:1/x", {"Upstash-Delay": "soon"}),
        ("/v2/publish/http://127.0.0.1:1/x", {"Upstash-Retries": "-1"}),
        ("/v2/publish/http://127.0.0.1:1/x", {"Upstash-Method": "BREW"}),
        ("/v2/publish/ftp://x", {}),
        ("/v2/enqueue/bad name!/http://127.0.0.1:1/x", {}),
    ):
        response = httpx.post(
            pushq.base_url + path, headers={"authorization": f"Bearer {TEST_TOKEN}", **headers}
        )
        assert 400 <= response.status_code < 500, (path, response.text)
        assert isinstance(response.json()["error"], str)


JS_DIR = Path(__file__).parent.parent / "js"


def test_the_js_sdk_smoke(receiver: QStashReceiver, pushq: PushqProcess, tmp_path: Path) -> None:
    """@upstash/qstash (pinned by tests/js/package-lock.json) against pushq. Skips when
    node or npm is missing, or npm cannot install here; in CI ($CI set) that fails."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    for name in ("package.json", "package-lock.json", "smoke.mjs"):
        shutil.copy(JS_DIR / name, tmp_path / name)
    try:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=240,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"npm could not install @upstash/qstash here: {exc}")
    path = unique("from-js")
    run = subprocess.run(
        ["node", "smoke.mjs", pushq.base_url, TEST_TOKEN, receiver.url(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["dlq"] is True and "CREATED" in seen["logs"]
    assert seen["schedule"] == {"paused": True, "listed": True} and seen["group"] == ["g"]
    assert seen["flow"] == "js-key" and seen["retried"] == 0
    [fanned] = receiver.wait_for(path + "-group")  # the URL group's one endpoint
    assert fanned.verified is None and [fanned.headers["upstash-message-id"]] == seen["fanned"]
    got = receiver.wait_for(path, 4)  # publish, two batch items, the queued one
    assert all(g.verified is None for g in got)
    ids = {g.headers["upstash-message-id"] for g in got}
    assert {seen["published"], *seen["batch"], seen["queued"]} == ids
    assert json.loads(receiver.to(path)[0].body) in ({"from": "js"}, {"n": 1}, {"n": 2}, {"q": 1})
