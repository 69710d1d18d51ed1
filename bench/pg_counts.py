"""`python -m bench.pg_counts`: PostgreSQL's job counts (migration 0007), in one run.

    python -m bench.pg_counts hot [--rounds 5] [--jobs 400]
    python -m bench.pg_counts counts [--rows 10000000] [--times 20] [--baseline CHECKOUT]

  hot     what the count triggers cost on the hot path: two schemas on the same
          server, one as migration 0007 leaves it and one with its triggers and
          index dropped again (the hot path before it), rounds alternated. Each round
          enqueues --jobs jobs one per call, --jobs in batches of 100, claims them
          (rounds of 32) and completes each, through PostgresStore on one
          connection; printed per phase: PostgreSQL's CPU per job (the connection's
          backend, from /proc) and the wall time per job, medians over the rounds.
  counts  GET /metrics and GET /v1/queues on a schema of --rows jobs written by SQL
          (generate_series; the states of bench.enqueue's counts run over 8 paused
          queues): the median and worst time of each, every count shown checked
          against a count of the table, and the statements count_by_state and
          oldest_pending ran before 0007 timed on the same table. --baseline runs an
          older checkout's pushq (e.g. `git worktree add .baseline <commit>`) on the
          same schema afterwards, for the before figure through HTTP.

Schemas are named pushq_bench_pgcounts_*, and dropped afterwards (--keep keeps the
counts run's, and --schema NAME reuses a kept one instead of filling again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from pushq.bench.harness import BENCH_TOKEN, Procs, cpu_seconds, report
from pushq.policy.backoff import BackoffPolicy
from pushq.server.store.postgres import Q

from .enqueue import MIX, QUEUES, from_checkout

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
AUTH = {"Authorization": f"Bearer {BENCH_TOKEN}"}

# What 0007 added to the hot path: dropping these gives the schema before it.
WITHOUT_COUNTS = """
DROP TRIGGER jobs_count_insert ON jobs;
DROP TRIGGER jobs_count_delete ON jobs;
DROP TRIGGER jobs_count_update ON jobs;
DROP TRIGGER jobs_count_truncate ON jobs;
DROP INDEX jobs_blocked;
"""

# The statements before 0007, for the before figures of the counts run.
OLD_COUNT_BY_STATE = """
SELECT queue,
       CASE
           WHEN state = 'scheduled' AND run_at <= $1::float8 THEN 'pending'
           WHEN state = 'blocked' AND run_at <= $1::float8 THEN 'pending'
           WHEN state = 'blocked' THEN 'scheduled'
           ELSE state
       END AS state,
       count(*) AS n
FROM jobs
GROUP BY 1, 2
"""
OLD_OLDEST_PENDING = "SELECT queue, min(run_at) FROM jobs WHERE state = 'pending' GROUP BY queue"


def with_schema(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}search_path={schema}"


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def migrated(url: str, schema: str) -> None:
    """A schema with pushq's migrations applied (by opening a store on it)."""
    from pushq.server.store.postgres import PostgresStore

    await admin(url, f'CREATE SCHEMA "{schema}"')
    store = PostgresStore(url, schema=schema, min_size=1, max_size=1)
    await store.open()
    await store.close()


# -- hot: the triggers' cost per enqueue, claim and settle ---------------------------------


def backend_cpu(pid: int) -> float:
    return cpu_seconds(pid)


async def one_round(url: str, schema: str, jobs: int, now: float) -> dict[str, tuple[float, float]]:
    """(PostgreSQL CPU s, wall s) per phase, for `jobs` jobs each."""
    from pushq.server.claimer import Claimer
    from pushq.server.models import AttemptRecord, JobDefaults, NewJob
    from pushq.server.store.postgres import PostgresStore

    store = PostgresStore(url, schema=schema, min_size=1, max_size=1)
    await store.open()
    try:
        pid = await store._run(lambda conn: conn.raw.fetchval("SELECT pg_backend_pid()"))
        defaults = JobDefaults(max_attempts=3, timeout=30.0, backoff=BackoffPolicy())
        job = NewJob(url="https://worker.example/hook", queue=f"q{uuid.uuid4().hex[:6]}")
        phases: dict[str, tuple[float, float]] = {}

        async def timed(name: str, work: Any) -> Any:
            cpu, wall = backend_cpu(pid), time.perf_counter()
            result = await work
            phases[name] = (backend_cpu(pid) - cpu, time.perf_counter() - wall)
            return result

        async def singles() -> None:
            for _ in range(jobs):
                await store.enqueue(jobs=[job], now=now, idempotency_ttl=60, defaults=defaults)

        async def batches() -> None:
            for _ in range(jobs // 100):
                await store.enqueue(
                    jobs=[job] * 100, now=now, idempotency_ttl=60, defaults=defaults
                )

        claimer = Claimer(store)

        async def claims() -> list[Any]:
            taken: list[Any] = []
            while len(taken) < 2 * jobs:
                got = await claimer.claim(
                    limit=32, slots=10_000, now=now, lease="L", lease_margin=5.0, busy=None
                )
                if not got.jobs:
                    break
                taken.extend(got.jobs)
            return taken

        async def settles(taken: list[Any]) -> None:
            for claimed in taken[:jobs]:
                attempt = AttemptRecord(
                    job_id=claimed.id,
                    number=claimed.attempts,
                    started_at=now,
                    duration_ms=1.0,
                    status=200,
                    error=None,
                    response_body="ok",
                )
                await store.complete(
                    job_id=claimed.id, lease="L", attempt=attempt, result={"status": 200}, now=now
                )

        await timed("enqueue_single", singles())
        await timed("enqueue_batch_100", batches())
        taken = await timed("claim_32", claims())
        await timed("complete", settles(taken))
        return phases
    finally:
        await store.close()


async def hot(url: str, rounds: int, jobs: int) -> dict[str, Any]:
    schemas = {
        "before": f"pushq_bench_pgcounts_{uuid.uuid4().hex[:8]}",
        "after": f"pushq_bench_pgcounts_{uuid.uuid4().hex[:8]}",
    }
    try:
        for version, schema in schemas.items():
            await migrated(url, schema)
            if version == "before":
                await admin(with_schema(url, schema), WITHOUT_COUNTS)
        now = time.time()
        seen: dict[str, dict[str, list[tuple[float, float]]]] = {v: {} for v in schemas}
        await one_round(url, schemas["before"], 100, now)  # warm-up: plans, caches
        await one_round(url, schemas["after"], 100, now)
        for n in range(rounds):
            order = list(schemas.items()) if n % 2 == 0 else list(reversed(schemas.items()))
            for version, schema in order:
                for phase, figure in (await one_round(url, schema, jobs, now)).items():
                    seen[version].setdefault(phase, []).append(figure)
    finally:
        for schema in schemas.values():
            await admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    per_job = {"enqueue_single": jobs, "enqueue_batch_100": jobs, "claim_32": 2 * jobs}
    per_job["complete"] = jobs
    figures: dict[str, Any] = {"rounds": rounds, "jobs_per_phase": jobs}
    for phase, count in per_job.items():
        for version in schemas:
            cpu = statistics.median(c for c, _ in seen[version][phase]) / count * 1e6
            wall = statistics.median(w for _, w in seen[version][phase]) / count * 1e6
            figures[f"{phase}_pg_cpu_us_{version}"] = cpu
            figures[f"{phase}_wall_us_{version}"] = wall
    return figures


# -- triggers: the statements' own time, no triggers / statement-level / row-level -------

# The design 0007 did not take, for comparison: a trigger per changed row, each
# inserting its -1 and +1 (the WHEN clause spares UPDATEs that change no state).
ROW_LEVEL = (
    WITHOUT_COUNTS
    + """
CREATE FUNCTION job_counts_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO job_count_deltas (queue, state, n) VALUES (OLD.queue, OLD.state, -1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO job_count_deltas (queue, state, n) VALUES (NEW.queue, NEW.state, 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_count_row AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION job_counts_row();
CREATE TRIGGER jobs_count_row_update AFTER UPDATE OF state, queue ON jobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.queue IS DISTINCT FROM NEW.queue)
    EXECUTE FUNCTION job_counts_row();
"""
)

INSERT_JOBS = """
INSERT INTO jobs (id, queue, url, method, state, max_attempts, backoff_base, backoff_max,
                  backoff_jitter, timeout, created_at, run_at)
SELECT 'T' || {tag} || '-' || i, 'q1', 'https://w.example/', 'POST', {state}, 3, 1, 60, 1, 30,
       extract(epoch FROM now()), extract(epoch FROM now())
FROM generate_series(1, {n}) AS i
"""
# (name, statement): each run in a transaction rolled back, so every run sees the
# same table (20,000 pending jobs, 20,000 active, 20,000 succeeded).
STATEMENTS = (
    ("insert_1", INSERT_JOBS.format(tag="'x'", state="'pending'", n=1)),
    ("insert_100", INSERT_JOBS.format(tag="'x'", state="'pending'", n=100)),
    (
        "claim_32",
        "WITH picked AS MATERIALIZED (SELECT id FROM jobs WHERE state = 'pending' AND queue = 'q0'"
        " ORDER BY priority DESC, run_at, id LIMIT 32 FOR UPDATE SKIP LOCKED)"
        " UPDATE jobs SET state = 'active', lease = 'L', attempts = attempts + 1,"
        " lease_expires_at = run_at + 30 FROM picked WHERE jobs.id = picked.id",
    ),
    (
        "settle_1",
        "UPDATE jobs SET state = 'succeeded', finished_at = run_at, lease = NULL"
        " WHERE id = 'Ta-7' AND state = 'active'",
    ),
    (
        "settle_32",
        "UPDATE jobs SET state = 'succeeded', finished_at = run_at, lease = NULL"
        " WHERE id = ANY(ARRAY(SELECT 'Ta-' || i FROM generate_series(100, 131) AS i))"
        " AND state = 'active'",
    ),
    ("progress_1", "UPDATE jobs SET progress = 'half' WHERE id = 'Ta-9'"),
    (
        "delete_100",
        "DELETE FROM jobs"
        " WHERE id = ANY(ARRAY(SELECT 'Ts-' || i FROM generate_series(1, 100) AS i))",
    ),
)


async def triggers(url: str, repeats: int) -> dict[str, Any]:
    variants = {"none": WITHOUT_COUNTS, "statement": "", "row": ROW_LEVEL}
    schemas = {v: f"pushq_bench_pgcounts_{uuid.uuid4().hex[:8]}" for v in variants}
    took: dict[tuple[str, str], list[float]] = {}
    conns: dict[str, asyncpg.Connection] = {}
    try:
        for variant, schema in schemas.items():
            await migrated(url, schema)
            conn = await asyncpg.connect(with_schema(url, schema))
            conns[variant] = conn
            if variants[variant]:
                await conn.execute(variants[variant])
            for tag, state in (("'p'", "'pending'"), ("'a'", "'active'"), ("'s'", "'succeeded'")):
                await conn.execute(INSERT_JOBS.format(tag=tag, state=state, n=20_000))
            await conn.execute("UPDATE jobs SET queue = 'q0' WHERE state = 'pending'")
            await conn.execute("VACUUM ANALYZE jobs")
        for n in range(repeats):
            for name, sql in STATEMENTS:
                order = list(variants) if n % 2 == 0 else list(reversed(variants))
                for variant in order:
                    conn = conns[variant]
                    tx = conn.transaction()
                    await tx.start()
                    try:
                        plan = await conn.fetchval(
                            f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}"
                        )
                    finally:
                        await tx.rollback()
                    took.setdefault((name, variant), []).append(
                        json.loads(plan)[0]["Execution Time"]
                    )
    finally:
        for conn in conns.values():
            await conn.close()
        for schema in schemas.values():
            await admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    figures: dict[str, Any] = {"repeats": repeats}
    for name, _ in STATEMENTS:
        base = statistics.median(took[name, "none"]) * 1000
        figures[f"{name}_us_no_triggers"] = base
        for variant in ("statement", "row"):
            figures[f"{name}_us_{variant}_level"] = statistics.median(took[name, variant]) * 1000
    return figures


# -- counts: /metrics and GET /v1/queues on a big table -------------------------------------

FILL = """
INSERT INTO jobs (id, queue, url, method, state, priority, attempts, max_attempts,
                  backoff_base, backoff_max, backoff_jitter, timeout, created_at, run_at,
                  finished_at)
SELECT 'GEN' || lpad(i::text, 23, '0'), 'q' || (i % $3), $4, 'POST', $5,
       0, 1, 13, 30, 28800, 1, 30, $6 - 7200 + i * 1e-6, $7,
       CASE WHEN $5 IN ('succeeded', 'dead', 'cancelled') THEN $6 - 3600 END
FROM generate_series($1::bigint, $2::bigint - 1) AS i
"""


async def populate(url: str, schema: str, rows: int, target: str) -> None:
    """`rows` jobs in MIX's states over QUEUES paused queues, by SQL, 500,000 a commit."""
    conn = await asyncpg.connect(with_schema(url, schema))
    try:
        now = time.time()
        done, step = 0, 500_000
        for state, share in MIX:
            n = round(rows * share) if state != MIX[-1][0] else rows - done
            run_at = now + 3600 if state in ("scheduled", "retrying") else now - 3600
            for start in range(done, done + n, step):
                stop = min(done + n, start + step)
                await conn.execute(FILL, start, stop, QUEUES, target, state, now, run_at)
            done += n
            print(f"  filled {done:,} rows", file=sys.stderr, flush=True)
        for q in range(QUEUES):
            await conn.execute(
                "INSERT INTO queues (name, paused, created_at, updated_at) VALUES ($1, 1, $2, $2)"
                " ON CONFLICT (name) DO UPDATE SET paused = 1",
                f"q{q}",
                now,
            )
        await conn.execute(
            "UPDATE queues SET unfinished = (SELECT count(*) FROM jobs"
            " WHERE jobs.queue = queues.name"
            " AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying'))"
        )
        await conn.execute("ANALYZE jobs")
    finally:
        await conn.close()


def timed_get(url: str, times: int) -> tuple[list[float], bytes]:
    took, body = [], b""
    for _ in range(times):
        request = urllib.request.Request(url, headers=AUTH)
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            body = response.read()
        took.append(time.perf_counter() - start)
    return took, body


def shown_by_metrics(body: bytes) -> dict[tuple[str, str], int]:
    shown: dict[tuple[str, str], int] = {}
    for line in body.decode().splitlines():
        if line.startswith("pushq_jobs{"):
            queue = line.split('queue="')[1].split('"')[0]
            state = line.split('state="')[1].split('"')[0]
            if value := int(float(line.rsplit(" ", 1)[1])):
                shown[queue, state] = value
    return shown


STATES = ("scheduled", "pending", "active", "retrying", "succeeded", "dead", "cancelled")


def listed_by_queues(body: bytes) -> dict[tuple[str, str], int]:
    return {
        (q["name"], state): n
        for q in json.loads(body)["queues"]
        for state, n in q["stats"].items()
        if state in STATES and n
    }


async def old_statements(url: str, schema: str) -> dict[str, Any]:
    """The table counted as count_by_state did before 0007 (the truth, too) and the
    old oldest_pending, each timed three times; the new statements, twenty."""
    conn = await asyncpg.connect(with_schema(url, schema))
    try:
        counts, oldest, new_counts, new_oldest = [], [], [], []
        truth: dict[tuple[str, str], int] = {}
        for _ in range(3):
            start = time.perf_counter()
            rows = await conn.fetch(OLD_COUNT_BY_STATE, time.time())
            counts.append(time.perf_counter() - start)
            start = time.perf_counter()
            await conn.fetch(OLD_OLDEST_PENDING)
            oldest.append(time.perf_counter() - start)
            truth = {(r["queue"], r["state"]): r["n"] for r in rows}
        for _ in range(20):
            start = time.perf_counter()
            await conn.fetch(Q["count_by_state"][0], time.time())
            new_counts.append(time.perf_counter() - start)
            start = time.perf_counter()
            await conn.fetch(Q["oldest_pending"][0])
            new_oldest.append(time.perf_counter() - start)
        deltas = await conn.fetchval("SELECT count(*) FROM job_count_deltas")
    finally:
        await conn.close()
    return {
        "truth": truth,
        "old_count_by_state_median_ms": statistics.median(counts) * 1000,
        "old_oldest_pending_median_ms": statistics.median(oldest) * 1000,
        "count_by_state_median_ms": statistics.median(new_counts) * 1000,
        "oldest_pending_median_ms": statistics.median(new_oldest) * 1000,
        "unfolded_delta_rows": deltas,
    }


def serve(base: Path, url: str, schema: str, command: list[str] | None = None) -> Procs:
    data_dir = base / f"pushq-{uuid.uuid4().hex[:6]}"
    data_dir.mkdir(parents=True)
    procs = Procs(data_dir, env={"PUSHQ_DATABASE_URL": with_schema(url, schema)})
    if command is not None:
        procs.command = command
    procs.start_worker()
    procs.start_pushq()
    return procs


async def counts(args: argparse.Namespace) -> dict[str, Any]:
    url, base = args.url, Path(tempfile.mkdtemp(prefix="pushq-bench-pgcounts-"))
    schema = args.schema or f"pushq_bench_pgcounts_{uuid.uuid4().hex[:8]}"
    figures: dict[str, Any] = {"rows": args.rows, "schema": schema}
    try:
        if not args.schema:
            await migrated(url, schema)
            started = time.perf_counter()
            await populate(url, schema, args.rows, "http://127.0.0.1:9/job")
            figures["populate_s"] = time.perf_counter() - started
        procs = serve(base, url, schema)
        try:
            timed_get(procs.api + "/metrics", 5)  # warm-up: the pool's connections, plans
            timed_get(procs.api + "/v1/queues", 5)
            assert procs.pushq is not None
            cpu = cpu_seconds(procs.pushq.pid)
            metrics_s, metrics = timed_get(procs.api + "/metrics", args.times)
            metrics_cpu = cpu_seconds(procs.pushq.pid) - cpu
            queues_s, queues = timed_get(procs.api + "/v1/queues", args.times)
            queues_cpu = cpu_seconds(procs.pushq.pid) - cpu - metrics_cpu
        finally:
            procs.close()
        old = await old_statements(url, schema)
        truth = old.pop("truth")
        shown, listed = shown_by_metrics(metrics), listed_by_queues(queues)
        figures |= {
            "metrics_median_ms": statistics.median(metrics_s) * 1000,
            "metrics_max_ms": max(metrics_s) * 1000,
            "queues_median_ms": statistics.median(queues_s) * 1000,
            "queues_max_ms": max(queues_s) * 1000,
            "metrics_pushq_cpu_us_per_request": metrics_cpu / args.times * 1e6,
            "queues_pushq_cpu_us_per_request": queues_cpu / args.times * 1e6,
            "requests_each": args.times,
            **old,
            "metrics_counts_ok": shown == truth,
            "queues_counts_ok": listed == {k: v for k, v in truth.items() if k[0].startswith("q")},
        }
        if not figures["metrics_counts_ok"]:
            figures["metrics_shown"] = {f"{q}/{s}": n for (q, s), n in sorted(shown.items())}
            figures["table"] = {f"{q}/{s}": n for (q, s), n in sorted(truth.items())}
        if args.baseline:
            command = from_checkout(Path(args.baseline), "pushq")
            procs = serve(base, url, schema, command)
            try:
                assert procs.pushq is not None
                cpu = cpu_seconds(procs.pushq.pid)
                metrics_s, _ = timed_get(procs.api + "/metrics", 3)
                queues_s, _ = timed_get(procs.api + "/v1/queues", 3)
                cpu = cpu_seconds(procs.pushq.pid) - cpu
            finally:
                procs.close()
            figures["baseline_metrics_median_ms"] = statistics.median(metrics_s) * 1000
            figures["baseline_queues_median_ms"] = statistics.median(queues_s) * 1000
            figures["baseline_pushq_cpu_us_per_request"] = cpu / 6 * 1e6
    finally:
        if not args.keep:
            await admin(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_counts", description=__doc__)
    parser.add_argument("scenarios", nargs="+", choices=("hot", "triggers", "counts"))
    parser.add_argument("--url", default=os.environ.get("PUSHQ_TEST_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (hot)")
    parser.add_argument("--jobs", type=int, default=400, help="jobs per phase and round (hot)")
    parser.add_argument("--repeats", type=int, default=200, help="runs per statement (triggers)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="jobs in the table (counts)")
    parser.add_argument("--times", type=int, default=20, help="requests per figure (counts)")
    parser.add_argument("--baseline", metavar="CHECKOUT", help="an older pushq source tree")
    parser.add_argument("--schema", help="reuse this filled schema (counts; kept)")
    parser.add_argument("--keep", action="store_true", help="keep the counts run's schema")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.schema:
        args.keep = True
    results = []
    if "hot" in args.scenarios:
        figures = asyncio.run(hot(args.url, args.rounds, args.jobs))
        results.append(report("count triggers on the hot path, PostgreSQL", figures))
    if "triggers" in args.scenarios:
        figures = asyncio.run(triggers(args.url, args.repeats))
        results.append(
            report("statement time by trigger design, PostgreSQL (EXPLAIN ANALYZE)", figures)
        )
    if "counts" in args.scenarios:
        figures = asyncio.run(counts(args))
        results.append(
            report(f"/metrics and GET /v1/queues on PostgreSQL, {args.rows:,} rows", figures)
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
