"""PostgreSQL's job counts (migration 0007): deltas written by triggers, folded by the
leader, read as totals + deltas. Exact while several nodes write at once, for rows
written around pushq too, and on a database that already held jobs when it migrated.
(The counts after each kind of change, on both backends: test_counts.py.)"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from pushq.server.store import postgres
from pushq.server.store.postgres import PostgresStore
from pushq.server.store.sql import migrations

from ..pg import new_schema, postgres_url
from .test_conformance import NOW, attempt_of, claim, complete, enqueue, kill, new_job, retry
from .test_postgres import nodes

# A count of the jobs table in public states: what count_by_state read before 0007.
TABLE_COUNT = """
SELECT queue,
       CASE WHEN state IN ('scheduled', 'blocked') AND run_at <= $1::float8 THEN 'pending'
            WHEN state = 'blocked' THEN 'scheduled'
            ELSE state END AS state,
       count(*) AS n
FROM jobs GROUP BY 1, 2
"""


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def pool(store: PostgresStore) -> asyncpg.Pool:
    assert store._pool is not None
    return store._pool


async def table_count(conn: Any, now: float) -> dict[tuple[str, str], int]:
    return {(r["queue"], r["state"]): r["n"] for r in await conn.fetch(TABLE_COUNT, now)}


async def counted_and_table(store: PostgresStore, now: float) -> tuple[Any, Any]:
    """count_by_state's statement and a count of the table, in one snapshot."""
    sql, _ = postgres.Q["count_by_state"]
    async with pool(store).acquire() as conn, conn.transaction(isolation="repeatable_read"):
        rows = await conn.fetch(sql, now)
        return postgres.public_counts(rows), await table_count(conn, now)


async def deltas(store: PostgresStore) -> int:
    return int(await pool(store).fetchval("SELECT count(*) FROM job_count_deltas"))


def test_counts_stay_exact_while_two_nodes_enqueue_claim_and_settle_at_once() -> None:
    """Each node enqueues, claims and settles (complete, retry, kill) on its own
    while the leader folds; every read in between, taken in one snapshot with a count
    of the table, agrees with it; after the last fold the totals alone do."""

    async def node(store: PostgresStore, lease: str, seed: int) -> None:
        rng = random.Random(seed)
        for round_ in range(12):
            batch = [new_job(queue=rng.choice("abc")) for _ in range(rng.randint(1, 20))]
            batch.append(new_job(queue="a", run_at=NOW + 3600))  # scheduled, ahead
            batch.append(new_job(queue="b", ordering_key=f"k{round_ % 3}"))  # maybe blocked
            await enqueue(store, *batch)
            for job in await claim(store, limit=rng.randint(1, 15), lease=lease):
                settle = rng.choice((complete, retry, kill, complete))
                status = 400 if settle is kill else 500 if settle is retry else 200
                assert await settle(store, job, lease, attempt_of(job, status=status), NOW)

    async def leader(store: PostgresStore, stop: asyncio.Event) -> int:
        reads = 0
        while not stop.is_set():
            await store.promote_due(now=NOW, limit=100)  # folds the deltas
            counted, table = await counted_and_table(store, NOW)
            assert counted == table
            reads += 1
        return reads

    async def scenario() -> None:
        async with nodes(2) as (a, b):
            stop = asyncio.Event()
            folding = asyncio.create_task(leader(a, stop))
            await asyncio.gather(node(a, "La", 1), node(b, "Lb", 2))
            stop.set()
            assert await folding > 0
            await a.promote_due(now=NOW, limit=10_000)
            assert await deltas(a) == 0
            async with pool(b).acquire() as conn:
                table = await table_count(conn, NOW)
                totals = await conn.fetch("SELECT queue, state, n FROM job_counts")
            assert await b.count_by_state(now=NOW) == table
            assert sum(table.values()) == sum(row["n"] for row in totals) > 0

    run(scenario)


def test_concurrent_enqueues_do_not_wait_on_each_other_for_the_counts() -> None:
    """Two transactions enqueueing into one queue both commit while neither has:
    the deltas are rows of their own, not one counter row both would update."""

    async def scenario() -> None:
        async with nodes(1) as (store,):
            await enqueue(store, new_job(queue="a"))
            await store.promote_due(now=NOW, limit=10)  # job_counts now has ("a", "pending")
            first, second = [await pool(store).acquire() for _ in range(2)]
            try:
                insert = (
                    "INSERT INTO jobs (id, queue, url, method, state, max_attempts, backoff_base,"
                    " backoff_max, backoff_jitter, timeout, created_at, run_at)"
                    " VALUES ($1, 'a', 'https://w.example/', 'POST', 'pending', 3, 1, 60, 1, 30,"
                    " $2, $2)"
                )
                one, two = first.transaction(), second.transaction()
                await one.start()
                await two.start()
                await first.execute(insert, "J1", NOW)
                # would block until `one` commits if both updated one counter row
                await asyncio.wait_for(second.execute(insert, "J2", NOW), 10)
                await two.commit()
                await one.commit()
            finally:
                for conn in (first, second):
                    await pool(store).release(conn)
            assert await store.count_by_state(now=NOW) == {("a", "pending"): 3}

    run(scenario)


def test_rows_written_around_pushq_are_counted_too() -> None:
    """The triggers see every statement: an INSERT or UPDATE by hand, a DELETE, a
    TRUNCATE (unlike SQLite, which counts its own writes and checks at start)."""

    async def scenario() -> None:
        async with nodes(1) as (store,):
            jobs = await enqueue(store, new_job(queue="a"), new_job(queue="a"))
            async with pool(store).acquire() as conn:
                await conn.execute(
                    "INSERT INTO jobs SELECT ('X' || i) AS id, queue, url, method, headers, body,"
                    " 'dead' AS state, priority, attempts, max_attempts, backoff_base,"
                    " backoff_max, backoff_jitter, timeout, created_at, run_at"
                    " FROM jobs, generate_series(1, 5) AS i WHERE id = $1",
                    jobs[0].id,
                )
                await conn.execute("UPDATE jobs SET state = 'cancelled' WHERE id = $1", jobs[1].id)
                await conn.execute("UPDATE jobs SET progress = 'half' WHERE id = $1", jobs[0].id)
                assert await store.count_by_state(now=NOW) == await table_count(conn, NOW)
                assert await store.count_by_state(now=NOW) == {
                    ("a", "pending"): 1,
                    ("a", "dead"): 5,
                    ("a", "cancelled"): 1,
                }
                await conn.execute("DELETE FROM jobs WHERE id LIKE 'X%' AND id != 'X1'")
                await store.promote_due(now=NOW, limit=10)
                assert await store.count_by_state(now=NOW) == await table_count(conn, NOW)
                await conn.execute("TRUNCATE jobs CASCADE")
                assert await store.count_by_state(now=NOW) == {}
                await enqueue(store, new_job(queue="b"))
                assert await store.count_by_state(now=NOW) == {("b", "pending"): 1}

    run(scenario)


def test_a_fold_moves_the_deltas_into_the_totals_and_drops_empty_ones() -> None:
    async def scenario() -> None:
        async with nodes(1) as (store,):
            jobs = await enqueue(store, *(new_job(queue="gone") for _ in range(3)))
            assert await deltas(store) > 0
            before = await store.count_by_state(now=NOW)
            await store.promote_due(now=NOW, limit=10)
            assert await deltas(store) == 0
            assert await store.count_by_state(now=NOW) == before == {("gone", "pending"): 3}
            for job in jobs:
                await store.cancel(job_id=job.id, now=NOW)
                await store.delete_job(job_id=job.id)
            await store.promote_due(now=NOW, limit=10)
            assert await store.count_by_state(now=NOW) == {}
            rows = await pool(store).fetch("SELECT * FROM job_counts")
            assert rows == []  # a queue's zero counts do not pile up

    run(scenario)


def test_migrating_a_database_with_jobs_counts_them() -> None:
    """0007 on a schema that already held jobs in every state (a scheduled one already
    due, a blocked one not yet): the counts equal the table's from the first read."""

    async def scenario() -> None:
        url, schema = postgres_url(), new_schema()
        admin = await asyncpg.connect(url)
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        store = PostgresStore(url, schema=schema, min_size=1, max_size=2)
        try:
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at double precision NOT NULL)"
            )
            for version, name, sql in migrations("postgres_migrations"):
                if version < 7:
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2, 0)", version, name
                    )
            states = [
                ("pending", NOW - 5),
                ("scheduled", NOW + 60),
                ("scheduled", NOW - 1),
                ("blocked", NOW + 600),
                ("blocked", NOW - 1),
                ("active", NOW - 5),
                ("retrying", NOW + 30),
                ("succeeded", NOW - 9),
                ("dead", NOW - 9),
                ("cancelled", NOW - 9),
            ]
            await conn.executemany(
                "INSERT INTO jobs (id, queue, url, method, state, max_attempts, backoff_base,"
                " backoff_max, backoff_jitter, timeout, created_at, run_at, ordering_key)"
                " VALUES ($1, $2, 'https://w.example/', 'POST', $3, 3, 1, 60, 1, 30, $4, $4,"
                " CASE WHEN $3 = 'blocked' THEN 'k' END)",
                [
                    (f"J{i}-{n}", f"q{n % 2}", state, run_at)
                    for n in range(3)
                    for i, (state, run_at) in enumerate(states)
                ],
            )
            table = await table_count(conn, NOW)
            await store.open()  # applies 0007
            assert await store.count_by_state(now=NOW) == table
            assert table[("q0", "pending")] == 2 * 3  # pending, the due scheduled and blocked
            assert table[("q0", "scheduled")] == 2 * 2
            await store.promote_due(now=NOW, limit=100)
            async with pool(store).acquire() as again:
                assert await store.count_by_state(now=NOW) == await table_count(again, NOW)
        finally:
            await store.close()
            await conn.close()
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.close()

    run(scenario)
