"""`python -m bench.enqueue`: the inbound half of pushq, beside its ceilings, in one run.

Scenarios (default single, batch and counts):

  single   POST /v1/jobs under wrk (32 connections) and, in the same invocation and
           with the same wrk script, a no-op Starlette POST on the same uvicorn
           settings; prints both rates and their ratio (issue 12: >= 0.35).
  batch    POST /v1/jobs/batch, 1,000 jobs per call, 2 clients (target >= 60k jobs/s).
  stages   the batch path without HTTP: CPU per job of validation, to_new_job, the
           store call (its writer thread included) and rendering, in child processes.
  counts   GET /metrics and GET /v1/queues on a database of --rows jobs (default
           10 M) generated with SQL; prints the median and worst time of each and
           checks the counts pushq reports against a full count done beside it.

Jobs are enqueued an hour ahead, so delivery never shares the CPU with the enqueue
being measured. Every scenario checks its ledger: what the server acknowledged is
what the database holds. --baseline CHECKOUT runs an older source tree's pushq
beside this one in the same runs (e.g. `git worktree add .baseline <commit>`).
`python -m bench inbound ...` is the same as `python -m bench.enqueue ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushq.bench.harness import (
    BENCH_TOKEN,
    Procs,
    _wait_http,
    cpu_seconds,
    free_port,
    report,
    start_profiler,
    summarize_profile,
)

LOG_LEVEL = "INFO"  # --log-level
BASELINE: Path | None = None  # --baseline: an older checkout measured beside this one
PROFILE: Path | None = None  # --profile: py-spy stacks of pushq's measured phases go here

AUTH = {"Authorization": f"Bearer {BENCH_TOKEN}"}


# -- the ceiling: a no-op Starlette POST on the same server settings -------------------


def run_noop(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def accept(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True}, status_code=201)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/v1/jobs", accept, methods=["POST"]), Route("/health", health)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


class Noop:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.enqueue", "_noop", str(self.port)]
        )
        _wait_http(self.url + "/health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# -- load ------------------------------------------------------------------------------


def wrk(url: str, body: str, seconds: int, connections: int, script_dir: Path) -> dict[str, Any]:
    """wrk POSTing `body` to `url`: requests/s, requests done, non-2xx, p99."""
    script = script_dir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {BENCH_TOKEN}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("done_requests %d\\n", summary.requests))\n'
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    return {
        "per_s": float(out.split("Requests/sec:")[1].split()[0]),
        "requests": int(out.split("done_requests ")[1].split()[0]),
        "non_2xx": int(out.split("non2xx ")[1].split()[0]),
        "p99": out.split("99%")[1].split()[0] if "99%" in out else "?",
    }


def stored_jobs(procs: Procs) -> int:
    """Jobs in pushq's database, counted directly (the ledger's other side)."""
    with sqlite3.connect(procs.data_dir / "pushq.db") as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])


@dataclass
class Tally:
    """What one server did over the measured wrk runs."""

    rates: list[float] = field(default_factory=list)
    p99s: list[str] = field(default_factory=list)
    cpu: float = 0.0
    done: int = 0
    non_2xx: int = 0

    def run(
        self, url: str, pid: int, body: str, seconds: int, connections: int, where: Path
    ) -> None:
        before = cpu_seconds(pid)
        result = wrk(url, body, seconds, connections, where)
        self.cpu += cpu_seconds(pid) - before
        self.rates.append(result["per_s"])
        self.p99s.append(result["p99"])
        self.done += result["requests"] - result["non_2xx"]
        self.non_2xx += result["non_2xx"]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def cpu_us(self) -> float:
        return self.cpu / max(1, self.done) * 1e6


def single(base: Path, seconds: int, connections: int, rounds: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    noop = Noop()
    procs = fresh(base, "single")
    older = fresh(base, "single-baseline", BASELINE) if BASELINE else None
    assert procs.pushq is not None
    body = json.dumps({"url": procs.worker_url + "/job", "body": {"n": 1}, "delay": 3600})
    where = procs.data_dir
    servers = [
        ("noop", noop.url, noop.proc.pid, None),
        ("pushq", procs.api, procs.pushq.pid, procs),
    ]
    if older is not None:
        assert older.pushq is not None
        servers.append(("baseline", older.api, older.pushq.pid, older))
    tallies = {name: Tally() for name, *_ in servers}
    stored: dict[str, int] = {}
    try:
        for _, url, _, _ in servers:  # warm-up
            wrk(url + "/v1/jobs", body, 2, connections, where)
        time.sleep(1)  # the warm-up's last requests commit
        before = {name: stored_jobs(p) for name, _, _, p in servers if p is not None}
        for _ in range(rounds):  # interleaved, so all see the same machine
            for name, url, pid, _ in servers:
                profiler = profile(procs, "single") if name == "pushq" else None
                tallies[name].run(url + "/v1/jobs", pid, body, seconds, connections, where)
                stop_profile(profiler, "single")
        time.sleep(1)
        stored = {name: stored_jobs(p) - before[name] for name, _, _, p in servers if p}
    finally:
        noop.close()
        procs.close()
        if older is not None:
            older.close()
    ceiling, pushq = tallies["noop"], tallies["pushq"]
    figures: dict[str, Any] = {
        "noop_starlette_per_s": ceiling.rate,
        "pushq_enqueue_per_s": pushq.rate,
        "ratio": pushq.rate / ceiling.rate,
        "noop_cpu_us_per_request": ceiling.cpu_us,
        "pushq_cpu_us_per_enqueue": pushq.cpu_us,
        # on a machine shared with other work the rates follow the CPU each gets;
        # CPU per request is the steadier comparison
        "cpu_ratio": ceiling.cpu_us / pushq.cpu_us,
        "pushq_p99": ",".join(pushq.p99s),
    }
    if "baseline" in tallies:
        old = tallies["baseline"]
        figures |= {
            "baseline_enqueue_per_s": old.rate,
            "baseline_ratio": old.rate / ceiling.rate,
            "baseline_cpu_us_per_enqueue": old.cpu_us,
            "baseline_cpu_ratio": ceiling.cpu_us / old.cpu_us,
            "pushq_vs_baseline": pushq.rate / old.rate,
        }
    # wrk stops with requests in flight: those may be stored but not counted by it
    figures["non_2xx"] = sum(t.non_2xx for t in tallies.values())
    figures["ledger_ok"] = all(
        tallies[name].done <= n <= tallies[name].done + connections * rounds
        for name, n in stored.items()
    )
    figures["rounds"] = rounds
    figures["connections"] = connections
    return figures


async def post_batches(procs: Procs, count: int, size: int, clients: int) -> float:
    import aiohttp

    target = procs.worker_url + "/job"
    jobs = json.dumps(
        {"jobs": [{"url": target, "body": {"n": i}, "delay": 3600} for i in range(size)]}
    )
    headers = {**AUTH, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def client(calls: int) -> None:
            for _ in range(calls):
                async with session.post(procs.api + "/v1/jobs/batch", data=jobs) as response:
                    await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"batch failed: {response.status}")

        calls = count // size
        start = time.perf_counter()
        await asyncio.gather(*(client(calls // clients) for _ in range(clients)))
        return time.perf_counter() - start


def batch(base: Path, count: int, size: int, clients: int, rounds: int) -> dict[str, Any]:
    procs = fresh(base, "batch")
    older = fresh(base, "batch-baseline", BASELINE) if BASELINE else None
    servers = [("pushq", procs)] + ([("baseline", older)] if older is not None else [])
    count = count // (size * clients) * size * clients
    rates: dict[str, list[float]] = {name: [] for name, _ in servers}
    cpu = dict.fromkeys(rates, 0.0)
    ledger_ok = True
    try:
        for _, server in servers:
            asyncio.run(post_batches(server, 10 * size, size, clients))  # warm-up
        for _ in range(rounds):
            for name, server in servers:
                assert server.pushq is not None
                before, cpu_before = stored_jobs(server), cpu_seconds(server.pushq.pid)
                profiler = profile(server, "batch") if name == "pushq" else None
                elapsed = asyncio.run(post_batches(server, count, size, clients))
                cpu[name] += cpu_seconds(server.pushq.pid) - cpu_before
                stop_profile(profiler, "batch")
                rates[name].append(count / elapsed)
                ledger_ok = ledger_ok and stored_jobs(server) - before == count
    finally:
        procs.close()
        if older is not None:
            older.close()
    figures: dict[str, Any] = {
        "jobs_per_run": count,
        "batch_size": size,
        "clients": clients,
        "rounds": rounds,
        "enqueue_per_s": statistics.median(rates["pushq"]),
        "pushq_cpu_us_per_job": cpu["pushq"] / (count * rounds) * 1e6,
    }
    if older is not None:
        figures |= {
            "baseline_enqueue_per_s": statistics.median(rates["baseline"]),
            "baseline_cpu_us_per_job": cpu["baseline"] / (count * rounds) * 1e6,
            "pushq_vs_baseline": figures["enqueue_per_s"] / statistics.median(rates["baseline"]),
        }
    figures["ledger_ok"] = ledger_ok
    return figures


# -- the batch path's stages, in-process ---------------------------------------------------


def run_stages(rounds: int = 25) -> None:
    """CPU per job of each stage of a 1,000-job batch enqueue, without HTTP (the
    process's CPU, so the SQLite writer thread is counted); prints JSON."""
    import inspect
    import os

    import orjson

    if os.environ.get("PUSHQ_BENCH_CHECKOUT"):
        sys.path.insert(0, os.environ["PUSHQ_BENCH_CHECKOUT"])

    from pushq.server.api.common import validate
    from pushq.server.api.jobs import to_new_job
    from pushq.server.api.schemas import BatchRequest
    from pushq.server.config import Settings
    from pushq.server.render import job_json
    from pushq.server.store.sqlite import SQLiteStore
    from pushq.signing import generate_secret

    settings = Settings(api_token="t" * 20, signing_secrets=(generate_secret(),))
    unparsed = "body_is_json" in inspect.signature(job_json).parameters
    jobs = [{"url": "http://127.0.0.1:9/job", "body": {"n": i}, "delay": 3600} for i in range(1000)]
    raw = orjson.dumps({"jobs": jobs})
    stages: dict[str, list[float]] = {"validate": [], "to_new_job": [], "store": [], "render": []}

    async def main(where: Path) -> None:
        store = SQLiteStore(where / "pushq.db")
        await store.open()
        for i in range(rounds):
            t0 = time.process_time()
            batch = validate(BatchRequest, orjson.loads(raw))
            t1 = time.process_time()
            now = time.time()
            new = [
                to_new_job(job, settings, now, f"jobs[{n}].") for n, job in enumerate(batch.jobs)
            ]
            t2 = time.process_time()
            results = await store.enqueue(
                jobs=new, now=now, idempotency_ttl=3600, defaults=settings.job_defaults
            )
            t3 = time.process_time()
            out = []
            for result in results:
                extra = {"body_is_json": True} if unparsed else {}
                body = job_json(result.job, now, **extra)
                body["deduplicated"] = False
                out.append(body)
            orjson.dumps({"jobs": out})
            t4 = time.process_time()
            if i >= 5:  # warmed up
                for name, a, b in (
                    ("validate", t0, t1),
                    ("to_new_job", t1, t2),
                    ("store", t2, t3),
                    ("render", t3, t4),
                ):
                    stages[name].append((b - a) / len(jobs) * 1e6)
        await store.close()

    import pushq

    with tempfile.TemporaryDirectory() as where:
        asyncio.run(main(Path(where)))
    print(f"pushq from {Path(pushq.__file__).parent}", file=sys.stderr)
    medians = {name: statistics.median(v) for name, v in stages.items()}
    print(json.dumps(medians | {"total": sum(medians.values())}))


def stages(rounds: int) -> dict[str, Any]:
    """run_stages in a child process, for this checkout and --baseline's, in turns."""
    import os

    figures: dict[str, Any] = {}
    runs: dict[str, list[dict[str, float]]] = {"pushq": [], "baseline": []}
    for _ in range(rounds):
        for name, checkout in (("pushq", None), ("baseline", BASELINE)):
            if name == "baseline" and checkout is None:
                continue
            # the stages code is this file's; the pushq it imports is the checkout's
            env = dict(os.environ, PUSHQ_BENCH_CHECKOUT=str(checkout.resolve()) if checkout else "")
            out = subprocess.run(
                [sys.executable, "-m", "bench.enqueue", "_stages"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    for name, results in runs.items():
        for stage in results[0] if results else ():
            figures[f"{name}_{stage}_us_per_job"] = statistics.median(r[stage] for r in results)
    if runs["baseline"]:
        figures["baseline_vs_pushq_cpu"] = (
            figures["baseline_total_us_per_job"] / figures["pushq_total_us_per_job"]
        )
    return figures


# -- counts on a big table ---------------------------------------------------------------

# The generated history: (state, share of the rows), over QUEUES queues.
MIX = (
    ("succeeded", 0.90),
    ("dead", 0.03),
    ("cancelled", 0.02),
    ("scheduled", 0.02),
    ("pending", 0.02),
    ("retrying", 0.01),
)
QUEUES = 8


def populate(db: Path, rows: int, target: str) -> None:
    """`rows` jobs in MIX's states over QUEUES queues, written by SQL in one pass."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    now = time.time()
    done = 0
    step = 1_000_000
    for state, share in MIX:
        n = round(rows * share) if state != MIX[-1][0] else rows - done
        run_at = now + 3600 if state in ("scheduled", "retrying") else now - 3600
        for start in range(done, done + n, step):
            stop = min(done + n, start + step)
            conn.execute("BEGIN")
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT :start UNION ALL SELECT i + 1 FROM n"
                " WHERE i + 1 < :stop)"
                " INSERT INTO jobs (id, queue, url, method, state, priority, attempts,"
                " max_attempts, backoff_base, backoff_max, backoff_jitter, timeout,"
                " created_at, run_at, finished_at)"
                " SELECT printf('00GEN%021d', i), 'q' || (i % :queues), :url, 'POST', :state,"
                " 0, 1, 13, 30, 28800, 1, 30, :now - 7200 + i * 1e-6, :run_at,"
                " CASE WHEN :state IN ('succeeded', 'dead', 'cancelled') THEN :now END"
                " FROM n",
                {
                    "start": start,
                    "stop": stop,
                    "queues": QUEUES,
                    "url": target,
                    "state": state,
                    "now": now,
                    "run_at": run_at,
                },
            )
            conn.execute("COMMIT")
        done += n
    # the queues (paused: nothing changes while the counts are read) and their
    # unfinished counts, as pushq keeps them
    conn.execute("BEGIN")
    for q in range(QUEUES):
        conn.execute(
            "INSERT INTO queues (name, paused, created_at, updated_at) VALUES (?, 1, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET paused = 1",
            (f"q{q}", now, now),
        )
    conn.execute(
        "UPDATE queues SET unfinished = (SELECT count(*) FROM jobs WHERE jobs.queue = queues.name"
        " AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying'))"
    )
    conn.execute("COMMIT")
    conn.close()


def timed_get(url: str, times: int) -> tuple[list[float], bytes]:
    took, body = [], b""
    for _ in range(times):
        request = urllib.request.Request(url, headers=AUTH)
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            body = response.read()
        took.append(time.perf_counter() - start)
    return took, body


def truth(db: Path) -> dict[tuple[str, str], int]:
    """A count of the jobs table: what count_by_state ran on every scrape before issue 12."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT queue, CASE WHEN state IN ('scheduled', 'blocked') AND run_at <= ?"
            " THEN 'pending' WHEN state = 'blocked' THEN 'scheduled' ELSE state END, count(*)"
            " FROM jobs GROUP BY 1, 2",
            (time.time(),),
        ).fetchall()
    counts: dict[tuple[str, str], int] = {}
    for queue, state, n in rows:
        counts[queue, state] = counts.get((queue, state), 0) + n
    return counts


def counts(base: Path, rows: int, times: int) -> dict[str, Any]:
    procs = fresh(base, "counts")
    try:
        procs.stop_pushq()  # migrated: now fill it
        started = time.perf_counter()
        populate(procs.data_dir / "pushq.db", rows, procs.worker_url + "/job")
        populated = time.perf_counter() - started
        procs.start_pushq()
        metrics_s, metrics = timed_get(procs.api + "/metrics", times)
        queues_s, queues = timed_get(procs.api + "/v1/queues", times)
        scans = []
        for _ in range(3):
            start = time.perf_counter()
            expected = truth(procs.data_dir / "pushq.db")
            scans.append(time.perf_counter() - start)
    finally:
        procs.close()
    shown: dict[tuple[str, str], int] = {}
    for line in metrics.decode().splitlines():
        if line.startswith("pushq_jobs{"):
            queue = line.split('queue="')[1].split('"')[0]
            state = line.split('state="')[1].split('"')[0]
            if value := int(float(line.rsplit(" ", 1)[1])):
                shown[queue, state] = value
    listed = {
        (q["name"], state): n
        for q in json.loads(queues)["queues"]
        for state, n in q["stats"].items()
        if isinstance(n, int) and not isinstance(n, bool) and n and state in _STATES
    }
    expected_listed = {k: v for k, v in expected.items() if k[0] in {q for q, _ in listed}}
    return {
        "rows": rows,
        "populate_s": populated,
        "metrics_median_ms": statistics.median(metrics_s) * 1000,
        "metrics_max_ms": max(metrics_s) * 1000,
        "queues_median_ms": statistics.median(queues_s) * 1000,
        "queues_max_ms": max(queues_s) * 1000,
        "requests_each": times,
        "table_count_median_ms": statistics.median(scans) * 1000,
        "metrics_counts_ok": shown == expected,
        "queues_counts_ok": listed == expected_listed,
    }


_STATES = ("scheduled", "pending", "active", "retrying", "succeeded", "dead", "cancelled")


def profile(procs: Procs, name: str) -> subprocess.Popen[bytes] | None:
    if PROFILE is None:
        return None
    PROFILE.mkdir(parents=True, exist_ok=True)
    return start_profiler(procs, PROFILE / f"{name}.txt")


def stop_profile(profiler: subprocess.Popen[bytes] | None, name: str) -> None:
    if profiler is None or PROFILE is None:
        return
    profiler.send_signal(signal.SIGINT)
    profiler.wait(timeout=60)
    summarize_profile(PROFILE / f"{name}.txt", top=40)


# -- running ------------------------------------------------------------------------------


def from_checkout(checkout: Path, module: str) -> list[str]:
    """A command running `python -m module` with `checkout`'s packages first on the
    path (PYTHONPATH would not do: -m puts the working directory before it)."""
    code = (
        f"import runpy, sys; sys.path.insert(0, {str(checkout.resolve())!r}); "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code]


def fresh(base: Path, name: str, checkout: Path | None = None) -> Procs:
    """A pushq and its worker endpoint on a fresh data dir; `checkout`: run the pushq
    package of that source tree instead (--baseline), for before/after in one run."""
    data_dir = base / name
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    # durable commits and the default log level, as the targets are stated
    env = {"PUSHQ_SQLITE_SYNCHRONOUS": "FULL", "PUSHQ_LOG_LEVEL": LOG_LEVEL}
    procs = Procs(data_dir, env=env)
    if checkout is not None:
        procs.command = from_checkout(checkout, "pushq")
    procs.start_worker()
    procs.start_pushq()
    return procs


SCENARIOS = ("single", "batch", "stages", "counts")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_noop"]:
        run_noop(int(argv[1]))
        return 0
    if argv[:1] == ["_stages"]:
        run_stages()
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.enqueue", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", default=["single", "batch", "counts"], help=" | ".join(SCENARIOS)
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved no-op/pushq wrk runs")
    parser.add_argument("--batch-jobs", type=int, default=200_000, help="jobs per batch run")
    parser.add_argument("--rows", type=int, default=10_000_000, help="jobs for the counts run")
    parser.add_argument("--times", type=int, default=20, help="requests per counts figure")
    parser.add_argument("--data-dir", help="where to keep the databases (default: a temp dir)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also measure the pushq of this source tree (e.g. a git worktree of an older"
        " commit) in the same runs",
    )
    parser.add_argument("--log-level", default="INFO", help="pushq's log level (default INFO)")
    parser.add_argument("--profile", help="record py-spy stacks of pushq's runs in this dir")
    args = parser.parse_args(argv)
    global PROFILE, LOG_LEVEL, BASELINE
    BASELINE = Path(args.baseline) if args.baseline else None
    PROFILE = Path(args.profile) if args.profile else None
    LOG_LEVEL = args.log_level
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        print(
            f"python -m bench.enqueue: unknown scenario {', '.join(sorted(unknown))}",
            file=sys.stderr,
        )
        return 2
    base = Path(args.data_dir or tempfile.mkdtemp(prefix="pushq-bench-enqueue-"))
    results = []
    if "single" in args.scenarios:
        figures = single(base, args.seconds, args.connections, args.rounds)
        results.append(report("single enqueue ÷ no-op Starlette POST (wrk)", figures))
    if "batch" in args.scenarios:
        figures = batch(base, args.batch_jobs, 1000, 2, args.rounds)
        results.append(report("batch enqueue, 1,000 per call", figures))
    if "stages" in args.scenarios:
        figures = stages(args.rounds)
        results.append(report("batch enqueue path in-process, CPU per job by stage", figures))
    if "counts" in args.scenarios:
        figures = counts(base, args.rows, args.times)
        results.append(report(f"/metrics and GET /v1/queues, {args.rows:,} rows", figures))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    if not args.data_dir:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
