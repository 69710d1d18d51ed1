"""The SQLite writer's group commit: counters written once per batch, and a batch
that runs without savepoints until one of its writes fails."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from pushq.server.store.group_commit import GroupCommitWriter

COUNTER_SQL = "UPDATE counters SET n = n + :delta WHERE name = :name"


def run_writer(tmp_path: Path, scenario: Callable[[GroupCommitWriter], Awaitable[None]]) -> None:
    async def main() -> None:
        writer = GroupCommitWriter(
            tmp_path / "gc.db", synchronous="FULL", busy_timeout_ms=1000, counter_sql=COUNTER_SQL
        )
        await writer.open()
        try:
            await writer.call(
                lambda c: c.executescript(
                    "CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);"
                    "INSERT INTO counters VALUES ('a', 0), ('b', 0);"
                    "CREATE TABLE t (v INTEGER UNIQUE);"
                )
            )
            await scenario(writer)
        finally:
            await writer.close()

    asyncio.run(main())


def counters(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name, n FROM counters ORDER BY name").fetchall())


def test_counts_are_written_with_their_batch_and_dropped_with_a_failed_write(
    tmp_path: Path,
) -> None:
    async def scenario(writer: GroupCommitWriter) -> None:
        runs: list[int] = []

        def insert(v: int, counter: str, delta: int) -> Callable[[sqlite3.Connection], int]:
            def op(conn: sqlite3.Connection) -> int:
                runs.append(v)
                conn.execute("INSERT INTO t VALUES (?)", (v,))
                writer.count(counter, delta)
                return v

            return op

        # One batch: every write's count lands, added up per counter.
        results = await asyncio.gather(
            writer.write(insert(1, "a", 1)),
            writer.write(insert(2, "a", 1)),
            writer.write(insert(3, "b", -1)),
        )
        assert results == [1, 2, 3]
        assert await writer.call(counters) == {"a": 2, "b": -1}
        assert runs == [1, 2, 3]  # no write failed: each ran once

        # A write that fails after writing takes its rows and its count with it; the
        # others commit.
        runs.clear()

        def half_done(conn: sqlite3.Connection) -> None:
            insert(50, "b", 10)(conn)
            conn.execute("INSERT INTO t VALUES (1)")  # v = 1 exists: IntegrityError

        results = await asyncio.gather(
            writer.write(insert(4, "a", 1)),
            writer.write(half_done),
            writer.write(insert(5, "b", 1)),
            return_exceptions=True,
        )
        assert results[0] == 4 and results[2] == 5
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert await writer.call(counters) == {"a": 3, "b": 0}
        rows = await writer.call(lambda c: c.execute("SELECT v FROM t ORDER BY v").fetchall())
        assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
        # the batch ran up to the failure, then again with a savepoint per write
        assert runs == [4, 50, 4, 50, 5]

        # A write that fails before changing anything (a 404, a full queue) is not
        # undone by running the batch again: the others ran once.
        runs.clear()

        def refused(conn: sqlite3.Connection) -> None:
            runs.append(0)
            writer.count("a", 100)
            raise LookupError("no such job")

        results = await asyncio.gather(
            writer.write(insert(6, "a", 1)),
            writer.write(refused),
            writer.write(insert(7, "b", 1)),
            return_exceptions=True,
        )
        assert results[0] == 6 and results[2] == 7 and isinstance(results[1], LookupError)
        assert runs == [6, 0, 7]
        assert await writer.call(counters) == {"a": 4, "b": 1}

        # A write alone that fails is not run twice, and counts nothing.
        runs.clear()
        try:
            await writer.write(insert(2, "a", 5))
        except sqlite3.IntegrityError:
            pass
        else:
            raise AssertionError("the duplicate was stored")
        assert runs == [2]
        assert await writer.call(counters) == {"a": 4, "b": 1}

    run_writer(tmp_path, scenario)
