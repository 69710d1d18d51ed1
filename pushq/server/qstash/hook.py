"""The delivery hook of /v2 messages: QStash's request, outcome and callbacks.

- Request: the forwarded headers, `Upstash-Message-Id` (the job id, the same on
  every attempt), `Upstash-Retried`, `Upstash-Signature` (re-signed on every
  attempt) and the rest; pushq's Standard Webhooks headers stay too.
- Outcome: every non-2xx is retried, 4xx included; 489 with
  `Upstash-NonRetryable-Error: true` goes to the DLQ at once. The wait is the
  `Upstash-Retry-Delay` expression, else min(1 day, e^(2.5 n)) s, or longer if
  `Retry-After` / `X-RateLimit-Reset*` ask for it (capped at a day).
- After each attempt: the callback, and once the message is dead the failure
  callback, each a signed, retried /v2 message of its own.
"""

from __future__ import annotations

import base64
import math
from dataclasses import replace
from typing import Any

import orjson

from ...policy.backoff import parse_retry_after
from ..config import Settings
from ..delivery import DeliveryFailed, DeliveryRequest, DeliveryResponse, Outcome
from ..models import JobRecord, NewJob
from .headers import header_map, parse_publish
from .jobs import CALLBACK_QUEUE, make_job
from .keys import SigningKeys
from .retry_delay import delay_seconds
from .workflow import source_body

USER_AGENT = "Upstash-QStash"
MAX_WAIT = 86400.0
NON_RETRYABLE = 489
# pushq's own delivery headers that a /v2 delivery keeps (its Standard Webhooks signature too)
KEPT = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "pushq-attempt",
        "pushq-max-attempts",
        "pushq-queue",
        "pushq-job-token",
        "pushq-api-url",
    }
)


def default_backoff(retry_number: int) -> float:
    """QStash's default wait before retry `retry_number` (1 = the first), in seconds."""
    return min(MAX_WAIT, math.exp(min(2.5 * retry_number, 50.0)))


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode()


def _asked_wait(headers: dict[str, str], now: float) -> float | None:
    """What Retry-After or X-RateLimit-Reset(-Requests/-Tokens) ask for, in seconds."""
    waits = []
    retry_after = parse_retry_after(headers.get("retry-after"), now, MAX_WAIT)
    if retry_after is not None:
        waits.append(retry_after)
    for name in ("x-ratelimit-reset", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        text = (headers.get(name) or "").strip().removesuffix("s")
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            waits.append(min(value - now if value > 1e9 else value, MAX_WAIT))
    return max(waits) if waits else None


class QStashDelivery:
    """pushq.server.delivery.DeliveryHook for jobs of kind "qstash"."""

    def __init__(self, keys: SigningKeys, settings: Settings) -> None:
        self.keys = keys
        self.settings = settings

    def request(self, job: JobRecord, request: DeliveryRequest, now: float) -> DeliveryRequest:
        meta = job.meta or {}
        headers = list(job.headers.items())
        headers += [(k, v) for k, v in request.headers if k in KEPT]
        headers += [
            ("User-Agent", USER_AGENT),
            ("Upstash-Message-Id", job.id),
            ("Upstash-Retried", str(max(job.attempts - 1, 0))),
            ("Upstash-Signature", self.keys.sign(url=job.url, body=request.body, now=now)),
        ]
        for name, key in (
            ("Upstash-Topic-Name", "topicName"),
            ("Upstash-Schedule-Id", "scheduleId"),
            ("Upstash-Caller-Ip", "callerIp"),
        ):
            if meta.get(key):
                headers.append((name, str(meta[key])))
        run_id = (meta.get("workflow") or {}).get("runid")
        if run_id:
            headers.append(("Upstash-Workflow-RunId", run_id))
        if meta.get("workflowSteps"):  # a step of a run (workflow.py): what JS reads too
            headers.append(("Upstash-Workflow-Url", job.url))
            headers.append(("Upstash-Workflow-CreatedAt", str(meta["workflowCreatedAt"])))
        return replace(request, headers=headers)

    def outcome(
        self, job: JobRecord, response: DeliveryResponse | DeliveryFailed, outcome: Outcome
    ) -> Outcome:
        if isinstance(response, DeliveryFailed):
            if response.kind == "refused":
                return outcome
        elif 200 <= response.status < 300:
            return Outcome("succeeded", response.status)
        elif (
            response.status == NON_RETRYABLE
            and response.headers.get("upstash-nonretryable-error", "").strip().lower() == "true"
        ):
            return replace(outcome, verdict="dead", error="HTTP 489 (non-retryable)")
        wait = None
        expression = (job.meta or {}).get("retryDelay")
        if expression:
            wait = delay_seconds(expression, job.attempts - 1, MAX_WAIT)
        if wait is None:
            wait = default_backoff(job.attempts)
        if not isinstance(response, DeliveryFailed):
            asked = _asked_wait(dict(response.headers), job.attempt_started_at or 0.0)
            if asked is not None:
                wait = max(wait, asked)
        return replace(outcome, verdict="retry", retry_after=wait)

    def after_attempt(
        self,
        job: JobRecord,
        response: DeliveryResponse | DeliveryFailed,
        outcome: Outcome,
        now: float,
    ) -> list[NewJob]:
        meta = job.meta or {}
        dead = outcome.verdict == "dead" or (
            outcome.verdict == "retry" and job.attempts >= job.max_attempts
        )
        made = []
        if meta.get("callback"):
            made.append(self._callback(job, response, meta["callback"], "callbackHeaders", now))
        if dead and meta.get("failureCallback"):
            made.append(
                self._callback(
                    job, response, meta["failureCallback"], "failureCallbackHeaders", now
                )
            )
        return made

    def _callback(
        self,
        job: JobRecord,
        response: DeliveryResponse | DeliveryFailed,
        url: str,
        headers_key: str,
        now: float,
    ) -> NewJob:
        meta = job.meta or {}
        failure = headers_key == "failureCallbackHeaders"
        body = callback_body(job, response)
        if failure:
            body["dlqId"] = job.id
        own = [(str(k), str(v)) for k, v in meta.get(headers_key) or ()]
        publish = parse_publish(
            [("Content-Type", "application/json"), *own], token=self.settings.api_token
        )
        if publish.retries is None:
            publish.retries = meta.get("retries")
        kind = "failure-callback" if failure else "callback"
        return make_job(
            publish,
            destination=url,
            body=orjson.dumps(body),
            now=now,
            settings=self.settings,
            queue=CALLBACK_QUEUE,
            extra={"callbackOf": job.id},
            # one per attempt, also across a redrive (which numbers attempts anew)
            idempotency_key=f"qstash-{kind}:{job.id}:{job.attempts}:{job.attempt_started_at}",
        )


def callback_body(job: JobRecord, response: DeliveryResponse | DeliveryFailed) -> dict[str, Any]:
    """QStash's callback body for the attempt `job.attempts` that got `response`."""
    meta = job.meta or {}
    if isinstance(response, DeliveryFailed):
        status, headers, body = 0, {}, response.message.encode()
    else:
        status, headers, body = response.status, dict(response.headers), response.body
    shown: dict[str, Any] = {
        "status": status,
        "header": {k: [v] for k, v in headers.items()},
        "body": _b64(body),
        "retried": max(job.attempts - 1, 0),
        "maxRetries": meta.get("retries", job.max_attempts - 1),
        "sourceMessageId": job.id,
        "url": job.url,
        "method": job.method,
        "sourceHeader": header_map(job.headers.items()),
        "sourceBody": source_body(job) if meta.get("workflowSteps") else _b64(job.body),
        "notBefore": meta.get("notBefore", int(job.run_at * 1000)),
        "createdAt": int(job.created_at * 1000),
    }
    for name, key in (
        ("topicName", "topicName"),
        ("endpointName", "endpointName"),
        ("scheduleId", "scheduleId"),
        ("callerIP", "callerIp"),
    ):
        if meta.get(key):
            shown[name] = meta[key]
    run_id = (meta.get("workflow") or {}).get("runid")
    if run_id:
        shown["workflowRunId"] = run_id
        shown["workflowCreatedAt"] = meta.get("workflowCreatedAt", int(job.created_at * 1000))
    return shown
