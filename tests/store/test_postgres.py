"""PostgreSQL specifics: several nodes on one database (each a PostgresStore on the
same schema), how the driver's errors leave the store, and start-up failures."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from pushq.errors import RateLimited
from pushq.policy.claim_plan import plan_claim
from pushq.server.config import redact_url
from pushq.server.models import CircuitRecord, JobRecord
from pushq.server.store import postgres
from pushq.server.store.errors import (
    InvalidCursor,
    StoreConflict,
    StoreError,
    StoreUnavailable,
)
from pushq.server.store.postgres import PostgresStore
from pushq.server.store.sql import migrations

from ..pg import new_schema, postgres_url
from .test_conformance import (
    DEFAULTS,
    NOW,
    TTL,
    attempt_of,
    claim,
    complete,
    enqueue,
    new_job,
    retry,
)


@asynccontextmanager
async def nodes(count: int) -> AsyncIterator[list[PostgresStore]]:
    """`count` stores on one fresh schema, opened at once (as nodes starting together)."""
    url, schema = postgres_url(), new_schema()
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    stores = [PostgresStore(url, schema=schema, min_size=1, max_size=4) for _ in range(count)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        yield stores
    finally:
        for store in stores:
            await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_nodes_starting_together_migrate_once() -> None:
    async def scenario() -> None:
        async with nodes(3) as (a, _, _):
            assert a._pool is not None
            versions = await a._pool.fetch("SELECT version FROM schema_migrations")
            expected = [version for version, _, _ in migrations("postgres_migrations")]
            assert [row[0] for row in versions] == expected  # each once

    run(scenario)


def test_two_nodes_given_one_idempotency_key_at_once_store_one_job() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            for round_ in range(5):
                job = new_job(idempotency_key=f"k{round_}")
                first, second = await asyncio.gather(
                    *(
                        s.enqueue(jobs=[job], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS)
                        for s in (a, b)
                    )
                )
                assert first[0].job.id == second[0].job.id
                assert [first[0].created, second[0].created].count(True) == 1
            queue = await a.get_queue(name="default")
            assert queue is not None and queue.unfinished == 5

    run(scenario)


def test_two_nodes_claiming_at_once_never_take_one_job_twice() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            await enqueue(a, *(new_job() for _ in range(40)))
            rounds = await asyncio.gather(
                *(claim(s, lease=f"L{i}", limit=7) for i in range(6) for s in (a, b))
            )
            ids = [job.id for jobs in rounds for job in jobs]
            assert len(ids) == len(set(ids)) == 40

    run(scenario)


def test_a_queues_concurrency_holds_across_nodes() -> None:
    async def scenario() -> None:
        async with nodes(3) as stores:
            a = stores[0]
            await a.put_queue(name="default", changes={"concurrency": 3}, now=NOW)
            await enqueue(a, *(new_job() for _ in range(20)))
            # every node reads the same snapshot (0 active), then all claim at once
            rounds = await asyncio.gather(*(claim(s, lease=f"L{i}") for i, s in enumerate(stores)))
            assert sum(len(jobs) for jobs in rounds) == 3

    run(scenario)


def test_an_enqueue_on_one_node_wakes_the_others() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            heard: asyncio.Queue[float | None] = asyncio.Queue()
            b.listen(heard.put_nowait)
            await enqueue(a, new_job())
            assert await asyncio.wait_for(heard.get(), 30) is None
            await enqueue(a, new_job(run_at=NOW + 60))
            assert await asyncio.wait_for(heard.get(), 30) == NOW + 60

    run(scenario)


def test_a_cursor_it_did_not_make_is_invalid() -> None:
    async def scenario() -> None:
        async with nodes(1) as (a,):
            await enqueue(a, new_job(), new_job())
            page = await a.list_jobs(queue=None, state=None, limit=1, cursor=None, now=NOW)
            assert page.next_cursor == page.jobs[0].id  # the published jobs cursor
            for foreign in ("WyIwMDAxIl0", "1767225600.25_" + page.jobs[0].id, "garbage"):
                with pytest.raises(InvalidCursor):
                    await a.list_jobs(queue=None, state=None, limit=1, cursor=foreign, now=NOW)

    run(scenario)


def test_an_unreachable_database_is_store_unavailable_at_open() -> None:
    async def scenario() -> None:
        store = PostgresStore("postgresql://postgres@127.0.0.1:1/none")
        with pytest.raises(StoreUnavailable, match="127.0.0.1:1"):
            await store.open()

    run(scenario)


def test_a_database_that_does_not_exist_is_store_unavailable_at_open() -> None:
    base = postgres_url().rsplit("/", 1)[0]

    async def scenario() -> None:
        store = PostgresStore(f"{base}/pushq_no_such_database")
        with pytest.raises(StoreUnavailable, match="pushq_no_such_database"):
            await store.open()

    run(scenario)


class _Failure(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"failure {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("raised", "expected", "kind"),
    [
        (_Failure("40001"), StoreUnavailable, "busy"),  # serialization failure
        (_Failure("40P01"), StoreUnavailable, "busy"),  # deadlock
        (_Failure("53300"), StoreUnavailable, "busy"),  # too many connections
        (_Failure("53100"), StoreUnavailable, "full"),  # disk full
        (_Failure("08006"), StoreUnavailable, "unavailable"),  # connection failure
        (_Failure("25006"), StoreUnavailable, "readonly"),  # a standby
        (_Failure("23505"), StoreConflict, None),  # unique violation
        (_Failure("42601"), StoreError, None),  # a syntax error: a bug, not retryable
        (ConnectionResetError("reset by peer"), StoreUnavailable, "unavailable"),
        (TimeoutError(), StoreUnavailable, "unavailable"),
    ],
)
def test_driver_errors_become_store_errors(
    raised: BaseException, expected: type, kind: str | None
) -> None:
    translated = postgres.store_error(raised, "postgresql://db")
    assert type(translated) is expected
    if kind is not None:
        assert isinstance(translated, StoreUnavailable) and translated.kind == kind


def test_passwords_stay_out_of_errors() -> None:
    assert redact_url("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"


def test_one_node_leads_and_another_takes_over_when_it_goes() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            assert await a.lead()
            assert not await b.lead()
            assert await a.lead()  # it keeps the lead while its session lives
            await a.close()
            assert await b.lead()

    run(scenario)


def test_the_attempts_of_a_silent_node_are_rescued_at_once() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            (job,) = await enqueue(a, new_job(timeout=3600.0))
            (claimed,) = await claim(a)
            assert await b.expire_dead_nodes(timeout=15) == 0  # a heartbeats: alive
            assert b._pool is not None
            await b._pool.execute("UPDATE nodes SET heartbeat_at = 0 WHERE id = $1", a.node)

            assert await b.expire_dead_nodes(timeout=15) == 1
            (expired,) = await b.expired_leases(now=NOW, limit=10)
            assert (expired.id, expired.lease, expired.attempts) == (job.id, claimed.lease, 1)
            await a.heartbeat()  # a node that comes back is alive again
            assert await b.expire_dead_nodes(timeout=15) == 0

    run(scenario)


def test_a_lost_listen_connection_is_opened_again() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            heard: asyncio.Queue[float | None] = asyncio.Queue()
            b.listen(heard.put_nowait)
            assert b._listener is not None and a._pool is not None
            pid = b._listener.get_server_pid()
            await a._pool.execute("SELECT pg_terminate_backend($1)", pid)
            for _ in range(100):
                if b._listener.is_closed():
                    break
                await asyncio.sleep(0.05)
            await b.keep_listening()
            await enqueue(a, new_job())
            assert await asyncio.wait_for(heard.get(), 30) is None

    run(scenario)


def test_max_unfinished_holds_across_nodes_enqueueing_into_different_queues() -> None:
    async def scenario() -> None:
        limited = replace(DEFAULTS, max_unfinished=6)

        async def one(store: PostgresStore, queue: str) -> bool:
            try:
                await store.enqueue(
                    jobs=[new_job(queue=queue)], now=NOW, idempotency_ttl=TTL, defaults=limited
                )
            except RateLimited as exc:
                assert exc.code == "server_full"
                return False
            return True

        async with nodes(3) as stores:
            # every node enqueues into a queue of its own, all at once: no queue row
            # is shared, only the limit across them
            made = await asyncio.gather(
                *(one(s, f"q{i}") for _ in range(8) for i, s in enumerate(stores))
            )
            assert made.count(True) == 6
            queues = await stores[0].list_queues()
            assert sum(q.unfinished for q in queues) == 6

    run(scenario)


async def _plan_then_claim(stores: list[PostgresStore]) -> list[list[JobRecord]]:
    """Every node reads its snapshot and plans first, then each claims in turn: the
    race in which every node's snapshot says a key has room that the claims before
    its own have taken since."""
    plans = []
    for store in stores:
        queues = await store.claim_snapshot(limit=10, count_active=True)
        keys = await store.flow_key_snapshot(now=NOW)
        plans.append(plan_claim(queues, limit=10, slots=10, now=NOW, credit={}, keys=keys))
    return [
        await store.claim(plan=plan, now=NOW, lease=f"L{i}", lease_margin=5.0)
        for i, (store, plan) in enumerate(zip(stores, plans, strict=True))
    ]


def test_a_flow_keys_concurrency_holds_across_nodes() -> None:
    async def scenario() -> None:
        async with nodes(3) as stores:
            a = stores[0]
            await a.put_flow_key(key="acme", changes={"concurrency": 2}, now=NOW)
            await enqueue(a, *(new_job(flow_key="acme") for _ in range(9)))
            await enqueue(a, new_job(flow_key="other"))
            rounds = await _plan_then_claim(stores)
            keys = Counter(job.flow_key for jobs in rounds for job in jobs)
            assert keys == {"acme": 2, "other": 1}

    run(scenario)


def test_a_flow_keys_rate_limit_holds_across_nodes() -> None:
    async def scenario() -> None:
        async with nodes(3) as stores:
            a = stores[0]
            await a.put_queue(name="default", changes={"key_rate_limit": "2/h"}, now=NOW)
            await enqueue(a, *(new_job(flow_key=k) for k in ("acme", "beta") for _ in range(6)))
            rounds = await _plan_then_claim(stores)
            keys = Counter(job.flow_key for jobs in rounds for job in jobs)
            assert keys == {"acme": 2, "beta": 2}  # one bucket per key for the cluster
            # the buckets are spent for every node: a second round takes none
            again = await _plan_then_claim(stores)
            assert [job for jobs in again for job in jobs] == []

    run(scenario)


def test_recent_activity_counts_every_nodes_deliveries_and_failures() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            await enqueue(a, *(new_job(queue="q") for _ in range(3)), new_job(queue="r"))
            claimed = await claim(a, lease="LA", limit=2) + await claim(b, lease="LB", limit=2)
            assert len(claimed) == 4
            for job in claimed:  # each settled by the node that claimed it
                store, lease = (a, "LA") if job.lease == "LA" else (b, "LB")
                if job.queue == "r":
                    assert await retry(store, job, lease, attempt_of(job, status=500), NOW)
                else:
                    assert await complete(store, job, lease, attempt_of(job), NOW)
            for store in (a, b):  # either node reads the cluster's figures
                assert await store.recent_activity(since=NOW - 60) == {"q": (3, 0), "r": (0, 1)}
            assert await a.recent_activity(since=NOW + 1) == {}  # older than the window

    run(scenario)


def test_one_node_in_the_cluster_takes_the_half_open_probe() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            origin = "http://w.example:80"
            opened = CircuitRecord(origin, "open", 10, 1, NOW + 10)
            await a.save_circuit(circuit=opened, now=NOW)
            refused = await a.take_probe(origin, NOW + 5, NOW + 50)
            assert refused is not None and refused.state == "open"  # still cooling down
            assert await a.take_probe(origin, NOW + 10, NOW + 50) is None  # a probes
            other = await b.take_probe(origin, NOW + 11, NOW + 51)
            assert other is not None and (other.state, other.probe_by) == ("half_open", a.node)
            assert await a.take_probe(origin, NOW + 12, NOW + 52) is None  # still a's
            # a's probe outlived its time (a died): b may probe
            assert await b.take_probe(origin, NOW + 53, NOW + 90) is None
            closed = CircuitRecord(origin, "closed", 0, 0, None)
            await b.save_circuit(circuit=closed, now=NOW + 60)
            assert all(c.origin != origin for c in await a.load_circuits())  # none open
            done = await a.take_probe(origin, NOW + 61, NOW + 99)
            assert done is not None and done.state == "closed" and done.probe_by is None

    run(scenario)


def test_a_stored_circuit_reaches_the_other_nodes_at_once() -> None:
    async def scenario() -> None:
        async with nodes(2) as (a, b):
            heard: asyncio.Queue[CircuitRecord] = asyncio.Queue()
            b.listen_circuits(heard.put_nowait)
            own: list[CircuitRecord] = []
            a.listen_circuits(own.append)
            record = CircuitRecord("http://w.example:80", "open", 10, 2, NOW + 20)
            await a.save_circuit(circuit=record, now=NOW)
            assert await asyncio.wait_for(heard.get(), 30) == record
            closed = CircuitRecord("http://w.example:80", "closed", 0, 0, None)
            await a.save_circuit(circuit=closed, now=NOW + 30)
            assert await asyncio.wait_for(heard.get(), 30) == closed
            assert own == []  # a node is not told of its own (it knows them)

    run(scenario)


def test_a_schedule_firing_raced_by_three_nodes_enqueues_one_job() -> None:
    async def scenario() -> None:
        async with nodes(3) as stores:
            a = stores[0]
            template = {"url": "https://worker.example/hook"}
            await a.put_schedule(
                name="nightly",
                cron="* * * * *",
                timezone="UTC",
                job=template,
                next_run_at=NOW,
                now=NOW - 30,
            )
            for firing in range(3):  # each node read the same schedule, then all fire
                reads = [await s.get_schedule(name="nightly") for s in stores]
                assert all(r is not None and r.next_run_at == NOW + 60 * firing for r in reads)
                results = await asyncio.gather(
                    *(
                        s.fire_schedule(
                            schedule=r,
                            next_run_at=NOW + 60 * (firing + 1),
                            job=new_job(schedule="nightly"),
                            now=NOW + 60 * firing,
                            idempotency_ttl=TTL,
                            defaults=DEFAULTS,
                        )
                        for s, r in zip(stores, reads, strict=True)
                        if r is not None
                    )
                )
                assert sum(result is not None for result in results) == 1
            page = await a.list_jobs(queue=None, state=None, limit=10, cursor=None, now=NOW + 300)
            assert len(page.jobs) == 3  # one job per firing in the cluster

    run(scenario)
