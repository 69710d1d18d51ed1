"""What the cluster-wide limits cost on PostgreSQL: three stores on one schema (three
nodes), each with `--tasks` concurrent tasks, in one run:

- enqueue: single-job enqueues, each node into its own queue, without and with
  `max_unfinished` set (then enqueues take one advisory lock in turn);
- claim: claim rounds of up to 16 jobs from a queue whose flow keys have a
  `key_concurrency` (the claims recount the keys under one advisory lock) against
  the same rounds from a queue without flow keys.

Figures are per second over the whole cluster; compare the ratios of one run.

    PUSHQ_TEST_POSTGRES_URL=postgresql://… python -m bench.cluster_locks [--jobs 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from dataclasses import replace

import asyncpg

from pushq.policy.backoff import BackoffPolicy
from pushq.server.claimer import Claimer
from pushq.server.models import JobDefaults, NewJob
from pushq.server.store.postgres import PostgresStore

DEFAULTS = JobDefaults(max_attempts=3, backoff=BackoffPolicy(1.0, 60.0, True), timeout=30.0)
NODES = 3


async def _enqueues(stores: list[PostgresStore], jobs: int, tasks: int, limit: int | None) -> float:
    defaults = replace(DEFAULTS, max_unfinished=limit)
    left = jobs
    tag = uuid.uuid4().hex[:6]

    async def task(store: PostgresStore, queue: str) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            job = NewJob(url="https://w.example/", queue=queue)
            await store.enqueue(jobs=[job], now=time.time(), idempotency_ttl=60, defaults=defaults)

    started = time.perf_counter()
    await asyncio.gather(
        *(task(s, f"e{tag}-{i}") for i, s in enumerate(stores) for _ in range(tasks))
    )
    return jobs / (time.perf_counter() - started)


async def _claims(stores: list[PostgresStore], jobs: int, tasks: int, keyed: bool) -> float:
    queue = f"c{uuid.uuid4().hex[:6]}"
    now = time.time()
    if keyed:
        await stores[0].put_queue(name=queue, changes={"key_concurrency": 1}, now=now)
    for start in range(0, jobs, 1000):
        batch = [
            NewJob(
                url="https://w.example/",
                queue=queue,
                flow_key=f"k{i}" if keyed else None,
            )
            for i in range(start, min(start + 1000, jobs))
        ]
        await stores[0].enqueue(jobs=batch, now=now, idempotency_ttl=60, defaults=DEFAULTS)
    claimed = 0
    stop = False

    async def task(store: PostgresStore) -> None:
        nonlocal claimed, stop
        claimer = Claimer(store)
        while not stop:
            got = await claimer.claim(
                limit=16, slots=64, now=time.time(), lease=uuid.uuid4().hex, lease_margin=5.0
            )
            claimed += len(got.jobs)
            if not got.jobs:
                stop = True

    started = time.perf_counter()
    await asyncio.gather(*(task(s) for s in stores for _ in range(tasks)))
    return claimed / (time.perf_counter() - started)


async def main(jobs: int, tasks: int) -> None:
    url = os.environ["PUSHQ_TEST_POSTGRES_URL"]
    schema = f"pushq_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    stores = [PostgresStore(url, schema=schema, min_size=1, max_size=tasks) for _ in range(NODES)]
    try:
        for store in stores:
            await store.open()
        free = await _enqueues(stores, jobs, tasks, None)
        capped = await _enqueues(stores, jobs, tasks, 10_000_000)
        plain = await _claims(stores, jobs, tasks, keyed=False)
        keyed = await _claims(stores, jobs, tasks, keyed=True)
        print(
            f"enqueue/s  no max_unfinished {free:8.0f}   max_unfinished {capped:8.0f}"
            f"   ratio {capped / free:.2f}"
        )
        print(
            f"claimed/s  no flow keys      {plain:8.0f}   key_concurrency {keyed:7.0f}"
            f"   ratio {keyed / plain:.2f}"
        )
    finally:
        for store in stores:
            await store.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=4, help="concurrent tasks per node")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.tasks))
