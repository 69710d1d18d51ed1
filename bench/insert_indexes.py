"""What each index on `jobs` costs the enqueue INSERT: a migrated SQLite database,
the store's own insert_job statement, 1,000 rows per executemany (as a batch
enqueue or a busy group commit writes them), CPU per row with every index and
with each candidate index dropped, the variants in turns so that all see the
same machine. The transaction is committed with synchronous=OFF: the fsync is
not what is measured.

    python -m bench.insert_indexes [--rows 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from pushq.server.models import new_job_id
from pushq.server.store.sqlite import Q, SQLiteStore

# The indexes a typical new job (pending or scheduled, no flow key, tag, schedule,
# topic, unique or ordering key) has an entry in, beside the table and its id:
# each dropped, and narrower shapes of the URL one.
VARIANTS = {
    "every index": "",
    "without jobs_by_url": "DROP INDEX jobs_by_url",
    "without jobs_by_state": "DROP INDEX jobs_by_state",
    "without jobs_by_queue": "DROP INDEX jobs_by_queue",
    "jobs_by_url on (url) only": "DROP INDEX jobs_by_url; CREATE INDEX jobs_by_url ON jobs (url)",
    "without all three": (
        "DROP INDEX jobs_by_url; DROP INDEX jobs_by_state; DROP INDEX jobs_by_queue"
    ),
    "every index, 64 MiB page cache": "PRAGMA cache_size = -65536",
    "every index, no checkpoints": "PRAGMA wal_autocheckpoint = 0",
}


def row(i: int, now: float) -> dict[str, Any]:
    return {
        "id": new_job_id(now),
        "queue": f"q{i % 4}",
        "url": f"https://worker{i % 20}.example.com/hooks/pushq/{i % 7}",
        "method": "POST",
        "headers": None,
        "body": b'{"order": 12345, "customer": "c-42", "items": [1, 2, 3]}',
        "state": "pending" if i % 4 else "scheduled",
        "priority": 0,
        "max_attempts": 5,
        "backoff_base": 1.0,
        "backoff_max": 3600.0,
        "backoff_jitter": 1,
        "timeout": 30.0,
        "created_at": now,
        "run_at": now if i % 4 else now + 3600,
        "idempotency_key": None,
        "unique_key": None,
        "ordering_key": None,
        "callback_url": None,
        "failure_callback_url": None,
        "tags": None,
        "flow_key": None,
        "schedule": None,
        "topic": None,
        "replay_of": None,
        "permanent_statuses": None,
        "meta": None,
    }


def migrated(path: Path) -> None:
    async def once() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.close()

    asyncio.run(once())


def cpu_per_row(path: Path, rows: int, change: str) -> float:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("DELETE FROM jobs")
        conn.executescript(change)
        now = time.time()
        batches = [[row(i, now) for i in range(n, n + 1000)] for n in range(0, rows, 1000)]
        started = time.process_time()
        for batch in batches:
            conn.execute("BEGIN")
            conn.executemany(Q["insert_job"], batch)
            conn.execute("COMMIT")
        spent = time.process_time() - started
    return spent / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {label: [] for label in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="pushq-indexes-") as tmp:
        template = Path(tmp) / "template.db"
        migrated(template)
        for _ in range(args.rounds):
            for label, change in VARIANTS.items():
                path = Path(tmp) / "variant.db"
                path.write_bytes(template.read_bytes())
                results[label].append(cpu_per_row(path, args.rows, change))
                path.unlink()
    every = statistics.median(results["every index"])
    print(f"insert_job, CPU µs per row (median of {args.rounds}, {args.rows} rows each)")
    for label, spent in results.items():
        median = statistics.median(spent)
        print(f"  {label:<28} {median:6.1f}  ({median - every:+.1f})")


if __name__ == "__main__":
    main()
