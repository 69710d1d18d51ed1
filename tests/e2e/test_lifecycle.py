"""Start-up, shutdown and crashes of a real pushq process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from ..harness import FAST_RETRY, PushqProcess, Reply, Worker, free_port, wait_until

StartPushq = Callable[..., PushqProcess]


def _env_without_credentials(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    return env | extra


def test_first_start_generates_credentials_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = _env_without_credentials(PUSHQ_DATA_DIR=str(data_dir), PUSHQ_PORT=str(port))
    process = subprocess.Popen(
        [sys.executable, "-m", "pushq", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        token_file = data_dir / "api-token"
        wait_until(lambda: token_file.exists() and (data_dir / "signing-secret").exists())
        wait_until(lambda: _status(f"http://127.0.0.1:{port}/health") == 200, timeout=20)
        token = token_file.read_text().strip()
        secret = (data_dir / "signing-secret").read_text().strip()
        for path in (token_file, data_dir / "signing-secret"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert secret.startswith("whsec_")
        # the API is closed without the generated token, open with it
        assert _status(f"http://127.0.0.1:{port}/v1/jobs") == 401
        authorized = {"authorization": f"Bearer {token}"}
        assert httpx.get(f"http://127.0.0.1:{port}/v1/jobs", headers=authorized).status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert stderr.count(token) == 1 and stderr.count(secret) == 1

    shown = subprocess.run(
        [sys.executable, "-m", "pushq", "token", "--data-dir", str(data_dir)],
        env=_env_without_credentials(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"PUSHQ_API_TOKEN={token}" in shown.stdout
    assert f"PUSHQ_SIGNING_SECRET={secret}" in shown.stdout

    # a second start reuses them and prints nothing secret
    port = free_port()
    env = _env_without_credentials(PUSHQ_DATA_DIR=str(data_dir), PUSHQ_PORT=str(port))
    again = subprocess.Popen(
        [sys.executable, "-m", "pushq", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: _status(f"http://127.0.0.1:{port}/health") == 200, timeout=20)
    again.terminate()
    _, stderr = again.communicate(timeout=20)
    assert token not in stderr and secret not in stderr


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.TransportError:
        return 0


def test_bad_configuration_exits_2_naming_the_setting(tmp_path: Path) -> None:
    cases = [
        ({"PUSHQ_PORT": "eighty"}, [], "PUSHQ_PORT"),
        ({}, ["--port", "-1"], "--port"),
        ({"PUSHQ_SIGNING_SECRET": "not-a-secret"}, [], "PUSHQ_SIGNING_SECRET"),
        ({"PUSHQ_SQLITE_SYNCHRONOUS": "sometimes"}, [], "PUSHQ_SQLITE_SYNCHRONOUS"),
        ({"PUSHQ_DATABASE_URL": "mysql://x"}, [], "PUSHQ_DATABASE_URL"),
        ({"PUSHQ_PUBLIC_URL": "not a url"}, [], "PUSHQ_PUBLIC_URL"),
        ({"PUSHQ_SHUTDOWN_GRACE": "forever"}, [], "PUSHQ_SHUTDOWN_GRACE"),
    ]
    for env, flags, name in cases:
        result = subprocess.run(
            [sys.executable, "-m", "pushq", "serve", *flags],
            env=_env_without_credentials(PUSHQ_DATA_DIR=str(tmp_path / "d"), **env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2, (name, result.stderr)
        assert name in result.stderr
        assert "Traceback" not in result.stderr


def test_sigterm_finishes_in_flight_delivery_then_restart_keeps_data(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path
) -> None:
    data_dir = tmp_path / "keep"
    server = start_pushq(data_dir)
    slow = f"slow-{uuid.uuid4().hex[:6]}"
    worker.script(slow, Reply(200, sleep=1.0))
    in_flight = server.enqueue(url=worker.url(slow))
    waiting = server.enqueue(url=worker.url("later"), delay=60)
    worker.wait_for(slow)  # the delivery has started

    assert server.terminate() == 0  # waited for the slow delivery, then exited 0
    assert "pushq stopped" in server.log()

    restarted = start_pushq(data_dir)
    assert restarted.job(in_flight["id"])["state"] == "succeeded"
    assert restarted.job(waiting["id"])["state"] == "scheduled"
    assert len(worker.to(slow)) == 1


SLOW_BACKOFF = {"backoff": {"base": 600, "max": 600, "jitter": False}}  # a backoff shows


def test_sigterm_past_the_grace_period_returns_the_job_at_once_uncounted(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path
) -> None:
    """An attempt cut off by the grace period was pushq's fault: after the restart it is
    delivered again at once (no backoff) and its number is used again."""
    data_dir = tmp_path / "grace"
    server = start_pushq(data_dir, PUSHQ_SHUTDOWN_GRACE="0.2")
    hang = f"hang-{uuid.uuid4().hex[:6]}"
    worker.script(hang, Reply(200, sleep=30), 200)
    job = server.enqueue(url=worker.url(hang), max_attempts=1, **SLOW_BACKOFF)
    worker.wait_for(hang)
    started = time.monotonic()
    assert server.terminate() == 0
    assert time.monotonic() - started < 10

    restarted = start_pushq(data_dir)
    done = restarted.wait_state(job["id"], "succeeded", timeout=15)
    assert done["attempts"] == 1  # the interrupted attempt was not charged
    attempts = restarted.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
    assert [a["number"] for a in attempts] == [1, 1]
    assert "shut down" in attempts[0]["error"] and attempts[0]["status"] is None
    print(f"\nredelivered {worker.to(hang)[1].at - worker.to(hang)[0].at:.1f}s after the first")


def test_kill_9_mid_delivery_is_delivered_again_at_once_after_restart(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path
) -> None:
    """With the default lease (timeout 30 s + 30 s margin), the attempt a SIGKILL cut
    off is delivered again within seconds of the restart, not after the lease and a
    backoff; its queue's concurrency slot is free at once; an async-held job is left to
    its worker."""
    data_dir = tmp_path / "kill"
    server = start_pushq(data_dir)
    tag = uuid.uuid4().hex[:6]
    hang, after, held = f"hang-{tag}", f"after-{tag}", f"held-{tag}"
    worker.script(hang, Reply(200, sleep=120), 200)
    worker.script(held, Reply(202, headers={"pushq-async": "true"}))
    queue = f"one-{tag}"
    server.client.put(f"/v1/queues/{queue}", json={"concurrency": 1}).raise_for_status()
    cut = server.enqueue(url=worker.url(hang), queue=queue, **SLOW_BACKOFF)
    worker.wait_for(hang)
    waiting = server.enqueue(url=worker.url(after), queue=queue)
    async_job = server.enqueue(url=worker.url(held), timeout=600)
    worker.wait_for(held)
    # "active" is also the state of an attempt still in flight: wait until the 202
    # that hands the job to its worker is recorded, or the kill would cut that attempt
    # (the attempt's log line is written once its settle has committed)
    wait_until(lambda: f"attempt job={async_job['id']} " in server.log())
    assert server.job(async_job["id"])["state"] == "active"
    assert server.job(waiting["id"])["state"] == "pending"  # behind the concurrency of 1

    server.kill()
    restarted = start_pushq(data_dir)
    up = time.time()
    again = worker.wait_for(hang, 2, timeout=15)[1]
    worker.wait_for(after, 1, timeout=15)  # the dead lease does not hold the slot
    assert restarted.wait_state(cut["id"], "succeeded", timeout=15)["attempts"] == 2
    assert restarted.wait_state(waiting["id"], "succeeded", timeout=15)
    assert restarted.job(async_job["id"])["state"] == "active"
    assert len(worker.to(held)) == 1
    assert "recovered 1 attempt(s)" in restarted.log()
    print(f"\nredelivered {again.at - up:.2f}s after the restarted pushq was healthy")


KILLS = 5
ACKS_PER_LIFE = 30  # jobs acknowledged by each pushq before it is killed
DELIVERIES_PER_LIFE = 5  # and deliveries it made: each kill lands mid-delivery


def test_kill_9_during_delivery_loses_no_accepted_job(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path
) -> None:
    """Enqueue while pushq is killed with SIGKILL again and again; every job that was
    acknowledged is delivered at least once, and nothing unexpected is delivered.

    Each kill waits for conditions, not for time: the pushq about to die has
    acknowledged ACKS_PER_LIFE jobs and made DELIVERIES_PER_LIFE deliveries, however
    slow the machine is."""
    data_dir = tmp_path / "crash"
    path = f"crash-{uuid.uuid4().hex[:6]}"
    worker.script(path, Reply(200, sleep=0.01))
    server = start_pushq(data_dir)
    acknowledged: set[int] = set()
    offered: set[int] = set()
    lock = threading.Lock()
    current = {"server": server}
    stop = threading.Event()

    def produce() -> None:
        n = 0
        with httpx.Client(timeout=2) as client:
            while not stop.is_set():
                target = current["server"]
                with lock:
                    offered.add(n)
                try:
                    response = client.post(
                        target.base_url + "/v1/jobs",
                        json={"url": worker.url(path), "body": {"n": n}, **FAST_RETRY},
                        headers=target.client.headers,
                    )
                except httpx.TransportError:
                    time.sleep(0.05)  # pushq is down: the job may or may not be stored
                else:
                    if response.status_code == 201:
                        with lock:
                            acknowledged.add(n)
                n += 1

    def acks() -> int:
        with lock:
            return len(acknowledged)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        for _ in range(KILLS):
            acks_before, deliveries_before = acks(), len(worker.to(path))
            wait_until(
                lambda a=acks_before, d=deliveries_before: (
                    acks() >= a + ACKS_PER_LIFE and len(worker.to(path)) >= d + DELIVERIES_PER_LIFE
                ),
                timeout=60,
            )
            current["server"].kill()
            current["server"] = start_pushq(data_dir)
        final_acks = acks()
        wait_until(lambda: acks() >= final_acks + ACKS_PER_LIFE, timeout=60)
    finally:
        stop.set()
        producer.join(timeout=60)
    final = current["server"]

    def delivered_numbers() -> list[int]:
        return [json.loads(d.body)["n"] for d in worker.to(path)]

    wait_until(lambda: acknowledged <= set(delivered_numbers()), timeout=60, interval=0.2)
    delivered = delivered_numbers()
    duplicates = len(delivered) - len(set(delivered))
    unexpected = set(delivered) - offered
    print(
        f"\ncrash test: {len(offered)} offered, {len(acknowledged)} acknowledged, "
        f"{len(set(delivered))} delivered, {duplicates} duplicate deliveries, {KILLS} kills"
    )
    assert len(acknowledged) >= (KILLS + 1) * ACKS_PER_LIFE
    assert not unexpected
    assert acknowledged <= set(delivered)  # none lost
    final.client.get("/health").raise_for_status()
