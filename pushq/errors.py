"""The exceptions pushq raises, under one root.

PushqError
├── ConfigError          a bad flag, env var or data dir at start-up
│   └── TokenNotFound    the SDK or CLI found no API token (names where it looked)
├── StartupError         `pushq serve` cannot start: port in use, database locked,
│                        corrupt or unwritable (the message says what to fix)
├── ApiError             an HTTP API error (status, code, message)
│   ├── BadRequest       400: malformed or invalid input
│   │   └── TargetRefused  400: a delivery URL the target policy refuses
│   ├── Unauthorized     401: missing or wrong token
│   ├── Forbidden        403: a token that is valid but not for this
│   ├── NotFound         404: unknown id or name
│   ├── Conflict         409: the job is not in a state that allows it
│   ├── PayloadTooLarge  413: a body over the configured limit
│   └── RateLimited      429: backpressure (retry_after seconds)
├── PushqConnectionError  no answer from pushq: refused, reset, DNS, TLS
│   └── PushqTimeout     no answer within the client's timeout
├── TaskArgumentError    (also a TypeError) arguments that do not fit a task's
│                        signature or annotations, caught before the enqueue
└── InvalidSignature     a delivery whose signature does not verify
"""

from __future__ import annotations


class PushqError(Exception):
    """Root of every exception pushq raises."""


class ConfigError(PushqError):
    """A configuration value is missing or invalid; the message names it."""


class TokenNotFound(ConfigError):
    """No API token was given, none is in $PUSHQ_API_TOKEN, and no `pushq serve` left
    one in the data dir; `path` is the token file that was looked for."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class PushqConnectionError(PushqError):
    """The request got no answer: `url` is pushq's base URL, `reason` says why in a
    few words ("connection refused", "timed out"); the httpx error is the `__cause__`.

    A request that timed out may still have been carried out: an enqueue is safe to
    repeat with the same idempotency key (the SDK does so when it retries)."""

    def __init__(self, message: str, *, url: str, reason: str) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


class PushqTimeout(PushqConnectionError):
    """No answer within the client's `timeout`."""


class TaskArgumentError(PushqError, TypeError):
    """Arguments that do not fit a task function (`Task.enqueue`), raised before any
    request is sent; the message names the task and the parameter."""


class StartupError(PushqError):
    """`pushq serve` cannot start; the message is one line saying what to fix."""


class InvalidSignature(PushqError):
    """A delivery's Standard Webhooks signature did not verify."""


class ApiError(PushqError):
    """An error answered over HTTP as {"error": {"code", "message"}}."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ApiError):
    status = 400
    code = "invalid_request"


class TargetRefused(BadRequest):
    """A job, callback or endpoint URL points where PUSHQ_TARGETS does not allow."""

    code = "target_refused"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after
