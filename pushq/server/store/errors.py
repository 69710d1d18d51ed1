"""Store errors that every backend raises alike, so nothing above the store needs
to know a driver's exceptions.

StoreError
└── StoreUnavailable   the database cannot take writes now (disk full, read-only,
                       I/O error, corrupt, locked by another process); `reason`
                       says which, in words an operator can act on
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of the store's own errors."""


class StoreUnavailable(StoreError):
    """The database cannot be written now; the API answers 503 with Retry-After."""

    def __init__(self, reason: str, *, kind: str = "unavailable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # full | readonly | corrupt | locked | io | unavailable
