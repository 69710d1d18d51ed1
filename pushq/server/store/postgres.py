"""The shared store: PostgreSQL through an asyncpg pool, for one or several nodes.

Every verb is one transaction on a pooled connection, acknowledged only after
COMMIT. What must hold for the whole cluster is held by the database: claims take
jobs with FOR UPDATE SKIP LOCKED (two nodes never take the same job), settles are
guarded by lease and attempt, idempotency keys are claimed with INSERT … ON
CONFLICT, ordering and unique keys are decided under advisory locks of their own,
and a queue's concurrency, token bucket and max_size under its row lock. A queue's
`unfinished` count changes as rows of their own (queue_unfinished, folded by the
leader), so that the enqueues and settles of one queue never wait on each other's
commits. Enqueues, retries and rescues send NOTIFY in their transaction, so every
node's dispatcher wakes. The common enqueue, claim and complete are one statement
each, outside an explicit transaction (a round trip is the cost that counts here).

Named queries live in sql/postgres_queries.sql with `:name` parameters, turned
into asyncpg's `$n` once at import; migrations in sql/postgres_migrations/ are
applied under an advisory lock, so nodes starting together migrate once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import asyncpg

from ...errors import Conflict, NotFound, RateLimited
from ...policy.backoff import BackoffPolicy, PartialBackoff, resolve_backoff
from ...policy.claim_plan import ClaimPlan, QueueSnapshot
from ...policy.flow_keys import KeyLimits, KeySnapshot, key_limits, pick, spent_buckets
from .. import cursors
from ..config import redact_url
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
from .sql import load_queries, migrations
from .sqlite import (
    CALLBACK_KEY_TTL,
    ID_CLOCK_SLACK,
    KEYED_SCAN_ROUNDS,
    MAX_RATE_PERIOD,
    QUEUE_FULL_RETRY_AFTER,
    _dumps,
    public_counts,
    row_to_flow_key,
    row_to_job,
    row_to_schedule,
    row_to_topic,
)
from .sqlite import row_to_queue as sqlite_row_to_queue

log = logging.getLogger("pushq.store")


def row_to_queue(row: Any) -> QueueSettings:
    """A queues row, its `unfinished` with the changes not yet folded into it (the
    `unfinished_delta` column the queue reads add: see queue_unfinished)."""
    queue = sqlite_row_to_queue(row)
    if "unfinished_delta" in row.keys():
        queue.unfinished += int(row["unfinished_delta"])
    return queue


T = TypeVar("T")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
MIGRATION_LOCK = 0x70757368  # "push": the advisory lock key nodes migrate under
LEADER_LOCK = 0x6C656164  # "lead": held by the node that runs maintenance
UNFINISHED_LOCK = 0x66756C6C  # "full": enqueues under max_unfinished take turns (pushq_enqueue too)
FLOW_KEY_LOCK = 0x6B657973  # "keys": claims of limited flow keys take it in turn
CHANNEL = "pushq_due"
CIRCUITS = "pushq_circuits"  # NOTIFY of a stored circuit, so every node takes it at once


def compile_named(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters to asyncpg's `$n` (a name used twice is one parameter)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, sql), tuple(names)


Q = {name: compile_named(sql) for name, sql in load_queries("postgres_queries.sql").items()}

# sqlstate -> kind of StoreUnavailable: trying again may help.
_RETRYABLE = {
    "40001": "busy",  # serialization failure
    "40P01": "busy",  # deadlock detected
    "55P03": "locked",  # lock not available
    "53100": "full",  # disk full
    "53200": "full",  # out of memory
    "53300": "busy",  # too many connections
    "25006": "readonly",  # read-only transaction (a standby)
    "57P01": "unavailable",  # admin shutdown
    "57P02": "unavailable",  # crash shutdown
    "57P03": "unavailable",  # cannot connect now
    "58030": "io",  # I/O error
}


def store_error(exc: BaseException, where: str) -> StoreError:
    """The store-neutral error for an asyncpg/PostgreSQL/connection failure."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _RETRYABLE:
            return StoreUnavailable(f"{where}: {exc}", kind=_RETRYABLE[sqlstate])
        if sqlstate.startswith("08"):  # connection exception
            return StoreUnavailable(f"{where}: {exc}", kind="unavailable")
        if sqlstate.startswith("23"):  # integrity constraint violation
            return StoreConflict(f"postgresql: {exc}")
        if sqlstate in {"3D000", "28000", "28P01", "3F000"}:  # no database/role/schema
            return StoreUnavailable(f"{where}: {exc}", kind="unavailable")
        return StoreError(f"postgresql: {exc}")
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return StoreUnavailable(f"{where}: {exc or type(exc).__name__}", kind="unavailable")
    return StoreError(f"postgresql: {exc}")


_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class _Conn:
    """One connection inside a transaction, taking named-parameter queries."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    @staticmethod
    def _args(query: str, params: dict[str, Any] | None) -> tuple[str, list[Any]]:
        sql, names = Q[query]
        return sql, [(params or {})[n] for n in names]

    async def fetch(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        sql, args = self._args(query, params)
        return list(await self.raw.fetch(sql, *args))

    async def fetchval(self, query: str, params: dict[str, Any] | None = None) -> Any:
        sql, args = self._args(query, params)
        return await self.raw.fetchval(sql, *args)

    async def execute(self, query: str, params: dict[str, Any] | None = None) -> int:
        """Run and return the rows it touched."""
        sql, args = self._args(query, params)
        status = await self.raw.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, query: str, rows: Sequence[dict[str, Any]]) -> None:
        sql, names = Q[query]
        await self.raw.executemany(sql, [[row[n] for n in names] for row in rows])

    async def fetch_sql(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """An assembled statement (filters that combine freely), `:name` parameters."""
        text, names = compile_named(sql)
        return list(await self.raw.fetch(text, *[params[n] for n in names]))


class PostgresStore:
    """Store on a PostgreSQL database shared by every node."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 2,
        max_size: int = 10,
    ) -> None:
        self.url = url
        self.schema = schema
        self.min_size, self.max_size = min_size, max_size
        self.node = uuid.uuid4().hex[:12]
        self.channel = CHANNEL if schema is None else f"{CHANNEL}_{schema}"
        self.circuit_channel = CIRCUITS if schema is None else f"{CIRCUITS}_{schema}"
        self._circuit_listeners: list[Callable[[CircuitRecord], None]] = []
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._leader: asyncpg.Connection | None = None  # holds the leader lock
        self._listeners: list[Callable[[float | None], None]] = []
        self._leading = False
        self._seen_buckets: dict[str, tuple[float | None, float | None]] = {}
        self._seen_limited: set[str] = set()  # queues with a concurrency or rate limit
        self._no_flow_keys = False  # the last claim_snapshot saw no flow key to read
        self.unavailable: StoreUnavailable | None = None

    @property
    def where(self) -> str:
        return redact_url(self.url)

    def _settings(self) -> dict[str, str]:
        return {} if self.schema is None else {"search_path": self.schema}

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        """Connect, migrate under the advisory lock, LISTEN; StoreUnavailable (with
        everything closed again) when the database cannot be reached or written."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                server_settings=self._settings(),
                timeout=10,
                reset=_keep_session,
            )
            await self._run(_migrate)
            # The channel of this schema, as the pushq_channel() function names it for
            # transactional enqueues (migration 0005): a schema given in the URL counts.
            self.channel = await self._run(lambda conn: conn.raw.fetchval("SELECT pushq_channel()"))
            await self.heartbeat()
            self._listener = await asyncpg.connect(
                self.url, server_settings=self._settings(), timeout=10
            )
            await self._listener.add_listener(self.channel, self._heard)
            await self._listener.add_listener(self.circuit_channel, self._heard_circuit)
        except ValueError as exc:  # asyncpg's reading of a malformed URL
            await self.close()
            raise StoreUnavailable(f"{self.where}: not a valid URL ({exc})") from None
        except (*_DRIVER_ERRORS, StoreError) as exc:
            await self.close()
            if isinstance(exc, StoreUnavailable):
                raise
            translated = store_error(exc, self.where)
            if not isinstance(translated, StoreUnavailable):
                translated = StoreUnavailable(f"{self.where}: {exc}", kind="unavailable")
            raise translated from None

    async def close(self) -> None:
        if self._leader is not None:
            leader, self._leader = self._leader, None
            leader.terminate()  # the session ends: its advisory lock goes with it
        if self._pool is not None:
            try:
                await self._run(lambda conn: conn.execute("leave", {"node": self.node}))
            except StoreError:
                pass  # the others find it silent after the node timeout instead
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                await listener.close(timeout=5)
            except _DRIVER_ERRORS:
                listener.terminate()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except _DRIVER_ERRORS:
                pool.terminate()

    async def _run(self, op: Callable[[_Conn], Awaitable[T]], *, transaction: bool = True) -> T:
        """Run `op` in one transaction (committed before this returns); driver errors
        leave as StoreErrors, the API's answers (NotFound, Conflict…) unchanged.
        `transaction=False` is for an `op` of one statement, atomic by itself: it
        saves the BEGIN and COMMIT round trips."""
        if self._pool is None:
            raise StoreUnavailable(f"{self.where}: the store is not open", kind="unavailable")
        try:
            async with self._pool.acquire() as raw:
                if transaction:
                    async with raw.transaction():
                        result = await op(_Conn(raw))
                else:
                    result = await op(_Conn(raw))
        except _DRIVER_ERRORS as exc:
            translated = store_error(exc, self.where)
            if isinstance(translated, StoreUnavailable):
                if self.unavailable is None:
                    log.warning("database unavailable: %s", translated.reason)
                self.unavailable = translated
            raise translated from exc
        if self.unavailable is not None:
            log.warning("database writable again: %s", self.where)
            self.unavailable = None
        return result

    async def _read(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        """One statement (a read, or a write atomic by itself), outside a transaction."""
        return await self._run(lambda conn: conn.fetch(query, params), transaction=False)

    # -- nodes: liveness and leadership (cluster.py runs these) --------------------
    async def heartbeat(self) -> None:
        """Tell the other nodes this one is alive (the database's clock, not ours)."""
        await self._run(lambda conn: conn.execute("heartbeat", {"node": self.node}))

    async def expire_dead_nodes(self, *, timeout: float) -> int:
        """Expire the leases of attempts held by nodes silent for `timeout` seconds, so
        the rescuer takes them now instead of when the lease runs out; how many."""
        params = {"timeout": timeout, "node": self.node}
        return await self._run(lambda conn: conn.execute("expire_dead_nodes", params))

    async def keep_listening(self) -> None:
        """Open LISTEN again if its connection was lost (the wake-ups of other nodes'
        enqueues; polling covers the gap)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            listener = await asyncpg.connect(self.url, server_settings=self._settings(), timeout=10)
            await listener.add_listener(self.channel, self._heard)
            await listener.add_listener(self.circuit_channel, self._heard_circuit)
        except (*_DRIVER_ERRORS, ValueError) as exc:
            log.warning("LISTEN for other nodes' enqueues failed: %s", exc)
            return
        if self._listener is not None:
            self._listener.terminate()
        self._listener = listener

    async def lead(self) -> bool:
        """Whether this node holds the leader lock (a session advisory lock on a
        connection of its own), trying to take it if not. A node that dies or loses
        its connection releases it; another takes it at its next try."""
        try:
            if self._leader is None or self._leader.is_closed():
                self._leader = await asyncpg.connect(
                    self.url, server_settings=self._settings(), timeout=10
                )
                self._leading = False
            if self._leading:
                await self._leader.fetchval("SELECT 1")
            else:
                sql, _ = Q["try_lead"]
                self._leading = bool(await self._leader.fetchval(sql, LEADER_LOCK))
        except (*_DRIVER_ERRORS, ValueError):
            if self._leader is not None:
                self._leader.terminate()
                self._leader = None
            self._leading = False
        return self._leading

    # -- wake-ups across nodes ----------------------------------------------------
    def listen(self, on_due: Callable[[float | None], None]) -> None:
        self._listeners.append(on_due)

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        node, _, at = payload.partition(" ")
        if node != self.node:  # this node's own were told at commit
            self._due(float(at) if at else None)

    def listen_circuits(self, on_circuit: Callable[[CircuitRecord], None]) -> None:
        """Be told of every circuit another node stores (open, closed)."""
        self._circuit_listeners.append(on_circuit)

    def _heard_circuit(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            fields = json.loads(payload)
            node = fields.pop("node")
            record = CircuitRecord(**fields)
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring a malformed circuit notification")
            return
        if node != self.node:
            for on_circuit in self._circuit_listeners:
                on_circuit(record)

    def _due(self, run_at: float | None) -> None:
        for on_due in self._listeners:
            on_due(run_at)

    async def _notify(self, conn: _Conn, run_at: float | None) -> None:
        """NOTIFY every node (sent at COMMIT, dropped on rollback)."""
        await conn.fetch("notify", {"channel": self.channel, "payload": self._payload(run_at)})

    def _payload(self, run_at: float | None) -> str:
        return self.node if run_at is None else f"{self.node} {run_at!r}"

    async def _announce(
        self, conn: _Conn, results: Sequence[EnqueueResult], *, send: bool = True
    ) -> list[float | None]:
        """NOTIFY what `results` made due (unless `send` is False: already sent), and
        return it for this node's own listeners."""
        due: list[float | None] = []
        waiting = math.inf
        for result in results:
            if result.created:
                if result.job.state == "pending" and None not in due:
                    due.append(None)
                elif result.job.state == "scheduled":
                    waiting = min(waiting, result.job.run_at)
        if waiting < math.inf:
            due.append(waiting)
        if send:
            for run_at in due:
                await self._notify(conn, run_at)
        return due

    async def publish_enqueue_settings(
        self,
        *,
        defaults: JobDefaults,
        idempotency_ttl: float,
        max_body_size: int,
        reserved_headers: Collection[str],
    ) -> None:
        """Write the server's enqueue defaults where pushq_enqueue() (transactional
        enqueue, migration 0005) reads them; every node does at start-up."""
        value = {
            "max_attempts": defaults.max_attempts,
            "timeout": defaults.timeout,
            "backoff_base": defaults.backoff.base,
            "backoff_max": defaults.backoff.max,
            "backoff_jitter": defaults.backoff.jitter,
            "max_unfinished": defaults.max_unfinished,
            "idempotency_ttl": idempotency_ttl,
            "max_body_size": max_body_size,
            "reserved_headers": sorted(reserved_headers),
        }
        params = {"key": "enqueue_settings", "value": _dumps(value)}
        await self._run(lambda conn: conn.execute("put_meta", params))

    async def ping(self) -> None:
        now = str(time.time())
        await self._run(lambda conn: conn.execute("ping", {"now": now}))

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
        if len(jobs) == 1 and not (backpressure and defaults.max_unfinished is not None):
            [new] = jobs
            if new.unique_key is None and new.ordering_key is None:
                done = await self._enqueue_plain(new, now, idempotency_ttl, defaults, backpressure)
                if done is not None:
                    self._due(None if done.job.state == "pending" else done.job.run_at)
                    return [done]

        async def write(conn: _Conn) -> tuple[list[EnqueueResult], list[float | None]]:
            batch = _Enqueue(conn, now, idempotency_ttl, defaults, backpressure)
            batch.notify_with = (self.channel, self._payload)
            await batch.lock(jobs)
            results = [await batch.add(new) for new in jobs]
            await batch.flush()
            return results, await self._announce(conn, results, send=not batch.notified)

        results, due = await self._run(write)
        for run_at in due:
            self._due(run_at)
        return results

    async def _enqueue_plain(
        self, new: NewJob, now: float, ttl: float, defaults: JobDefaults, backpressure: bool
    ) -> EnqueueResult | None:
        """The common enqueue in one statement (enqueue_plain); None: the transaction
        path must decide (a queue to make or to check, a key already taken)."""
        run_at = max(new.run_at, now)
        state = "scheduled" if run_at > now else "pending"
        own = new.backoff or PartialBackoff()
        params = {
            "id": new.id or new_job_id(now),  # an id the caller chose, or a new one
            "queue": new.queue,
            "url": new.url,
            "method": new.method,
            "headers": _dumps(new.headers or None),
            "body": new.body,
            "state": state,
            "priority": new.priority,
            "max_attempts": new.max_attempts,
            "backoff_base": own.base,
            "backoff_max": own.max,
            "backoff_jitter": None if own.jitter is None else int(own.jitter),
            "timeout": new.timeout,
            "created_at": now,
            "run_at": run_at,
            "idempotency_key": new.idempotency_key,
            "expires_at": now + ttl,
            "now": now,
            "callback_url": new.callback_url,
            "failure_callback_url": new.failure_callback_url,
            "tags": _dumps(new.tags or None),
            "flow_key": new.flow_key,
            "schedule": new.schedule,
            "topic": new.topic,
            "replay_of": new.replay_of,
            "permanent_statuses": _dumps(new.permanent_statuses),
            "meta": _dumps(new.meta),
            "backpressure": backpressure,
            "default_max_attempts": defaults.max_attempts,
            "default_backoff_base": defaults.backoff.base,
            "default_backoff_max": defaults.backoff.max,
            "default_backoff_jitter": int(defaults.backoff.jitter),
            "default_timeout": defaults.timeout,
            "channel": self.channel,
            "payload": self._payload(None if state == "pending" else run_at),
        }
        rows = await self._read("enqueue_plain", params)
        return EnqueueResult(row_to_job(rows[0]), created=True) if rows else None

    async def get(self, *, job_id: str) -> JobRecord | None:
        rows = await self._read("get_job", {"id": job_id})
        return row_to_job(rows[0]) if rows else None

    async def list_jobs(
        self, *, queue: str | None, state: str | None, limit: int, cursor: str | None, now: float
    ) -> JobPage:
        match = JobFilter(queue=queue, states=None if state is None else (state,))
        return await self.find_jobs(match=match, limit=limit, cursor=cursor, now=now)

    async def list_attempts(self, *, job_id: str) -> list[AttemptRecord]:
        rows = await self._read("list_attempts", {"job_id": job_id})
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
        async def write(conn: _Conn) -> JobRecord:
            rows = await conn.fetch("cancel", {"id": job_id, "now": now})
            if rows:
                job = row_to_job(rows[0])
                await _finished(conn, job.queue, job.ordering_key, now)
                return job
            exists = await conn.fetch("get_job", {"id": job_id})
            if not exists:
                raise NotFound(f"no job {job_id}")
            raise Conflict(f"job {job_id} is already {exists[0]['state']}", code="job_finished")

        return await self._run(write)

    # -- the dispatcher ----------------------------------------------------------
    async def claim_snapshot(self, *, limit: int, count_active: bool) -> list[QueueSnapshot]:
        rows = await self._read("claim_snapshot", {"limit": limit, "count_active": count_active})
        snapshots = [
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
        self._seen_buckets = {s.name: (s.tokens, s.tokens_at) for s in snapshots if s.rate_limit}
        self._seen_limited = {s.name for s in snapshots if s.concurrency or s.rate_limit}
        self._no_flow_keys = bool(rows) and not rows[0]["any_flow"]
        return snapshots

    async def flow_key_snapshot(self, *, now: float) -> list[KeySnapshot]:
        if self._no_flow_keys:  # the claim round's snapshot just said: none (a round trip)
            self._no_flow_keys = False
            return []
        rows = await self._read("flow_key_snapshot", {"since": now - MAX_RATE_PERIOD})
        return _key_snapshots(rows)

    async def claim(
        self, *, plan: ClaimPlan, now: float, lease: str, lease_margin: float
    ) -> list[JobRecord]:
        if not plan.takes:
            return []
        if len(plan.takes) == 1 and not plan.buckets and not plan.keys:
            [(queue, count)] = plan.takes
            if queue not in self._seen_limited:  # one statement, no transaction
                params = {
                    "queue": queue,
                    "limit": count,
                    "now": now,
                    "lease": lease,
                    "lease_margin": lease_margin,
                    "node": self.node,
                }
                return [row_to_job(r) for r in await self._read("claim_unlimited", params)]
        seen = dict(self._seen_buckets)

        async def write(conn: _Conn) -> list[JobRecord]:
            # Limits hold for the whole cluster: under the queue's row lock, a
            # concurrency is counted again, and a bucket another node spent since
            # this node's snapshot makes this node skip the queue for this round.
            names = sorted({q for q, _ in plan.takes} | set(plan.buckets))
            limited = {
                row["name"]: row
                for row in await conn.fetch("lock_limited_queues", {"names": names})
            }
            skip: set[str] = set()
            for name, row in limited.items():
                saved = (row["tokens"], row["tokens_at"])
                if row["rate_limit"] is not None and name in plan.buckets and name in seen:
                    if seen[name] != saved:
                        skip.add(name)
            keys = await _recheck_keys(conn, plan, now) if plan.keys else {}
            claimed: list[JobRecord] = []
            params: dict[str, Any] = {
                "now": now,
                "lease": lease,
                "lease_margin": lease_margin,
                "node": self.node,
            }
            taken: dict[str, int] = {}  # jobs per flow key this round, across queues
            for queue, count in plan.takes:
                if queue in skip:
                    continue
                row = limited.get(queue)
                if row is not None and row["concurrency"] is not None:
                    active = await conn.fetchval("count_active", {"queue": queue})
                    count = min(count, row["concurrency"] - int(active))
                    if count <= 0:
                        continue
                params["queue"], params["limit"] = queue, count
                limits = keys.get(queue)
                if limits is None:
                    claimed += [row_to_job(r) for r in await conn.fetch("claim_from_queue", params)]
                else:
                    claimed += await _claim_by_key(conn, params, limits, taken, count, now)
            for name, bucket in plan.buckets.items():
                if name in skip:
                    continue
                await conn.execute(
                    "save_tokens",
                    {
                        "name": name,
                        "rate_limit": bucket.rate_limit,
                        "tokens": bucket.tokens,
                        "tokens_at": bucket.tokens_at,
                    },
                )
                self._seen_buckets[name] = (bucket.tokens, bucket.tokens_at)
            return claimed

        return await self._run(write)

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
        # A job that ends: its outcome, its attempt and the queue's count in one
        # statement (the ordering key's next job, if any, in a second).
        recorded = {"complete": "complete_recorded", "kill": "kill_recorded"}.get(query)

        async def write(conn: _Conn) -> bool:
            if recorded is not None:
                both = params | _attempt_params(attempt) | {"error_json": params.get("error")}
                rows = await conn.fetch(recorded, both)
                if not rows:
                    return False  # the job moved on (rescued, cancelled): this attempt is stale
                key = rows[0]["ordering_key"]
                if key is not None:
                    await _lock_keys(conn, [_ordering(rows[0]["queue"], key)])
                    unblock = {"queue": rows[0]["queue"], "key": key, "now": params["now"]}
                    await conn.execute("unblock_next", unblock)
                return await self._settled_callback(conn, params["now"], callback, defaults)
            rows = await conn.fetch(query, params)
            if not rows:
                return False  # the job moved on (rescued, cancelled): this attempt is stale
            await conn.execute("insert_attempt", _attempt_params(attempt))
            if query == "schedule_retry":
                await self._notify(conn, params["run_at"])
            elif query == "release_interrupted":
                await self._notify(conn, None)
            else:
                await _finished(conn, rows[0]["queue"], rows[0]["ordering_key"], params["now"])
            if callback is None:
                return True
            return await self._settled_callback(conn, params["now"], callback, defaults)

        return await self._run(write)

    async def _settled_callback(
        self, conn: _Conn, now: float, callback: NewJob | None, defaults: JobDefaults | None
    ) -> bool:
        """Store a settle's callback job in its transaction; True (the settle held)."""
        if callback is not None:
            assert defaults is not None, "a callback needs the job defaults"
            # a callback reports an outcome already decided: never refused
            results = await _enqueue_all(conn, [callback], now, CALLBACK_KEY_TTL, defaults, False)
            await self._announce(conn, results)
        return True

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
        if callback is None:  # the common case in one statement, outside a transaction
            guard = {"id": attempt.job_id, "lease": lease, "attempt": attempt.number}
            if await self._read("complete_unordered", params | guard | _attempt_params(attempt)):
                return True
            # stale, or a job with an ordering key: the transaction below tells which
        done = await self._settle("complete", params, attempt, lease, callback, defaults)
        if done and callback is not None:
            self._due(None)
        return done

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
        done = await self._settle("kill", params, attempt, lease, callback, defaults)
        if done and callback is not None:
            self._due(None)
        return done

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
        return await self._run(lambda conn: _one(conn.execute("report_progress", params)))

    async def prune_finished(
        self, *, succeeded_before: float, dead_before: float, limit: int
    ) -> int:
        params = {"succeeded_before": succeeded_before, "dead_before": dead_before, "limit": limit}

        async def write(conn: _Conn) -> int:
            ids = [row[0] for row in await conn.fetch("expired_jobs", params)]
            for job_id in ids:
                await conn.execute("delete_attempts", {"job_id": job_id})
                await conn.execute("delete_job", {"id": job_id})
            return len(ids)

        return await self._run(write)

    async def await_completion(
        self, *, job_id: str, lease: str, attempt: int, deadline: float
    ) -> bool:
        params = {"id": job_id, "lease": lease, "attempt": attempt, "deadline": deadline}
        return await self._run(lambda conn: _one(conn.execute("await_completion", params)))

    async def promote_due(self, *, now: float, limit: int) -> Promotion:
        async def write(conn: _Conn) -> Promotion:
            promoted = await conn.execute("promote_due", {"now": now, "limit": limit})
            next_at = await conn.fetchval("next_waiting_at")
            # the leader folds the queues' counter changes into their rows, and the
            # job counts' deltas into their totals (the promoter runs at least every
            # poll interval), so reads stay short
            await conn.execute("fold_unfinished")
            await conn.execute("fold_job_counts")
            await conn.execute("drop_empty_job_counts")
            return Promotion(promoted, next_at)

        return await self._run(write)

    async def expired_leases(self, *, now: float, limit: int) -> list[JobRecord]:
        rows = await self._read("expired_leases", {"now": now, "limit": limit})
        return [row_to_job(row) for row in rows]

    async def orphaned_attempts(self, *, limit: int) -> list[JobRecord]:
        # A shared database answers for this node's own leases only: another node may
        # be delivering the rest. A node's id is new each run, so at start-up this is
        # empty; a dead run's attempts come back through its missed heartbeats
        # (cluster.py).
        params = {"node": self.node, "limit": limit}
        return [row_to_job(row) for row in await self._read("orphaned_attempts", params)]

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

        async def write(conn: _Conn) -> list[JobRecord]:
            jobs = [row_to_job(row) for row in await conn.fetch("rescue_many", params)]
            attempts = []
            await _lock_keys(
                conn, [_ordering(j.queue, j.ordering_key) for j in jobs if j.state == "dead"]
            )
            for job in jobs:
                if job.state == "dead":
                    await _finished(conn, job.queue, job.ordering_key, now)
                started = job.attempt_started_at or now
                attempt = AttemptRecord(
                    job.id, job.attempts, started, (now - started) * 1000, None, message, None
                )
                attempts.append(_attempt_params(attempt))
            if attempts:
                await conn.executemany("insert_attempt", attempts)
            dead = [callbacks[j.id] for j in jobs if j.state == "dead" and j.id in callbacks]
            if dead:  # a callback reports an outcome already decided: never refused
                results = await _enqueue_all(conn, dead, now, CALLBACK_KEY_TTL, defaults, False)
                await self._announce(conn, results)
            waiting = [job.run_at for job in jobs if job.state == "retrying"]
            if waiting:
                await self._notify(conn, min(waiting))
            return jobs

        jobs = await self._run(write)
        waiting = [job.run_at for job in jobs if job.state == "retrying"]
        if waiting:
            self._due(min(waiting))
        if any(job.state == "dead" and job.id in callbacks for job in jobs):
            self._due(None)
        return jobs

    async def prune_idempotency_keys(self, *, now: float, limit: int) -> int:
        params = {"now": now, "limit": limit}
        return await self._run(lambda conn: conn.execute("prune_idempotency_keys", params))

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
            where.append("(failed_at, id) < (:failed_at::float8, :after::text)")
            params["failed_at"], params["after"] = cursors.decode_dead(cursor)
        sql = (
            "SELECT * FROM jobs WHERE "
            + " AND ".join(where)
            + " ORDER BY failed_at DESC, id DESC LIMIT :limit"
        )
        rows = await self._run(lambda conn: conn.fetch_sql(sql, params))
        jobs = [row_to_job(row) for row in rows]
        next_cursor = None
        if len(jobs) > limit:
            last = jobs[limit - 1]
            next_cursor = cursors.encode_dead(last.failed_at, last.id)
        return JobPage(jobs[:limit], next_cursor)

    async def redrive(self, *, job_id: str, now: float) -> JobRecord:
        async def write(conn: _Conn) -> JobRecord:
            rows = await conn.fetch("get_job", {"id": job_id})
            if not rows or rows[0]["state"] != "dead":
                raise NotFound(f"no dead job {job_id}")
            return await _redrive_or_conflict(conn, rows[0], now)

        return await self._run(write)

    async def redrive_many(self, *, queue: str | None, now: float) -> int:
        async def write(conn: _Conn) -> int:
            count = 0
            for row in await conn.fetch("dead_jobs", {"queue": queue}):
                job = (await conn.fetch("get_job", {"id": row["id"]}))[0]
                if await _unique_taken(conn, job):
                    continue  # an unfinished job holds its unique key: it stays dead
                await _redrive(conn, job, now)
                count += 1
            return count

        return await self._run(write)

    async def delete_dead(self, *, job_id: str) -> bool:
        async def write(conn: _Conn) -> bool:
            if await conn.execute("delete_dead", {"id": job_id}) != 1:
                return False
            await conn.execute("delete_attempts", {"job_id": job_id})
            return True

        return await self._run(write)

    async def delete_dead_matching(self, *, match: DeadFilter) -> int:
        where, params = _dead_conditions(match)
        # One statement: the jobs and their attempts go together.
        sql = (
            "WITH gone AS (DELETE FROM jobs WHERE "
            + " AND ".join(where)
            + " RETURNING id), dropped AS (DELETE FROM attempts WHERE job_id IN "
            "(SELECT id FROM gone)) SELECT count(*) FROM gone"
        )
        rows = await self._run(lambda conn: conn.fetch_sql(sql, params))
        return int(rows[0][0])

    # -- queues --------------------------------------------------------------------
    async def get_queue(self, *, name: str) -> QueueSettings | None:
        rows = await self._read("get_queue", {"name": name})
        return row_to_queue(rows[0]) if rows else None

    async def list_queues(self) -> list[QueueSettings]:
        return [row_to_queue(row) for row in await self._read("list_queues")]

    async def put_queue(self, *, name: str, changes: dict[str, Any], now: float) -> QueueSettings:
        async def write(conn: _Conn) -> QueueSettings:
            await conn.execute("ensure_queue", {"name": name, "now": now})
            row = (await conn.fetch("lock_queues", {"names": [name]}))[0]
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
            return row_to_queue((await conn.fetch("update_queue", params))[0])

        return await self._run(write)

    async def oldest_pending(self) -> dict[str, float]:
        return {row["queue"]: row["oldest"] for row in await self._read("oldest_pending")}

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
        rows = await self._read("put_schedule", params)
        return row_to_schedule(rows[0])

    async def get_schedule(self, *, name: str) -> ScheduleRecord | None:
        rows = await self._read("get_schedule", {"name": name})
        return row_to_schedule(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [row_to_schedule(row) for row in await self._read("list_schedules")]

    async def delete_schedule(self, *, name: str) -> bool:
        return await self._run(lambda conn: _one(conn.execute("delete_schedule", {"name": name})))

    async def due_schedules(self, *, now: float) -> list[ScheduleRecord]:
        return [row_to_schedule(r) for r in await self._read("due_schedules", {"now": now})]

    async def next_schedule_at(self) -> float | None:
        value: float | None = await self._run(lambda conn: conn.fetchval("next_schedule_at"))
        return value

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
        """Enqueue one firing and move the schedule on, in one transaction, guarded by
        the next_run_at it read: when several nodes race, one fires."""
        params = {
            "name": schedule.name,
            "expected": schedule.next_run_at,
            "fired_at": schedule.next_run_at,
            "next_run_at": next_run_at,
        }

        async def write(conn: _Conn) -> tuple[EnqueueResult | None, list[float | None]]:
            if await conn.execute("advance_schedule", params) != 1:
                return None, []
            results = await _enqueue_all(conn, [job], now, idempotency_ttl, defaults, True)
            return results[0], await self._announce(conn, results)

        result, due = await self._run(write)
        for run_at in due:
            self._due(run_at)
        return result

    # -- observability -------------------------------------------------------------
    async def count_by_state(self, *, now: float) -> dict[tuple[str, str], int]:
        """From job_counts and its deltas (kept by triggers), not a count of the jobs."""
        return public_counts(await self._read("count_by_state", {"now": now}))

    # -- operators' actions and search ---------------------------------------------
    async def find_jobs(
        self, *, match: JobFilter, limit: int, cursor: str | None, now: float
    ) -> JobPage:
        after = None if cursor is None else cursors.decode_jobs(cursor)
        sql, params = find_jobs_sql(match, now, limit + 1, after)
        rows = await self._run(lambda conn: conn.fetch_sql(sql, params))
        jobs = [row_to_job(row) for row in rows]
        next_cursor = cursors.encode_jobs(jobs[limit - 1].id) if len(jobs) > limit else None
        return JobPage(jobs[:limit], next_cursor)

    async def run_now(self, *, job_id: str, now: float) -> JobRecord:
        async def write(conn: _Conn) -> JobRecord:
            rows = await conn.fetch("run_now", {"id": job_id, "now": now})
            if rows:
                await self._notify(conn, None)
                return row_to_job(rows[0])
            found = await conn.fetch("get_job", {"id": job_id})
            if not found:
                raise NotFound(f"no job {job_id}")
            if found[0]["state"] == "dead":
                return await _redrive_or_conflict(conn, found[0], now)
            state = found[0]["state"]
            why = "it is being delivered now" if state == "active" else "it has finished"
            raise Conflict(
                f"job {job_id} is {state}: {why}; replay it to run it again",
                code=f"job_{state}",
            )

        return await self._run(write)

    async def delete_job(self, *, job_id: str) -> None:
        async def write(conn: _Conn) -> None:
            if await conn.execute("delete_finished", {"id": job_id}) == 1:
                await conn.execute("delete_attempts", {"job_id": job_id})
                return
            found = await conn.fetch("get_job", {"id": job_id})
            if not found:
                raise NotFound(f"no job {job_id}")
            raise Conflict(f"job {job_id} is not finished; cancel it first", code="job_unfinished")

        await self._run(write)

    async def cancel_matching(self, *, match: JobFilter, now: float) -> int:
        return await self._run(lambda conn: _cancel_matching(conn, match, now))

    async def delete_queue(self, *, name: str, force: bool, now: float) -> int:
        async def write(conn: _Conn) -> int:
            if not await conn.fetch("lock_queue_to_delete", {"name": name}):
                raise NotFound(f"no queue {name}")
            cancelled = 0
            if force:
                cancelled = await _cancel_matching(conn, JobFilter(queue=name), now)
            else:
                waiting = await conn.fetchval("queue_unfinished_jobs", {"name": name})
                if waiting:
                    raise Conflict(
                        f"queue {name} holds {waiting} unfinished jobs; purge it first "
                        "or pass ?force=true to cancel them",
                        code="queue_not_empty",
                    )
            await conn.execute("delete_queue", {"name": name})
            return cancelled

        return await self._run(write)

    async def count_dead(self, *, match: DeadFilter) -> int:
        where, params = _dead_conditions(match)
        sql = "SELECT count(*) FROM jobs WHERE " + " AND ".join(where)
        rows = await self._run(lambda conn: conn.fetch_sql(sql, params))
        return int(rows[0][0])

    async def redrive_matching(self, *, match: DeadFilter, now: float, interval: float) -> int:
        where, params = _dead_conditions(match)
        # Oldest first, so that jobs sharing an ordering key keep their enqueue order.
        sql = "SELECT * FROM jobs WHERE " + " AND ".join(where) + " ORDER BY id FOR UPDATE"

        async def write(conn: _Conn) -> int:
            count = 0
            for row in await conn.fetch_sql(sql, params):
                if await _unique_taken(conn, row):
                    continue  # an unfinished job holds its unique key: it stays dead
                await _redrive(conn, row, now, now + count * interval)
                count += 1
            if count:
                await self._notify(conn, None)
            if count > 1 and interval > 0:
                await self._notify(conn, now + interval)
            return count

        count = await self._run(write)
        if count > 1 and interval > 0:
            self._due(now + interval)  # the rest are spread out: the promoter's
        return count

    async def set_schedule_paused(
        self, *, name: str, paused: bool, next_run_at: float | None, now: float
    ) -> ScheduleRecord:
        params = {"name": name, "paused": int(paused), "next_run_at": next_run_at, "now": now}
        rows = await self._read("set_schedule_paused", params)
        if not rows:
            raise NotFound(f"no schedule {name}")
        return row_to_schedule(rows[0])

    # -- flow keys ---------------------------------------------------------------
    async def get_flow_key(self, *, key: str) -> FlowKeyRecord:
        async def read(conn: _Conn) -> FlowKeyRecord:
            rows = await conn.fetch("get_flow_key", {"key": key})
            [counts] = await conn.fetch("flow_key_counts", {"key": key})
            return row_to_flow_key(rows[0] if rows else None, key, counts)

        return await self._run(read)

    async def list_flow_keys(self, *, limit: int) -> list[FlowKeyRecord]:
        async def read(conn: _Conn) -> list[FlowKeyRecord]:
            out = []
            for row in await conn.fetch("list_flow_keys", {"limit": limit}):
                [counts] = await conn.fetch("flow_key_counts", {"key": row["key"]})
                out.append(row_to_flow_key(row, row["key"], counts))
            return out

        return await self._run(read)

    async def put_flow_key(self, *, key: str, changes: dict[str, Any], now: float) -> FlowKeyRecord:
        async def write(conn: _Conn) -> None:
            rows = await conn.fetch("lock_flow_key", {"key": key})
            current: dict[str, Any] = {"concurrency": None, "rate_limit": None, "paused": 0}
            if rows:
                current = {k: rows[0][k] for k in current}
            current.update({k: int(v) if k == "paused" else v for k, v in changes.items()})
            await conn.execute("put_flow_key", {"key": key, "now": now, **current})

        await self._run(write)
        return await self.get_flow_key(key=key)

    # -- endpoints ---------------------------------------------------------------
    async def release(self, *, job_id: str, lease: str, attempt: int, run_at: float) -> bool:
        async def write(conn: _Conn) -> bool:
            params = {"id": job_id, "lease": lease, "attempt": attempt, "run_at": run_at}
            if not await conn.fetch("release", params):
                return False
            await self._notify(conn, run_at)
            return True

        released = await self._run(write)
        if released:
            self._due(run_at)
        return released

    async def save_circuit(self, *, circuit: CircuitRecord, now: float) -> None:
        async def write(conn: _Conn) -> None:
            await conn.execute(
                "save_circuit",
                {
                    "origin": circuit.origin,
                    "state": circuit.state,
                    "failures": circuit.failures,
                    "opened": circuit.opened,
                    "open_until": circuit.open_until,
                    "now": now,
                },
            )
            await conn.execute("forget_closed_circuits", {"before": now - 86400})
            payload = {
                "node": self.node,
                "origin": circuit.origin,
                "state": circuit.state,
                "failures": circuit.failures,
                "opened": circuit.opened,
                "open_until": circuit.open_until,
            }
            payload_text = json.dumps(payload)
            await conn.fetch("notify", {"channel": self.circuit_channel, "payload": payload_text})

        await self._run(write)

    async def load_circuits(self) -> list[CircuitRecord]:
        return [_circuit(r) for r in await self._read("load_circuits")]

    async def take_probe(self, origin: str, now: float, until: float) -> CircuitRecord | None:
        """Take the origin's half-open probe for this node (None), or the stored
        circuit that refuses it: another node's probe alive, or closed meanwhile."""

        async def write(conn: _Conn) -> CircuitRecord | None:
            params = {"origin": origin, "now": now, "until": until, "node": self.node}
            if await conn.fetch("take_probe", params):
                return None
            rows = await conn.fetch("get_circuit", {"origin": origin})
            return _circuit(rows[0]) if rows else None

        return await self._run(write)

    # -- the cluster's figures ------------------------------------------------------
    async def recent_activity(self, *, since: float) -> dict[str, tuple[int, int]]:
        """{queue: (jobs succeeded, attempts failed) since `since`} for every node."""
        rows = await self._read("recent_activity", {"since": since})
        return {row["queue"]: (int(row["delivered"]), int(row["failed"])) for row in rows}

    # -- topics ------------------------------------------------------------------
    async def put_topic(
        self, *, name: str, endpoints: list[dict[str, Any]], now: float
    ) -> TopicRecord:
        async def write(conn: _Conn) -> TopicRecord:
            params = {"name": name, "endpoints": _dumps(endpoints), "now": now}
            return row_to_topic((await conn.fetch("put_topic", params))[0])

        return await self._run(write)

    async def get_topic(self, *, name: str) -> TopicRecord | None:
        rows = await self._read("get_topic", {"name": name})
        return row_to_topic(rows[0]) if rows else None

    async def list_topics(self) -> list[TopicRecord]:
        return [row_to_topic(row) for row in await self._read("list_topics")]

    async def delete_topic(self, *, name: str) -> bool:
        async def write(conn: _Conn) -> bool:
            return await conn.execute("delete_topic", {"name": name}) > 0

        return await self._run(write)


def _circuit(r: Any) -> CircuitRecord:
    return CircuitRecord(
        r["origin"],
        r["state"],
        r["failures"],
        r["opened"],
        r["open_until"],
        r["probe_by"],
        r["probe_until"],
    )


def _key_snapshots(rows: Sequence[Any]) -> list[KeySnapshot]:
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


async def _recheck_keys(conn: _Conn, plan: ClaimPlan, now: float) -> dict[str, KeyLimits]:
    """The flow-key limits of the plan's queues read again under the flow-key lock.

    A key's limits hold across every queue and node, so the claims that take jobs
    of limited keys go one at a time in the cluster: each counts the keys' jobs in
    flight and reads their token buckets again under the lock (held to COMMIT),
    after the claims before it committed, instead of trusting its snapshot."""
    await conn.fetch("lock_flow_keys", {"key": FLOW_KEY_LOCK})
    fresh = _key_snapshots(await conn.fetch("flow_key_snapshot", {"since": now - MAX_RATE_PERIOD}))
    defaults = await conn.fetch("queue_key_defaults", {"names": sorted(plan.keys)})
    keys = dict(plan.keys)
    for row in defaults:
        try:
            keys[row["name"]] = key_limits(
                fresh,
                key_concurrency=row["key_concurrency"],
                key_rate_limit=row["key_rate_limit"],
                now=now,
            )
        except ValueError:  # the default rate became unreadable: the plan sets it aside next
            keys[row["name"]] = KeyLimits(held=frozenset(s.key for s in fresh), default=0)
    return keys


async def _claim_by_key(
    conn: _Conn,
    params: dict[str, Any],
    limits: KeyLimits,
    taken: dict[str, int],
    count: int,
    now: float,
) -> list[JobRecord]:
    """SQLite's _claim_by_key on PostgreSQL: read a queue's candidates in claim order
    skipping held keys, let policy.flow_keys.pick choose, claim those (guarded, SKIP
    LOCKED), and read on past the keys that became full; then save the keys' buckets."""
    held = set(limits.held)
    before = dict(taken)
    claimed: list[JobRecord] = []
    for _ in range(KEYED_SCAN_ROUNDS):
        need = count - len(claimed)
        if need <= 0:
            break
        scan = need * 4 + 16
        rows = await conn.fetch(
            "claim_candidates", {"queue": params["queue"], "held": sorted(held), "scan": scan}
        )
        ids, full = pick(((r[0], r[1]) for r in rows), limits, taken, need)
        if ids:
            got = await conn.fetch("claim_ids", {**params, "ids": list(ids)})
            claimed += [row_to_job(r) for r in got]
        held |= full
        if len(rows) < scan or not full:
            break
    mine = {k: n - before.get(k, 0) for k, n in taken.items() if n > before.get(k, 0)}
    for key, (rate, tokens, tokens_at) in spent_buckets(limits, mine, now).items():
        await conn.execute(
            "save_key_tokens",
            {"key": key, "tokens": tokens, "tokens_at": tokens_at, "bucket_rate": rate},
        )
    claimed.sort(key=lambda job: (-job.priority, job.run_at, job.id))
    return claimed


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own (which rolls back an
    open transaction). Its default runs `pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL` on every release, one round trip more per statement (10%
    of a node's CPU in the PostgreSQL benchmark), to undo session state that the
    pool's connections never make: their advisory locks are transaction-scoped, no
    cursor outlives its transaction, LISTEN and the leader lock have connections of
    their own, and nothing runs SET."""


async def _one(count: Awaitable[int]) -> bool:
    return await count == 1


async def _migrate(conn: _Conn) -> None:
    """Apply pending migrations, each once, under a transaction-scoped advisory lock:
    a node starting while another migrates waits, then finds them applied."""
    raw = conn.raw
    await raw.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await raw.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at double precision NOT NULL)"
    )
    applied = {row[0] for row in await raw.fetch("SELECT version FROM schema_migrations")}
    for version, name, sql in migrations("postgres_migrations"):
        if version in applied:
            continue
        await raw.execute(sql)
        await raw.execute(
            "INSERT INTO schema_migrations VALUES ($1, $2, extract(epoch FROM now()))",
            version,
            name,
        )


def _attempt_params(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "job_id": attempt.job_id,
        "number": attempt.number,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "status": attempt.status,
        "error": attempt.error,
        "response_body": attempt.response_body,
    }


async def _finished(conn: _Conn, queue: str, ordering_key: str | None, now: float) -> None:
    """Bookkeeping when a job leaves the unfinished states: the queue's count, then
    its ordering key (under the key's lock, which its enqueues take too)."""
    await conn.execute("add_unfinished", {"name": queue, "delta": -1})
    if ordering_key is not None:
        await _lock_keys(conn, [_ordering(queue, ordering_key)])
        await conn.execute("unblock_next", {"queue": queue, "key": ordering_key, "now": now})


def _ordering(queue: str, key: str | None) -> str | None:
    return None if key is None else f"o/{queue}/{key}"


def _unique(queue: str, key: str | None) -> str | None:
    return None if key is None else f"u/{queue}/{key}"


async def _lock_keys(conn: _Conn, keys: Sequence[str | None]) -> None:
    """Transaction-scoped advisory locks on ordering and unique keys (in one sorted
    order, so two transactions never wait on each other in a cycle): what is decided
    about a key (blocked or next, taken or free) is decided one transaction at a
    time, without locking the whole queue."""
    wanted = sorted({key for key in keys if key is not None})
    if wanted:
        await conn.fetch("lock_keys", {"keys": wanted})


async def _unique_taken(conn: _Conn, row: Any) -> bool:
    if row["unique_key"] is None:
        return False
    params = {"queue": row["queue"], "unique_key": row["unique_key"]}
    return bool(await conn.fetch("find_unique_job", params))


async def _redrive_or_conflict(conn: _Conn, row: Any, now: float) -> JobRecord:
    if await _unique_taken(conn, row):
        raise Conflict(
            f"job {row['id']} has a unique_key that an unfinished job of its queue holds",
            code="unique_key_taken",
        )
    return await _redrive(conn, row, now)


async def _redrive(conn: _Conn, row: Any, now: float, run_at: float | None = None) -> JobRecord:
    """A dead job back to the queue, due at `run_at` (default now), its redrive counted."""
    run_at = now if run_at is None else max(run_at, now)
    state = "pending" if run_at <= now else "scheduled"
    await conn.execute("ensure_queue", {"name": row["queue"], "now": now})  # it may be gone
    key = row["ordering_key"]
    await _lock_keys(conn, [_ordering(row["queue"], key)])
    if key is not None and await conn.fetch(
        "ordering_key_busy", {"queue": row["queue"], "key": key}
    ):
        state = "blocked"
    params = {"id": row["id"], "run_at": run_at, "state": state}
    job = row_to_job((await conn.fetch("redrive", params))[0])
    await conn.execute("add_unfinished", {"name": job.queue, "delta": 1})
    return job


class _Enqueue:
    """The enqueues of one transaction, as in the SQLite store, made safe for several
    nodes: the batch's ordering and unique keys are locked (advisory, in one order)
    and a queue with a max_size has its row locked before anything is checked, so
    each is decided one transaction at a time; idempotency keys are claimed by
    INSERT … ON CONFLICT, so of two nodes given one key at once, one creates the job."""

    def __init__(
        self, conn: _Conn, now: float, ttl: float, defaults: JobDefaults, backpressure: bool
    ) -> None:
        self.conn, self.now, self.ttl, self.defaults = conn, now, ttl, defaults
        self.backpressure = backpressure
        self.queues: dict[str, QueueSettings] = {}
        self.queue_backoff: dict[str, BackoffPolicy] = {}
        self.added: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self.by_idempotency: dict[str, JobRecord] = {}
        self.by_unique: dict[tuple[str, str], JobRecord] = {}
        self.ordering_taken: set[tuple[str, str]] = set()
        self.total: int | None = None
        # (channel, payload of a run_at): flush() folds the NOTIFY of a single new job
        # into its INSERT, one round trip less; `notified` says it did.
        self.notify_with: tuple[str, Callable[[float | None], str]] | None = None
        self.notified = False

    async def lock(self, jobs: Sequence[NewJob]) -> None:
        """The batch's queues, made if missing; their rows locked only where a limit
        is checked (max_size, the server's max_unfinished), so that enqueues and
        settles of a queue do not wait on each other's commits; then the batch's
        ordering and unique keys locked, so that what is decided about each is
        decided one transaction at a time."""
        for name in sorted({new.queue for new in jobs}):
            params = {"name": name, "now": self.now}
            rows = await self.conn.fetch("share_queue", params)
            if not rows:
                await self.conn.execute("ensure_queue", params)
                rows = await self.conn.fetch("share_queue", params)
            queue = row_to_queue(rows[0])
            limited = queue.max_size is not None or self.defaults.max_unfinished is not None
            if self.backpressure and limited:
                [row] = await self.conn.fetch("lock_queues", {"names": [name]})
                queue = row_to_queue(row)  # counted again under the lock
            self.queues[name] = queue
        if self.backpressure and self.defaults.max_unfinished is not None:
            # max_unfinished counts every queue: enqueues under it take one lock in
            # turn (after the queue rows, before the keys, so never in a cycle) and
            # count the total under it, so two nodes cannot both pass the limit.
            await self.conn.fetch("lock_unfinished", {"key": UNFINISHED_LOCK})
            self.total = int(await self.conn.fetchval("total_unfinished"))
        keys = [_ordering(new.queue, new.ordering_key) for new in jobs]
        keys += [_unique(new.queue, new.unique_key) for new in jobs]
        await _lock_keys(self.conn, keys)

    async def add(self, new: NewJob) -> EnqueueResult:
        conn, now = self.conn, self.now
        job_id = new.id or new_job_id(now)
        key = new.idempotency_key
        if key is not None:
            earlier = self.by_idempotency.get(key)
            if earlier is not None:
                return EnqueueResult(earlier, created=False)
            claim = {"key": key, "job_id": job_id, "expires_at": now + self.ttl, "now": now}
            if not await conn.fetch("claim_idempotency_key", claim):
                rows = await conn.fetch("find_idempotency_key", {"key": key, "now": now})
                existing = rows and await conn.fetch("get_job", {"id": rows[0][0]})
                if existing:
                    return EnqueueResult(row_to_job(existing[0]), created=False)
                # the key's job was pruned: the key is this job's now
                await conn.execute("put_idempotency_key", claim)
        if new.unique_key is not None:
            earlier = self.by_unique.get((new.queue, new.unique_key))
            found = [earlier] if earlier is not None else []
            if not found:
                params = {"queue": new.queue, "unique_key": new.unique_key}
                found = [row_to_job(r) for r in await conn.fetch("find_unique_job", params)]
            if found:
                if key is not None:  # the key was claimed for a job that is not made
                    await conn.raw.execute(
                        "DELETE FROM idempotency_keys WHERE key = $1 AND job_id = $2", key, job_id
                    )
                return EnqueueResult(found[0], created=False)
        queue = self.queues[new.queue]
        await self._check_room(queue)
        run_at = max(new.run_at, now)
        state = "scheduled" if run_at > now else "pending"
        if new.ordering_key is not None:
            ordering = (new.queue, new.ordering_key)
            busy = ordering in self.ordering_taken or await conn.fetch(
                "ordering_key_busy", {"queue": new.queue, "key": new.ordering_key}
            )
            if busy:
                state = "blocked"
            self.ordering_taken.add(ordering)
        job = JobRecord(
            id=job_id,
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
        self.rows.append(_job_row(job))
        self.added[job.queue] = self.added.get(job.queue, 0) + 1
        if key is not None:
            self.by_idempotency[key] = job
        if new.unique_key is not None:
            self.by_unique[(new.queue, new.unique_key)] = job
        return EnqueueResult(job, created=True)

    def _backoff(self, own: PartialBackoff | None, queue: QueueSettings) -> BackoffPolicy:
        if own is not None:
            return resolve_backoff(own, queue.backoff, default=self.defaults.backoff)
        policy = self.queue_backoff.get(queue.name)
        if policy is None:
            policy = resolve_backoff(queue.backoff, default=self.defaults.backoff)
            self.queue_backoff[queue.name] = policy
        return policy

    async def _check_room(self, queue: QueueSettings) -> None:
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
                self.total = int(await self.conn.fetchval("total_unfinished"))
            total = self.total + sum(self.added.values())
            if total >= limit:
                raise RateLimited(
                    f"pushq holds {total} unfinished jobs (the limit is {limit})",
                    retry_after=QUEUE_FULL_RETRY_AFTER,
                    code="server_full",
                )

    async def flush(self) -> None:
        if len(self.rows) == 1 and self.notify_with is not None:
            [row] = self.rows
            channel, payload = self.notify_with
            notify = None
            if row["state"] == "pending":
                notify = payload(None)
            elif row["state"] == "scheduled":
                notify = payload(row["run_at"])
            params = row | {"channel": channel, "payload": notify}
            await self.conn.fetch("insert_job_notify", params)  # counted too
            self.notified = True
            self.added[row["queue"]] -= 1
        elif self.rows:
            await self.conn.executemany("insert_job", self.rows)
        for name, delta in self.added.items():
            if delta:
                await self.conn.execute("add_unfinished", {"name": name, "delta": delta})


def _job_row(job: JobRecord) -> dict[str, Any]:
    return {
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


async def _enqueue_all(
    conn: _Conn,
    jobs: Sequence[NewJob],
    now: float,
    ttl: float,
    defaults: JobDefaults,
    backpressure: bool,
) -> list[EnqueueResult]:
    batch = _Enqueue(conn, now, ttl, defaults, backpressure)
    await batch.lock(jobs)
    results = [await batch.add(new) for new in jobs]
    await batch.flush()
    return results


def _state_condition(state: str) -> str:
    """SQL for one public state ('blocked' reads as pending or scheduled)."""
    if state == "scheduled":
        return "(jobs.state IN ('scheduled', 'blocked') AND jobs.run_at > :now::float8)"
    if state == "pending":
        return (
            "(jobs.state = 'pending' OR "
            "(jobs.state IN ('scheduled', 'blocked') AND jobs.run_at <= :now::float8))"
        )
    return f"jobs.state = '{state}'"  # one of PUBLIC_STATES, checked above the store


def _url_prefix(where: list[str], params: dict[str, Any], prefix: str, column: str) -> None:
    where.append(f"starts_with({column}, :url_prefix::text)")
    params["url_prefix"] = prefix


def _job_conditions(match: JobFilter, now: float) -> tuple[str, str, list[str], dict[str, Any]]:
    """(FROM clause, the id column it is ordered by, conditions, params) for a filter."""
    where: list[str] = []
    params: dict[str, Any] = {}
    source, id_col = "jobs", "jobs.id"
    if match.tag is not None:
        source, id_col = "job_tags AS t JOIN jobs ON jobs.id = t.job_id", "t.job_id"
        where.append("t.tag = :tag")
        params["tag"] = match.tag
    if match.queue is not None:
        where.append("jobs.queue = :queue")
        params["queue"] = match.queue
    if match.states is not None:
        conditions = [_state_condition(s) for s in match.states]
        if any(":now" in c for c in conditions):
            params["now"] = now
        where.append("(" + " OR ".join(conditions) + ")")
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


async def _cancel_matching(conn: _Conn, match: JobFilter, now: float) -> int:
    """Cancel every unfinished job the filter matches in one statement, then the
    bookkeeping per queue (under its row lock) and ordering key."""
    source, id_col, where, params = _job_conditions(match, now)
    where.append("jobs.state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying')")
    params["now"] = now
    sql = (
        "UPDATE jobs SET state = 'cancelled', finished_at = :now::float8, lease = NULL, "
        f"lease_expires_at = NULL WHERE id IN (SELECT {id_col} FROM {source} WHERE "
        + " AND ".join(where)
        + ") AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying') "
        "RETURNING queue, ordering_key"
    )
    rows = await conn.fetch_sql(sql, params)
    per_queue: dict[str, int] = {}
    keys: set[tuple[str, str]] = set()
    for row in rows:
        per_queue[row["queue"]] = per_queue.get(row["queue"], 0) + 1
        if row["ordering_key"] is not None:
            keys.add((row["queue"], row["ordering_key"]))
    for queue in sorted(per_queue):
        await conn.execute("add_unfinished", {"name": queue, "delta": -per_queue[queue]})
    await _lock_keys(conn, [_ordering(queue, key) for queue, key in keys])
    for queue, key in sorted(keys):
        await conn.execute("unblock_next", {"queue": queue, "key": key, "now": now})
    return len(rows)


def _dead_conditions(match: DeadFilter) -> tuple[list[str], dict[str, Any]]:
    """Conditions and params for a bulk redrive's filter."""
    where = ["state = 'dead'"]
    params: dict[str, Any] = {}
    if match.queue is not None:
        where.append("queue = :queue")
        params["queue"] = match.queue
    if match.url_prefix is not None:
        _url_prefix(where, params, match.url_prefix, "url")
    if match.status is not None:
        where.append("(last_error::jsonb ->> 'status')::integer = :status::integer")
        params["status"] = match.status
    if match.error_contains is not None:
        where.append(
            "strpos(lower(coalesce(last_error::jsonb ->> 'message', '') || ' ' || "
            "coalesce(last_error::jsonb ->> 'response', '')), lower(:needle::text)) > 0"
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
