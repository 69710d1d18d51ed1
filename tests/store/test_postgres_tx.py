"""Transactional enqueue against real PostgreSQL: pushq_enqueue() (migration 0005)
through the SDK's pushq.tx, on the application's own asyncpg and psycopg connections.

The store here is a node; the "application" is a separate connection to the same
database, calling the function in pushq's schema from its own search_path."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import psycopg
import pytest

from pushq import BadRequest, Conflict, PayloadTooLarge, RateLimited
from pushq.errors import ConfigError
from pushq.policy.backoff import PartialBackoff
from pushq.server.delivery import HOP_BY_HOP_HEADERS, RESERVED_HEADERS
from pushq.server.models import AttemptRecord, NewJob, id_floor
from pushq.server.store.postgres import PostgresStore
from pushq.tx import TransactionRequired, enqueue_tx, enqueue_tx_async

from ..pg import new_schema, postgres_url
from ..stores import claim_due
from .test_conformance import DEFAULTS, TTL

URL = "https://worker.example/hook"


@asynccontextmanager
async def node() -> AsyncIterator[PostgresStore]:
    """A node on a fresh schema that has published its enqueue defaults."""
    url, schema = postgres_url(), new_schema()
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    store = PostgresStore(url, schema=schema, min_size=1, max_size=4)
    try:
        await store.open()
        await store.publish_enqueue_settings(
            defaults=DEFAULTS,
            idempotency_ttl=TTL,
            max_body_size=1024,
            reserved_headers=RESERVED_HEADERS | HOP_BY_HOP_HEADERS,
        )
        yield store
    finally:
        await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def app_connection() -> asyncpg.Connection:
    """The application's connection: its own search_path, not pushq's schema."""
    return await asyncpg.connect(postgres_url())


async def unfinished(store: PostgresStore, queue: str = "default") -> int:
    settings = await store.get_queue(name=queue)
    return 0 if settings is None else settings.unfinished


async def count_jobs(store: PostgresStore) -> int:
    assert store._pool is not None
    return int(await store._pool.fetchval("SELECT count(*) FROM jobs"))


def test_a_job_enqueued_in_a_transaction_is_one_the_store_would_have_made() -> None:
    """The conformance check: the same request through pushq_enqueue and through the
    store's enqueue gives the same row (bar id and times), and both are claimed and
    settled alike, the queue's counter back to zero."""

    async def scenario() -> None:
        async with node() as store:
            changes = {
                "max_attempts": 5,
                "backoff": PartialBackoff(base=2.0, max=None, jitter=False),
                "timeout": 12.0,
                "permanent_statuses": (404, 422),
            }
            await store.put_queue(name="mail", changes=changes, now=time.time())
            fields: dict[str, Any] = {
                "queue": "mail",
                "headers": {"X-Trace": "t-1"},
                "priority": 3,
                "tags": ["order", "email"],
                "flow_key": "customer-7",
                "ordering_key": None,
            }
            now = time.time()
            [by_store] = await store.enqueue(
                jobs=[NewJob(url=URL, body=b'{"order":42}', run_at=now, **fields)],
                now=now,
                idempotency_ttl=TTL,
                defaults=DEFAULTS,
            )
            app = await app_connection()
            try:
                async with app.transaction():
                    done = await enqueue_tx_async(
                        app, URL, {"order": 42}, schema=store.schema, **fields
                    )
            finally:
                await app.close()
            assert done.created and done.state == "pending" and done.queue == "mail"
            ours, theirs = await store.get(job_id=by_store.job.id), await store.get(job_id=done.id)
            assert ours is not None and theirs is not None
            assert theirs.id >= id_floor(theirs.created_at)  # a time-ordered id, like ours
            assert len(theirs.id) == len(ours.id) == 26
            same = {"id": "x", "created_at": 0.0, "run_at": 0.0}
            assert dataclasses.replace(theirs, **same) == dataclasses.replace(ours, **same)
            assert theirs.max_attempts == 5 and theirs.timeout == 12.0  # the queue's
            assert theirs.permanent_statuses == (404, 422)
            assert await unfinished(store, "mail") == 2

            claimed = await claim_due(
                store, limit=10, slots=10, now=time.time() + 1, lease="L", lease_margin=5
            )
            assert sorted(job.id for job in claimed.jobs) == sorted([ours.id, theirs.id])
            for job in claimed.jobs:
                attempt = AttemptRecord(job.id, 1, time.time(), 5.0, 200, None, "ok")
                settled = await store.complete(
                    job_id=job.id, lease="L", attempt=attempt, result={}, now=time.time()
                )
                assert settled
            assert await unfinished(store, "mail") == 0

    run(scenario)


def test_a_rolled_back_transaction_leaves_no_job_no_key_and_no_counter() -> None:
    async def scenario() -> None:
        async with node() as store:
            app = await app_connection()
            try:
                tx = app.transaction()
                await tx.start()
                done = await enqueue_tx_async(
                    app, URL, {"n": 1}, schema=store.schema, idempotency_key="k-rolled-back"
                )
                await tx.rollback()
            finally:
                await app.close()
            assert await store.get(job_id=done.id) is None
            assert await count_jobs(store) == 0
            assert await unfinished(store) == 0
            assert store._pool is not None
            assert await store._pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0

    run(scenario)


def test_a_savepoint_rolled_back_drops_only_the_jobs_after_it() -> None:
    async def scenario() -> None:
        async with node() as store:
            app = await app_connection()
            try:
                async with app.transaction():
                    kept = await enqueue_tx_async(app, URL, {"n": 1}, schema=store.schema)
                    savepoint = app.transaction()  # nested: a SAVEPOINT
                    await savepoint.start()
                    dropped = await enqueue_tx_async(app, URL, {"n": 2}, schema=store.schema)
                    await savepoint.rollback()
            finally:
                await app.close()
            assert await store.get(job_id=kept.id) is not None
            assert await store.get(job_id=dropped.id) is None
            assert await unfinished(store) == 1

    run(scenario)


def test_one_idempotency_key_in_two_concurrent_transactions_makes_one_job() -> None:
    """Two applications' transactions, different queues (so the queue lock does not
    order them): the second waits on the key until the first commits, then answers
    the first's job."""

    async def scenario() -> None:
        async with node() as store:
            first, second = await app_connection(), await app_connection()
            try:
                tx1 = first.transaction()
                await tx1.start()
                one = await enqueue_tx_async(
                    first, URL, {"n": 1}, schema=store.schema, queue="a", idempotency_key="K"
                )
                tx2 = second.transaction()
                await tx2.start()
                waiting = asyncio.ensure_future(
                    enqueue_tx_async(
                        second, URL, {"n": 2}, schema=store.schema, queue="b", idempotency_key="K"
                    )
                )
                # the second blocks on the key's row: it cannot finish before the commit
                await asyncio.wait_for(_lock_waiters(store, 1), timeout=30)
                assert not waiting.done()
                await tx1.commit()
                two = await asyncio.wait_for(waiting, timeout=30)
                await tx2.commit()
            finally:
                await first.close()
                await second.close()
            assert one.created and not two.created and two.id == one.id
            assert await count_jobs(store) == 1
            assert (await unfinished(store, "a"), await unfinished(store, "b")) == (1, 0)

    run(scenario)


async def _lock_waiters(store: PostgresStore, count: int) -> None:
    """Until `count` sessions of this database wait on a lock."""
    assert store._pool is not None
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    while int(await store._pool.fetchval(query)) < count:
        await asyncio.sleep(0.02)


def test_unique_and_ordering_keys_and_delays_follow_the_stores_rules() -> None:
    async def scenario() -> None:
        async with node() as store:
            app = await app_connection()
            try:
                async with app.transaction():
                    a = await enqueue_tx_async(
                        app, URL, schema=store.schema, ordering_key="o", unique_key="u"
                    )
                    b = await enqueue_tx_async(app, URL, schema=store.schema, ordering_key="o")
                    again = await enqueue_tx_async(app, URL, schema=store.schema, unique_key="u")
                    later = await enqueue_tx_async(app, URL, schema=store.schema, delay=3600)
            finally:
                await app.close()
            assert (a.state, b.state, later.state) == ("pending", "pending", "scheduled")
            assert again.deduplicated and again.id == a.id
            assert a.id < b.id  # enqueue order is id order within an ordering key
            stored_b = await store.get(job_id=b.id)
            assert stored_b is not None and stored_b.state == "blocked"  # behind a
            assert later.run_at.timestamp() > time.time() + 3000
            assert await unfinished(store) == 3

            # a's end lets b go on, as with a job the store enqueued
            claimed = await claim_due(
                store, limit=10, slots=10, now=time.time(), lease="L", lease_margin=5
            )
            assert [job.id for job in claimed.jobs] == [a.id]
            attempt = AttemptRecord(a.id, 1, time.time(), 5.0, 200, None, "ok")
            done = await store.complete(
                job_id=a.id, lease="L", attempt=attempt, result={}, now=time.time()
            )
            assert done
            stored_b = await store.get(job_id=b.id)
            assert stored_b is not None and stored_b.state == "pending"

    run(scenario)


def test_bad_input_is_refused_before_the_database_sees_it() -> None:
    async def scenario() -> None:
        async with node() as store:
            app = await app_connection()
            try:
                async with app.transaction():
                    with pytest.raises(BadRequest, match="url"):
                        await enqueue_tx_async(app, "ftp://nowhere", schema=store.schema)
                    with pytest.raises(BadRequest, match="headers"):
                        await enqueue_tx_async(
                            app, URL, schema=store.schema, headers={"webhook-id": "x"}
                        )
                    with pytest.raises(BadRequest, match="priority"):
                        await enqueue_tx_async(app, URL, schema=store.schema, priority=10**9)
                    with pytest.raises(BadRequest, match="delay or run_at"):
                        await enqueue_tx_async(
                            app, URL, schema=store.schema, delay=5, run_at="2030-01-01T00:00:00Z"
                        )
                    # the transaction is still usable: nothing reached the database
                    ok = await enqueue_tx_async(app, URL, schema=store.schema)
                with pytest.raises(TransactionRequired):
                    await enqueue_tx_async(app, URL, schema=store.schema)
                with pytest.raises(ConfigError, match="schema"):
                    async with app.transaction():
                        await enqueue_tx_async(app, URL, schema="no_such_schema")
                with pytest.raises(TypeError, match="enqueue_tx_async"):
                    enqueue_tx(app, URL, schema=store.schema)
            finally:
                await app.close()
            assert await count_jobs(store) == 1 and ok.created

    run(scenario)


def test_the_function_itself_refuses_malformed_jobs_from_any_caller() -> None:
    """Another language calls pushq_enqueue directly: rows stay well formed."""

    async def scenario() -> None:
        async with node() as store:
            app = await app_connection()
            call = f'SELECT * FROM "{store.schema}".pushq_enqueue($1::jsonb, $2)'
            bad = [
                '{"queue": "q"}',
                '{"url": "http://user:pw@host/x"}',
                '{"url": "https://h/x", "headers": {"pushq-attempt": "1"}}',
                '{"url": "https://h/x", "headers": {"Host": "evil"}}',
                '{"url": "https://h/x", "colour": "red"}',
                '{"url": "https://h/x", "queue": "no spaces"}',
                '{"url": "https://h/x", "max_attempts": 0}',
                '{"url": "https://h/x", "tags": [1]}',
                '{"url": "https://h/x", "delay": 1, "run_at": 2}',
                "[1]",
            ]
            try:
                for job in bad:
                    with pytest.raises(asyncpg.InvalidParameterValueError, match="pushq: "):
                        async with app.transaction():
                            await app.fetchrow(call, job, None)
                with pytest.raises(asyncpg.ProgramLimitExceededError, match="limit is 1024"):
                    async with app.transaction():
                        await app.fetchrow(call, '{"url": "https://h/x"}', b"x" * 1025)
            finally:
                await app.close()
            assert await count_jobs(store) == 0 and await unfinished(store) == 0

    run(scenario)


def test_a_full_queue_refuses_with_rate_limited_and_the_body_limit_holds() -> None:
    async def scenario() -> None:
        async with node() as store:
            await store.put_queue(name="small", changes={"max_size": 1}, now=time.time())
            app = await app_connection()
            try:
                async with app.transaction():
                    await enqueue_tx_async(app, URL, schema=store.schema, queue="small")
                with pytest.raises(RateLimited) as refused:
                    async with app.transaction():
                        await enqueue_tx_async(app, URL, schema=store.schema, queue="small")
                assert refused.value.code == "queue_full" and refused.value.retry_after > 0
                with pytest.raises(PayloadTooLarge, match="limit is 1024"):
                    async with app.transaction():
                        await enqueue_tx_async(app, URL, "x" * 2000, schema=store.schema)
            finally:
                await app.close()
            assert await unfinished(store, "small") == 1

    run(scenario)


def test_psycopg_sync_commits_and_rolls_back() -> None:
    async def scenario() -> None:
        async with node() as store:
            schema = store.schema
            assert schema is not None

            def app() -> tuple[str, str]:
                with psycopg.connect(postgres_url()) as conn:
                    with conn.transaction():
                        kept = enqueue_tx(conn, URL, {"n": 1}, schema=schema, tags=["sync"])
                    try:
                        with conn.transaction():
                            dropped = enqueue_tx(conn, URL, {"n": 2}, schema=schema)
                            raise _Abandon
                    except _Abandon:
                        pass
                    conn.autocommit = True
                    with pytest.raises(TransactionRequired):
                        enqueue_tx(conn, URL, schema=schema)
                return kept.id, dropped.id

            kept, dropped = await asyncio.to_thread(app)
            job = await store.get(job_id=kept)
            assert job is not None and job.tags == ["sync"] and job.body == b'{"n":1}'
            assert await store.get(job_id=dropped) is None
            assert await unfinished(store) == 1

    run(scenario)


def test_psycopg_async_commits_and_rolls_back() -> None:
    async def scenario() -> None:
        async with node() as store:
            conn = await psycopg.AsyncConnection.connect(postgres_url())
            try:
                async with conn.transaction():
                    kept = await enqueue_tx_async(conn, URL, {"n": 1}, schema=store.schema)
                try:
                    async with conn.transaction():
                        dropped = await enqueue_tx_async(conn, URL, {"n": 2}, schema=store.schema)
                        raise _Abandon
                except _Abandon:
                    pass
            finally:
                await conn.close()
            assert await store.get(job_id=kept.id) is not None
            assert await store.get(job_id=dropped.id) is None
            assert await unfinished(store) == 1

    run(scenario)


def test_every_node_is_woken_when_the_transaction_commits_not_before() -> None:
    async def scenario() -> None:
        async with node() as store:
            heard: list[float | None] = []
            sentinel = asyncio.Event()

            def on_due(run_at: float | None) -> None:
                heard.append(run_at)
                if run_at is not None:
                    sentinel.set()

            store.listen(on_due)
            app = await app_connection()
            try:
                rolled_back = app.transaction()
                await rolled_back.start()
                await enqueue_tx_async(app, URL, schema=store.schema)
                await rolled_back.rollback()
                async with app.transaction():
                    await enqueue_tx_async(app, URL, schema=store.schema)
                    await enqueue_tx_async(app, URL, schema=store.schema)
                async with app.transaction():  # last: a scheduled job, heard as its time
                    later = await enqueue_tx_async(app, URL, schema=store.schema, delay=600)
            finally:
                await app.close()
            await asyncio.wait_for(sentinel.wait(), timeout=30)
            # NOTIFYs reach the listener in commit order: by the sentinel's, all earlier
            # ones are in. None for the rollback; the two pending jobs of one transaction
            # collapse into one wake-up (PostgreSQL folds equal notifications).
            assert heard == [None, pytest.approx(later.run_at.timestamp())]

    run(scenario)


class _Abandon(Exception):
    """Raised inside a transaction block to roll it back."""


def test_a_queue_is_not_deleted_under_an_enqueue_in_flight() -> None:
    """An enqueue holds its queue FOR KEY SHARE: a delete waits for the enqueuing
    transaction, then finds its job (instead of leaving it in no queue)."""

    async def scenario() -> None:
        async with node() as store:
            await store.put_queue(name="short-lived", changes={}, now=time.time())
            app = await app_connection()
            try:
                tx = app.transaction()
                await tx.start()
                await enqueue_tx_async(app, URL, schema=store.schema, queue="short-lived")
                deleting = asyncio.ensure_future(
                    store.delete_queue(name="short-lived", force=False, now=time.time())
                )
                await asyncio.wait_for(_lock_waiters(store, 1), timeout=30)
                assert not deleting.done()
                await tx.commit()
                with pytest.raises(Conflict, match="unfinished"):
                    await asyncio.wait_for(deleting, timeout=30)
            finally:
                await app.close()
            assert await unfinished(store, "short-lived") == 1

    run(scenario)


def test_the_leader_folds_counter_changes_into_the_queue_row() -> None:
    async def scenario() -> None:
        async with node() as store:
            assert store._pool is not None
            app = await app_connection()
            try:
                async with app.transaction():
                    for _ in range(3):
                        await enqueue_tx_async(app, URL, schema=store.schema)
            finally:
                await app.close()
            claimed = await claim_due(
                store, limit=1, slots=10, now=time.time(), lease="L", lease_margin=5
            )
            [job] = claimed.jobs
            attempt = AttemptRecord(job.id, 1, time.time(), 5.0, 200, None, "ok")
            done = await store.complete(
                job_id=job.id, lease="L", attempt=attempt, result={}, now=time.time()
            )
            assert done
            rows = "SELECT count(*) FROM queue_unfinished"
            assert await store._pool.fetchval(rows) > 0 and await unfinished(store) == 2
            await store.promote_due(now=time.time(), limit=100)  # the leader's round
            assert await store._pool.fetchval(rows) == 0
            column = "SELECT unfinished FROM queues WHERE name = 'default'"
            assert await store._pool.fetchval(column) == 2 == await unfinished(store)

    run(scenario)


def test_max_unfinished_holds_between_a_transaction_and_the_stores_enqueues() -> None:
    async def scenario() -> None:
        limited = dataclasses.replace(DEFAULTS, max_unfinished=2)
        async with node() as store:
            await store.publish_enqueue_settings(
                defaults=limited,
                idempotency_ttl=TTL,
                max_body_size=1024,
                reserved_headers=RESERVED_HEADERS | HOP_BY_HOP_HEADERS,
            )
            job = NewJob(url=URL, queue="b")
            await store.enqueue(jobs=[job], now=time.time(), idempotency_ttl=TTL, defaults=limited)
            app = await app_connection()
            try:
                async with app.transaction():  # the second job, not committed yet
                    await enqueue_tx_async(app, URL, schema=store.schema, queue="a")
                    other = asyncio.create_task(
                        store.enqueue(
                            jobs=[job], now=time.time(), idempotency_ttl=TTL, defaults=limited
                        )
                    )
                    await asyncio.sleep(0.5)
                    assert not other.done()  # it waits for the transaction's turn
                with pytest.raises(RateLimited) as refused:  # then counts its job
                    await other
                assert refused.value.code == "server_full"
            finally:
                await app.close()
            assert await count_jobs(store) == 2

    run(scenario)
