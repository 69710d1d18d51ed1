"""The embedded store: SQLite in WAL mode.

Writes go through one writer thread with group commit (group_commit.py): every
write transaction is BEGIN IMMEDIATE, concurrent writes share one commit, and
each is acknowledged only after that commit. Reads use a separate aiosqlite
connection, so listings never wait behind the writer (WAL readers don't block).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from ..errors import Conflict, NotFound
from ..models import Attempt, BackoffPolicy, EnqueueResult, Job, NewJob, new_job_id
from .base import Page
from .group_commit import GroupCommitWriter
from .sql import load_queries, migrations

Q = load_queries("sqlite_queries.sql")
BUSY_TIMEOUT_MS = 10_000


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        queue=row["queue"],
        url=row["url"],
        method=row["method"],
        headers=_loads(row["headers"]) or {},
        body=row["body"],
        state=row["state"],
        priority=row["priority"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        backoff=BackoffPolicy(row["backoff_base"], row["backoff_max"], bool(row["backoff_jitter"])),
        timeout=row["timeout"],
        created_at=row["created_at"],
        run_at=row["run_at"],
        finished_at=row["finished_at"],
        failed_at=row["failed_at"],
        lease=row["lease"],
        lease_expires_at=row["lease_expires_at"],
        attempt_started_at=row["attempt_started_at"],
        last_error=_loads(row["last_error"]),
        result=_loads(row["result"]),
        progress=_loads(row["progress"]),
        idempotency_key=row["idempotency_key"],
        unique_key=row["unique_key"],
        ordering_key=row["ordering_key"],
        callback_url=row["callback_url"],
        failure_callback_url=row["failure_callback_url"],
    )


def _fetch(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def _attempt_params(attempt: Attempt) -> dict[str, Any]:
    return {
        "job_id": attempt.job_id,
        "number": attempt.number,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "status": attempt.status,
        "error": attempt.error,
        "response_body": attempt.response_body,
    }


def _encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The parts of an opaque cursor; ValueError when it was not made by us."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("cursor is not valid") from exc
    if not isinstance(parts, list) or not parts:
        raise ValueError("cursor is not valid")
    return parts


class SQLiteStore:
    """Store on one SQLite file."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._writer = GroupCommitWriter(
            self.path, synchronous=synchronous, busy_timeout_ms=BUSY_TIMEOUT_MS
        )
        self._reader: aiosqlite.Connection | None = None

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._writer.open()
        await self._writer.call(_migrate)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        await self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await self._reader.execute("PRAGMA query_only = ON")

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        await self._writer.close()

    async def _read(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "store is not open"
        return list(await self._reader.execute_fetchall(sql, params))

    async def ping(self) -> None:
        now = str(time.time())
        await self._writer.write(lambda conn: conn.execute(Q["ping"], {"now": now}))

    # -- producers ---------------------------------------------------------------
    async def enqueue(
        self, *, jobs: Sequence[NewJob], now: float, idempotency_ttl: float
    ) -> list[EnqueueResult]:
        def write(conn: sqlite3.Connection) -> list[EnqueueResult]:
            return [_enqueue_one(conn, new, now, idempotency_ttl) for new in jobs]

        return await self._writer.write(write)

    async def get(self, *, job_id: str) -> Job | None:
        rows = await self._read(Q["get_job"], {"id": job_id})
        return row_to_job(rows[0]) if rows else None

    async def list_jobs(
        self, *, queue: str | None, state: str | None, limit: int, cursor: str | None, now: float
    ) -> Page:
        # Filters combine freely, so this one statement is assembled here.
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1, "now": now}
        if queue is not None:
            where.append("queue = :queue")
            params["queue"] = queue
        if state == "scheduled":
            where.append("state = 'pending' AND run_at > :now")
        elif state == "pending":
            where.append("state = 'pending' AND run_at <= :now")
        elif state is not None:
            where.append("state = :state")
            params["state"] = state
        if cursor is not None:
            where.append("id < :after")
            params["after"] = str(decode_cursor(cursor)[0])
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT :limit"
        jobs = [row_to_job(row) for row in await self._read(sql, params)]
        next_cursor = _encode_cursor(jobs[limit - 1].id) if len(jobs) > limit else None
        return Page(jobs[:limit], next_cursor)

    async def list_attempts(self, *, job_id: str) -> list[Attempt]:
        rows = await self._read(Q["list_attempts"], {"job_id": job_id})
        return [
            Attempt(
                job_id=row["job_id"],
                number=row["number"],
                started_at=row["started_at"],
                duration_ms=row["duration_ms"],
                status=row["status"],
                error=row["error"],
                response_body=row["response_body"],
            )
            for row in rows
        ]

    async def cancel(self, *, job_id: str, now: float) -> Job:
        def write(conn: sqlite3.Connection) -> Job:
            rows = _fetch(conn, Q["cancel"], {"id": job_id, "now": now})
            if rows:
                return row_to_job(rows[0])
            exists = _fetch(conn, Q["get_job"], {"id": job_id})
            if not exists:
                raise NotFound(f"no job {job_id}")
            raise Conflict(f"job {job_id} is already {exists[0]['state']}", code="job_finished")

        return await self._writer.write(write)

    # -- the dispatcher ----------------------------------------------------------
    async def claim_due(
        self, *, limit: int, now: float, lease: str, lease_margin: float
    ) -> list[Job]:
        params = {"limit": limit, "now": now, "lease": lease, "lease_margin": lease_margin}
        rows = await self._writer.write(lambda conn: _fetch(conn, Q["claim_due"], params))
        return [row_to_job(row) for row in rows]

    async def _settle(
        self, query: str, params: dict[str, Any], attempt: Attempt, lease: str
    ) -> bool:
        params |= {"id": attempt.job_id, "lease": lease, "attempt": attempt.number}

        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q[query], params).rowcount != 1:
                return False  # the job moved on (rescued, cancelled): this attempt is stale
            conn.execute(Q["insert_attempt"], _attempt_params(attempt))
            return True

        return await self._writer.write(write)

    async def complete(
        self, *, job_id: str, lease: str, attempt: Attempt, result: dict[str, Any], now: float
    ) -> bool:
        params = {"result": _dumps(result), "now": now}
        return await self._settle("complete", params, attempt, lease)

    async def schedule_retry(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: Attempt,
        run_at: float,
        error: dict[str, Any],
    ) -> bool:
        params = {"run_at": run_at, "error": _dumps(error)}
        return await self._settle("schedule_retry", params, attempt, lease)

    async def kill(
        self, *, job_id: str, lease: str, attempt: Attempt, error: dict[str, Any], now: float
    ) -> bool:
        return await self._settle("kill", {"error": _dumps(error), "now": now}, attempt, lease)

    async def await_completion(
        self, *, job_id: str, lease: str, attempt: int, deadline: float
    ) -> bool:
        params = {"id": job_id, "lease": lease, "attempt": attempt, "deadline": deadline}
        return await self._writer.write(
            lambda conn: conn.execute(Q["await_completion"], params).rowcount == 1
        )

    async def rescue_expired(self, *, now: float, limit: int) -> list[Job]:
        message = (
            "lease expired: no outcome in time (pushq stopped mid-attempt, or an async job "
            "stopped sending heartbeats)"
        )
        error = {"status": None, "message": message, "at": now}

        def write(conn: sqlite3.Connection) -> list[Job]:
            rows = _fetch(
                conn, Q["rescue_expired"], {"now": now, "limit": limit, "error": _dumps(error)}
            )
            jobs = [row_to_job(row) for row in rows]
            for job in jobs:
                started = job.attempt_started_at or now
                duration_ms = (now - started) * 1000
                attempt = Attempt(job.id, job.attempts, started, duration_ms, None, message, None)
                conn.execute(Q["insert_attempt"], _attempt_params(attempt))
            return jobs

        return await self._writer.write(write)

    async def prune_idempotency_keys(self, *, now: float, limit: int) -> int:
        params = {"now": now, "limit": limit}
        return await self._writer.write(
            lambda conn: int(conn.execute(Q["prune_idempotency_keys"], params).rowcount)
        )

    # -- the dead-letter queue -----------------------------------------------------
    async def list_dead(self, *, queue: str | None, limit: int, cursor: str | None) -> Page:
        where = ["state = 'dead'"]
        params: dict[str, Any] = {"limit": limit + 1}
        if queue is not None:
            where.append("queue = :queue")
            params["queue"] = queue
        if cursor is not None:
            parts = decode_cursor(cursor)
            if len(parts) != 2:
                raise ValueError("cursor is not valid")
            where.append("(failed_at, id) < (:failed_at, :after)")
            params["failed_at"], params["after"] = float(parts[0]), str(parts[1])
        sql = (
            "SELECT * FROM jobs WHERE "
            + " AND ".join(where)
            + " ORDER BY failed_at DESC, id DESC LIMIT :limit"
        )
        jobs = [row_to_job(row) for row in await self._read(sql, params)]
        next_cursor = None
        if len(jobs) > limit:
            last = jobs[limit - 1]
            next_cursor = _encode_cursor(last.failed_at, last.id)
        return Page(jobs[:limit], next_cursor)

    async def redrive(self, *, job_id: str, now: float) -> Job:
        try:
            rows = await self._writer.write(
                lambda conn: _fetch(conn, Q["redrive"], {"id": job_id, "now": now})
            )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"job {job_id} has a unique_key that an unfinished job of its queue holds",
                code="unique_key_taken",
            ) from None
        if not rows:
            raise NotFound(f"no dead job {job_id}")
        return row_to_job(rows[0])

    async def redrive_many(self, *, queue: str | None, now: float) -> int:
        # Jobs whose unique key is held by an unfinished job stay dead.
        params: dict[str, Any] = {"now": now, "queue": queue}
        query = Q["redrive_all"] if queue is None else Q["redrive_queue"]
        return await self._writer.write(lambda conn: int(conn.execute(query, params).rowcount))

    async def delete_dead(self, *, job_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q["delete_dead"], {"id": job_id}).rowcount != 1:
                return False
            conn.execute(Q["delete_attempts"], {"job_id": job_id})
            return True

        return await self._writer.write(write)

    # -- observability -------------------------------------------------------------
    async def count_by_state(self, *, now: float) -> dict[tuple[str, str], int]:
        rows = await self._read(Q["count_by_state"], {"now": now})
        return {(row["queue"], row["state"]): row["n"] for row in rows}


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, name, sql in migrations():
        if version in applied:
            continue
        # executescript runs the whole file; wrapping it makes it all or nothing.
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{sql}\n"
            f"INSERT INTO schema_migrations VALUES ({version}, '{name}', {time.time()});\n"
            "COMMIT;"
        )


def _enqueue_one(conn: sqlite3.Connection, new: NewJob, now: float, ttl: float) -> EnqueueResult:
    if new.idempotency_key is not None:
        rows = _fetch(conn, Q["find_idempotency_key"], {"key": new.idempotency_key, "now": now})
        if rows:
            existing = _fetch(conn, Q["get_job"], {"id": rows[0][0]})
            if existing:
                return EnqueueResult(row_to_job(existing[0]), created=False)
    if new.unique_key is not None:
        rows = _fetch(
            conn, Q["find_unique_job"], {"queue": new.queue, "unique_key": new.unique_key}
        )
        if rows:
            return EnqueueResult(row_to_job(rows[0]), created=False)
    assert new.max_attempts is not None and new.backoff is not None
    assert new.timeout is not None
    job = Job(
        id=new_job_id(now),
        queue=new.queue,
        url=new.url,
        method=new.method,
        headers=new.headers,
        body=new.body,
        state="pending",
        priority=new.priority,
        attempts=0,
        max_attempts=new.max_attempts,
        backoff=new.backoff,
        timeout=new.timeout,
        created_at=now,
        run_at=max(new.run_at, now),
        idempotency_key=new.idempotency_key,
        unique_key=new.unique_key,
        ordering_key=new.ordering_key,
        callback_url=new.callback_url,
        failure_callback_url=new.failure_callback_url,
    )
    conn.execute(
        Q["insert_job"],
        {
            "id": job.id,
            "queue": job.queue,
            "url": job.url,
            "method": job.method,
            "headers": _dumps(job.headers or None),
            "body": job.body,
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "backoff_base": job.backoff.base,
            "backoff_max": job.backoff.max,
            "backoff_jitter": int(job.backoff.jitter),
            "timeout": job.timeout,
            "created_at": job.created_at,
            "run_at": job.run_at,
            "idempotency_key": job.idempotency_key,
            "unique_key": job.unique_key,
            "ordering_key": job.ordering_key,
            "callback_url": job.callback_url,
            "failure_callback_url": job.failure_callback_url,
        },
    )
    if new.idempotency_key is not None:
        conn.execute(
            Q["put_idempotency_key"],
            {"key": new.idempotency_key, "job_id": job.id, "expires_at": now + ttl},
        )
    return EnqueueResult(job, created=True)
