"""How fast GET /v1/jobs's filters answer on a big table: fills a SQLite store with
N jobs (default 1 M) and times one page (50 jobs) of each filter through the store.

    python -m bench.list_filters [--jobs 1000000] [--path /tmp/pushq-filters.db]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import time
from contextlib import closing
from pathlib import Path

import orjson

from pushq.server.models import JobFilter, new_job_id
from pushq.server.store.sqlite import Q, SQLiteStore

CUSTOMERS = 1000  # each job: one of these customers' URLs, tag and flow key


def fill(path: Path, count: int) -> float:
    """Insert `count` jobs created over the last `count` seconds; returns the start time."""
    start = time.time() - count
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        batch = []
        for i in range(count):
            customer = i % CUSTOMERS
            created = start + i
            batch.append(
                {
                    "id": new_job_id(created),
                    "queue": f"q{i % 10}",
                    "url": f"https://c{customer}.example/hook/{i % 7}",
                    "method": "POST",
                    "headers": None,
                    "body": None,
                    "state": "succeeded" if i % 3 else "dead",
                    "priority": 0,
                    "max_attempts": 3,
                    "backoff_base": 1.0,
                    "backoff_max": 60.0,
                    "backoff_jitter": 1,
                    "timeout": 30.0,
                    "created_at": created,
                    "run_at": created,
                    "idempotency_key": None,
                    "unique_key": None,
                    "ordering_key": None,
                    "callback_url": None,
                    "failure_callback_url": None,
                    "tags": orjson.dumps([f"customer-{customer}", f"plan-{i % 3}"]).decode(),
                    "flow_key": f"acct-{customer}",
                    "schedule": f"s{i % 50}" if i % 5 == 0 else None,
                    "topic": None,
                    "replay_of": None,
                    "permanent_statuses": None,
                    "meta": None,
                }
            )
            if len(batch) == 50_000:
                conn.executemany(Q["insert_job"], batch)
                conn.commit()
                batch.clear()
        if batch:
            conn.executemany(Q["insert_job"], batch)
        conn.commit()
        conn.execute("ANALYZE")
    return start


async def measure(path: Path, start: float, rounds: int) -> dict[str, float]:
    store = SQLiteStore(path)
    await store.open()
    filters = {
        "tag": JobFilter(tag="customer-42"),
        "url_prefix": JobFilter(url_prefix="https://c42.example/"),
        "flow_key": JobFilter(flow_key="acct-42"),
        "schedule": JobFilter(schedule="s5"),
        "since (last hour)": JobFilter(since=time.time() - 3600),
        "tag + state + since": JobFilter(
            tag="customer-42", states=("dead",), since=start + 500_000
        ),
    }
    results = {}
    try:
        for label, match in filters.items():
            times = []
            for _ in range(rounds):
                began = time.perf_counter()
                page = await store.find_jobs(match=match, limit=50, cursor=None, now=time.time())
                times.append(time.perf_counter() - began)
            assert page.jobs, label
            results[label] = statistics.median(times) * 1000
    finally:
        await store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--path", type=Path, default=Path("/tmp/pushq-filters.db"))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="time a database filled before")
    args = parser.parse_args()
    if args.reuse:
        with closing(sqlite3.connect(args.path)) as conn:
            start = conn.execute("SELECT min(created_at) FROM jobs").fetchone()[0]
        for label, ms in asyncio.run(measure(args.path, start, args.rounds)).items():
            print(f"{label:24} {ms:8.2f} ms per page of 50 (median of {args.rounds})")
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.path}{suffix}").unlink(missing_ok=True)

    async def migrate() -> None:
        store = SQLiteStore(args.path)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    began = time.perf_counter()
    start = fill(args.path, args.jobs)
    print(f"filled {args.jobs} jobs in {time.perf_counter() - began:.0f}s")
    for label, ms in asyncio.run(measure(args.path, start, args.rounds)).items():
        print(f"{label:24} {ms:8.2f} ms per page of 50 (median of {args.rounds})")


if __name__ == "__main__":
    main()
