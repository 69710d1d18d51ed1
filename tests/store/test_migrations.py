"""The SQLite schema: migrations, connection settings and the claim query's plan."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from pushq.store.sql import migrations
from pushq.store.sqlite import Q, SQLiteStore

BOOKKEEPING = {"schema_migrations"}  # the migrator's own table, not part of a migration


def schema(path: Path) -> list[tuple[str, str, str, str]]:
    """sqlite_master as (type, name, tbl_name, sql with whitespace collapsed), sorted."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
    return sorted(
        (kind, name, table, " ".join(sql.split()))
        for kind, name, table, sql in rows
        if table not in BOOKKEEPING
    )


def with_open_store(path: Path, check: Callable[[SQLiteStore], Any], **options: Any) -> None:
    """Open a SQLiteStore on path, await check(store), close it: all in one event loop."""

    async def main() -> None:
        store = SQLiteStore(path, **options)
        await store.open()
        try:
            await check(store)
        finally:
            await store.close()

    asyncio.run(main())


async def nothing(store: SQLiteStore) -> None:
    pass


def test_migrating_from_empty_equals_the_current_schema(tmp_path: Path) -> None:
    migrated, direct = tmp_path / "migrated.db", tmp_path / "direct.db"
    with_open_store(migrated, nothing)
    with closing(sqlite3.connect(direct)) as conn:
        conn.executescript("\n".join(sql for _, _, sql in migrations()))

    assert schema(migrated) == schema(direct)
    assert {"jobs", "attempts", "idempotency_keys", "meta"} <= {row[1] for row in schema(direct)}


def test_open_twice_applies_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    with_open_store(path, nothing)
    first = schema(path)
    with_open_store(path, nothing)

    assert schema(path) == first
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert rows.fetchall() == [(version, name) for version, name, _ in migrations()]


def test_migration_versions_are_unique_and_start_at_one() -> None:
    versions = [version for version, _, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_claim_walks_the_jobs_due_index(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    with_open_store(path, nothing)
    params = {"limit": 10, "now": 0.0, "lease": "L", "lease_margin": 5.0}
    with closing(sqlite3.connect(path)) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + Q["claim_due"], params)]

    assert any("jobs_due" in step for step in plan), plan
    assert "SCAN jobs" not in plan, plan  # a full table scan
    assert not any("TEMP B-TREE" in step for step in plan), plan  # a sort of every due job


async def pragma(store: SQLiteStore, name: str) -> Any:
    assert store._writer is not None
    return await store._writer.call(lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0])


def test_writer_uses_wal_and_synchronous_full_by_default(tmp_path: Path) -> None:
    async def check(store: SQLiteStore) -> None:
        assert await pragma(store, "journal_mode") == "wal"
        assert await pragma(store, "synchronous") == 2  # FULL

    with_open_store(tmp_path / "pushq.db", check)


def test_synchronous_normal_when_configured(tmp_path: Path) -> None:
    async def check(store: SQLiteStore) -> None:
        assert await pragma(store, "journal_mode") == "wal"
        assert await pragma(store, "synchronous") == 1  # NORMAL

    with_open_store(tmp_path / "pushq.db", check, synchronous="NORMAL")
