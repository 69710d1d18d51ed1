"""How jobs and attempts look to the outside: the API's responses and callback bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from .models import AttemptRecord, JobRecord


@lru_cache(maxsize=4096)  # a batch's jobs share their timestamps
def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public_state(job: JobRecord, now: float) -> str:
    """The state as the API shows it: 'blocked' reads as pending (or scheduled)."""
    if job.state in ("scheduled", "blocked", "pending"):
        return "scheduled" if job.run_at > now else "pending"
    return job.state


def job_json(job: JobRecord, now: float) -> dict[str, Any]:
    """A job as the API shows it (JobOut in schemas.py)."""
    last_error = None
    if job.last_error is not None:
        last_error = dict(job.last_error, at=rfc3339(job.last_error.get("at")))
    shown = {
        "id": job.id,
        "queue": job.queue,
        "url": job.url,
        "method": job.method,
        "headers": job.headers,
        "body": None if job.body is None else orjson.loads(job.body),
        "state": public_state(job, now),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "timeout": job.timeout,
        "backoff": {"base": job.backoff.base, "max": job.backoff.max, "jitter": job.backoff.jitter},
        "created_at": rfc3339(job.created_at),
        "run_at": rfc3339(job.run_at),
        "finished_at": rfc3339(job.finished_at),
        "failed_at": rfc3339(job.failed_at),
        "last_error": last_error,
        "result": job.result,
        "progress": job.progress,
        "idempotency_key": job.idempotency_key,
        "unique_key": job.unique_key,
        "ordering_key": job.ordering_key,
        "callback_url": job.callback_url,
        "failure_callback_url": job.failure_callback_url,
    }
    if job.permanent_statuses is not None:  # shown when given, as DESIGN.md says
        shown["permanent_statuses"] = list(job.permanent_statuses)
    return shown


def attempt_json(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": rfc3339(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status": attempt.status,
        "error": attempt.error,
        "response_body": attempt.response_body,
    }
