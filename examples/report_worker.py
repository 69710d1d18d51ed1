"""A long report job, the pushq way of Celery's `self.update_state(state="PROGRESS")`.

The task answers at once with 202 (ctx.defer()), builds the report in the
background, reports progress as it goes (each report is also the heartbeat that
keeps the job alive past its timeout) and finishes with ctx.complete(result).

    PUSHQ_URL=http://127.0.0.1:8080 PUSHQ_API_TOKEN=... PUSHQ_SIGNING_SECRET=whsec_... \\
        uvicorn examples.report_worker:router --port 9000
"""

from __future__ import annotations

import threading
import time

from pushq.worker import JobContext, TaskRouter

router = TaskRouter(base_url="http://127.0.0.1:9000")

CHUNKS = 5
SECONDS_PER_CHUNK = 0.5  # stands in for a slow query per chunk


@router.task(name="monthly-report", queue="reports", timeout="2s")
def monthly_report(ctx: JobContext, month: str) -> object:
    threading.Thread(target=build, args=(ctx, month), daemon=True).start()
    return ctx.defer()  # 202 + pushq-async: true: the job stays active


def build(ctx: JobContext, month: str) -> None:
    rows = 0
    try:
        for chunk in range(1, CHUNKS + 1):
            time.sleep(SECONDS_PER_CHUNK)
            rows += 1000
            ctx.progress(
                percent=chunk / CHUNKS * 100,
                current=chunk,
                total=CHUNKS,
                message=f"{month}: chunk {chunk} of {CHUNKS}",
                meta={"rows": rows},
            )
        ctx.complete({"month": month, "rows": rows, "url": f"/reports/{month}.csv"})
    except Exception as exc:  # report the failure so pushq retries the job
        ctx.fail(f"report for {month} failed: {exc}")
