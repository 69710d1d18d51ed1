"""A database that cannot take writes (issue 16, part 6): SQLite's SQLITE_FULL,
simulated with PRAGMA max_page_count so no root or special filesystem is needed,
becomes StoreUnavailable, logged once per episode, and clears by itself."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from pushq.server.store.errors import StoreUnavailable
from pushq.server.store.sqlite import SQLiteStore

from .test_conformance import DEFAULTS, NOW, TTL, new_job


def test_a_full_database_raises_store_unavailable_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "pushq.db")
        await store.open()
        try:
            pages = await store._writer.call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
            await store._writer.call(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
            body = b"x" * 200_000  # needs pages the database may not grow to
            for _ in range(3):
                with pytest.raises(StoreUnavailable) as failed:
                    await store.enqueue(
                        jobs=[new_job(body=body)], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
                    )
                assert failed.value.kind == "full"
            assert store.unavailable is not None
            # the health probe writes more than a tiny row while the episode lasts
            with pytest.raises(StoreUnavailable):
                await store.ping()

            await store._writer.call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
            await store.ping()  # proves room again and ends the episode
            assert store.unavailable is None
            results = await store.enqueue(
                jobs=[new_job(body=body)], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
            )
            assert results[0].created
        finally:
            await store.close()

    with caplog.at_level(logging.WARNING, logger="pushq.store"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unavailable" in m for m in messages) == 1, messages
    assert sum("database writable again" in m for m in messages) == 1, messages
    assert not any(r.exc_info for r in caplog.records)


def test_opening_a_corrupt_database_closes_everything_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    path.write_bytes(b"garbage, not a database" * 100)

    async def main() -> None:
        store = SQLiteStore(path)
        with pytest.raises(StoreUnavailable) as failed:
            await store.open()
        assert failed.value.kind == "corrupt"

    asyncio.run(main())  # returns: no thread left behind keeps it waiting
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(path).execute("PRAGMA schema_version").fetchone()
