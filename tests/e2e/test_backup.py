"""`pushq backup` while a real pushq serves and takes jobs, then `pushq restore`
into a new data dir and a server on it that still has (and delivers) them."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess, Worker


def pushq_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    env["PUSHQ_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "pushq", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_backup_while_enqueueing_then_restore_and_serve(
    tmp_path: Path, start_pushq: Callable[..., PushqProcess], worker: Worker
) -> None:
    server = start_pushq(tmp_path / "live")
    assert server.client.post("/v1/queues/backup-held/pause").status_code == 200
    held = server.enqueue(url=worker.url("backup-held"), queue="backup-held", body={"n": -1})

    acked: list[str] = []
    stop = threading.Event()

    def enqueue_meanwhile() -> None:
        while not stop.is_set():
            jobs = [
                {"url": worker.url("later"), "delay": "1h", "body": {"n": i}} for i in range(20)
            ]
            response = server.client.post("/v1/jobs/batch", json={"jobs": jobs})
            assert response.status_code in (200, 201), response.text
            acked.extend(job["id"] for job in response.json()["jobs"])

    writer = threading.Thread(target=enqueue_meanwhile)
    writer.start()
    try:
        while len(acked) < 100:  # a backup taken with writes going on
            stop.wait(0.05)
        before = len(acked)
        backup = tmp_path / "backups" / "pushq.db"
        backup.parent.mkdir()
        made = pushq_cli("backup", str(backup), data_dir=server.data_dir)
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    assert "integrity ok" in made.stdout
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert list(backup.parent.iterdir()) == [backup]  # no partial file left
    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        saved = {row[0] for row in db.execute("SELECT id FROM jobs")}
    db.close()
    assert set(acked[:before]) | {held["id"]} <= saved  # acknowledged before it began
    assert saved <= set(acked) | {held["id"]}  # and nothing half-made
    again = pushq_cli("backup", str(backup), data_dir=server.data_dir)
    assert again.returncode == 2 and "already exists" in again.stderr
    server.terminate()

    restored_dir = tmp_path / "restored"
    restored = pushq_cli("restore", str(backup), data_dir=restored_dir)
    assert restored.returncode == 0, restored.stderr
    assert f"restored {len(saved)} jobs" in restored.stdout
    assert "has no credentials" in restored.stderr  # the backup is the database only
    refused = pushq_cli("restore", str(backup), data_dir=restored_dir)
    assert refused.returncode == 2 and "move the old database away" in refused.stderr

    # the same credentials (as env vars here), a new data dir: the same jobs
    new = start_pushq(restored_dir, PUSHQ_API_TOKEN=TEST_TOKEN, PUSHQ_SIGNING_SECRET=TEST_SECRET)
    some = sorted(saved - {held["id"]})[:5]
    for job_id in some:
        assert new.job(job_id)["state"] == "scheduled"
    assert new.job(held["id"])["state"] == "pending"
    assert new.client.post("/v1/queues/backup-held/resume").status_code == 200
    [delivery] = worker.wait_for("backup-held")
    assert delivery.headers["webhook-id"] == held["id"]
    new.wait_state(held["id"], "succeeded")
