"""The exceptions pushq raises, under one root.

PushqError
├── ConfigError          a bad flag, env var or data dir at start-up
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
└── InvalidSignature     a delivery whose signature does not verify
"""

from __future__ import annotations


class PushqError(Exception):
    """Root of every exception pushq raises."""


class ConfigError(PushqError):
    """A configuration value is missing or invalid; the message names it."""


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
