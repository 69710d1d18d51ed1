"""Errors every store backend raises alike, whatever its driver.

A backend translates its driver's exceptions into these, so code above the
store (dispatcher, maintenance, API) never imports a driver.

PushqError
└── StoreError            the store failed in a way the caller cannot fix
    ├── StoreUnavailable  retryable: the database cannot take the call now (disk
    │                     full, read-only, I/O error, corrupt, locked or busy,
    │                     connection lost); `kind` says which and `reason` says
    │                     it in words an operator can act on; the API answers 503
    └── StoreConflict     a constraint refused the write (e.g. a unique key)

BadRequest (ApiError, 400)
└── InvalidCursor         a page cursor the store did not make

The API's own outcomes (NotFound, Conflict, RateLimited in pushq.errors) pass
through unchanged: they are answers, not failures.
"""

from __future__ import annotations

from ...errors import BadRequest, PushqError


class StoreError(PushqError):
    """Root of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database cannot take this call now; the same call may succeed later.
    The API answers 503 with Retry-After."""

    def __init__(self, reason: str, *, kind: str = "unavailable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # full | readonly | corrupt | locked | busy | io | unavailable


class StoreConflict(StoreError):
    """The write broke a constraint; trying again will not help."""


class InvalidCursor(BadRequest):
    """A cursor that is not a next_cursor this store handed out (answered 400)."""

    def __init__(self) -> None:
        super().__init__("cursor is not valid; pass next_cursor from a previous page")
