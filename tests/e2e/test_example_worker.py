"""The README's worker, run for real behind uvicorn, receiving from a real pushq."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from examples import worker as example
from pushq.signing import generate_secret

from ..harness import FAST_RETRY, TEST_SECRET, PushqProcess, free_port, wait_until


@pytest.fixture
def example_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PUSHQ_SIGNING_SECRET", TEST_SECRET)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(example.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    yield f"http://127.0.0.1:{port}/send-email"
    server.should_exit = True
    thread.join(timeout=10)


def test_readme_worker_accepts_pushq_and_rejects_forgeries(
    pushq: PushqProcess, example_worker: str
) -> None:
    job = pushq.enqueue(url=example_worker, body={"to": "ada@example.com"})
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["result"] == {"status": 200, "body": {"sent_to": "ada@example.com"}}

    forged = httpx.post(
        example_worker,
        json={"to": "eve@example.com"},
        headers={
            "webhook-id": "msg_1",
            "webhook-timestamp": "1700000000",
            "webhook-signature": "v1,Zm9yZ2Vk",
        },
    )
    assert forged.status_code == 401


def test_readme_worker_refuses_an_unmendable_job_for_good(
    pushq: PushqProcess, example_worker: str
) -> None:
    job = pushq.enqueue(url=example_worker, body={"subject": "no recipient"}, **FAST_RETRY)
    dead = pushq.wait_state(job["id"], "dead")
    assert dead["attempts"] == 1
    assert dead["last_error"]["message"] == "HTTP 422 with pushq-retry: false"


def test_readme_worker_mid_secret_rotation_gets_the_job_on_a_retry(
    pushq: PushqProcess, example_worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the worker already has the new secret; pushq signs with the old one until told
    monkeypatch.setenv("PUSHQ_SIGNING_SECRET", generate_secret())
    backoff = {"base": 0.2, "max": 0.2, "jitter": False}
    job = pushq.enqueue(url=example_worker, body={"to": "ada@example.com"}, backoff=backoff)

    def refused() -> bool:
        attempts = pushq.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
        return any(a["status"] == 401 for a in attempts)

    wait_until(refused)
    monkeypatch.setenv("PUSHQ_SIGNING_SECRET", f"{generate_secret()} {TEST_SECRET}")
    done = pushq.wait_state(job["id"], "succeeded")
    assert done["attempts"] >= 2
    assert done["result"] == {"status": 200, "body": {"sent_to": "ada@example.com"}}
