"""Group commit for SQLite: one writer thread, one transaction per batch of writes.

Writes are queued as functions of a sqlite3 connection. While one batch is
being committed (the fsync is the expensive part), new writes queue up; the
next batch takes them all. A write that fails rolls back alone and the rest of
its batch still commits: the batch runs first without savepoints (writes
rarely fail). A write that fails having changed no row (a 404, a 409, a full
queue's 429) leaves nothing to undo; if one fails otherwise, the whole
transaction is rolled back and the batch run again with each write inside its
own SAVEPOINT. A write's future
resolves only after COMMIT returned, so an acknowledged write is on disk.

Counters that many writes of a batch change (a queue's unfinished jobs, the
job_counts of the states claims and settles move jobs between) can be added up
by the writes (`count`, `count_jobs`) and written once per batch, just before
the COMMIT, in the same transaction.

Writes of one kind can share their statements (`Shared`: the enqueues of a batch
make one INSERT for all their rows): they run together, as one unit, where the
first of them stood.

A dedicated thread (rather than aiosqlite's per-statement hops) runs a whole
batch in one hand-off, and releases the GIL while SQLite waits on the disk.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import StoreUnavailable

log = logging.getLogger("pushq.store")
T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]
MAX_BATCH = 2000

# SQLite result codes (sqlite3.Error.sqlite_errorname, extended codes included) that
# mean the database cannot take writes, with what an operator should do about it.
_UNAVAILABLE = (
    ("SQLITE_FULL", "full", "the disk is full: free space"),
    ("SQLITE_READONLY", "readonly", "the database is read-only: check its permissions"),
    ("SQLITE_PERM", "readonly", "no permission to write the database: check its permissions"),
    ("SQLITE_CANTOPEN", "readonly", "cannot open the database file: check its directory"),
    ("SQLITE_IOERR", "io", "disk I/O error: check the disk"),
    ("SQLITE_CORRUPT", "corrupt", "the database is corrupt: restore it from a backup"),
    ("SQLITE_NOTADB", "corrupt", "the file is not a SQLite database: restore it from a backup"),
)


Outcome = tuple[bool, Any]  # (True, value) or (False, the exception)


@dataclass(frozen=True, slots=True)
class Shared:
    """A write that shares its statements with the other writes of its kind in the
    same batch (the enqueues: one INSERT for all their rows, one counter update per
    queue, no savepoint each). `run(conn, items)` gets the item of every Shared write
    of the batch with the same `run`, in order, where the first of them stood, and
    returns an Outcome per item; a failed item must leave nothing written. An
    exception out of `run` fails them all and rolls back all they wrote."""

    run: Callable[[sqlite3.Connection, list[Any]], list[Outcome]]
    item: Any


def unavailable(exc: BaseException, path: Path) -> StoreUnavailable | None:
    """The StoreUnavailable that a driver error means, or None for other errors."""
    name = getattr(exc, "sqlite_errorname", None)
    if not isinstance(exc, sqlite3.Error) or not isinstance(name, str):
        return None
    for prefix, kind, advice in _UNAVAILABLE:
        if name.startswith(prefix):
            return StoreUnavailable(f"{path}: {advice} ({exc})", kind=kind)
    return None


def _database_error(exc: Exception) -> bool:
    """A driver error other than a constraint's (disk full, I/O, locked...)."""
    return isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError)


class _Failed(Exception):
    """A write failed in a batch run without savepoints: run it again with them."""


class GroupCommitWriter:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        busy_timeout_ms: int,
        counter_sql: str | None = None,
        job_count_sql: str | None = None,
    ) -> None:
        # counter_sql: the statement that adds :delta to the counter :name, for count();
        # job_count_sql: the one that adds :delta to job_counts' (:queue, :state)
        self._counter_sql = counter_sql
        self._job_count_sql = job_count_sql
        # the current write's count() and count_jobs() calls, by (queue,) or (queue, state)
        self._counts: dict[tuple[str, ...], int] = {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pushq-sqlite-writer")
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._queue: list[tuple[Write | Shared, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # The current episode of a database that cannot take writes (disk full, ...):
        # logged once when it starts and once when a commit succeeds again.
        self.unavailable: StoreUnavailable | None = None
        self._unavailable_since = 0.0
        self._probes: set[asyncio.Future[Any]] = set()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        # Checkpoints run on a connection of their own (see Checkpointer): left to the
        # writer, every ~1,000 pages one commit would also copy the WAL into the
        # database and fsync it, and stall every write queued behind it.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        return conn

    async def call(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """Run `func` on the writer connection outside any batch (migrations, pragmas)."""
        assert self._conn is not None, "store is not open"
        conn = self._conn
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: func(conn))

    async def write(
        self, op: Callable[[sqlite3.Connection], T] | Shared, *, probe: bool = False
    ) -> T:
        """Run `op` in the next group transaction; return once that transaction committed.

        StoreUnavailable when the database cannot take writes. A `probe` (a health
        check's tiny write) that commits does not end such an episode: it may fit
        where real writes do not."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if probe:
            self._probes.add(future)
            future.add_done_callback(self._probes.discard)
        self._queue.append((op, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    outcomes = await loop.run_in_executor(self._executor, self._apply, batch)
                except BaseException as exc:  # the commit itself failed: nothing was written
                    outcomes = [(False, exc)] * len(batch)
                else:
                    if not all(future in self._probes for _, future in batch):
                        self._writable_again()
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                        continue
                    try:
                        failure = self._translate(value)
                    except Exception:  # never leave a caller waiting for an answer
                        failure = value
                    future.set_exception(failure)
        finally:
            self._flusher = None

    def _translate(self, exc: BaseException) -> BaseException:
        translated = unavailable(exc, self._path)
        if translated is None:
            return exc
        if self.unavailable is None:
            self._unavailable_since = time.monotonic()
            log.error("database unavailable: %s; writes fail (503) until it recovers", translated)
        self.unavailable = translated
        return translated

    def _writable_again(self) -> None:
        if self.unavailable is not None:
            log.warning(
                "database writable again after %.0fs", time.monotonic() - self._unavailable_since
            )
            self.unavailable = None

    def count(self, name: str, delta: int) -> None:
        """From inside a write: add `delta` to counter `name` when the batch commits
        (with the write: nothing if the write fails). Only the writer thread calls it."""
        key = (name,)
        self._counts[key] = self._counts.get(key, 0) + delta

    def count_jobs(self, queue: str, state: str, delta: int) -> None:
        """From inside a write: add `delta` to job_counts' (queue, state) when the batch
        commits, as count() does for its counter."""
        key = (queue, state)
        self._counts[key] = self._counts.get(key, 0) + delta

    def _write_counter(self, conn: sqlite3.Connection, key: tuple[str, ...], delta: int) -> None:
        if len(key) == 1:
            assert self._counter_sql is not None, "count() needs counter_sql"
            conn.execute(self._counter_sql, {"name": key[0], "delta": delta})
        else:
            assert self._job_count_sql is not None, "count_jobs() needs job_count_sql"
            conn.execute(self._job_count_sql, {"queue": key[0], "state": key[1], "delta": delta})

    def _apply(self, batch: list[tuple[Write | Shared, asyncio.Future[Any]]]) -> list[Outcome]:
        try:
            return self._run(batch, savepoints=False)
        except _Failed as failed:
            if len(batch) == 1:  # no neighbours to protect: it failed alone
                assert failed.__cause__ is not None
                raise failed.__cause__ from None
        return self._run(batch, savepoints=True)

    @staticmethod
    def _units(batch: list[tuple[Write | Shared, asyncio.Future[Any]]]) -> list[list[int]]:
        """The units of the transaction: each plain write alone, the Shared writes of
        one kind together where the first of them stood."""
        units: list[list[int]] = []
        shared: dict[Any, list[int]] = {}
        for i, (op, _) in enumerate(batch):
            if isinstance(op, Shared):
                unit = shared.get(op.run)
                if unit is not None:
                    unit.append(i)
                    continue
                unit = shared[op.run] = []
            else:
                unit = []
            unit.append(i)
            units.append(unit)
        return units

    @staticmethod
    def _call(conn: sqlite3.Connection, ops: list[Write | Shared]) -> list[Outcome]:
        first = ops[0]
        if isinstance(first, Shared):
            return first.run(conn, [op.item for op in ops if isinstance(op, Shared)])
        return [(True, first(conn))]

    def _run(
        self, batch: list[tuple[Write | Shared, asyncio.Future[Any]]], *, savepoints: bool
    ) -> list[Outcome]:
        conn = self._conn
        assert conn is not None
        outcomes: list[Outcome] = [(False, None)] * len(batch)
        totals: dict[tuple[str, ...], int] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for unit in self._units(batch):
                ops = [batch[i][0] for i in unit]
                self._counts = {}
                if not savepoints:
                    # total_changes counts a statement's rows once it has run to its
                    # end: the store's writes read their RETURNING rows to the end
                    changes = conn.total_changes
                    try:
                        values = self._call(conn, ops)
                    except Exception as exc:
                        if conn.total_changes != changes or _database_error(exc):
                            raise _Failed() from exc  # undo it: run the batch again
                        values = [(False, exc)] * len(unit)  # it wrote nothing
                        self._counts = {}
                else:
                    conn.execute("SAVEPOINT write")
                    try:
                        values = self._call(conn, ops)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO write")
                        values = [(False, exc)] * len(unit)
                        self._counts = {}
                    conn.execute("RELEASE write")
                for i, value in zip(unit, values, strict=True):
                    outcomes[i] = value
                for key, delta in self._counts.items():
                    totals[key] = totals.get(key, 0) + delta
            self._counts = {}
            for key, delta in totals.items():
                if delta:
                    self._write_counter(conn, key, delta)
            conn.execute("COMMIT")
        except BaseException:
            self._counts = {}
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    async def close(self) -> None:
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)


class Checkpointer:
    """Copies the WAL into the database file in the background, off the commit path.

    PASSIVE checkpoints never wait for the writer or readers; once a checkpoint has
    copied every frame, SQLite starts the WAL over at the next commit, so the file
    stays small.
    """

    INTERVAL = 1.0

    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pushq-sqlite-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-checkpointer")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.INTERVAL)
            try:
                await loop.run_in_executor(self._executor, self.checkpoint)
            except sqlite3.Error as exc:  # busy or locked: the next round will do it
                log.debug("checkpoint skipped: %s", exc)

    def checkpoint(self) -> tuple[int, int, int]:
        """(busy, WAL frames, frames copied), as PRAGMA wal_checkpoint reports them."""
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await loop.run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)
