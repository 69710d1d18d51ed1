"""Errors every store backend raises, whatever its driver.

A backend translates its driver's exceptions into these, so code above the
store (dispatcher, maintenance, API) never imports a driver.

PushqError
└── StoreError            the store failed in a way the caller cannot fix
    ├── StoreUnavailable  retryable: busy, locked, disk full, I/O, connection lost
    └── StoreConflict     a constraint refused the write (e.g. a unique key)

BadRequest (ApiError, 400)
└── InvalidCursor         a page cursor the store did not make

The API's own outcomes (NotFound, Conflict, RateLimited in pushq.errors) pass
through unchanged: they are answers, not failures.
"""

from __future__ import annotations

from ...errors import BadRequest, PushqError


class StoreError(PushqError):
    """The store could not do what it was asked."""


class StoreUnavailable(StoreError):
    """Transient: the same call may succeed if tried again shortly."""


class StoreConflict(StoreError):
    """The write broke a constraint; trying again will not help."""


class InvalidCursor(BadRequest):
    """A cursor that is not a next_cursor this store handed out (answered 400)."""

    def __init__(self) -> None:
        super().__init__("cursor is not valid; pass next_cursor from a previous page")
