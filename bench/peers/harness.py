"""What every peer script shares: the Redis ledger, the timed run, the JSON report line.

The ledger lives in Redis db 15 (which the Redis brokers use too, so one FLUSHDB
cleans both). Each job records itself with one pipelined round trip: INCR
`bench:done:<run>` counts executions, SADD `bench:seen:<run>` the job number, so
duplicates = executions - distinct jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import redis
import redis.asyncio

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

_redis = redis.Redis.from_url(REDIS_URL)


def record(run_id: str, n: int) -> None:
    """Called by each job: count the execution and remember which job ran."""
    pipe = _redis.pipeline(transaction=False)
    pipe.incr(f"bench:done:{run_id}")
    pipe.sadd(f"bench:seen:{run_id}", n)
    pipe.execute()


async def record_async(client: redis.asyncio.Redis, run_id: str, n: int) -> None:
    async with client.pipeline(transaction=False) as pipe:
        pipe.incr(f"bench:done:{run_id}")
        pipe.sadd(f"bench:seen:{run_id}", n)
        await pipe.execute()


def flush_redis() -> None:
    _redis.flushdb()


def counts(run_id: str) -> tuple[int, int]:
    """(executions, distinct jobs) recorded so far for a run."""
    done, seen = _redis.get(f"bench:done:{run_id}"), _redis.scard(f"bench:seen:{run_id}")
    return int(done or 0), int(seen)


def wait_done(run_id: str, jobs: int, timeout: float) -> float | None:
    """Poll until `jobs` distinct jobs ran; the time it happened, or None on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if counts(run_id)[1] >= jobs:
            return time.time()
        time.sleep(0.005)
    return None


def threaded(send: Callable[[int], object], jobs: int, concurrency: int) -> None:
    """One library enqueue call per job, from `concurrency` threads (1: a plain loop)."""
    if concurrency <= 1:
        for n in range(jobs):
            send(n)
        return
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in pool.map(send, range(jobs), chunksize=64):
            pass


def start(argvs: Iterable[list[str]], log_name: str) -> list[subprocess.Popen[bytes]]:
    """Start the worker processes; their output goes to /tmp/pushq-peers-<name>.log."""
    with open(f"/tmp/pushq-peers-{log_name}.log", "ab") as log:
        return [
            subprocess.Popen(argv, cwd=HERE, stdout=log, stderr=log, start_new_session=True)
            for argv in argvs
        ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def parser(doc: str | None, concurrency: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs in the timed run")
    parser.add_argument("--warmup", type=int, default=500, help="jobs run before the clock")
    parser.add_argument(
        "--concurrency", type=int, default=concurrency, help="enqueue calls in flight"
    )
    return parser


def versions(*packages: str) -> str:
    return " ".join(f"{name} {version(name)}" for name in packages)


def run(
    peer: str,
    *,
    jobs: int,
    warmup: int,
    enqueue_all: Callable[[str, int], None],
    workers: Callable[[], list[subprocess.Popen[bytes]]],
    settings: str,
    timeout: float = 300,
) -> dict[str, object]:
    """Start the workers, warm up, then time N enqueues and wait until all N ran.

    `enqueue_all(run_id, count)` enqueues jobs 0..count-1 of a run, each job calling
    record(run_id, n). The caller has already cleaned the broker.
    """
    load_before = os.getloadavg()[0]  # the machine is shared: note how busy it was
    procs = workers()
    try:
        if warmup:  # also proves the workers are up before the clock starts
            enqueue_all("warmup", warmup)
            if wait_done("warmup", warmup, timeout=120) is None:
                raise SystemExit(f"{peer}: warm-up jobs did not run; see /tmp/pushq-peers-*.log")
        run_id = uuid.uuid4().hex[:12]
        start_at = time.time()
        enqueue_all(run_id, jobs)
        enqueued_at = time.time()
        done_at = wait_done(run_id, jobs, timeout)
        time.sleep(1)  # let any late duplicate land before counting
        executions, distinct = counts(run_id)
    finally:
        stop(procs)
    result: dict[str, object] = {
        "peer": peer,
        "jobs": jobs,
        "enqueue_per_s": round(jobs / (enqueued_at - start_at), 1),
        "end_to_end_per_s": round(jobs / (done_at - start_at), 1) if done_at else None,
        "duplicates": executions - distinct,
        "ledger_ok": done_at is not None and distinct == jobs,
        "settings": settings,
        "loadavg_before": round(load_before, 2),
    }
    print(json.dumps(result), flush=True)
    return result
