"""Making pushq jobs of QStash messages: publishes, enqueues, batch items, callbacks."""

from __future__ import annotations

from typing import Any

from ...errors import BadRequest, PayloadTooLarge
from ...policy.backoff import PartialBackoff
from ..api.schemas import _url
from ..api.targets import check_target
from ..config import Settings
from ..models import NewJob
from .headers import MAX_DELAY, Publish, meta_of

PUBLISH_QUEUE = "qstash"  # the pushq queue of messages published without a queue
CALLBACK_QUEUE = "qstash-callbacks"
QUEUE_PREFIX = "qstash."  # QStash queue "orders" is pushq queue "qstash.orders"
ZERO_BACKOFF = PartialBackoff(0.0, 0.0, False)  # the delivery hook computes each wait


def pushq_queue(name: str) -> str:
    return QUEUE_PREFIX + name


def run_tag(run_id: str) -> str:
    """The tag of every job of a workflow run (steps, calls, callbacks): /v1 can list them."""
    return f"wf:{run_id}"


def check_url(value: str, what: str, settings: Settings) -> str:
    try:
        _url(value)
    except ValueError as exc:
        raise BadRequest(f"{what} {value[:200]!r} {exc}") from None
    check_target(settings.target_policy, value, what)
    return value


def make_job(
    publish: Publish,
    *,
    destination: str,
    body: bytes,
    now: float,
    settings: Settings,
    queue: str = PUBLISH_QUEUE,
    ordering_key: str | None = None,
    caller_ip: str | None = None,
    extra: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> NewJob:
    """The job of one message to one URL; BadRequest names what is wrong."""
    check_url(destination, "destination", settings)
    for what, url in (
        ("callback", publish.callback),
        ("failure callback", publish.failure_callback),
    ):
        if url is not None:
            check_url(url, what, settings)
    if len(body) > settings.max_body_size:
        raise PayloadTooLarge(
            f"the body is {len(body)} bytes; the limit is {settings.max_body_size}"
        )
    run_at = publish.run_at(now)
    if run_at - now > MAX_DELAY:
        raise BadRequest("a message may be delayed by at most ten years")
    meta = meta_of(publish, caller_ip=caller_ip)
    meta["notBefore"] = int(max(run_at, now) * 1000)
    meta.update(extra or {})
    return NewJob(
        url=destination,
        queue=queue,
        method=publish.method,
        headers=publish.headers,
        body=body or None,
        run_at=run_at,
        max_attempts=meta["retries"] + 1,
        backoff=ZERO_BACKOFF,
        timeout=publish.timeout,
        idempotency_key=idempotency_key or publish.dedup_key(destination, body),
        ordering_key=ordering_key,
        flow_key=publish.flow_control_key,
        permanent_statuses=(),  # every non-2xx is retried (489 aside, see hook.py)
        meta=meta,
        tags=[run_tag(run_id)] if (run_id := publish.workflow.get("runid")) else [],
    )
