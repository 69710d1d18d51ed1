"""The embedded store: SQLite in WAL mode.

Writes go through one writer thread with group commit (group_commit.py): every
write transaction is BEGIN IMMEDIATE, concurrent writes share one commit, and
each is acknowledged only after that commit. Reads use a separate aiosqlite
connection, so listings never wait behind the writer (WAL readers don't block).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from ...errors import Conflict, NotFound, RateLimited
from ...policy.backoff import BackoffPolicy, PartialBackoff, resolve_backoff
from ...policy.claim_plan import ClaimPlan, QueueSnapshot
from ...policy.flow_keys import KeyLimits, KeySnapshot, pick, spent_buckets
from .. import cursors
from ..models import (
    AttemptRecord,
    CircuitRecord,
    DeadFilter,
    EnqueueResult,
    FlowKeyRecord,
    JobDefaults,
    JobFilter,
    JobRecord,
    NewJob,
    QueueSettings,
    ScheduleRecord,
    TopicRecord,
    id_floor,
    new_job_id,
)
from .base import JobPage, Promotion, Rescue
from .errors import StoreConflict, StoreError, StoreUnavailable
from .group_commit import Checkpointer, GroupCommitWriter, Outcome, Shared, unavailable
from .sql import load_queries, migrations

Q = load_queries("sqlite_queries.sql")
log = logging.getLogger("pushq.store")
BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def row_to_job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
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
        tags=_loads(row["tags"]) or [],
        flow_key=row["flow_key"],
        schedule=row["schedule"],
        topic=row["topic"],
        replay_of=row["replay_of"],
        redrives=row["redrives"],
        permanent_statuses=_statuses(row["permanent_statuses"]),
        meta=_loads(row["meta"]),
        awaiting=bool(row["awaiting"]),
    )


def _statuses(text: str | None) -> tuple[int, ...] | None:
    return None if text is None else tuple(orjson.loads(text))


def _fetch(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def _attempt_params(attempt: AttemptRecord, redrive: int | None = None) -> dict[str, Any]:
    return {
        "redrive": redrive,
        "job_id": attempt.job_id,
        "number": attempt.number,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "status": attempt.status,
        "error": attempt.error,
        "response_body": attempt.response_body,
    }


def _store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """The store-neutral error for a sqlite3 one (full, read-only, I/O, corrupt as the
    writer names them; busy or locked: retryable too)."""
    known = unavailable(exc, path)
    if known is not None:
        return known
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreConflict(f"sqlite: {exc}")
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(f"{path}: {exc}", kind="busy")
    return StoreError(f"sqlite: {exc}")


class SQLiteStore:
    """Store on one SQLite file."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._writer = GroupCommitWriter(
            self.path,
            synchronous=synchronous,
            busy_timeout_ms=BUSY_TIMEOUT_MS,
            counter_sql=Q["add_unfinished"],
            job_count_sql=Q["add_job_count"],
        )
        self._reader: aiosqlite.Connection | None = None
        self._here: sqlite3.Connection | None = None  # _read_small's, on the loop thread
        self._slow_reads: dict[str, int] = {}  # query -> reads left on the reader thread
        self._checkpointer = Checkpointer(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS)
        self._listeners: list[Callable[[float | None], None]] = []

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        """Open and migrate; StoreUnavailable (everything closed again) when the file is
        corrupt, not a database, or cannot be written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._writer.open()
            await self._writer.call(_migrate)
            await self._writer.call(_check_counts)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            self._reader.row_factory = sqlite3.Row
            await self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await self._reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            await self.close()  # else aiosqlite's thread keeps the process alive
            translated = unavailable(exc, self.path)
            if translated is None:
                translated = StoreUnavailable(f"{self.path}: {exc}", kind="unavailable")
            raise translated from None
        self._checkpointer.start()

    @property
    def unavailable(self) -> StoreUnavailable | None:
        """Why the database cannot take writes now, or None (it can, as far as we know)."""
        return self._writer.unavailable

    async def close(self) -> None:
        if self._here is not None:
            self._here.close()
            self._here = None
        await self._checkpointer.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        await self._writer.close()

    async def _read(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "store is not open"
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    async def _read_small(self, query: str, params: Any = ()) -> list[sqlite3.Row]:
        """A named query that is usually quick (the claim round's snapshots), run on
        the calling thread rather than handed to the reader's: the hand-off costs
        more than the query. It never waits: a database that is busy (a WAL
        recovery) sends the read to the reader thread, and so does a read that took
        longer than SMALL_READ_BUDGET, for the next SLOW_READ_ROUNDS reads."""
        assert self._reader is not None, "store is not open"
        sql = Q[query]
        slow = self._slow_reads.get(query, 0)
        if slow:
            self._slow_reads[query] = slow - 1
            return await self._read(sql, params)
        conn = self._here
        if conn is None:
            conn = self._here = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA query_only = ON")
        started = time.perf_counter()
        try:
            rows = conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # busy or locked: let the reader wait for it
            return await self._read(sql, params)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc
        if time.perf_counter() - started > SMALL_READ_BUDGET:
            self._slow_reads[query] = SLOW_READ_ROUNDS
        return rows

    async def _write(
        self, op: Callable[[sqlite3.Connection], T] | Shared, *, probe: bool = False
    ) -> T:
        """Run `op` in the next group commit; sqlite3 errors leave as StoreErrors."""
        try:
            return await self._writer.write(op, probe=probe)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def listen(self, on_due: Callable[[float | None], None]) -> None:
        self._listeners.append(on_due)

    def _due(self, run_at: float | None) -> None:
        """Tell the listeners (this process only) that jobs became due (None) or will at run_at."""
        for on_due in self._listeners:
            on_due(run_at)

    async def ping(self) -> None:
        """A write that must commit; StoreUnavailable if it cannot. While writes are
        failing, it commits 256 KiB (and removes them): a tiny write may still fit
        in a full disk's WAL where an enqueue does not."""
        now = str(time.time())
        if self._writer.unavailable is None:
            await self._write(lambda c: c.execute(Q["ping"], {"now": now}), probe=True)
            return
        await self._write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('space_probe', zeroblob(262144))"
            )
        )
        await self._write(lambda c: c.execute("DELETE FROM meta WHERE key = 'space_probe'"))

    # -- producers ---------------------------------------------------------------
    async def enqueue(
        self,
        *,
        jobs: Sequence[NewJob],
        now: float,
        idempotency_ttl: float,
        defaults: JobDefaults,
        backpressure: bool = True,
    ) -> list[EnqueueResult]:
        # Shared: the enqueues of one group commit share their statements (_enqueue_calls)
        call = _EnqueueCall(jobs, now, idempotency_ttl, defaults, backpressure)
        results: list[EnqueueResult] = await self._write(Shared(_enqueue_calls, call))
        if self._listeners:
            self._announce(results)
        return results

    def _announce(self, results: Sequence[EnqueueResult]) -> None:
        ready, waiting = False, math.inf
        for result in results:
            if result.created:
                if result.job.state == "pending":
                    ready = True
                elif result.job.state == "scheduled":
                    waiting = min(waiting, result.job.run_at)
        if ready:
            self._due(None)
        if waiting < math.inf:
            self._due(waiting)

    async def get(self, *, job_id: str) -> JobRecord | None:
        rows = await self._read(Q["get_job"], {"id": job_id})
        return row_to_job(rows[0]) if rows else None

    async def list_jobs(
        self, *, queue: str | None, state: str | None, limit: int, cursor: str | None, now: float
    ) -> JobPage:
        # Filters combine freely, so this one statement is assembled here.
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1, "now": now}
        if queue is not None:
            where.append("queue = :queue")
            params["queue"] = queue
        if state == "scheduled":
            where.append("state IN ('scheduled', 'blocked') AND run_at > :now")
        elif state == "pending":
            where.append(
                "(state = 'pending' OR (state IN ('scheduled', 'blocked') AND run_at <= :now))"
            )
        elif state is not None:
            where.append("state = :state")
            params["state"] = state
        if cursor is not None:
            where.append("id < :after")
            params["after"] = cursors.decode_jobs(cursor)
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT :limit"
        jobs = [row_to_job(row) for row in await self._read(sql, params)]
        next_cursor = cursors.encode_jobs(jobs[limit - 1].id) if len(jobs) > limit else None
        return JobPage(jobs[:limit], next_cursor)

    async def list_attempts(self, *, job_id: str) -> list[AttemptRecord]:
        rows = await self._read(Q["list_attempts"], {"job_id": job_id})
        return [
            AttemptRecord(
                job_id=row["job_id"],
                number=row["number"],
                started_at=row["started_at"],
                duration_ms=row["duration_ms"],
                status=row["status"],
                error=row["error"],
                response_body=row["response_body"],
                redrive=row["redrive"],
            )
            for row in rows
        ]

    async def cancel(self, *, job_id: str, now: float) -> JobRecord:
        def write(conn: sqlite3.Connection) -> JobRecord:
            rows = _fetch(conn, Q["cancel"], {"id": job_id, "now": now})
            if rows:
                job = row_to_job(rows[0])
                _finished(conn, job.queue, job.ordering_key, now)
                return job
            exists = _fetch(conn, Q["get_job"], {"id": job_id})
            if not exists:
                raise NotFound(f"no job {job_id}")
            raise Conflict(f"job {job_id} is already {exists[0]['state']}", code="job_finished")

        return await self._write(write)

    # -- the dispatcher ----------------------------------------------------------
    async def claim_snapshot(self, *, limit: int, count_active: bool) -> list[QueueSnapshot]:
        params = {"limit": limit, "count_active": int(count_active)}
        rows = await self._read_small("claim_snapshot", params)
        return [
            QueueSnapshot(
                name=row[0],
                priority=row[1],
                concurrency=row[2],
                rate_limit=row[3],
                tokens=row[4],
                tokens_at=row[5],
                key_concurrency=row[6],
                key_rate_limit=row[7],
                ready=row[8],
                active=row[9],
            )
            for row in rows
        ]

    async def flow_key_snapshot(self, *, now: float) -> list[KeySnapshot]:
        rows = await self._read_small("flow_key_snapshot", {"since": now - MAX_RATE_PERIOD})
        return [
            KeySnapshot(
                key=row["key"],
                concurrency=row["concurrency"],
                rate_limit=row["rate_limit"],
                paused=bool(row["paused"]),
                active=row["active"],
                tokens=row["tokens"],
                tokens_at=row["tokens_at"],
                bucket_rate=row["bucket_rate"],
            )
            for row in rows
        ]

    async def claim(
        self, *, plan: ClaimPlan, now: float, lease: str, lease_margin: float
    ) -> list[JobRecord]:
        if not plan.takes:
            return []

        def write(conn: sqlite3.Connection) -> list[JobRecord]:
            claimed: list[JobRecord] = []
            params: dict[str, Any] = {"now": now, "lease": lease, "lease_margin": lease_margin}
            taken: dict[str, int] = {}  # jobs per flow key this round, across queues
            for queue, count in plan.takes:
                params["queue"], params["limit"] = queue, count
                limits = plan.keys.get(queue)
                before = len(claimed)
                if limits is None:
                    claimed += [row_to_job(r) for r in _fetch(conn, Q["claim_from_queue"], params)]
                else:
                    claimed += _claim_by_key(conn, params, limits, taken, count, now)
                if len(claimed) > before:  # the trigger leaves pending -> active to us
                    self._writer.count_jobs(queue, "pending", before - len(claimed))
                    self._writer.count_jobs(queue, "active", len(claimed) - before)
            for name, bucket in plan.buckets.items():
                conn.execute(
                    Q["save_tokens"],
                    {
                        "name": name,
                        "rate_limit": bucket.rate_limit,
                        "tokens": bucket.tokens,
                        "tokens_at": bucket.tokens_at,
                    },
                )
            return claimed

        return await self._write(write)

    async def _settle(
        self,
        query: str,
        params: dict[str, Any],
        attempt: AttemptRecord,
        lease: str,
        callback: NewJob | None = None,
        defaults: JobDefaults | None = None,
    ) -> bool:
        params |= {"id": attempt.job_id, "lease": lease, "attempt": attempt.number}

        def write(conn: sqlite3.Connection) -> bool:
            rows = _fetch(conn, Q[query], params)
            if not rows:
                return False  # the job moved on (rescued, cancelled): this attempt is stale
            queue, ordering_key, redrive = rows[0]
            conn.execute(Q["insert_settled_attempt"], _attempt_params(attempt, redrive))
            # the trigger leaves active -> settled to us: counted once per group commit
            self._writer.count_jobs(queue, "active", -1)
            self._writer.count_jobs(queue, SETTLED_STATE[query], 1)
            if query not in ("schedule_retry", "release_interrupted"):
                # the queue's counter is written once per group commit
                _finished(conn, queue, ordering_key, params["now"], self._writer.count)
            if callback is not None:
                assert defaults is not None, "a callback needs the job defaults"
                # a callback reports an outcome already decided: never refused
                _enqueue_all(
                    conn,
                    [callback],
                    params["now"],
                    CALLBACK_KEY_TTL,
                    defaults,
                    backpressure=False,
                )
            return True

        return await self._write(write)

    async def complete(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        result: dict[str, Any],
        now: float,
        callback: NewJob | None = None,
        defaults: JobDefaults | None = None,
    ) -> bool:
        params = {"result": _dumps(result), "now": now}
        return await self._settle("complete", params, attempt, lease, callback, defaults)

    async def schedule_retry(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        run_at: float,
        error: dict[str, Any],
    ) -> bool:
        params = {"run_at": run_at, "error": _dumps(error)}
        if not await self._settle("schedule_retry", params, attempt, lease):
            return False
        self._due(run_at)
        return True

    async def kill(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        error: dict[str, Any],
        now: float,
        callback: NewJob | None = None,
        defaults: JobDefaults | None = None,
    ) -> bool:
        params = {"error": _dumps(error), "now": now}
        return await self._settle("kill", params, attempt, lease, callback, defaults)

    async def release_interrupted(
        self, *, job_id: str, lease: str, attempt: AttemptRecord, error: dict[str, Any]
    ) -> bool:
        params = {"error": _dumps(error), "now": attempt.started_at}
        if not await self._settle("release_interrupted", params, attempt, lease):
            return False
        self._due(None)
        return True

    async def report_progress(
        self, *, job_id: str, lease: str, attempt: int, progress: Any, deadline: float
    ) -> bool:
        params = {
            "id": job_id,
            "lease": lease,
            "attempt": attempt,
            "progress": _dumps(progress),
            "deadline": deadline,
        }
        return await self._write(
            lambda conn: conn.execute(Q["report_progress"], params).rowcount == 1
        )

    async def prune_finished(
        self, *, succeeded_before: float, dead_before: float, limit: int
    ) -> int:
        params = {"succeeded_before": succeeded_before, "dead_before": dead_before, "limit": limit}

        def write(conn: sqlite3.Connection) -> int:
            ids = [row[0] for row in conn.execute(Q["expired_jobs"], params)]
            for job_id in ids:
                conn.execute(Q["delete_attempts"], {"job_id": job_id})
                conn.execute(Q["delete_job"], {"id": job_id})
            return len(ids)

        return await self._write(write)

    async def await_completion(
        self, *, job_id: str, lease: str, attempt: int, deadline: float
    ) -> bool:
        params = {"id": job_id, "lease": lease, "attempt": attempt, "deadline": deadline}
        return await self._write(
            lambda conn: conn.execute(Q["await_completion"], params).rowcount == 1
        )

    async def promote_due(self, *, now: float, limit: int) -> Promotion:
        def write(conn: sqlite3.Connection) -> Promotion:
            promoted = conn.execute(Q["promote_due"], {"now": now, "limit": limit}).rowcount
            next_at = conn.execute(Q["next_waiting_at"]).fetchone()[0]
            return Promotion(promoted, next_at)

        return await self._write(write)

    async def expired_leases(self, *, now: float, limit: int) -> list[JobRecord]:
        rows = await self._read(Q["expired_leases"], {"now": now, "limit": limit})
        return [row_to_job(row) for row in rows]

    async def orphaned_attempts(self, *, limit: int) -> list[JobRecord]:
        # This store's database is this process's alone (serve holds the data-dir lock).
        rows = await self._read(Q["orphaned_attempts"], {"limit": limit})
        return [row_to_job(row) for row in rows]

    async def rescue(
        self,
        *,
        rescues: Sequence[Rescue],
        error: dict[str, Any],
        now: float,
        defaults: JobDefaults,
    ) -> list[JobRecord]:
        if not rescues:
            return []
        batch = [
            {
                "id": r.job_id,
                "lease": r.lease,
                "attempt": r.attempt,
                "run_at": r.run_at,
                "orphaned": r.orphaned,
            }
            for r in rescues
        ]
        params = {"rescues": _dumps(batch), "error": _dumps(error), "now": now}
        callbacks = {r.job_id: r.callback for r in rescues if r.callback is not None}
        message = error.get("message")

        def write(conn: sqlite3.Connection) -> list[JobRecord]:
            jobs = [row_to_job(row) for row in _fetch(conn, Q["rescue_many"], params)]
            attempts = []
            for job in jobs:
                self._writer.count_jobs(job.queue, "active", -1)  # not the trigger's
                self._writer.count_jobs(job.queue, job.state, 1)
                if job.state == "dead":
                    _finished(conn, job.queue, job.ordering_key, now)
                started = job.attempt_started_at or now
                attempt = AttemptRecord(
                    job.id, job.attempts, started, (now - started) * 1000, None, message, None
                )
                attempts.append(_attempt_params(attempt))
            conn.executemany(Q["insert_attempt"], attempts)
            dead = [callbacks[j.id] for j in jobs if j.state == "dead" and j.id in callbacks]
            if dead:  # a callback reports an outcome already decided: never refused
                _enqueue_all(conn, dead, now, CALLBACK_KEY_TTL, defaults, backpressure=False)
            return jobs

        jobs = await self._write(write)
        waiting = [job.run_at for job in jobs if job.state == "retrying"]
        if waiting:
            self._due(min(waiting))
        if any(job.state == "dead" and job.id in callbacks for job in jobs):
            self._due(None)
        return jobs

    async def prune_idempotency_keys(self, *, now: float, limit: int) -> int:
        params = {"now": now, "limit": limit}
        return await self._write(
            lambda conn: int(conn.execute(Q["prune_idempotency_keys"], params).rowcount)
        )

    # -- the dead-letter queue -----------------------------------------------------
    async def list_dead(
        self,
        *,
        queue: str | None,
        limit: int,
        cursor: str | None,
        match: DeadFilter | None = None,
    ) -> JobPage:
        match = match or DeadFilter()
        if queue is not None:
            match = replace(match, queue=queue)
        where, params = _dead_conditions(match)
        params["limit"] = limit + 1
        if cursor is not None:
            where.append("(failed_at, id) < (:failed_at, :after)")
            params["failed_at"], params["after"] = cursors.decode_dead(cursor)
        sql = (
            "SELECT * FROM jobs WHERE "
            + " AND ".join(where)
            + " ORDER BY failed_at DESC, id DESC LIMIT :limit"
        )
        jobs = [row_to_job(row) for row in await self._read(sql, params)]
        next_cursor = None
        if len(jobs) > limit:
            last = jobs[limit - 1]
            next_cursor = cursors.encode_dead(last.failed_at, last.id)
        return JobPage(jobs[:limit], next_cursor)

    async def redrive(self, *, job_id: str, now: float) -> JobRecord:
        def write(conn: sqlite3.Connection) -> JobRecord:
            rows = _fetch(conn, Q["get_job"], {"id": job_id})
            if not rows or rows[0]["state"] != "dead":
                raise NotFound(f"no dead job {job_id}")
            try:
                return _redrive(conn, rows[0], now)
            except sqlite3.IntegrityError:
                raise Conflict(
                    f"job {job_id} has a unique_key that an unfinished job of its queue holds",
                    code="unique_key_taken",
                ) from None

        return await self._write(write)

    async def redrive_many(self, *, queue: str | None, now: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            count = 0
            for row in _fetch(conn, Q["dead_jobs"], {"queue": queue}):
                job = _fetch(conn, Q["get_job"], {"id": row["id"]})[0]
                if job["unique_key"] is not None and _fetch(
                    conn,
                    Q["find_unique_job"],
                    {"queue": job["queue"], "unique_key": job["unique_key"]},
                ):
                    continue  # an unfinished job holds its unique key: it stays dead
                _redrive(conn, job, now)
                count += 1
            return count

        return await self._write(write)

    async def delete_dead(self, *, job_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q["delete_dead"], {"id": job_id}).rowcount != 1:
                return False
            conn.execute(Q["delete_attempts"], {"job_id": job_id})
            return True

        return await self._write(write)

    async def delete_dead_matching(self, *, match: DeadFilter) -> int:
        where, params = _dead_conditions(match)
        sql = "DELETE FROM jobs WHERE " + " AND ".join(where) + " RETURNING id"

        def write(conn: sqlite3.Connection) -> int:
            ids = [{"job_id": row[0]} for row in conn.execute(sql, params).fetchall()]
            conn.executemany(Q["delete_attempts"], ids)
            return len(ids)

        return await self._write(write)

    # -- queues --------------------------------------------------------------------
    async def get_queue(self, *, name: str) -> QueueSettings | None:
        rows = await self._read(Q["get_queue"], {"name": name})
        return row_to_queue(rows[0]) if rows else None

    async def list_queues(self) -> list[QueueSettings]:
        return [row_to_queue(row) for row in await self._read(Q["list_queues"])]

    async def put_queue(self, *, name: str, changes: dict[str, Any], now: float) -> QueueSettings:
        def write(conn: sqlite3.Connection) -> QueueSettings:
            conn.execute(Q["ensure_queue"], {"name": name, "now": now})
            row = _fetch(conn, Q["get_queue"], {"name": name})[0]
            current = row_to_queue(row)
            tokens, tokens_at = row["tokens"], row["tokens_at"]
            new_rate = "rate_limit" in changes and changes["rate_limit"] != current.rate_limit
            for key, value in changes.items():
                setattr(current, key, value)
            if new_rate:
                tokens = tokens_at = None  # a new limit starts with a full bucket
            backoff = current.backoff or PartialBackoff()
            params = {
                "name": name,
                "concurrency": current.concurrency,
                "rate_limit": current.rate_limit,
                "max_attempts": current.max_attempts,
                "backoff_base": backoff.base,
                "backoff_max": backoff.max,
                "backoff_jitter": None if backoff.jitter is None else int(backoff.jitter),
                "timeout": current.timeout,
                "max_size": current.max_size,
                "paused": int(current.paused),
                "priority": current.priority,
                "permanent_statuses": _dumps(current.permanent_statuses),
                "key_concurrency": current.key_concurrency,
                "key_rate_limit": current.key_rate_limit,
                "adaptive_concurrency": int(current.adaptive_concurrency),
                "endpoint_concurrency": current.endpoint_concurrency,
                "tokens": tokens,
                "tokens_at": tokens_at,
                "now": now,
            }
            return row_to_queue(_fetch(conn, Q["update_queue"], params)[0])

        return await self._write(write)

    async def oldest_pending(self) -> dict[str, float]:
        """{queue: run_at of its oldest ready job}."""
        return {row["queue"]: row["oldest"] for row in await self._read(Q["oldest_pending"])}

    # -- schedules -----------------------------------------------------------------
    async def put_schedule(
        self,
        *,
        name: str,
        cron: str,
        timezone: str,
        job: dict[str, Any],
        next_run_at: float,
        now: float,
    ) -> ScheduleRecord:
        params = {
            "name": name,
            "cron": cron,
            "timezone": timezone,
            "job": _dumps(job),
            "next_run_at": next_run_at,
            "now": now,
        }
        rows = await self._write(lambda conn: _fetch(conn, Q["put_schedule"], params))
        return row_to_schedule(rows[0])

    async def get_schedule(self, *, name: str) -> ScheduleRecord | None:
        rows = await self._read(Q["get_schedule"], {"name": name})
        return row_to_schedule(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [row_to_schedule(row) for row in await self._read(Q["list_schedules"])]

    async def delete_schedule(self, *, name: str) -> bool:
        return await self._write(
            lambda conn: conn.execute(Q["delete_schedule"], {"name": name}).rowcount == 1
        )

    async def due_schedules(self, *, now: float) -> list[ScheduleRecord]:
        return [row_to_schedule(r) for r in await self._read(Q["due_schedules"], {"now": now})]

    async def next_schedule_at(self) -> float | None:
        rows = await self._read(Q["next_schedule_at"])
        return rows[0][0] if rows else None

    async def fire_schedule(
        self,
        *,
        schedule: ScheduleRecord,
        next_run_at: float,
        job: NewJob,
        now: float,
        idempotency_ttl: float,
        defaults: JobDefaults,
    ) -> EnqueueResult | None:
        """Enqueue one firing and move the schedule on, in one transaction.

        Guarded by the next_run_at it read, so when several nodes race only one
        fires; the job's idempotency key names the firing, so it is enqueued once.
        """
        params = {
            "name": schedule.name,
            "expected": schedule.next_run_at,
            "fired_at": schedule.next_run_at,
            "next_run_at": next_run_at,
        }

        def write(conn: sqlite3.Connection) -> EnqueueResult | None:
            if conn.execute(Q["advance_schedule"], params).rowcount != 1:
                return None
            return _enqueue_all(conn, [job], now, idempotency_ttl, defaults)[0]

        result = await self._write(write)
        if result is not None:
            self._announce([result])
        return result

    # -- observability -------------------------------------------------------------
    async def count_by_state(self, *, now: float) -> dict[tuple[str, str], int]:
        """From the job_counts table (kept by triggers), not a count of the jobs."""
        return public_counts(await self._read(Q["count_by_state"], {"now": now}))

    # -- operators' actions and search (issue 14) ----------------------------------
    async def find_jobs(
        self, *, match: JobFilter, limit: int, cursor: str | None, now: float
    ) -> JobPage:
        after = None if cursor is None else cursors.decode_jobs(cursor)
        sql, params = find_jobs_sql(match, now, limit + 1, after)
        jobs = [row_to_job(row) for row in await self._read(sql, params)]
        next_cursor = cursors.encode_jobs(jobs[limit - 1].id) if len(jobs) > limit else None
        return JobPage(jobs[:limit], next_cursor)

    async def run_now(self, *, job_id: str, now: float) -> JobRecord:
        def write(conn: sqlite3.Connection) -> JobRecord:
            rows = _fetch(conn, Q["run_now"], {"id": job_id, "now": now})
            if rows:
                return row_to_job(rows[0])
            found = _fetch(conn, Q["get_job"], {"id": job_id})
            if not found:
                raise NotFound(f"no job {job_id}")
            if found[0]["state"] == "dead":
                try:
                    return _redrive(conn, found[0], now)
                except sqlite3.IntegrityError:
                    raise Conflict(
                        f"job {job_id} has a unique_key that an unfinished job of its queue holds",
                        code="unique_key_taken",
                    ) from None
            state = found[0]["state"]
            why = "it is being delivered now" if state == "active" else "it has finished"
            raise Conflict(
                f"job {job_id} is {state}: {why}; replay it to run it again",
                code=f"job_{state}",
            )

        return await self._write(write)

    async def delete_job(self, *, job_id: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(Q["delete_finished"], {"id": job_id}).rowcount == 1:
                conn.execute(Q["delete_attempts"], {"job_id": job_id})
                return
            found = _fetch(conn, Q["get_job"], {"id": job_id})
            if not found:
                raise NotFound(f"no job {job_id}")
            raise Conflict(f"job {job_id} is not finished; cancel it first", code="job_unfinished")

        await self._write(write)

    async def cancel_matching(self, *, match: JobFilter, now: float) -> int:
        return await self._write(lambda conn: _cancel_matching(conn, match, now))

    async def delete_queue(self, *, name: str, force: bool, now: float) -> int:
        def write(conn: sqlite3.Connection) -> int:
            if not _fetch(conn, Q["get_queue"], {"name": name}):
                raise NotFound(f"no queue {name}")
            cancelled = 0
            if force:
                cancelled = _cancel_matching(conn, JobFilter(queue=name), now)
            else:
                waiting = conn.execute(Q["queue_unfinished_jobs"], {"name": name}).fetchone()[0]
                if waiting:
                    raise Conflict(
                        f"queue {name} holds {waiting} unfinished jobs; purge it first "
                        "or pass ?force=true to cancel them",
                        code="queue_not_empty",
                    )
            conn.execute(Q["delete_queue"], {"name": name})
            return cancelled

        return await self._write(write)

    async def count_dead(self, *, match: DeadFilter) -> int:
        where, params = _dead_conditions(match)
        sql = "SELECT count(*) FROM jobs INDEXED BY jobs_dead WHERE " + " AND ".join(where)
        rows = await self._read(sql, params)
        return int(rows[0][0])

    async def redrive_matching(self, *, match: DeadFilter, now: float, interval: float) -> int:
        where, params = _dead_conditions(match)
        # Oldest first, so that jobs sharing an ordering key keep their enqueue order.
        sql = (
            "SELECT * FROM jobs INDEXED BY jobs_dead WHERE " + " AND ".join(where) + " ORDER BY id"
        )

        def write(conn: sqlite3.Connection) -> int:
            count = 0
            for row in _fetch(conn, sql, params):
                if row["unique_key"] is not None and _fetch(
                    conn,
                    Q["find_unique_job"],
                    {"queue": row["queue"], "unique_key": row["unique_key"]},
                ):
                    continue  # an unfinished job holds its unique key: it stays dead
                _redrive(conn, row, now, now + count * interval)
                count += 1
            return count

        count = await self._write(write)
        if count > 1 and interval > 0:
            self._due(now + interval)  # the rest are spread out: the promoter's
        return count

    # -- flow keys ---------------------------------------------------------------
    async def get_flow_key(self, *, key: str) -> FlowKeyRecord:
        rows = await self._read(Q["get_flow_key"], {"key": key})
        [counts] = await self._read(Q["flow_key_counts"], {"key": key})
        return row_to_flow_key(rows[0] if rows else None, key, counts)

    async def list_flow_keys(self, *, limit: int) -> list[FlowKeyRecord]:
        rows = await self._read(Q["list_flow_keys"], {"limit": limit})
        out = []
        for row in rows:
            [counts] = await self._read(Q["flow_key_counts"], {"key": row["key"]})
            out.append(row_to_flow_key(row, row["key"], counts))
        return out

    async def put_flow_key(self, *, key: str, changes: dict[str, Any], now: float) -> FlowKeyRecord:
        def write(conn: sqlite3.Connection) -> None:
            rows = _fetch(conn, Q["get_flow_key"], {"key": key})
            current = {"concurrency": None, "rate_limit": None, "paused": 0}
            if rows:
                current = {k: rows[0][k] for k in current}
            current.update({k: int(v) if k == "paused" else v for k, v in changes.items()})
            conn.execute(Q["put_flow_key"], {"key": key, "now": now, **current})

        await self._write(write)
        return await self.get_flow_key(key=key)

    # -- endpoints ---------------------------------------------------------------
    async def release(self, *, job_id: str, lease: str, attempt: int, run_at: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            params = {"id": job_id, "lease": lease, "attempt": attempt, "run_at": run_at}
            rows = _fetch(conn, Q["release"], params)
            for (queue,) in rows:  # active -> scheduled is not the trigger's to count
                self._writer.count_jobs(queue, "active", -1)
                self._writer.count_jobs(queue, "scheduled", 1)
            return bool(rows)

        released = await self._write(write)
        if released:
            self._due(run_at)
        return released

    async def save_circuit(self, *, circuit: CircuitRecord, now: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                Q["save_circuit"],
                {
                    "origin": circuit.origin,
                    "state": circuit.state,
                    "failures": circuit.failures,
                    "opened": circuit.opened,
                    "open_until": circuit.open_until,
                    "now": now,
                },
            )
            conn.execute(Q["forget_closed_circuits"], {"before": now - 86400})

        await self._write(write)

    async def load_circuits(self) -> list[CircuitRecord]:
        return [
            CircuitRecord(r["origin"], r["state"], r["failures"], r["opened"], r["open_until"])
            for r in await self._read(Q["load_circuits"])
        ]

    # -- topics ------------------------------------------------------------------
    async def put_topic(
        self, *, name: str, endpoints: list[dict[str, Any]], now: float
    ) -> TopicRecord:
        def write(conn: sqlite3.Connection) -> TopicRecord:
            params = {"name": name, "endpoints": _dumps(endpoints), "now": now}
            return row_to_topic(_fetch(conn, Q["put_topic"], params)[0])

        return await self._write(write)

    async def get_topic(self, *, name: str) -> TopicRecord | None:
        rows = await self._read(Q["get_topic"], {"name": name})
        return row_to_topic(rows[0]) if rows else None

    async def list_topics(self) -> list[TopicRecord]:
        return [row_to_topic(row) for row in await self._read(Q["list_topics"])]

    async def delete_topic(self, *, name: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            return conn.execute(Q["delete_topic"], {"name": name}).rowcount > 0

        return await self._write(write)

    async def set_schedule_paused(
        self, *, name: str, paused: bool, next_run_at: float | None, now: float
    ) -> ScheduleRecord:
        params = {"name": name, "paused": int(paused), "next_run_at": next_run_at, "now": now}
        rows = await self._write(lambda conn: _fetch(conn, Q["set_schedule_paused"], params))
        if not rows:
            raise NotFound(f"no schedule {name}")
        return row_to_schedule(rows[0])


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


def _check_counts(conn: sqlite3.Connection) -> None:
    """Count the jobs again if job_counts does not add up to them: only rows written
    around pushq (an INSERT by hand or a benchmark's fill) make it, and one count at
    start-up (a second or so for 10 M rows) puts it right."""
    if conn.execute(Q["job_counts_agree"]).fetchone()[0]:
        return
    log.warning(
        "job counts do not add up to the jobs stored (rows written outside pushq?): "
        "counting them again"
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(Q["clear_job_counts"])
        conn.execute(Q["recount_jobs"])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# The state each settle statement leaves its job in (the store counts it, see
# migration 0010).
SETTLED_STATE = {
    "complete": "succeeded",
    "schedule_retry": "retrying",
    "kill": "dead",
    "release_interrupted": "pending",
}
CALLBACK_KEY_TTL = 86400.0  # a callback's idempotency key guards against a second one
QUEUE_FULL_RETRY_AFTER = 5.0  # seconds; a full queue drains at the workers' pace


def row_to_queue(row: sqlite3.Row) -> QueueSettings:
    backoff = None
    if any(row[k] is not None for k in ("backoff_base", "backoff_max", "backoff_jitter")):
        jitter = None if row["backoff_jitter"] is None else bool(row["backoff_jitter"])
        backoff = PartialBackoff(row["backoff_base"], row["backoff_max"], jitter)
    return QueueSettings(
        name=row["name"],
        concurrency=row["concurrency"],
        rate_limit=row["rate_limit"],
        max_attempts=row["max_attempts"],
        backoff=backoff,
        timeout=row["timeout"],
        max_size=row["max_size"],
        paused=bool(row["paused"]),
        priority=row["priority"],
        unfinished=row["unfinished"],
        permanent_statuses=_statuses(row["permanent_statuses"]),
        key_concurrency=row["key_concurrency"],
        key_rate_limit=row["key_rate_limit"],
        adaptive_concurrency=bool(row["adaptive_concurrency"]),
        endpoint_concurrency=row["endpoint_concurrency"],
    )


# The claim round's snapshots are read on the event-loop thread while they take at
# most SMALL_READ_BUDGET seconds; one that takes longer (thousands of queues or of
# keys in flight) is read on the reader thread for the next SLOW_READ_ROUNDS reads.
SMALL_READ_BUDGET = 0.002
SLOW_READ_ROUNDS = 100
MAX_RATE_PERIOD = 3600.0  # the longest rate period ("N/h"): a bucket older is full again
KEYED_SCAN_ROUNDS = 8  # reads of one queue's candidates per claim, at most


def _claim_by_key(
    conn: sqlite3.Connection,
    params: dict[str, Any],
    limits: KeyLimits,
    taken: dict[str, int],
    count: int,
    now: float,
) -> list[JobRecord]:
    """Claim up to `count` of a queue's pending jobs under its flow keys' limits:
    read candidates in claim order skipping held keys, let policy.flow_keys.pick
    choose, claim those (guarded), and read on past the keys that became full."""
    held = set(limits.held)
    before = dict(taken)
    claimed: list[JobRecord] = []
    for _ in range(KEYED_SCAN_ROUNDS):
        need = count - len(claimed)
        if need <= 0:
            break
        scan = need * 4 + 16
        rows = _fetch(
            conn,
            Q["claim_candidates"],
            {"queue": params["queue"], "held": orjson.dumps(sorted(held)).decode(), "scan": scan},
        )
        ids, full = pick(((r[0], r[1]) for r in rows), limits, taken, need)
        if ids:
            got = _fetch(conn, Q["claim_ids"], {**params, "ids": orjson.dumps(ids).decode()})
            claimed += [row_to_job(r) for r in got]
        held |= full
        if len(rows) < scan or not full:
            break
    mine = {k: n - before.get(k, 0) for k, n in taken.items() if n > before.get(k, 0)}
    for key, (rate, tokens, tokens_at) in spent_buckets(limits, mine, now).items():
        conn.execute(
            Q["save_key_tokens"],
            {"key": key, "tokens": tokens, "tokens_at": tokens_at, "bucket_rate": rate},
        )
    claimed.sort(key=lambda job: (-job.priority, job.run_at, job.id))
    return claimed


def row_to_flow_key(row: sqlite3.Row | None, key: str, counts: sqlite3.Row) -> FlowKeyRecord:
    return FlowKeyRecord(
        key=key,
        concurrency=None if row is None else row["concurrency"],
        rate_limit=None if row is None else row["rate_limit"],
        paused=False if row is None else bool(row["paused"]),
        in_flight=counts["in_flight"],
        waiting=counts["waiting"],
    )


def row_to_topic(row: sqlite3.Row) -> TopicRecord:
    return TopicRecord(
        name=row["name"],
        endpoints=orjson.loads(row["endpoints"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def row_to_schedule(row: sqlite3.Row) -> ScheduleRecord:
    return ScheduleRecord(
        name=row["name"],
        cron=row["cron"],
        timezone=row["timezone"],
        job=orjson.loads(row["job"]),
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
        paused=bool(row["paused"]),
    )


def public_counts(rows: Sequence[sqlite3.Row]) -> dict[tuple[str, str], int]:
    """count_by_state's rows, stored states (and its two corrections) to public ones:
    a scheduled job already due reads as pending, a blocked one as pending, or as
    scheduled while its run_at is ahead."""
    stored: dict[tuple[str, str], int] = {}
    for queue, state, n in rows:
        stored[queue, state] = n
    counts: dict[tuple[str, str], int] = {}
    for (queue, state), n in stored.items():
        if state == "scheduled_due" or state == "blocked_ahead":
            continue
        if state == "scheduled":
            due = stored.get((queue, "scheduled_due"), 0)
            _add(counts, (queue, "scheduled"), n - due)
            _add(counts, (queue, "pending"), due)
        elif state == "blocked":
            ahead = stored.get((queue, "blocked_ahead"), 0)
            _add(counts, (queue, "scheduled"), ahead)
            _add(counts, (queue, "pending"), n - ahead)
        else:
            _add(counts, (queue, state), n)
    return counts


def _add(counts: dict[tuple[str, str], int], key: tuple[str, str], n: int) -> None:
    if n:
        counts[key] = counts.get(key, 0) + n


def _finished(
    conn: sqlite3.Connection,
    queue: str,
    ordering_key: str | None,
    now: float,
    count: Callable[[str, int], None] | None = None,
) -> None:
    """Bookkeeping when a job leaves the unfinished states: the queue's count (now, or
    through the writer's `count` at the group commit), its key."""
    if count is not None:
        count(queue, -1)
    else:
        conn.execute(Q["add_unfinished"], {"name": queue, "delta": -1})
    if ordering_key is not None:
        conn.execute(Q["unblock_next"], {"queue": queue, "key": ordering_key, "now": now})


def _redrive(
    conn: sqlite3.Connection, row: sqlite3.Row, now: float, run_at: float | None = None
) -> JobRecord:
    """A dead job back to the queue, due at `run_at` (default now), its redrive counted."""
    run_at = now if run_at is None else max(run_at, now)
    state = "pending" if run_at <= now else "scheduled"
    key = row["ordering_key"]
    if key is not None and _fetch(
        conn, Q["ordering_key_busy"], {"queue": row["queue"], "key": key}
    ):
        state = "blocked"
    params = {"id": row["id"], "run_at": run_at, "state": state}
    job = row_to_job(_fetch(conn, Q["redrive"], params)[0])
    conn.execute(Q["ensure_queue"], {"name": job.queue, "now": now})  # it may have been removed
    conn.execute(Q["add_unfinished"], {"name": job.queue, "delta": 1})
    return job


@dataclass(frozen=True, slots=True)
class _EnqueueCall:
    """One Store.enqueue call, as _enqueue_calls takes it."""

    jobs: Sequence[NewJob]
    now: float
    ttl: float
    defaults: JobDefaults
    backpressure: bool


def _enqueue_calls(conn: sqlite3.Connection, calls: list[_EnqueueCall]) -> list[Outcome]:
    """The enqueue calls of one group commit as one _Enqueue: each call's jobs are
    checked as if alone after the calls before it (a call refused, e.g. its queue
    full, leaves nothing behind), then one INSERT for every row of them all."""
    batch: _Enqueue | None = None
    outcomes: list[Outcome] = []
    for call in calls:
        if batch is None:
            batch = _Enqueue(conn, call.now, call.ttl, call.defaults, call.backpressure)
        try:
            outcomes.append((True, batch.add_call(call)))
        except Exception as exc:
            outcomes.append((False, exc))
    if batch is not None:
        batch.flush()
    return outcomes


class _Enqueue:
    """The enqueues of one transaction: checks per job, then one INSERT for all rows
    (executemany) and one counter update per queue, which is what makes a batch fast.

    Keys are checked against the database and against the jobs earlier in the
    same transaction, which are not inserted yet. Nothing is written before flush:
    a queue seen for the first time is created there, if a job of it was added."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        now: float,
        ttl: float,
        defaults: JobDefaults,
        backpressure: bool,
    ) -> None:
        self.conn, self.now, self.ttl, self.defaults = conn, now, ttl, defaults
        self.backpressure = backpressure
        self.queues: dict[str, QueueSettings] = {}
        self.queue_backoff: dict[str, BackoffPolicy] = {}
        self.added: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self.keys: list[dict[str, Any]] = []
        self.by_idempotency: dict[str, JobRecord] = {}
        self.by_unique: dict[tuple[str, str], JobRecord] = {}
        self.ordering_taken: dict[tuple[str, str], None] = {}
        self.total: int | None = None
        self.missing: set[str] = set()  # queues that have no row yet
        self.counted: dict[tuple[str, str], int] = {}  # for job_counts, per (queue, state)

    def add_call(self, call: _EnqueueCall) -> list[EnqueueResult]:
        """A call's jobs, all or none: on an error what they added is taken back."""
        self.now, self.ttl, self.defaults = call.now, call.ttl, call.defaults
        self.backpressure = call.backpressure
        rows, keys, added = len(self.rows), len(self.keys), dict(self.added)
        counted = dict(self.counted)
        marks = len(self.by_idempotency), len(self.by_unique), len(self.ordering_taken)
        try:
            return [self.add(new) for new in call.jobs]
        except BaseException:
            del self.rows[rows:], self.keys[keys:]
            self.added, self.counted = added, counted
            seen: list[dict[Any, Any]] = [self.by_idempotency, self.by_unique]
            seen.append(self.ordering_taken)
            for keys_seen, mark in zip(seen, marks, strict=True):
                for key in list(keys_seen)[mark:]:  # dicts keep their order: the newest last
                    del keys_seen[key]
            raise

    def add(self, new: NewJob) -> EnqueueResult:
        conn, now = self.conn, self.now
        if new.idempotency_key is not None:
            earlier = self.by_idempotency.get(new.idempotency_key)
            if earlier is not None:
                return EnqueueResult(earlier, created=False)
            rows = _fetch(conn, Q["find_idempotency_key"], {"key": new.idempotency_key, "now": now})
            existing = rows and _fetch(conn, Q["get_job"], {"id": rows[0][0]})
            if existing:
                return EnqueueResult(row_to_job(existing[0]), created=False)
        if new.unique_key is not None:
            earlier = self.by_unique.get((new.queue, new.unique_key))
            if earlier is not None:
                return EnqueueResult(earlier, created=False)
            params = {"queue": new.queue, "unique_key": new.unique_key}
            rows = _fetch(conn, Q["find_unique_job"], params)
            if rows:
                return EnqueueResult(row_to_job(rows[0]), created=False)
        queue = self._queue(new.queue)
        self._check_room(queue)
        run_at = max(new.run_at, now)
        state = "scheduled" if run_at > now else "pending"
        if new.ordering_key is not None:
            ordering = (new.queue, new.ordering_key)
            busy = ordering in self.ordering_taken or _fetch(
                conn, Q["ordering_key_busy"], {"queue": new.queue, "key": new.ordering_key}
            )
            if busy:
                state = "blocked"
            self.ordering_taken[ordering] = None
        job = JobRecord(
            id=new.id or new_job_id(now),
            queue=new.queue,
            url=new.url,
            method=new.method,
            headers=new.headers,
            body=new.body,
            state=state,  # type: ignore[arg-type]
            priority=new.priority,
            attempts=0,
            max_attempts=new.max_attempts or queue.max_attempts or self.defaults.max_attempts,
            backoff=self._backoff(new.backoff, queue),
            timeout=new.timeout or queue.timeout or self.defaults.timeout,
            created_at=now,
            run_at=run_at,
            idempotency_key=new.idempotency_key,
            unique_key=new.unique_key,
            ordering_key=new.ordering_key,
            callback_url=new.callback_url,
            failure_callback_url=new.failure_callback_url,
            tags=list(new.tags),
            flow_key=new.flow_key,
            schedule=new.schedule,
            topic=new.topic,
            replay_of=new.replay_of,
            permanent_statuses=(
                queue.permanent_statuses
                if new.permanent_statuses is None
                else new.permanent_statuses
            ),
            meta=new.meta,
        )
        self.rows.append(
            {
                "id": job.id,
                "queue": job.queue,
                "url": job.url,
                "method": job.method,
                "headers": _dumps(job.headers or None),
                "body": job.body,
                "state": job.state,
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
                "tags": _dumps(job.tags or None),
                "flow_key": job.flow_key,
                "schedule": job.schedule,
                "topic": job.topic,
                "replay_of": job.replay_of,
                "permanent_statuses": _dumps(job.permanent_statuses),
                "meta": _dumps(job.meta),
            }
        )
        self.added[job.queue] = self.added.get(job.queue, 0) + 1
        counted = (job.queue, state)
        self.counted[counted] = self.counted.get(counted, 0) + 1
        if new.idempotency_key is not None:
            self.by_idempotency[new.idempotency_key] = job
            self.keys.append(
                {"key": new.idempotency_key, "job_id": job.id, "expires_at": now + self.ttl}
            )
        if new.unique_key is not None:
            self.by_unique[(new.queue, new.unique_key)] = job
        return EnqueueResult(job, created=True)

    def _queue(self, name: str) -> QueueSettings:
        queue = self.queues.get(name)
        if queue is None:
            rows = _fetch(self.conn, Q["get_queue"], {"name": name})
            if rows:
                queue = row_to_queue(rows[0])
            else:  # what ensure_queue will store: nothing set
                queue = QueueSettings(name=name)
                self.missing.add(name)
            self.queues[name] = queue
        return queue

    def _backoff(self, own: PartialBackoff | None, queue: QueueSettings) -> BackoffPolicy:
        if own is not None:
            return resolve_backoff(own, queue.backoff, default=self.defaults.backoff)
        policy = self.queue_backoff.get(queue.name)
        if policy is None:
            policy = resolve_backoff(queue.backoff, default=self.defaults.backoff)
            self.queue_backoff[queue.name] = policy
        return policy

    def _check_room(self, queue: QueueSettings) -> None:
        """Backpressure: RateLimited (nothing stored) once the queue or pushq is full."""
        if not self.backpressure:
            return
        unfinished = queue.unfinished + self.added.get(queue.name, 0)
        if queue.max_size is not None and unfinished >= queue.max_size:
            raise RateLimited(
                f"queue {queue.name} holds {unfinished} unfinished jobs "
                f"(max_size {queue.max_size})",
                retry_after=QUEUE_FULL_RETRY_AFTER,
                code="queue_full",
            )
        limit = self.defaults.max_unfinished
        if limit is not None:
            if self.total is None:
                self.total = int(self.conn.execute(Q["total_unfinished"]).fetchone()[0])
            total = self.total + sum(self.added.values())
            if total >= limit:
                raise RateLimited(
                    f"pushq holds {total} unfinished jobs (the limit is {limit})",
                    retry_after=QUEUE_FULL_RETRY_AFTER,
                    code="server_full",
                )

    def flush(self) -> None:
        for name in self.missing & self.added.keys():
            self.conn.execute(Q["ensure_queue"], {"name": name, "now": self.now})
        if self.rows:
            self.conn.executemany(Q["insert_job"], self.rows)
        for name, delta in self.added.items():
            self.conn.execute(Q["add_unfinished"], {"name": name, "delta": delta})
        for (queue, state), n in self.counted.items():
            self.conn.execute(Q["add_job_count"], {"queue": queue, "state": state, "delta": n})
        if self.keys:
            self.conn.executemany(Q["put_idempotency_key"], self.keys)


def _enqueue_all(
    conn: sqlite3.Connection,
    jobs: Sequence[NewJob],
    now: float,
    ttl: float,
    defaults: JobDefaults,
    backpressure: bool = True,
) -> list[EnqueueResult]:
    batch = _Enqueue(conn, now, ttl, defaults, backpressure)
    results = [batch.add(new) for new in jobs]
    batch.flush()
    return results


UNFINISHED = ("scheduled", "pending", "blocked", "active", "retrying")
ID_CLOCK_SLACK = 60.0  # seconds: how far an id's time may run ahead of its created_at
# The list filters that have an index of their own, in the order one is picked to
# drive a listing (the most selective first); the others filter what it yields.
_DRIVERS = (
    ("flow_key", "jobs_by_flow_key"),
    ("schedule", "jobs_by_schedule"),
    ("topic", "jobs_by_topic"),
    ("url_prefix", "jobs_by_url"),
)


def _state_condition(state: str) -> str:
    """SQL for one public state ('blocked' reads as pending or scheduled)."""
    if state == "scheduled":
        return "(jobs.state IN ('scheduled', 'blocked') AND jobs.run_at > :now)"
    if state == "pending":
        return (
            "(jobs.state = 'pending' OR "
            "(jobs.state IN ('scheduled', 'blocked') AND jobs.run_at <= :now))"
        )
    return f"jobs.state = '{state}'"  # one of PUBLIC_STATES, checked above the store


def _url_prefix(where: list[str], params: dict[str, Any], prefix: str, column: str) -> None:
    # A range on the url index, then the exact test (a range bound alone is not exact).
    where.append(f"{column} >= :url_lo AND {column} < :url_hi")
    where.append(f"substr({column}, 1, length(:url_lo)) = :url_lo")
    params["url_lo"], params["url_hi"] = prefix, prefix + "\U0010ffff"


def _job_conditions(match: JobFilter, now: float) -> tuple[str, str, list[str], dict[str, Any]]:
    """(FROM clause, the id column it is ordered by, conditions, params) for a filter.

    Each filter with an index drives the statement through it (INDEXED BY, so the
    plan never degrades to a table scan); created_at bounds also become id bounds,
    since ids sort by creation time, and are then applied exactly."""
    where: list[str] = []
    params: dict[str, Any] = {"now": now}
    source, id_col = "jobs", "jobs.id"
    if match.tag is not None:
        # the tag table leads (CROSS JOIN keeps it the outer loop), newest first
        source, id_col = "job_tags AS t CROSS JOIN jobs", "t.job_id"
        where += ["t.tag = :tag", "jobs.id = t.job_id"]
        params["tag"] = match.tag
    else:
        for name, index in _DRIVERS:
            if getattr(match, name) is not None:
                source = f"jobs INDEXED BY {index}"
                break
    if match.queue is not None:
        where.append("jobs.queue = :queue")
        params["queue"] = match.queue
    if match.states is not None:
        where.append("(" + " OR ".join(_state_condition(s) for s in match.states) + ")")
    for name in ("flow_key", "schedule", "topic"):
        if getattr(match, name) is not None:
            where.append(f"jobs.{name} = :{name}")
            params[name] = getattr(match, name)
    if match.url_prefix is not None:
        _url_prefix(where, params, match.url_prefix, "jobs.url")
    if match.since is not None:
        where += [f"{id_col} >= :id_since", "jobs.created_at >= :since"]
        params["id_since"], params["since"] = id_floor(match.since), match.since
    if match.until is not None:
        where += [f"{id_col} < :id_until", "jobs.created_at < :until"]
        # An id is never below its creation millisecond but may be a little above it
        # (ids stay monotonic if the clock steps back): the upper id bound has slack.
        params["id_until"] = id_floor(match.until + ID_CLOCK_SLACK)
        params["until"] = match.until
    return source, id_col, where, params


def find_jobs_sql(
    match: JobFilter, now: float, limit: int, after: str | None
) -> tuple[str, dict[str, Any]]:
    """The listing statement for a filter, newest first, from `after` (an id) on."""
    source, id_col, where, params = _job_conditions(match, now)
    params["limit"] = limit
    if after is not None:
        where.append(f"{id_col} < :after")
        params["after"] = after
    sql = f"SELECT jobs.* FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY {id_col} DESC LIMIT :limit", params


def _cancel_matching(conn: sqlite3.Connection, match: JobFilter, now: float) -> int:
    """Cancel every unfinished job the filter matches, in one statement, then the
    bookkeeping per queue and ordering key."""
    source, id_col, where, params = _job_conditions(match, now)
    where.append("jobs.state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying')")
    sql = (
        "UPDATE jobs SET state = 'cancelled', finished_at = :now, lease = NULL, "
        f"lease_expires_at = NULL WHERE id IN (SELECT {id_col} FROM {source} WHERE "
        + " AND ".join(where)
        + ") RETURNING queue, ordering_key"
    )
    rows = _fetch(conn, sql, params)
    per_queue: dict[str, int] = {}
    keys: set[tuple[str, str]] = set()
    for row in rows:
        per_queue[row["queue"]] = per_queue.get(row["queue"], 0) + 1
        if row["ordering_key"] is not None:
            keys.add((row["queue"], row["ordering_key"]))
    for queue, count in per_queue.items():
        conn.execute(Q["add_unfinished"], {"name": queue, "delta": -count})
    for queue, key in sorted(keys):
        conn.execute(Q["unblock_next"], {"queue": queue, "key": key, "now": now})
    return len(rows)


def _dead_conditions(match: DeadFilter) -> tuple[list[str], dict[str, Any]]:
    """Conditions (on the DLQ's index) and params for a bulk redrive's filter."""
    where = ["state = 'dead'"]
    params: dict[str, Any] = {}
    if match.queue is not None:
        where.append("queue = :queue")
        params["queue"] = match.queue
    if match.url_prefix is not None:
        _url_prefix(where, params, match.url_prefix, "url")
    if match.status is not None:
        where.append("json_extract(last_error, '$.status') = :status")
        params["status"] = match.status
    if match.error_contains is not None:
        where.append(
            "instr(lower(coalesce(json_extract(last_error, '$.message'), '') || ' ' || "
            "coalesce(json_extract(last_error, '$.response'), '')), lower(:needle)) > 0"
        )
        params["needle"] = match.error_contains
    if match.since is not None:
        where.append("failed_at >= :since")
        params["since"] = match.since
    if match.until is not None:
        where.append("failed_at < :until")
        params["until"] = match.until
    if match.tag is not None:
        where.append("id IN (SELECT job_id FROM job_tags WHERE tag = :tag)")
        params["tag"] = match.tag
    return where, params
