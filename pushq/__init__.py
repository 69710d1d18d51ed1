"""pushq: a self-hosted HTTP push queue."""

from __future__ import annotations

from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    InvalidSignature,
    NotFound,
    PushqError,
    RateLimited,
    Unauthorized,
)
from .version import __version__

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "InvalidSignature",
    "NotFound",
    "PushqError",
    "RateLimited",
    "Unauthorized",
    "__version__",
]
