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


def body_json(body: bytes | None) -> Any:
    """A stored body as JSON: /v1 bodies are JSON; a /v2 (QStash) body may be any bytes,
    shown as text (or None when it is not UTF-8; /v2/messages shows it in base64)."""
    if body is None:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return body.decode()
        except UnicodeDecodeError:
            return None


def job_json(job: JobRecord, now: float, *, body_is_json: bool = False) -> dict[str, Any]:
    """A job as the API shows it (JobOut in schemas.py). `body_is_json`: the stored
    body is JSON pushq encoded itself (a job just enqueued through /v1), so it goes
    into the answer as it is, unparsed (an orjson.Fragment: only orjson renders it)."""
    last_error = None
    if job.last_error is not None:
        last_error = error_json(job.last_error)
    shown = {
        "id": job.id,
        "queue": job.queue,
        "url": job.url,
        "method": job.method,
        "headers": job.headers,
        "body": (
            orjson.Fragment(job.body)
            if body_is_json and job.body is not None
            else body_json(job.body)
        ),
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
        "progress": progress_json(job.progress),
        "idempotency_key": job.idempotency_key,
        "unique_key": job.unique_key,
        "ordering_key": job.ordering_key,
        "callback_url": job.callback_url,
        "failure_callback_url": job.failure_callback_url,
        "tags": job.tags,
        "flow_key": job.flow_key,
        "schedule": job.schedule,
        "topic": job.topic,
        "replay_of": job.replay_of,
    }
    # while active: when the running attempt started (the dashboard shows it running)
    running = job.attempt_started_at if job.state == "active" else None
    shown["attempt_started_at"] = rfc3339(running)
    if job.permanent_statuses is not None:  # shown when given, as DESIGN.md says
        shown["permanent_statuses"] = list(job.permanent_statuses)
    return shown


def progress_json(progress: Any) -> Any:
    """A stored progress report as the API shows it: `at` in RFC 3339 like every time
    in a response, and whole counts as integers (`current: 3`, not `3.0`)."""
    if not isinstance(progress, dict):
        return progress
    shown = dict(progress)
    if isinstance(shown.get("at"), int | float):
        shown["at"] = rfc3339(shown["at"])
    for name in ("current", "total"):
        value = shown.get(name)
        if isinstance(value, float) and value.is_integer():
            shown[name] = int(value)
    return shown


def error_json(error: dict[str, Any]) -> dict[str, Any]:
    """A stored last_error as the API shows it: the endpoint's own message (when the
    response said one) beside pushq's, and the time in RFC 3339."""
    return {
        "status": error.get("status"),
        "message": error.get("message"),
        "response": error.get("response"),
        "at": rfc3339(error.get("at")),
    }


def attempt_json(attempt: AttemptRecord, job: JobRecord | None = None) -> dict[str, Any]:
    """An attempt; the succeeding one's body is kept once, as the job's result, and
    shown from there (pass the job)."""
    body = attempt.response_body
    if body is None and job is not None and _succeeded_with(job, attempt):
        shown = job.result["body"]  # type: ignore[index]
        body = shown if isinstance(shown, str) else orjson.dumps(shown).decode()
    return {
        "number": attempt.number,
        "started_at": rfc3339(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status": attempt.status,
        "error": attempt.error,
        "response_body": body,
        "redrive": attempt.redrive,
    }


def _succeeded_with(job: JobRecord, attempt: AttemptRecord) -> bool:
    result = job.result
    return (
        job.state == "succeeded"
        and attempt.number == job.attempts
        and isinstance(result, dict)
        and result.get("body") is not None
        and result.get("status") == attempt.status
    )
