"""asyncpg against psycopg 3 on pushq's three hot statements, side by side in one run.

    python -m bench.pg_drivers [--url postgresql://postgres@127.0.0.1:5432/test] [--jobs 20000]

Each driver runs, on a pool of 8 connections with 32 concurrent tasks: enqueue (one
INSERT … RETURNING per transaction), claim (UPDATE … WHERE id IN (SELECT … FOR UPDATE
SKIP LOCKED LIMIT 16) RETURNING) and settle (one guarded UPDATE per job). Printed:
operations per second and the client's CPU per operation (the part that competes with
pushq's own work in its process). The table is dropped and made again for each driver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

DDL = """
DROP TABLE IF EXISTS bench_jobs;
CREATE TABLE bench_jobs (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    state text NOT NULL,
    run_at double precision NOT NULL,
    body bytea,
    lease text,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX bench_jobs_due ON bench_jobs (queue, run_at) WHERE state = 'pending';
"""
ENQUEUE = (
    "INSERT INTO bench_jobs (queue, state, run_at, body) VALUES ($1, 'pending', $2, $3) "
    "RETURNING id"
)
CLAIM = (
    # A MATERIALIZED CTE, as the store has it: `id IN (SELECT … LIMIT 16 …)` may be
    # rescanned by the planner and claim more than 16.
    # (Parameters in text order: psycopg's %s are positional.)
    "WITH picked AS MATERIALIZED (SELECT id FROM bench_jobs WHERE queue = $1 "
    "AND state = 'pending' AND run_at <= $2 ORDER BY run_at LIMIT 16 FOR UPDATE SKIP LOCKED) "
    "UPDATE bench_jobs SET state = 'active', lease = $3, attempts = attempts + 1 "
    "FROM picked WHERE bench_jobs.id = picked.id RETURNING bench_jobs.id, bench_jobs.body"
)
SETTLE = (
    "UPDATE bench_jobs SET state = 'succeeded', lease = NULL "
    "WHERE id = $1 AND state = 'active' AND lease = $2"
)
POOL = 8
TASKS = 32
BODY = b'{"to": "ada@example.com", "template": "welcome"}'


def _psycopg(sql: str) -> str:
    for n in range(9, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


class Asyncpg:
    name = "asyncpg"

    async def open(self, url: str) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL)

    async def script(self, sql: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(sql)

    async def enqueue(self) -> None:
        await self.pool.fetchval(ENQUEUE, "default", time.time(), BODY)

    async def claim(self, lease: str) -> list[Any]:
        return list(await self.pool.fetch(CLAIM, "default", time.time(), lease))

    async def settle(self, job_id: int, lease: str) -> None:
        await self.pool.execute(SETTLE, job_id, lease)

    async def close(self) -> None:
        await self.pool.close()


class Psycopg:
    name = "psycopg"

    async def open(self, url: str) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(url, min_size=POOL, max_size=POOL, open=False)
        await self.pool.open(wait=True)

    async def script(self, sql: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql)

    async def enqueue(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(_psycopg(ENQUEUE), ("default", time.time(), BODY), prepare=True)

    async def claim(self, lease: str) -> list[Any]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                _psycopg(CLAIM), ("default", time.time(), lease), prepare=True
            )
            return await cursor.fetchall()

    async def settle(self, job_id: int, lease: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(_psycopg(SETTLE), (job_id, lease), prepare=True)

    async def close(self) -> None:
        await self.pool.close()


async def _timed(count: int, step: Callable[[int], Awaitable[int]]) -> dict[str, float]:
    """Run `step` from TASKS tasks until `count` operations are done (or a step returns
    0: nothing left)."""
    done, exhausted = 0, False

    async def worker(n: int) -> None:
        nonlocal done, exhausted
        while done < count and not exhausted:
            # (`done += await step(n)` would read `done` before the await and lose the
            # other tasks' counts: 32 tasks ran 32 times the operations asked for.)
            ran = await step(n)
            done += ran
            exhausted = exhausted or ran == 0

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(TASKS)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"per_s": round(done / wall), "cpu_us_per_op": round(cpu / done * 1e6, 1)}


async def measure(driver: Asyncpg | Psycopg, url: str, jobs: int) -> dict[str, Any]:
    await driver.open(url)
    try:
        await driver.script(DDL)

        async def enqueue(_: int) -> int:
            await driver.enqueue()
            return 1

        figures = {"enqueue": await _timed(jobs, enqueue)}
        claimed: list[tuple[int, str]] = []

        async def claim(n: int) -> int:
            lease = f"lease-{n}-{time.perf_counter_ns()}"
            rows = await driver.claim(lease)
            claimed.extend((row[0], lease) for row in rows)
            return len(rows)  # 0: nothing left, every task stops

        figures["claim (jobs)"] = await _timed(jobs, claim)
        pending = iter(claimed)

        async def settle(_: int) -> int:
            item = next(pending, None)
            if item is None:
                return 0
            await driver.settle(*item)
            return 1

        figures["settle"] = await _timed(len(claimed), settle)
        await driver.script("DROP TABLE bench_jobs")
        return figures
    finally:
        await driver.close()


async def main_async(url: str, jobs: int) -> dict[str, Any]:
    return {d.name: await measure(d, url, jobs) for d in (Asyncpg(), Psycopg())}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_drivers", description=__doc__)
    default_url = os.environ.get("PUSHQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
    parser.add_argument("--url", default=default_url)
    parser.add_argument("--jobs", type=int, default=20000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.url, args.jobs)), indent=2))


if __name__ == "__main__":
    main()
