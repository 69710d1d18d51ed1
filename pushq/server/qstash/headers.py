"""A publish request's `Upstash-*` headers, read into a `Publish`: what the job is
made of. Names are case-insensitive; unknown `Upstash-*` names are ignored.

`Upstash-Callback-<X>` and `Upstash-Failure-Callback-<X>` are kept as
`Upstash-<X>` for the callback message and read by this same parser when the
callback is made, which applies them recursively (`…-Callback-Forward-H`,
`…-Callback-Retries`, `…-Callback-Failure-Callback-Forward-H`). An `<X>` that
names no setting is forwarded as `<X>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...errors import BadRequest
from . import retry_delay
from .durations import parse_duration

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_RETRIES = 3
MAX_RETRIES = 100
MAX_TIMEOUT = 2 * 3600.0
MAX_DELAY = 10 * 366 * 86400.0
DEDUP_WINDOW = 600.0  # seconds: QStash's deduplication window
# Never forwarded: the connection's own headers, and those the server sets itself.
DROPPED = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
        "te",
        "trailer",
        "trailers",
        "upgrade",
        "accept-encoding",
        "expect",
        "user-agent",
        "upstash-signature",
        "upstash-message-id",
        "upstash-retried",
        "upstash-topic-name",
        "upstash-schedule-id",
        "upstash-caller-ip",
        "upstash-workflow-runid",
    }
)
# The settings an `Upstash-Callback-<X>` may name (else <X> is forwarded as a header).
SETTINGS = frozenset(
    {
        "method",
        "delay",
        "not-before",
        "retries",
        "retry-delay",
        "timeout",
        "callback",
        "failure-callback",
        "deduplication-id",
        "content-based-deduplication",
        "flow-control-key",
        "flow-control-value",
        "label",
        "redact-fields",
    }
)
SETTING_PREFIXES = ("forward-", "callback-", "failure-callback-", "workflow-", "feature-set")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass
class Publish:
    """A message's settings as its publish headers give them."""

    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)  # forwarded (name as given)
    delay: float | None = None
    not_before: float | None = None  # Unix seconds
    retries: int | None = None
    retry_delay: str | None = None
    timeout: float | None = None
    callback: str | None = None
    failure_callback: str | None = None
    callback_headers: list[tuple[str, str]] = field(default_factory=list)  # as Upstash-<X>
    failure_callback_headers: list[tuple[str, str]] = field(default_factory=list)
    deduplication_id: str | None = None
    content_based_deduplication: bool = False
    flow_control_key: str | None = None
    flow_control: dict[str, int] = field(default_factory=dict)
    label: str | None = None
    redact: list[str] = field(default_factory=list)
    workflow: dict[str, str] = field(default_factory=dict)  # Upstash-Workflow-<X>: value
    cron: str | None = None  # schedules only
    schedule_id: str | None = None
    queue_name: str | None = None

    def run_at(self, now: float) -> float:
        if self.not_before is not None:  # beats Upstash-Delay
            return self.not_before
        return now + (self.delay or 0.0)

    def dedup_key(self, destination: str, body: bytes) -> str | None:
        """The idempotency key for a 10-minute deduplication, or None."""
        if self.deduplication_id is not None:
            return f"qstash-dedup:{self.deduplication_id}"
        if not self.content_based_deduplication:
            return None
        digest = hashlib.sha256()
        for part in (destination.encode(), body):
            digest.update(len(part).to_bytes(8, "big") + part)
        for name, value in sorted((k.lower(), v) for k, v in self.headers.items()):
            digest.update(f"{name}:{value}\n".encode())
        return f"qstash-content:{digest.hexdigest()}"


def _true(value: str) -> bool:
    return value.strip().lower() == "true"


def _int(name: str, value: str, low: int, high: int) -> int:
    text = value.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}")
    return int(text)


def _duration(name: str, value: str, high: float) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None
    if seconds > high:
        raise BadRequest(f"{name} must be at most {high:g}s")
    return seconds


def _flow_control(value: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, _, text = part.partition("=")
        key = key.strip().lower()
        if key == "period":
            found[key] = int(_duration("Upstash-Flow-Control-Value period", text, 7 * 86400))
            if found[key] < 1:
                raise BadRequest("Upstash-Flow-Control-Value period must be at least 1s")
        elif key in ("parallelism", "rate"):
            found[key] = _int(f"Upstash-Flow-Control-Value {key}", text, 1, 1_000_000)
        else:
            raise BadRequest(f"Upstash-Flow-Control-Value: unknown setting {key!r}")
    return found


def _nested(rest: str, value: str) -> tuple[str, str]:
    """A callback's own header: Upstash-<X> when <X> names a setting, else a forward."""
    lowered = rest.lower()
    if lowered in SETTINGS or lowered.startswith(SETTING_PREFIXES):
        return f"Upstash-{rest}", value
    return f"Upstash-Forward-{rest}", value


def forwarded(name: str, value: str, token: str) -> bool:
    """Whether a header may reach the destination."""
    lowered = name.lower()
    if lowered in DROPPED or lowered.startswith(("proxy-", "pushq-", "webhook-")):
        return False
    return token not in value  # never forward the API token


def parse_publish(headers: Iterable[tuple[str, str]], *, token: str) -> Publish:
    """Read the publish headers; BadRequest names the one at fault."""
    out = Publish()
    forward: dict[str, tuple[str, str]] = {}  # lower name -> (name, value); the last wins
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-type":
            forward[lowered] = ("Content-Type", value)
            continue
        if not lowered.startswith("upstash-"):
            continue  # the publish request's own headers (Authorization, Host...) stay here
        rest, key = name[8:], lowered[8:]
        if key.startswith("forward-"):
            target = rest[8:]
            if not target or not _HEADER_NAME.match(target):
                raise BadRequest(f"{name} does not name a header")
            if _CONTROL.search(value) or not value.isascii():
                raise BadRequest(f"the value of {name} must be ASCII without control characters")
            if forwarded(target, value, token):
                forward[target.lower()] = (target, value)
        elif key.startswith("failure-callback-"):
            out.failure_callback_headers.append(_nested(rest[17:], value))
        elif key.startswith("callback-"):
            out.callback_headers.append(_nested(rest[9:], value))
        elif key.startswith("workflow-"):
            out.workflow[key[9:]] = value
        elif key == "method":
            method = value.strip().upper()
            if method not in METHODS:
                raise BadRequest(f"Upstash-Method must be one of {', '.join(METHODS)}")
            out.method = method
        elif key == "delay":
            out.delay = _duration(name, value, MAX_DELAY)
        elif key == "not-before":
            out.not_before = float(_int(name, value, 0, 2**40))
        elif key == "retries":
            out.retries = _int(name, value, 0, MAX_RETRIES)
        elif key == "retry-delay":
            try:
                retry_delay.parse(value)
            except ValueError as exc:
                raise BadRequest(f"Upstash-Retry-Delay: {exc}") from None
            out.retry_delay = value.strip()
        elif key == "timeout":
            out.timeout = _duration(name, value, MAX_TIMEOUT) or None
        elif key == "callback":
            out.callback = value.strip()
        elif key == "failure-callback":
            out.failure_callback = value.strip()
        elif key == "deduplication-id":
            if not value.strip() or len(value) > 255:
                raise BadRequest("Upstash-Deduplication-Id must be 1 to 255 characters")
            out.deduplication_id = value.strip()
        elif key == "content-based-deduplication":
            out.content_based_deduplication = _true(value)  # the Python SDK sends "True"
        elif key == "flow-control-key":
            out.flow_control_key = value.strip()[:256] or None
        elif key == "flow-control-value":
            out.flow_control = _flow_control(value)
        elif key == "label":
            out.label = value.strip()[:256] or None
        elif key == "redact-fields":
            out.redact = [part.strip() for part in value.split(",") if part.strip()]
        elif key == "cron":
            out.cron = value.strip()
        elif key == "schedule-id":
            out.schedule_id = value.strip()
        elif key == "queue-name":
            out.queue_name = value.strip()
    out.headers = dict(forward.values())
    return out


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """QStash's header maps: {name: [values]}."""
    shown: dict[str, list[str]] = {}
    for name, value in pairs:
        shown.setdefault(name, []).append(value)
    return shown


def meta_of(publish: Publish, *, caller_ip: str | None) -> dict[str, Any]:
    """The QStash facts a job keeps in its meta (kind "qstash")."""
    meta: dict[str, Any] = {
        "kind": "qstash",
        "retries": DEFAULT_RETRIES if publish.retries is None else publish.retries,
    }
    optional: dict[str, Any] = {
        "retryDelay": publish.retry_delay,
        "callback": publish.callback,
        "failureCallback": publish.failure_callback,
        "callbackHeaders": publish.callback_headers or None,
        "failureCallbackHeaders": publish.failure_callback_headers or None,
        "label": publish.label,
        "redact": publish.redact or None,
        "callerIp": caller_ip,
        "workflow": publish.workflow or None,
    }
    if publish.flow_control_key is not None:
        optional["flowControl"] = {"key": publish.flow_control_key, **publish.flow_control}
    meta.update({k: v for k, v in optional.items() if v is not None})
    return meta
