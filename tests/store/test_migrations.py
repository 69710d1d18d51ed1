"""The SQLite schema: migrations, connection settings and the claim query's plan."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from pushq.policy.backoff import BackoffPolicy
from pushq.server.models import JobDefaults, JobFilter, NewJob
from pushq.server.store import sql as sql_package
from pushq.server.store.sql import migrations
from pushq.server.store.sqlite import Q, SQLiteStore, find_jobs_sql

from ..stores import claim_due

SCHEMA = Path(sql_package.__file__).parent / "sqlite_schema.sql"  # written by hand
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


def structure(path: Path) -> dict[str, Any]:
    """What a schema is, compared field by field (not the text that created it):
    each table's columns and rowid-ness, each index's columns, order, uniqueness
    and WHERE clause."""
    found: dict[str, Any] = {}
    with closing(sqlite3.connect(path)) as conn:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        for kind, name, table, sql in objects:
            if table in BOOKKEEPING:
                continue
            if kind == "table":
                columns = conn.execute(f"PRAGMA table_xinfo({name})").fetchall()
                (listed,) = conn.execute(f"PRAGMA table_list({name})").fetchall()
                found[name] = ("table", columns, listed[4])  # listed[4]: WITHOUT ROWID
            elif kind == "index":
                keys = conn.execute(f"PRAGMA index_xinfo({name})").fetchall()
                unique = "CREATE UNIQUE" in sql.upper()
                where = " ".join(sql.split(" WHERE ", 1)[1].split()) if " WHERE " in sql else ""
                found[name] = ("index", table, unique, keys, where)
            else:
                found[name] = (kind, table, " ".join(sql.split()))
    return found


def test_migrating_from_empty_equals_the_hand_written_schema(tmp_path: Path) -> None:
    migrated, written = tmp_path / "migrated.db", tmp_path / "written.db"
    with_open_store(migrated, nothing)
    with closing(sqlite3.connect(written)) as conn:
        conn.executescript(SCHEMA.read_text())

    assert structure(migrated) == structure(written)
    assert {"jobs", "attempts", "idempotency_keys", "meta", "queues", "schedules"} <= set(
        structure(written)
    )


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


def query_plan(path: Path, name: str, params: dict[str, Any]) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + Q[name], params)]


def test_claim_walks_the_jobs_ready_index(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    with_open_store(path, nothing)
    params = {"queue": "q", "limit": 10, "now": 0.0, "lease": "L", "lease_margin": 5.0}
    plan = query_plan(path, "claim_from_queue", params)

    assert any("jobs_ready" in step for step in plan), plan
    assert "SCAN jobs" not in plan, plan  # a full table scan
    assert not any("TEMP B-TREE" in step for step in plan), plan  # a sort of every ready job


def test_the_claim_snapshot_counts_ready_jobs_on_the_jobs_ready_index(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    with_open_store(path, nothing)
    plan = query_plan(path, "claim_snapshot", {"limit": 64, "count_active": 0})

    assert any("jobs_ready" in step for step in plan), plan
    assert "SCAN jobs" not in plan, plan


def test_promoting_due_jobs_walks_the_jobs_waiting_index(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    with_open_store(path, nothing)
    plan = query_plan(path, "promote_due", {"now": 0.0, "limit": 10})

    assert any("jobs_waiting" in step for step in plan), plan
    assert "SCAN jobs" not in plan, plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database at the current schema, shared by the read-only checks below."""
    path = tmp_path_factory.mktemp("migrated") / "pushq.db"
    with_open_store(path, nothing)
    return path


@pytest.mark.parametrize("name", sorted(Q))
def test_every_named_query_prepares(migrated: Path, name: str) -> None:
    """Catches INDEXED BY an index the query cannot use ("no query solution") and typos."""
    path = migrated
    params = {param: 0 for param in re.findall(r":(\w+)", Q[name])}
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("EXPLAIN " + Q[name], params).fetchall()


def version_one_database(path: Path, jobs: list[dict[str, Any]]) -> None:
    """A database as pushq left it before migration 0002, holding `jobs`."""
    (version, name, sql) = migrations()[0]
    assert version == 1
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(sql)
        conn.execute(
            "CREATE TABLE schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        conn.execute("INSERT INTO schema_migrations VALUES (1, ?, 0)", (name,))
        for i, job in enumerate(jobs):
            row = {
                "id": f"01JOB{i:021d}",
                "queue": "default",
                "url": "https://worker.example/hook",
                "method": "POST",
                "state": "pending",
                "max_attempts": 3,
                "backoff_base": 30.0,
                "backoff_max": 3600.0,
                "backoff_jitter": 1,
                "timeout": 30.0,
                "created_at": job.get("run_at", 0.0),
                "run_at": 0.0,
            } | job
            columns = ", ".join(row)
            values = ", ".join(f":{column}" for column in row)
            conn.execute(f"INSERT INTO jobs ({columns}) VALUES ({values})", row)
        conn.commit()


def test_migrating_stored_jobs_fills_the_queue_counters_and_schedules(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    wall = time.time()
    states = ["pending", "active", "retrying", "succeeded", "dead", "cancelled"]
    version_one_database(
        path,
        [{"queue": "a", "state": state} for state in states]
        + [
            {"queue": "a", "run_at": wall + 3600},
            {"queue": "b"},
            {"queue": "b", "state": "succeeded"},
        ],
    )

    async def check(store: SQLiteStore) -> None:
        counters = {queue.name: queue.unfinished for queue in await store.list_queues()}
        assert counters == {"a": 4, "b": 1}
        delayed = await store.get(job_id=f"01JOB{6:021d}")
        assert delayed is not None and delayed.state == "scheduled"
        due = await store.get(job_id=f"01JOB{0:021d}")
        assert due is not None and due.state == "pending"

    with_open_store(path, check)


def test_migrated_jobs_sharing_an_ordering_key_go_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "pushq.db"
    version_one_database(path, [{"ordering_key": "k"}, {"ordering_key": "k"}, {}])

    async def check(store: SQLiteStore) -> None:
        claim = await claim_due(
            store, limit=10, slots=64, now=time.time(), lease="L", lease_margin=5
        )
        assert sorted(job.id for job in claim.jobs) == [f"01JOB{i:021d}" for i in (0, 2)]

    with_open_store(path, check)


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


def test_checkpoints_run_off_the_commit_path(tmp_path: Path) -> None:
    """The writer never checkpoints (a commit would stall on it); the checkpointer
    copies every WAL frame into the database."""

    async def check(store: SQLiteStore) -> None:
        assert await pragma(store, "wal_autocheckpoint") == 0
        jobs = [NewJob(url="http://127.0.0.1:9/x") for _ in range(500)]
        await store.enqueue(
            jobs=jobs, now=1.0, idempotency_ttl=60.0, defaults=JobDefaults(3, 30.0, BackoffPolicy())
        )
        busy, frames, copied = store._checkpointer.checkpoint()
        assert busy == 0 and frames > 0 and copied == frames

    with_open_store(tmp_path / "pushq.db", check)


FILTERS = {
    "tag": JobFilter(tag="acme"),
    "url_prefix": JobFilter(url_prefix="https://acme.example/"),
    "flow_key": JobFilter(flow_key="acme"),
    "schedule": JobFilter(schedule="nightly"),
    "topic": JobFilter(topic="orders"),
    "since/until": JobFilter(since=1.0, until=2.0),
    "tag+queue+state": JobFilter(tag="acme", queue="q", states=("pending",)),
    "flow_key+since": JobFilter(flow_key="acme", since=1.0),
}
FILTER_INDEX = {
    "tag": "SEARCH t USING PRIMARY KEY",
    "url_prefix": "jobs_by_url",
    "flow_key": "jobs_by_flow_key",
    "schedule": "jobs_by_schedule",
    "topic": "jobs_by_topic",
    "since/until": "sqlite_autoindex_jobs_1 (id>? AND id<?)",
    "tag+queue+state": "SEARCH t USING PRIMARY KEY",
    "flow_key+since": "jobs_by_flow_key",
}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_list_filter_is_served_by_an_index(migrated: Path, name: str) -> None:
    sql, params = find_jobs_sql(FILTERS[name], now=0.0, limit=51, after="01J")
    with closing(sqlite3.connect(migrated)) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]

    assert any(FILTER_INDEX[name] in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan
    if name != "url_prefix":  # a URL range is read in URL order, then sorted
        assert not any("TEMP B-TREE" in step for step in plan), plan
