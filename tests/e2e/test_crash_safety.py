"""kill -9 loses no acknowledged job: jobs are enqueued to a real pushq delivering to a
real worker while the server is SIGKILLed and restarted again and again.

Asserted: every job the API acknowledged is delivered (0 lost), nothing that was never
acknowledged is delivered, a job is delivered again only across a kill (the attempt
in flight when the process died), every job ends `succeeded`, and SQLite's
`PRAGMA integrity_check` is ok after every kill. CI runs 500 jobs x 3 kills; the
figures of docs/guarantees.md come from the heavy size (-m heavy: 10,000 x 20).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ..harness import FAST_RETRY, PushqProcess, Worker, wait_until

StartPushq = Callable[..., PushqProcess]
# A short lease so the attempts a kill cut off come back within seconds.
ENV = {"PUSHQ_LEASE_MARGIN": "1s", "PUSHQ_LOG_LEVEL": "WARNING"}


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def enqueue_chunk(server: PushqProcess, url: str, count: int, queue: str) -> list[str]:
    """Enqueue `count` jobs in batches of 250; the ids the API acknowledged."""
    acknowledged: list[str] = []
    for start in range(0, count, 250):
        size = min(250, count - start)
        jobs = [{"url": url, "queue": queue, "timeout": "2s", **FAST_RETRY}] * size
        response = server.client.post("/v1/jobs/batch", json={"jobs": jobs})
        assert response.status_code == 201, response.text
        acknowledged += [job["id"] for job in response.json()["jobs"]]
    return acknowledged


def run_kill_loop(
    start_pushq: StartPushq, worker: Worker, data_dir: Path, jobs: int, kills: int
) -> dict[str, float]:
    path = f"crash-{uuid.uuid4().hex[:8]}"
    url = worker.url(path)
    queue = "crash"
    server = start_pushq(data_dir, **ENV)
    acknowledged: list[str] = []
    kill_times: list[float] = []
    integrity_ok = 0
    began = time.monotonic()
    per_round = jobs // (kills + 1)
    for round_number in range(kills + 1):
        count = per_round if round_number < kills else jobs - per_round * kills
        acknowledged += enqueue_chunk(server, url, count, queue)
        if round_number == kills:
            break
        # let deliveries run, then kill -9 in the middle of them
        target = min(len(acknowledged), len(worker.to(path)) + max(1, count // 2))
        worker.wait_for(path, target, timeout=120)
        server.kill()
        kill_times.append(time.time())
        assert integrity(data_dir / "pushq.db") == "ok"
        integrity_ok += 1
        server = start_pushq(data_dir, **ENV)

    expected = set(acknowledged)

    def all_delivered() -> bool:
        return expected <= {d.headers["webhook-id"] for d in worker.to(path)}

    wait_until(all_delivered, timeout=300, interval=0.2)

    def all_succeeded() -> bool:
        page = server.client.get("/v1/queues/crash").json()["stats"]
        return bool(page["succeeded"] == len(expected))

    wait_until(all_succeeded, timeout=120, interval=0.2)
    assert server.terminate() == 0
    assert integrity(data_dir / "pushq.db") == "ok"
    integrity_ok += 1
    elapsed = time.monotonic() - began

    deliveries = worker.to(path)
    received = Counter(d.headers["webhook-id"] for d in deliveries)
    assert set(received) == expected, "a job never acknowledged was delivered"
    # A repeat delivery of a job is only ever the attempt a kill cut off.
    seen_at: dict[str, float] = {}
    for delivery in sorted(deliveries, key=lambda d: d.at):
        job_id = delivery.headers["webhook-id"]
        if job_id in seen_at:
            assert any(seen_at[job_id] <= k <= delivery.at for k in kill_times), job_id
        seen_at[job_id] = delivery.at
    figures = {
        "jobs": len(expected),
        "kills": kills,
        "lost": len(expected - set(received)),
        "duplicates": sum(received.values()) - len(received),
        "integrity_ok": integrity_ok,
        "seconds": round(elapsed, 1),
    }
    print(f"kill -9 figures: {figures}")
    return figures


def test_kill_9_loses_no_job(start_pushq: StartPushq, worker: Worker, tmp_path: Path) -> None:
    figures = run_kill_loop(start_pushq, worker, tmp_path / "data", jobs=500, kills=3)
    assert figures["lost"] == 0


@pytest.mark.heavy
@pytest.mark.timeout(3600)
def test_kill_9_loses_no_job_at_10000_jobs_and_20_kills(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path
) -> None:
    figures = run_kill_loop(start_pushq, worker, tmp_path / "data", jobs=10_000, kills=20)
    assert figures["lost"] == 0
