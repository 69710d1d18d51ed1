"""A disk that fills up under a real `pushq serve` (issue 16, part 6): enqueues get
503 with Retry-After and never a 2xx for an unsaved job, /health says so, the log
has one line per episode, and pushq recovers by itself once space returns.

Needs a small filesystem: a tmpfs mounted as root (skipped otherwise; the store
test with PRAGMA max_page_count covers the same path without root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ..harness import PushqProcess, wait_until

StartPushq = Callable[..., PushqProcess]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "small"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_answers_503_and_recovers_by_itself(
    start_pushq: StartPushq, small_disk: Path
) -> None:
    server = start_pushq(small_disk / "data", PUSHQ_LOG_LEVEL="INFO")
    job = {"url": "http://127.0.0.1:9/hook", "delay": 3600, "body": {"pad": "p" * 200_000}}
    saved = [server.enqueue(**job)["id"]]
    filler = _fill(small_disk)

    refused: httpx.Response | None = None
    for _ in range(200):  # the WAL may still have room for a few
        response = server.client.post("/v1/jobs", json=job)
        if response.status_code == 503:
            refused = response
            break
        assert response.status_code == 201, response.text
        saved.append(response.json()["id"])
    assert refused is not None, "the disk never filled"
    assert refused.json()["error"]["code"] == "database_unavailable"
    assert int(refused.headers["retry-after"]) >= 1
    batch = server.client.post("/v1/jobs/batch", json={"jobs": [job, job]})
    assert batch.status_code == 503 and batch.json()["error"]["code"] == "database_unavailable"
    health = server.client.get("/health")
    assert health.status_code == 503 and health.json()["database"] == "unwritable"
    for job_id in saved:  # every acknowledged job was saved
        assert server.job(job_id)["state"] == "scheduled"

    filler.unlink()
    wait_until(lambda: server.client.get("/health").status_code == 200, timeout=30)
    assert server.client.post("/v1/jobs", json=job).status_code == 201
    log = server.log()
    assert log.count("database unavailable") == 1, log
    assert "database writable again" in log
    assert "Traceback" not in log
