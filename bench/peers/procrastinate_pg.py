"""procrastinate + PostgreSQL: enqueue N no-op jobs with `defer_async`, wait until all ran.

Durable: PostgreSQL as configured (fsync on, synchronous_commit on). Jobs live in a
dedicated database, `pushq_bench_procrastinate`, whose schema is dropped and
re-applied before each run. Two `procrastinate worker` processes (LISTEN/NOTIFY,
--worker-concurrency jobs each, default 1 as in procrastinate). The driver enqueues
with up to --concurrency `defer_async` calls in flight on one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import harness
import procrastinate
import psycopg
import redis.asyncio

DATABASE = "pushq_bench_procrastinate"
SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")

# The driver runs this file as __main__: task names are explicit, so the warning
# about an App defined in __main__ does not apply.
logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=f"{SERVER}/{DATABASE}", max_size=64)
)
_ledger = redis.asyncio.Redis.from_url(harness.REDIS_URL)


@app.task(name="noop")
async def noop(n: int, run_id: str) -> None:
    await harness.record_async(_ledger, run_id, n)


def reset_database() -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


async def defer_all(run_id: str, count: int, concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def defer(n: int) -> None:
        async with semaphore:
            await noop.defer_async(n=n, run_id=run_id)

    await asyncio.gather(*(defer(n) for n in range(count)))


async def open_app() -> None:
    await app.open_async()
    await app.schema_manager.apply_schema_async()


def main() -> None:
    parser = harness.parser(__doc__, concurrency=8)
    parser.add_argument("--worker-concurrency", type=int, default=1)
    args = parser.parse_args()
    reset_database()
    harness.flush_redis()
    worker = [sys.executable, "-m", "procrastinate", "--app", "procrastinate_pg.app"]
    worker += ["--log-level", "warning", "worker"]
    worker += ["--concurrency", str(args.worker_concurrency)]
    with asyncio.Runner() as loop:
        loop.run(open_app())
        harness.run(
            "procrastinate",
            jobs=args.jobs,
            warmup=args.warmup,
            enqueue_all=lambda run_id, count: loop.run(defer_all(run_id, count, args.concurrency)),
            workers=lambda: harness.start([worker, worker], "procrastinate"),
            settings=f"{harness.versions('procrastinate', 'psycopg')}; PostgreSQL fsync on,"
            f" synchronous_commit on; 2 worker processes x concurrency {args.worker_concurrency},"
            f" listen/notify; enqueue: {args.concurrency} defer_async in flight",
        )
        loop.run(app.close_async())


if __name__ == "__main__":
    main()
