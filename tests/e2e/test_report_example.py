"""docs/long-jobs.md's worked example, run for real: a report task that streams
progress past its timeout, and a web app that shows it and waits for the result."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from pushq import Client

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess


def test_report_job_streams_progress_then_completes(
    pushq: PushqProcess, serve_asgi: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHQ_SIGNING_SECRET", TEST_SECRET)
    monkeypatch.setenv("PUSHQ_URL", pushq.base_url)
    monkeypatch.setenv("PUSHQ_API_TOKEN", TEST_TOKEN)
    example = importlib.import_module("examples.report_worker")
    example.router.base_url = serve_asgi(example.router)

    job = example.monthly_report.enqueue("2026-10")  # Celery's .delay()
    seen: list[dict[str, Any]] = []
    with Client() as client:
        # what a web page's progress bar does: read the job now and then
        while (current := client.get(job.id)).state != "succeeded":
            assert current.state in ("pending", "active"), current.state
            if current.progress and current.progress not in seen:
                seen.append(current.progress)
            time.sleep(0.1)
        done = client.wait(job.id, timeout=5)
    assert done.result is not None
    assert done.result.body == {"month": "2026-10", "rows": 5000, "url": "/reports/2026-10.csv"}
    # 2.5 s of work on a 2 s timeout: the progress reports kept the attempt alive
    assert done.attempts == 1
    percents = [p["percent"] for p in seen]
    assert percents == sorted(percents) and len(percents) >= 3
    assert seen[-1]["message"].startswith("2026-10: chunk")
