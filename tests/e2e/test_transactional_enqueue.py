"""Transactional enqueue end to end: an application writes an order and its
confirmation job in one transaction on its own connection (asyncpg, psycopg sync,
psycopg async); a real `pushq serve --database postgresql://…` (its own schema)
delivers the job, signed, to a real loopback worker once the transaction commits,
and never when it rolls back.

The node polls only once a minute here: a delivery within the test's wait is the
commit's NOTIFY waking it, not the fallback poll."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from pushq.tx import Enqueued, enqueue_tx, enqueue_tx_async
from pushq.worker import verify

from ..harness import TEST_SECRET, PushqProcess, Worker
from ..pg import postgres_url
from .test_postgres import database_url  # noqa: F401 - the fixture

StartPushq = Callable[..., PushqProcess]
DRIVERS = ("asyncpg", "psycopg", "psycopg-async")


def _schema(url: str) -> str:
    return url.rsplit("search_path=", 1)[1]


@pytest.fixture
def node(start_pushq: StartPushq, database_url: str) -> Iterator[PushqProcess]:  # noqa: F811
    schema = _schema(database_url)
    asyncio.run(
        _sql(f'CREATE TABLE "{schema}".orders (id serial PRIMARY KEY, email text NOT NULL)', ())
    )
    yield start_pushq(PUSHQ_DATABASE_URL=database_url, PUSHQ_POLL_INTERVAL="60s")


async def _sql(statement: str, args: tuple[Any, ...]) -> Any:
    conn = await asyncpg.connect(postgres_url())
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


def place_order(
    driver: str, schema: str, url: str, email: str, *, commit: bool, **fields: Any
) -> tuple[int, Enqueued]:
    """The worked example of docs/scaling.md: the order row and its confirmation-email
    job in one transaction of the application's own connection."""
    insert = f'INSERT INTO "{schema}".orders (email) VALUES ($1) RETURNING id'
    if driver == "psycopg":
        with psycopg.connect(postgres_url()) as conn:
            order_id = conn.execute(insert.replace("$1", "%s"), (email,)).fetchone()[0]  # type: ignore[index]
            job = enqueue_tx(conn, url, {"order": order_id}, schema=schema, **fields)
            conn.commit() if commit else conn.rollback()
        return order_id, job
    return asyncio.run(_place_order_async(driver, schema, insert, url, email, commit, fields))


async def _place_order_async(
    driver: str, schema: str, insert: str, url: str, email: str, commit: bool, fields: Any
) -> tuple[int, Enqueued]:
    if driver == "asyncpg":
        conn = await asyncpg.connect(postgres_url())
        try:
            tx = conn.transaction()
            await tx.start()
            order_id = await conn.fetchval(insert, email)
            job = await enqueue_tx_async(conn, url, {"order": order_id}, schema=schema, **fields)
            await (tx.commit() if commit else tx.rollback())
        finally:
            await conn.close()
        return order_id, job
    aconn = await psycopg.AsyncConnection.connect(postgres_url())
    try:
        cursor = await aconn.execute(insert.replace("$1", "%s"), (email,))
        order_id = (await cursor.fetchone())[0]  # type: ignore[index]
        job = await enqueue_tx_async(aconn, url, {"order": order_id}, schema=schema, **fields)
        await (aconn.commit() if commit else aconn.rollback())
    finally:
        await aconn.close()
    return order_id, job


def _unfinished(schema: str) -> int:
    rows = asyncio.run(_sql(f'SELECT coalesce(sum(unfinished), 0) AS n FROM "{schema}".queues', ()))
    return int(rows[0]["n"])


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_committed_transaction_is_delivered_signed(
    node: PushqProcess,
    worker: Worker,
    database_url: str,  # noqa: F811
    driver: str,
) -> None:
    schema, path = _schema(database_url), f"tx-{driver}-{uuid.uuid4().hex[:8]}"
    order_id, job = place_order(driver, schema, worker.url(path), "a@example.com", commit=True)
    assert job.created and job.state == "pending"

    [delivery] = worker.wait_for(path, timeout=30)
    verify(TEST_SECRET, delivery.body, delivery.headers)  # raises unless pushq signed it
    assert delivery.headers["webhook-id"] == job.id
    assert json.loads(delivery.body) == {"order": order_id}
    done = node.wait_state(job.id, "succeeded", timeout=30)
    assert done["attempts"] == 1
    assert _unfinished(schema) == 0


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_rolled_back_transaction_leaves_no_order_no_job_and_no_delivery(
    node: PushqProcess,
    worker: Worker,
    database_url: str,  # noqa: F811
    driver: str,
) -> None:
    schema, path = _schema(database_url), f"txrb-{driver}-{uuid.uuid4().hex[:8]}"
    _, dropped = place_order(driver, schema, worker.url(path), "gone@example.com", commit=False)
    # then one that commits, to the same endpoint: once it is delivered, the node has
    # claimed everything there was
    _, kept = place_order(driver, schema, worker.url(path), "kept@example.com", commit=True)
    node.wait_state(kept.id, "succeeded", timeout=30)

    assert node.client.get(f"/v1/jobs/{dropped.id}").status_code == 404
    assert [d.headers["webhook-id"] for d in worker.to(path)] == [kept.id]
    orders = asyncio.run(_sql(f'SELECT email FROM "{schema}".orders', ()))
    assert [row["email"] for row in orders] == ["kept@example.com"]
    assert _unfinished(schema) == 0  # the rollback left no counter behind


def test_one_idempotency_key_in_two_transactions_is_one_job_delivered_once(
    node: PushqProcess,
    worker: Worker,
    database_url: str,  # noqa: F811
) -> None:
    schema, path = _schema(database_url), f"txkey-{uuid.uuid4().hex[:8]}"
    key = f"order-confirmation-{uuid.uuid4().hex[:8]}"

    async def both() -> list[Enqueued]:
        first, second = await asyncpg.connect(postgres_url()), await asyncpg.connect(postgres_url())
        try:
            tx1, tx2 = first.transaction(), second.transaction()
            await tx1.start()
            await tx2.start()
            one = await enqueue_tx_async(
                first, worker.url(path), {"n": 1}, schema=schema, idempotency_key=key
            )
            other = asyncio.ensure_future(
                enqueue_tx_async(
                    second, worker.url(path), {"n": 2}, schema=schema, idempotency_key=key
                )
            )
            # waiting on the first's locks or starting after its commit, the second
            # finds the first's job (tests/store/test_postgres_tx.py holds it waiting)
            await asyncio.sleep(0.05)
            await tx1.commit()
            two = await other
            await tx2.commit()
            return [one, two]
        finally:
            await first.close()
            await second.close()

    one, two = asyncio.run(both())
    assert one.created and not two.created and two.id == one.id
    node.wait_state(one.id, "succeeded", timeout=30)
    # a later enqueue over HTTP with the key finds the same job
    again = node.enqueue(url=worker.url(path), idempotency_key=key)
    assert again["id"] == one.id and again["deduplicated"] is True
    assert [d.headers["webhook-id"] for d in worker.to(path)] == [one.id]
