"""Upgrading: a database made by the previous release's own `pushq serve` (its code
taken from git, run on this venv) migrates when today's pushq starts on it, with
its jobs, their states, bodies and attempts intact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import httpx
import pytest

from pushq.server.store.sql import migrations

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess, Reply, Worker, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS = "4f0d841"  # the last commit before the self-hosting round: its schema is 0002


def previous_release(into: Path) -> Path:
    """PREVIOUS's pushq package, extracted from git into `into`."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS, "pushq"],
        capture_output=True,
    )
    if found.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"commit {PREVIOUS} is not in this clone: {found.stderr.decode()}")
        pytest.skip(f"commit {PREVIOUS} is not in this clone (a shallow clone?)")
    with tarfile.open(fileobj=BytesIO(found.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into


OLD_SERVE = """
import asyncio, pushq
print(pushq.__file__, flush=True)
from pushq.config import load_settings
from pushq.server import serve
asyncio.run(serve(load_settings({})))
"""


def schema_version(database: Path) -> int:
    with sqlite3.connect(database) as db:
        version: int = db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    db.close()
    return version


def test_a_database_of_the_previous_release_migrates_with_its_jobs(
    tmp_path: Path, start_pushq: Callable[..., PushqProcess], worker: Worker
) -> None:
    old_code = previous_release(tmp_path / "previous")
    data_dir = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHQ_", "PYTHON"))}
    env.update(
        PUSHQ_API_TOKEN=TEST_TOKEN,
        PUSHQ_SIGNING_SECRET=TEST_SECRET,
        PUSHQ_PORT=str(port),
        PUSHQ_DATA_DIR=str(data_dir),
        PUSHQ_POLL_INTERVAL="0.2",
    )
    # `python -c` puts the working directory first on sys.path: the old package wins.
    # Its serve without its cli.py, which needs `rich`, a dependency since dropped.
    old = subprocess.Popen(
        [sys.executable, "-c", OLD_SERVE],
        env=env,
        cwd=old_code,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {TEST_TOKEN}"}
    )
    try:
        assert old.stdout is not None
        assert old.stdout.readline().decode().startswith(str(old_code))  # the old code runs

        def up() -> bool:
            assert old.poll() is None, old.communicate()[1]
            try:
                return api.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=30, interval=0.1)
        worker.script("upgrade-dead", Reply(500))

        def enqueue(**job: object) -> str:
            response = api.post("/v1/jobs", json=job)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        done = enqueue(url=worker.url("upgrade-done"), body={"kept": "done"})
        dead = enqueue(url=worker.url("upgrade-dead"), max_attempts=1)
        later = enqueue(
            url=worker.url("upgrade-later"),
            body={"kept": "later"},
            delay="1h",
            queue="upgraded",
            idempotency_key="upgrade-key",
            headers={"X-Kept": "yes"},
        )
        for job_id, state in ((done, "succeeded"), (dead, "dead")):
            wait_until(lambda j=job_id, s=state: api.get(f"/v1/jobs/{j}").json()["state"] == s)
        before = {j: api.get(f"/v1/jobs/{j}").json() for j in (done, dead, later)}
    finally:
        api.close()
        old.send_signal(signal.SIGTERM)
        old.communicate(timeout=60)
    assert old.returncode == 0
    database = data_dir / "pushq.db"
    old_version = schema_version(database)
    latest = max(version for version, _, _ in migrations())
    assert old_version < latest  # there is something to migrate

    new = start_pushq(data_dir)
    assert schema_version(database) == latest
    for job_id, job in before.items():
        now = new.job(job_id)
        for field in ("state", "queue", "url", "attempts", "max_attempts", "run_at", "body"):
            assert now[field] == job[field], (field, job_id)
    assert new.job(later)["headers"] == {"X-Kept": "yes"}
    assert len(new.client.get(f"/v1/jobs/{done}/attempts").json()["attempts"]) == 1
    assert new.client.get(f"/v1/dlq/{dead}").status_code == 200
    again = new.enqueue(url=worker.url("upgrade-later"), idempotency_key="upgrade-key")
    assert again["id"] == later  # the idempotency key survived
    fresh = new.enqueue(url=worker.url("upgrade-after"))
    new.wait_state(fresh["id"], "succeeded")
