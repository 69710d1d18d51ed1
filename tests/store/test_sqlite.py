"""SQLite specifics: how its driver's errors leave the store."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from pushq.server.store import sqlite as sqlite_store
from pushq.server.store.errors import StoreConflict, StoreError, StoreUnavailable


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (sqlite3.OperationalError("database is locked"), StoreUnavailable),
        (sqlite3.OperationalError("disk I/O error"), StoreUnavailable),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), StoreConflict),
        (sqlite3.DatabaseError("database disk image is malformed"), StoreError),
    ],
)
def test_sqlite_errors_become_store_errors(raised: sqlite3.Error, expected: type) -> None:
    translated = sqlite_store._store_error(raised, Path("pushq.db"))
    assert type(translated) is expected
    assert str(raised) in str(translated)


def test_a_locked_database_raises_store_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "pushq.db"

    async def main() -> None:
        store = sqlite_store.SQLiteStore(path)
        await store.open()
        try:
            with closing(sqlite3.connect(path, isolation_level=None)) as other:
                other.execute("BEGIN EXCLUSIVE")
                with pytest.raises(StoreUnavailable, match="locked"):
                    await store.ping()
                other.execute("ROLLBACK")
            await store.ping()  # and it works again once the lock is gone
        finally:
            await store.close()

    asyncio.run(main())


def test_a_slow_claim_snapshot_moves_to_the_reader_thread_and_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pushq.policy.backoff import BackoffPolicy
    from pushq.server.models import JobDefaults, NewJob

    defaults = JobDefaults(max_attempts=3, timeout=30.0, backoff=BackoffPolicy())

    async def main() -> None:
        store = sqlite_store.SQLiteStore(tmp_path / "pushq.db")
        await store.open()
        try:
            jobs = [NewJob(url="https://worker.example/hook", queue=q) for q in ("a", "b")]
            await store.enqueue(jobs=jobs, now=1.0, idempotency_ttl=60.0, defaults=defaults)
            quick = await store.claim_snapshot(limit=5, count_active=False)
            assert store._slow_reads == {}
            monkeypatch.setattr(sqlite_store, "SMALL_READ_BUDGET", -1.0)  # every read is slow
            slow = await store.claim_snapshot(limit=5, count_active=False)
            assert store._slow_reads == {"claim_snapshot": sqlite_store.SLOW_READ_ROUNDS}
            moved = await store.claim_snapshot(limit=5, count_active=False)  # the reader's
            assert store._slow_reads == {"claim_snapshot": sqlite_store.SLOW_READ_ROUNDS - 1}
            assert quick == slow == moved
            assert [(q.name, q.ready) for q in moved] == [("a", 1), ("b", 1)]
        finally:
            await store.close()

    asyncio.run(main())
