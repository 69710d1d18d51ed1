"""Jobs as QStash shows them: Message, DlqMessage, log events. Times in Unix ms,
header maps {name: [values]}; `Upstash-Redact-Fields` masks what these show."""

from __future__ import annotations

import base64
from typing import Any

from ..models import AttemptRecord, JobRecord
from .jobs import QUEUE_PREFIX

REDACTED = "REDACTED"


def ms(ts: float | None) -> int | None:
    return None if ts is None else int(ts * 1000)


def _forwards(pairs: Any) -> dict[str, list[str]] | None:
    """A callback's forwarded headers, from its stored Upstash-<X> list."""
    shown: dict[str, list[str]] = {}
    for name, value in pairs or ():
        if str(name).lower().startswith("upstash-forward-"):
            shown.setdefault(str(name)[16:], []).append(str(value))
    return shown or None


def _headers(job: JobRecord, redact: list[str]) -> dict[str, list[str]]:
    return redacted_headers(job.headers, redact)


def redacted_headers(headers: dict[str, str], redact: list[str]) -> dict[str, list[str]]:
    """A header map as QStash shows it, masked as `Upstash-Redact-Fields` asks."""
    hidden = {part[7:-1].lower() for part in redact if part.startswith("header[")}
    everything = "header" in redact
    return {
        name: [REDACTED if everything or name.lower() in hidden else value]
        for name, value in headers.items()
    }


def queue_name(job: JobRecord) -> str | None:
    return job.queue[len(QUEUE_PREFIX) :] if job.queue.startswith(QUEUE_PREFIX) else None


def message_json(job: JobRecord) -> dict[str, Any]:
    """QStash's Message (GET /v2/messages/{id})."""
    meta = job.meta or {}
    redact = list(meta.get("redact") or ())
    shown: dict[str, Any] = {
        "messageId": job.id,
        "url": job.url,
        "method": job.method,
        "maxRetries": meta.get("retries", job.max_attempts - 1),
        "notBefore": meta.get("notBefore", ms(job.run_at)),
        "createdAt": ms(job.created_at),
        "header": _headers(job, redact),
    }
    if job.body is not None:
        if "body" in redact:
            shown["body"] = REDACTED
        else:
            try:
                shown["body"] = job.body.decode()
            except UnicodeDecodeError:
                shown["bodyBase64"] = base64.b64encode(job.body).decode()
    optional = {
        "queueName": queue_name(job),
        "topicName": meta.get("topicName"),
        "endpointName": meta.get("endpointName"),
        "callback": meta.get("callback"),
        "failureCallback": meta.get("failureCallback"),
        "callbackHeader": _forwards(meta.get("callbackHeaders")),
        "failureCallbackHeader": _forwards(meta.get("failureCallbackHeaders")),
        "scheduleId": meta.get("scheduleId"),
        "callerIP": meta.get("callerIp"),
        "retryDelayExpression": meta.get("retryDelay"),
        "label": meta.get("label"),
    }
    flow = meta.get("flowControl")
    if flow:
        optional |= {
            "flowControlKey": flow.get("key"),
            "parallelism": flow.get("parallelism"),
            "rate": flow.get("rate"),
            "period": flow.get("period", 1) if flow.get("rate") else None,
        }
    shown.update({k: v for k, v in optional.items() if v is not None})
    return shown


def dlq_json(job: JobRecord, last: AttemptRecord | None) -> dict[str, Any]:
    """QStash's DlqMessage: the message, its dlqId and the last response."""
    shown = message_json(job)
    error = job.last_error or {}
    shown["dlqId"] = job.id
    shown["responseStatus"] = (last.status if last else None) or error.get("status") or 0
    body = last.response_body if last else None
    if body is None:
        body = error.get("message")
    if body is not None:
        shown["responseBody"] = body
    return shown


def events(job: JobRecord, attempts: list[AttemptRecord]) -> list[dict[str, Any]]:
    """The log events of one message, newest first."""
    meta = job.meta or {}
    base = {
        "messageId": job.id,
        "url": job.url,
        "method": job.method,
        "maxRetries": meta.get("retries", job.max_attempts - 1),
    }
    if queue_name(job):
        base["queueName"] = queue_name(job)
    for field, key in (
        ("label", "label"),
        ("topicName", "topicName"),
        ("endpointName", "endpointName"),
        ("scheduleId", "scheduleId"),
        ("callerIP", "callerIp"),  # not an SDK field: what the callerIp filter matches
    ):
        if meta.get(key):
            base[field] = meta[key]
    if (meta.get("flowControl") or {}).get("key"):
        base["flowControlKey"] = meta["flowControl"]["key"]
    made = [base | {"time": ms(job.created_at), "state": "CREATED"}]
    for attempt in attempts:
        at = ms(attempt.started_at + attempt.duration_ms / 1000)
        answer: dict[str, Any] = {}
        if attempt.status is not None:
            answer["responseStatus"] = attempt.status
        if attempt.response_body is not None:
            answer["responseBody"] = attempt.response_body
        if attempt.status is not None and 200 <= attempt.status < 300:
            made.append(base | answer | {"time": at, "state": "DELIVERED"})
        else:
            made.append(base | answer | {"time": at, "state": "ERROR", "error": attempt.error})
            if attempt is not attempts[-1] or job.state == "retrying":
                retry = {"time": at, "state": "RETRY"}
                if job.state == "retrying" and attempt is attempts[-1]:
                    retry["nextDeliveryTime"] = ms(job.run_at)
                made.append(base | retry)
    if job.state == "active":
        made.append(base | {"time": ms(job.attempt_started_at), "state": "ACTIVE"})
    elif job.state == "dead":
        made.append(base | {"time": ms(job.failed_at), "state": "FAILED"})
    elif job.state == "cancelled":
        made.append(base | {"time": ms(job.finished_at), "state": "CANCELED"})
    made.reverse()
    return made
