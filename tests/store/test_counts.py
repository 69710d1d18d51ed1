"""count_by_state (what /metrics and GET /v1/queues show) against the truth.

A store may keep its counts any way it likes (SQLite keeps them in a table its
triggers maintain, so a scrape never reads the jobs table); after every kind of
change here they must equal a count of the jobs themselves, each in its public
state ("blocked" read as pending or scheduled, a due scheduled job as pending).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from pushq.policy.claim_plan import ClaimPlan
from pushq.policy.flow_keys import KeyLimits
from pushq.server.models import DeadFilter, JobFilter, JobRecord
from pushq.server.render import public_state
from pushq.server.store.base import Store
from pushq.server.store.sqlite import SQLiteStore

from .conftest import WithStore
from .test_conformance import (
    DEFAULTS,
    NOW,
    TTL,
    attempt_of,
    claim,
    complete,
    enqueue,
    fetch,
    kill,
    new_job,
    rescue_expired,
    retry,
)


async def truth(store: Store, now: float) -> dict[tuple[str, str], int]:
    """Every stored job, each counted once in its public state."""
    counts: Counter[tuple[str, str]] = Counter()
    cursor = None
    while True:
        page = await store.find_jobs(match=JobFilter(), limit=500, cursor=cursor, now=now)
        for listed in page.jobs:
            job = await fetch(store, listed.id)
            counts[job.queue, public_state(job, now)] += 1
        cursor = page.next_cursor
        if cursor is None:
            return dict(counts)


async def check(store: Store, now: float, step: str) -> None:
    shown = await store.count_by_state(now=now)
    expected = await truth(store, now)
    assert shown == expected, f"after {step}: counts {shown}, jobs {expected}"


def test_counts_match_the_jobs_after_every_kind_of_change(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await check(store, NOW, "nothing")
        # enqueue: due, scheduled, blocked behind an ordering key (due and ahead), in two queues
        jobs = await enqueue(
            store,
            new_job(queue="a"),
            new_job(queue="a"),
            new_job(queue="a", run_at=NOW + 60),
            new_job(queue="a", ordering_key="k"),
            new_job(queue="a", ordering_key="k"),
            new_job(queue="a", ordering_key="k", run_at=NOW + 600),
            new_job(queue="b", idempotency_key="once", unique_key="u"),
            new_job(queue="b"),
            new_job(queue="b", tags=["x"]),
        )
        await check(store, NOW, "enqueue")
        # duplicates are answered with the stored job, not counted again
        again = await store.enqueue(
            jobs=[new_job(queue="b", idempotency_key="once"), new_job(queue="b", unique_key="u")],
            now=NOW,
            idempotency_ttl=TTL,
            defaults=DEFAULTS,
        )
        assert not any(result.created for result in again)
        await check(store, NOW, "duplicate enqueues")
        # time passes: the scheduled job reads as pending before the promoter moves it
        await check(store, NOW + 60, "a scheduled job falling due")
        await check(store, NOW + 601, "a blocked job falling due")

        # claim, then settle each way
        claimed = await claim(store, limit=20, lease="L1")
        await check(store, NOW, "claim")
        by_queue = {job.id: job for job in claimed}
        succeed, fail_later, die, *rest = sorted(by_queue.values(), key=lambda job: job.id)
        assert await complete(store, succeed, "L1", attempt_of(succeed), NOW)
        await check(store, NOW, "complete")
        assert await retry(store, fail_later, "L1", attempt_of(fail_later), NOW)
        await check(store, NOW, "retry")
        assert await kill(store, die, "L1", attempt_of(die, status=400), NOW)
        await check(store, NOW, "kill")
        # the rest of the leases expire: the rescuer retries or kills them
        later = NOW + DEFAULTS.timeout + 60
        await rescue_expired(store, now=later, limit=100)
        await check(store, later, "rescue")

        # promote what became due, and run a waiting job now
        await store.promote_due(now=later, limit=100)
        await check(store, later, "promote")
        scheduled = await enqueue(store, new_job(queue="c", run_at=later + 3600), now=later)
        await check(store, later, "enqueue scheduled")
        await store.run_now(job_id=scheduled[0].id, now=later)
        await check(store, later, "run now")

        # the dead-letter queue: redrive one, redrive the rest, delete one
        await store.redrive(job_id=die.id, now=later)
        await check(store, later, "redrive")
        for job in await claim(store, now=later, limit=50, lease="L2"):
            await kill(store, job, "L2", attempt_of(job, status=400), later)
        await check(store, later, "kill all")
        dead = (await store.list_dead(queue=None, limit=100, cursor=None)).jobs
        assert await store.delete_dead(job_id=dead[0].id)
        await check(store, later, "delete a dead job")
        await store.redrive_many(queue="a", now=later)
        await check(store, later, "redrive many")
        await store.redrive_matching(match=DeadFilter(queue="b"), now=later, interval=0.0)
        await check(store, later, "redrive matching")

        # cancel one, purge a queue (cancel by filter), delete a job, delete a queue
        waiting = [job for job in await store_jobs(store, later) if job.state == "pending"]
        await store.cancel(job_id=waiting[0].id, now=later)
        await check(store, later, "cancel")
        await store.cancel_matching(match=JobFilter(queue="b"), now=later)
        await check(store, later, "purge")
        await store.delete_job(job_id=jobs[8].id)
        await check(store, later, "delete a job")
        await store.delete_queue(name="c", force=True, now=later)
        await check(store, later, "delete a queue")
        await store.delete_queue(name="a", force=True, now=later)
        await check(store, later, "delete a queue with jobs in every state")

        # retention: finished jobs go, and their counts with them
        gone = await store.prune_finished(
            succeeded_before=later + 1, dead_before=later + 1, limit=1000
        )
        assert gone > 0
        await check(store, later, "prune finished")
        assert await store.count_by_state(now=later) == {}

    with_store(scenario)


def test_counts_match_after_the_claim_and_settle_paths_the_first_test_skips(
    with_store: WithStore,
) -> None:
    """Claims and settles count their own jobs (SQLite: the trigger leaves them out), so
    each path in and out of active must: a claim under flow-key limits, an attempt cut
    off by shutdown, a claimed job handed back unsent, an active job cancelled."""

    async def scenario(store: Store) -> None:
        await enqueue(store, *(new_job(queue="k", flow_key=f"key{i % 2}") for i in range(6)))
        await enqueue(store, *(new_job(queue="p") for _ in range(4)))
        plan = ClaimPlan(
            takes=(("k", 6), ("p", 4)), keys={"k": KeyLimits(allowance={"key0": 1}, default=2)}
        )
        claimed = await store.claim(plan=plan, now=NOW, lease="L", lease_margin=5.0)
        assert {job.queue for job in claimed} == {"k", "p"}
        await check(store, NOW, "a claim under flow-key limits")
        interrupted, handed_back, cancelled, *_ = claimed
        error = {"status": None, "message": "shutting down", "at": NOW}
        assert await store.release_interrupted(
            job_id=interrupted.id, lease="L", attempt=attempt_of(interrupted), error=error
        )
        await check(store, NOW, "an interrupted attempt")
        assert await store.release(
            job_id=handed_back.id, lease="L", attempt=handed_back.attempts, run_at=NOW + 30
        )
        await check(store, NOW, "a claimed job handed back")
        await store.cancel(job_id=cancelled.id, now=NOW)
        await check(store, NOW, "an active job cancelled")
        # and what is left of them settles, in one group commit, each way
        rest = [await fetch(store, job.id) for job in claimed[3:]]
        outcomes = await asyncio.gather(
            *(
                settle(store, job, "L", attempt_of(job), NOW)
                for job, settle in zip(rest, [complete, retry, kill] * 3, strict=False)
            )
        )
        assert all(outcomes)
        await check(store, NOW, "settles sharing a group commit")

    with_store(scenario)


async def store_jobs(store: Store, now: float) -> list[JobRecord]:
    page = await store.find_jobs(match=JobFilter(), limit=1000, cursor=None, now=now)
    return [await fetch(store, job.id) for job in page.jobs]


def test_sqlite_counts_again_at_start_when_rows_were_written_around_it(tmp_path: Path) -> None:
    """A row INSERTed by hand (or by a benchmark's fill) is not in job_counts until the
    next start, which notices and counts the jobs again."""
    path = tmp_path / "pushq.db"

    async def first() -> str:
        store = SQLiteStore(path)
        await store.open()
        try:
            [job] = await enqueue(store, new_job(queue="a"))
            return job.id
        finally:
            await store.close()

    job_id = asyncio.run(first())
    with closing(sqlite3.connect(path)) as conn, conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        listed = ", ".join(c if c != "id" else "'BYHAND' || id" for c in columns)
        conn.execute(f"INSERT INTO jobs ({', '.join(columns)}) SELECT {listed} FROM jobs")
        conn.execute("UPDATE jobs SET state = 'dead' WHERE id = 'BYHAND' || ?", (job_id,))

    async def second() -> dict[tuple[str, str], int]:
        store = SQLiteStore(path)
        await store.open()
        try:
            await check(store, NOW, "a start after a row was written by hand")
            return await store.count_by_state(now=NOW)
        finally:
            await store.close()

    assert asyncio.run(second()) == {("a", "pending"): 1, ("a", "dead"): 1}


def test_oldest_pending_over_queues_and_priorities(with_store: WithStore) -> None:
    """oldest_pending seeks one (queue, priority) at a time: every combination counts."""

    async def scenario(store: Store) -> None:
        assert await store.oldest_pending() == {}
        jobs = [
            new_job(queue="a", priority=5, run_at=NOW - 10),
            new_job(queue="a", priority=5, run_at=NOW - 20),
            new_job(queue="a", priority=-3, run_at=NOW - 40),
            new_job(queue="a", priority=0, run_at=NOW - 30),
            new_job(queue="b", priority=9, run_at=NOW - 1),
            new_job(queue="c", priority=1, run_at=NOW - 7),
            new_job(queue="c", priority=2, run_at=NOW - 50),
            new_job(queue="d", run_at=NOW + 60),  # scheduled: not pending
        ]
        for job in jobs:  # one call each: the run_at of each is its own
            await store.enqueue(
                jobs=[job],
                now=job.run_at if job.run_at < NOW else NOW,
                idempotency_ttl=TTL,
                defaults=DEFAULTS,
            )
        assert await store.oldest_pending() == {"a": NOW - 40, "b": NOW - 1, "c": NOW - 50}
        claimed = await claim(store, limit=10)  # everything pending goes active
        assert len(claimed) == 7
        assert await store.oldest_pending() == {}

    with_store(scenario)


ROWS = 2_000_000  # generated by SQL; bench/enqueue.py's counts scenario does 10 M


@pytest.mark.heavy
def test_sqlite_counts_stay_exact_over_millions_of_rows(tmp_path: Path) -> None:
    """Millions of jobs written by SQL around pushq: the next start counts them, and
    count_by_state then answers from job_counts, equal to a count of the table after
    more enqueues, claims and settles."""
    path = tmp_path / "pushq.db"
    asyncio.run(_open_and_close(path))  # migrated
    states = ("succeeded", "dead", "cancelled", "scheduled", "pending", "retrying")
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :rows)"
            " INSERT INTO jobs (id, queue, url, method, state, priority, attempts,"
            " max_attempts, backoff_base, backoff_max, backoff_jitter, timeout, created_at,"
            " run_at) SELECT printf('00GEN%021d', i), 'q' || (i % 5), 'https://w.example/h',"
            " 'POST', CASE WHEN i % 10 < 7 THEN 'succeeded' ELSE"
            " json_extract(:states, '$[' || (i % 6) || ']') END, 0, 1, 3, 30, 3600, 1, 30,"
            " :now - 60, CASE WHEN i % 6 IN (3, 5) THEN :now + 3600 ELSE :now - 60 END FROM n",
            {"rows": ROWS, "states": json.dumps(states), "now": NOW},
        )
        conn.execute("COMMIT")

    async def scenario() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            assert sum((await store.count_by_state(now=NOW)).values()) == ROWS
            await enqueue(store, *(new_job(queue="q1") for _ in range(10)))
            claimed = await claim(store, limit=20, lease="L")
            for job in claimed[:5]:
                await complete(store, job, "L", attempt_of(job), NOW)
            shown = await store.count_by_state(now=NOW)
        finally:
            await store.close()
        assert shown == _table_counts(path, NOW)
        assert sum(shown.values()) == ROWS + 10

    asyncio.run(scenario())


async def _open_and_close(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.close()


def _table_counts(path: Path, now: float) -> dict[tuple[str, str], int]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT queue, CASE WHEN state IN ('scheduled', 'blocked') AND run_at <= ?"
            " THEN 'pending' WHEN state = 'blocked' THEN 'scheduled' ELSE state END, count(*)"
            " FROM jobs GROUP BY 1, 2",
            (now,),
        ).fetchall()
    return {(queue, state): n for queue, state, n in rows}
