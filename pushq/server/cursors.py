"""Page cursors of GET /v1/jobs and GET /v1/dlq, as every store writes and reads them.

A cursor is where the previous page ended: for jobs, the last job's id; for the
DLQ, the last job's failure time and id (`1767225600.25_01J...`). Each has a
pattern that /openapi.json publishes and the API checks, and every string that
matches it is a valid place to continue from, so the schema and the server
agree on what a cursor is. Clients should still pass next_cursor back as it
came: the format may change.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .store.errors import InvalidCursor

_ID = r"[0-9A-Z]{26}"
JOBS_CURSOR_PATTERN = rf"^{_ID}$"
DEAD_CURSOR_PATTERN = rf"^(?:0|[1-9][0-9]{{0,19}})(?:\.[0-9]{{1,400}})?_{_ID}$"
_JOBS = re.compile(JOBS_CURSOR_PATTERN)
_DEAD = re.compile(DEAD_CURSOR_PATTERN)


def encode_jobs(last_id: str) -> str:
    return last_id


def decode_jobs(cursor: str) -> str:
    """The id to continue below; InvalidCursor (a 400) unless `cursor` is a jobs cursor."""
    if not _JOBS.fullmatch(cursor):
        raise InvalidCursor()
    return cursor


def encode_dead(failed_at: float | None, last_id: str) -> str:
    # The exact float, in positional notation: the next page starts right after it.
    return f"{Decimal(repr(float(failed_at or 0.0))):f}_{last_id}"


def decode_dead(cursor: str) -> tuple[float, str]:
    """(failed_at, id) to continue below; InvalidCursor unless `cursor` is a DLQ cursor."""
    if not _DEAD.fullmatch(cursor):
        raise InvalidCursor()
    at, _, last_id = cursor.partition("_")
    return float(at), last_id
