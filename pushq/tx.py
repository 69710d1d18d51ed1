"""Transactional enqueue: a job stored in your own PostgreSQL transaction.

When your application keeps its data in the PostgreSQL database pushq runs on,
`enqueue_tx(conn, url, body, ...)` stores the job through your connection, inside
the transaction you have open: the job exists if and only if that transaction
commits, and pushq delivers it (signed, retried, as any job) as soon as it does.

    with psycopg.connect(DSN) as conn, conn.transaction():
        order_id = conn.execute("INSERT INTO orders ... RETURNING id").fetchone()[0]
        enqueue_tx(conn, "https://app.internal/tasks/confirm", {"order": order_id},
                   schema="pushq")

    async with pool.acquire() as conn, conn.transaction():        # asyncpg
        ...
        await enqueue_tx_async(conn, url, body, schema="pushq")

The connection is the application's: psycopg 3 (`enqueue_tx` for a Connection,
`enqueue_tx_async` for an AsyncConnection) or asyncpg (`enqueue_tx_async`). This
module imports neither. The job is checked by the same models POST /v1/jobs checks
it with (`pip install 'pushq[server]'` provides them), then stored by one call of
the `pushq_enqueue()` SQL function that pushq installs in its schema, which applies
the queue's and the server's defaults, idempotency and unique keys, ordering keys
and backpressure as an enqueue over HTTP does (docs/scaling.md).

A refusal inside the database (a full queue, a body over the server's limit) raises
here and, as any failed statement, aborts your transaction: your data and its job
are kept together or not at all.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .client import Duration, job_request
from .errors import BadRequest, ConfigError, PayloadTooLarge, PushqError, RateLimited

__all__ = ["Enqueued", "TransactionRequired", "enqueue_tx", "enqueue_tx_async"]

# What pushq answers a full queue with (POST /v1/jobs: 429 with Retry-After).
QUEUE_FULL_RETRY_AFTER = 5.0
_SCHEMA = re.compile(r"^[^\x00]{1,63}$")


class TransactionRequired(PushqError):
    """The connection has no transaction open (or one that already failed): a job
    enqueued through it would not be tied to anything."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The job a transactional enqueue stored (or, `created` False, the job an
    idempotency or unique key already named). It exists once your transaction
    commits; `pushq.Client.get(id)` reads the whole job then."""

    id: str
    queue: str
    state: str  # as the API shows it: pending, scheduled, or a later state of an earlier job
    run_at: datetime
    created: bool

    @property
    def deduplicated(self) -> bool:
        return not self.created


def enqueue_tx(
    conn: Any,
    url: str,
    body: Any = None,
    *,
    schema: str = "public",
    queue: str | None = None,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
    delay: Duration | None = None,
    run_at: datetime | str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    backoff: Mapping[str, Any] | None = None,
    timeout: Duration | None = None,
    idempotency_key: str | None = None,
    unique_key: str | None = None,
    ordering_key: str | None = None,
    callback_url: str | None = None,
    failure_callback_url: str | None = None,
    tags: Iterable[str] | None = None,
    flow_key: str | None = None,
    permanent_statuses: Iterable[int] | None = None,
) -> Enqueued:
    """Enqueue one job in the transaction open on `conn`, a psycopg 3 Connection
    (for asyncpg or psycopg's AsyncConnection: `enqueue_tx_async`). The fields are
    those of `pushq.Client.enqueue`; `schema` is the one pushq serve uses (the
    `search_path` of its database URL). Raises BadRequest for a field POST /v1/jobs
    would refuse, RateLimited when the queue or pushq is full, TransactionRequired
    without an open transaction."""
    if _driver(conn) != "psycopg":
        raise TypeError(
            "enqueue_tx takes a psycopg (3) Connection; for asyncpg or a psycopg "
            f"AsyncConnection use enqueue_tx_async (got {type(conn).__name__})"
        )
    _check_psycopg_transaction(conn)
    job, data = _prepare(url, body, locals())
    statement = f"SELECT * FROM {_quoted(schema)}.pushq_enqueue(%s::jsonb, %s::bytea)"
    try:
        row = conn.execute(statement, (job, data)).fetchone()
    except Exception as exc:
        raise _translated(exc, schema) from exc
    return _result(row)


async def enqueue_tx_async(
    conn: Any,
    url: str,
    body: Any = None,
    *,
    schema: str = "public",
    queue: str | None = None,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
    delay: Duration | None = None,
    run_at: datetime | str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    backoff: Mapping[str, Any] | None = None,
    timeout: Duration | None = None,
    idempotency_key: str | None = None,
    unique_key: str | None = None,
    ordering_key: str | None = None,
    callback_url: str | None = None,
    failure_callback_url: str | None = None,
    tags: Iterable[str] | None = None,
    flow_key: str | None = None,
    permanent_statuses: Iterable[int] | None = None,
) -> Enqueued:
    """`enqueue_tx` on an asyncpg connection (a pool's too) or a psycopg 3
    AsyncConnection, with a transaction open on it."""
    driver = _driver(conn)
    job, data = _prepare(url, body, locals())
    target = f"{_quoted(schema)}.pushq_enqueue"
    try:
        if driver == "asyncpg":
            if not conn.is_in_transaction():
                raise TransactionRequired(
                    "enqueue_tx_async needs a transaction open on the connection "
                    "(async with conn.transaction(): ...); to enqueue on its own use "
                    "pushq.AsyncClient"
                )
            row = await conn.fetchrow(f"SELECT * FROM {target}($1::jsonb, $2::bytea)", job, data)
        elif driver == "psycopg-async":
            _check_psycopg_transaction(conn)
            cursor = await conn.execute(
                f"SELECT * FROM {target}(%s::jsonb, %s::bytea)", (job, data)
            )
            row = await cursor.fetchone()
        else:
            raise TypeError(
                "enqueue_tx_async takes an asyncpg connection or a psycopg (3) "
                f"AsyncConnection; for a psycopg Connection use enqueue_tx "
                f"(got {type(conn).__name__})"
            )
    except (PushqError, TypeError):
        raise
    except Exception as exc:
        raise _translated(exc, schema) from exc
    return _result(row)


# -- the connection ------------------------------------------------------------------
def _driver(conn: Any) -> str:
    """'asyncpg', 'psycopg' (sync) or 'psycopg-async', from the connection's class
    (neither driver is imported unless the connection is one of its own)."""
    package = type(conn).__module__.split(".")[0]
    if package == "asyncpg":
        return "asyncpg"
    if package == "psycopg":
        import psycopg

        if isinstance(conn, psycopg.AsyncConnection):
            return "psycopg-async"
        if isinstance(conn, psycopg.Connection):
            return "psycopg"
    return package


def _check_psycopg_transaction(conn: Any) -> None:
    from psycopg.pq import TransactionStatus

    status = conn.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise TransactionRequired(
            "the transaction on this connection has failed (an earlier statement raised): "
            "roll it back before enqueueing"
        )
    if status == TransactionStatus.IDLE and conn.autocommit:
        raise TransactionRequired(
            "the connection is in autocommit mode with no transaction open: enqueue inside "
            "`with conn.transaction():` (to enqueue on its own use pushq.Client)"
        )


def _quoted(schema: str) -> str:
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        raise BadRequest("schema: the name of pushq's schema (1 to 63 characters)")
    return '"' + schema.replace('"', '""') + '"'


# -- the job ---------------------------------------------------------------------------
_FIELDS = (
    "queue",
    "headers",
    "method",
    "delay",
    "run_at",
    "priority",
    "max_attempts",
    "backoff",
    "timeout",
    "idempotency_key",
    "unique_key",
    "ordering_key",
    "callback_url",
    "failure_callback_url",
    "tags",
    "flow_key",
    "permanent_statuses",
)


def _prepare(url: str, body: Any, given: Mapping[str, Any]) -> tuple[str, bytes | None]:
    """The job as pushq_enqueue() takes it (JSON of the checked fields, durations in
    seconds and run_at in Unix seconds) and the body's bytes, checked by the models
    POST /v1/jobs is checked with: BadRequest naming the first bad field."""
    try:
        import orjson
        from pydantic import ValidationError

        from .server.api.common import describe
        from .server.api.schemas import JobRequest
    except ImportError as exc:
        raise ConfigError(
            "transactional enqueue checks jobs with pushq's server models: "
            f"pip install 'pushq[server]' ({exc})"
        ) from None
    fields = {name: given[name] for name in _FIELDS}
    if fields["tags"] is not None:
        fields["tags"] = list(fields["tags"])
    try:
        request = JobRequest.model_validate(job_request(url, body, **fields))
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None
    except (TypeError, ValueError) as exc:  # e.g. a naive datetime for run_at
        raise BadRequest(str(exc)) from None
    data: bytes | None = None
    if request.body is not None:
        try:
            data = orjson.dumps(request.body)
        except orjson.JSONEncodeError as exc:
            raise BadRequest(f"body: {exc}") from None
    job: dict[str, Any] = request.model_dump(
        exclude={"body", "run_at", "backoff"}, exclude_none=True, exclude_defaults=False
    )
    if request.run_at is not None:
        job["run_at"] = request.run_at.timestamp()
    if request.backoff is not None:
        job["backoff"] = request.backoff.model_dump(exclude_none=True)
    if not job.get("headers"):
        job.pop("headers", None)
    if not job.get("tags"):
        job.pop("tags", None)
    return json.dumps(job), data


def _result(row: Any) -> Enqueued:
    job_id, queue, state, run_at, created = tuple(row)
    now = time.time()
    if state in ("blocked", "scheduled"):  # as the API shows them
        state = "scheduled" if run_at > now else "pending"
    return Enqueued(
        id=job_id,
        queue=queue,
        state=state,
        run_at=datetime.fromtimestamp(run_at, UTC),
        created=bool(created),
    )


# -- errors ----------------------------------------------------------------------------
def _translated(exc: Exception, schema: str) -> Exception:
    """pushq's error for what pushq_enqueue() refused; any other database error as it
    came (it is the application's transaction)."""
    sqlstate = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)  # psycopg
    message = getattr(diag, "message_primary", None) or getattr(exc, "message", None) or str(exc)
    hint = getattr(diag, "message_hint", None) or getattr(exc, "hint", None)
    message = str(message).removeprefix("pushq: ")
    if sqlstate == "22023":
        return BadRequest(message)
    if sqlstate == "54000":
        return PayloadTooLarge(message)
    if sqlstate == "53400" and hint in ("queue_full", "server_full"):
        return RateLimited(message, retry_after=QUEUE_FULL_RETRY_AFTER, code=hint)
    if sqlstate in ("42883", "3F000"):  # no such function / schema
        return ConfigError(
            f"no pushq_enqueue() in schema {schema!r}: pass schema= as pushq serve's "
            "database URL sets it (search_path), and start pushq serve on this database "
            "once so it installs its migrations"
        )
    return exc
