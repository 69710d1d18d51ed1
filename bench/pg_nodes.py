"""PostgreSQL with 1, 2 and 3 `pushq serve` nodes on one database, beside SQLite's
single node, in one run.

    python -m bench.pg_nodes [--url postgresql://postgres@127.0.0.1:5432/test]
                             [--nodes 1,2,3] [--jobs 10000] [--rate 300] [--seconds 10]

Each configuration gets fresh storage (a new SQLite data dir; a new PostgreSQL
schema, dropped afterwards) and the same local worker endpoint. Enqueues go to the
nodes in turn (a round-robin, as a load balancer would spread them); every node
claims and delivers. Per configuration:

- throughput: `--jobs` jobs offered as fast as `--concurrency` requests in flight
  allow (after a warm-up); enqueue/s, end-to-end jobs/s (first enqueue to last
  delivery), pushq's CPU per job (every pushq process), PostgreSQL's CPU per job;
- latency: `--rate` jobs/s offered for `--seconds`, enqueue to delivery p50/p99.

PostgreSQL's CPU is read from /proc for the server backends of this run's
connections (`application_name` tags them), which is the work of pushq's
statements; the server's shared processes (WAL writer, checkpointer...) serve every
client of the server and are reported separately as `pg_server_cpu_us_per_job`,
which includes whatever else ran on the server meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pushq.bench.harness import (
    BENCH_TOKEN,
    Procs,
    cpu_seconds,
    percentile,
    report,
    reset_worker,
    wait_delivered,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


# -- PostgreSQL's own CPU ------------------------------------------------------------------
def _proc_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def postgres_pids() -> list[int]:
    """Every process of the PostgreSQL server (by its command name)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() == "postgres":
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


async def backend_pids(url: str, application: str) -> list[int]:
    """The server backends of this run's connections."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application
        )
        return [row[0] for row in rows]
    finally:
        await conn.close()


class PostgresCpu:
    """CPU seconds of this run's backends and of the whole server, between two reads."""

    def __init__(self, url: str, application: str) -> None:
        self.url, self.application = url, application
        self.backends: dict[int, float] = {}
        self.server: dict[int, float] = {}

    async def start(self) -> None:
        self.backends = {p: _proc_cpu(p) for p in await backend_pids(self.url, self.application)}
        self.server = {p: _proc_cpu(p) for p in postgres_pids()}

    async def stop(self) -> tuple[float, float]:
        """(this run's backends, the whole server) CPU seconds since start(); a backend
        that appeared meanwhile counts from zero (one that ended is not counted: the
        nodes' pools keep their connections through a run)."""
        backends = await backend_pids(self.url, self.application)
        ours = sum(_proc_cpu(p) - self.backends.get(p, 0.0) for p in backends)
        server = sum(_proc_cpu(p) - self.server.get(p, 0.0) for p in postgres_pids())
        return ours, server


# -- load across nodes -------------------------------------------------------------------
async def enqueue_round_robin(
    apis: list[str], target: str, *, count: int, rate: float | None, concurrency: int
) -> dict[str, Any]:
    """bench.pushq_bench.enqueue_load, with job i sent to node i mod len(apis)."""
    import aiohttp

    headers = {"authorization": f"Bearer {BENCH_TOKEN}", "content-type": "application/json"}
    enqueue_lat: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        semaphore = asyncio.Semaphore(concurrency)
        start = time.time()

        async def offer(i: int) -> None:
            nonlocal failures
            scheduled = start + i / rate if rate else time.time()
            body = f'{{"url":"{target}","body":{{"t":{scheduled}}}}}'
            async with semaphore:
                try:
                    url = apis[i % len(apis)] + "/v1/jobs"
                    async with session.post(url, data=body) as response:
                        await response.read()
                        if response.status != 201:
                            failures += 1
                except aiohttp.ClientError:
                    failures += 1
            enqueue_lat.append(time.time() - scheduled)

        tasks = []
        for i in range(count):
            if rate:
                delay = start + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(offer(i)))
        await asyncio.gather(*tasks)
        done = time.time()
    return {
        "start": start,
        "enqueue_rate": count / (done - start),
        "enqueue_p99_ms": percentile(enqueue_lat, 99) * 1000,
        "failures": failures,
    }


class Cluster:
    """`count` pushq nodes on one store (SQLite: count must be 1), one shared worker."""

    def __init__(self, base: Path, name: str, count: int, env: dict[str, str]) -> None:
        self.nodes: list[Procs] = []
        first = Procs(base / f"{name}-0", env=dict(env))
        first.data_dir.mkdir(parents=True)
        first.start_worker()
        self.nodes.append(first)
        for n in range(1, count):
            node = Procs(base / f"{name}-{n}", worker_port=first.worker_port, env=dict(env))
            node.data_dir.mkdir(parents=True)
            self.nodes.append(node)
        for node in self.nodes:
            node.start_pushq()

    @property
    def apis(self) -> list[str]:
        return [node.api for node in self.nodes]

    @property
    def target(self) -> str:
        return self.nodes[0].worker_url + "/job"

    def cpu(self) -> float:
        return sum(cpu_seconds(node.pushq.pid) for node in self.nodes if node.pushq)

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.close()


async def measure(
    cluster: Cluster, args: argparse.Namespace, pg: PostgresCpu | None
) -> dict[str, Any]:
    first = cluster.nodes[0]
    # warm-up: connections made, code paths hot
    await reset_worker(first)
    warm = min(2000, args.jobs)
    await enqueue_round_robin(
        cluster.apis, cluster.target, count=warm, rate=None, concurrency=args.concurrency
    )
    await wait_delivered(first, warm)

    await reset_worker(first)
    cpu_before = cluster.cpu()
    if pg is not None:
        await pg.start()
    load = await enqueue_round_robin(
        cluster.apis, cluster.target, count=args.jobs, rate=None, concurrency=args.concurrency
    )
    stats = await wait_delivered(first, args.jobs)
    pushq_cpu = cluster.cpu() - cpu_before
    figures: dict[str, Any] = {
        "nodes": len(cluster.nodes),
        "jobs": args.jobs,
        "enqueue_per_s": load["enqueue_rate"],
        "end_to_end_per_s": args.jobs / (stats["last_at"] - load["start"]),
        "pushq_cpu_us_per_job": pushq_cpu / args.jobs * 1e6,
    }
    if pg is not None:
        ours, server = await pg.stop()
        figures["pg_backends_cpu_us_per_job"] = ours / args.jobs * 1e6
        figures["pg_server_cpu_us_per_job"] = server / args.jobs * 1e6
    figures["duplicates"] = stats["duplicates"]
    ledger_ok = stats["unique"] == args.jobs and load["failures"] == 0

    await reset_worker(first)
    count = int(args.rate * args.seconds)
    offered = await enqueue_round_robin(
        cluster.apis, cluster.target, count=count, rate=args.rate, concurrency=256
    )
    latencies = await wait_delivered(first, count)
    lat = latencies["latencies"][count // 10 :]  # the first 10% warm up
    figures["latency_offered_per_s"] = args.rate
    figures["latency_p50_ms"] = percentile(lat, 50) * 1000
    figures["latency_p99_ms"] = percentile(lat, 99) * 1000
    figures["duplicates"] += latencies["duplicates"]
    figures["ledger_ok"] = ledger_ok and latencies["unique"] == count and offered["failures"] == 0
    return figures


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = Path(args.data_dir or tempfile.mkdtemp(prefix="pushq-pg-nodes-"))
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    results = []

    async def on_sqlite(name: str) -> dict[str, Any]:
        cluster = Cluster(base, name, 1, {"PUSHQ_SQLITE_SYNCHRONOUS": "FULL"})
        try:
            return await measure(cluster, args, None)
        finally:
            cluster.close()

    # SQLite before and after the PostgreSQL runs: the ratios are to the mean of the
    # two, so that a machine that gets busier or quieter during the run does not
    # favour whichever store ran first
    before = report("SQLite, 1 node (before)", await on_sqlite("sqlite-before"))
    results.append(before)
    postgres = []
    for count in args.nodes:
        schema = f"pushq_bench_{uuid.uuid4().hex[:8]}"
        application = f"pushq-bench-{schema}"
        await _admin(args.url, f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in args.url else "?"
        database = f"{args.url}{separator}search_path={schema}&application_name={application}"
        try:
            cluster = Cluster(base, schema, count, {"PUSHQ_DATABASE_URL": database})
            try:
                figures = await measure(cluster, args, PostgresCpu(args.url, application))
            finally:
                cluster.close()
        finally:
            await _admin(args.url, f'DROP SCHEMA "{schema}" CASCADE')
        postgres.append(report(f"PostgreSQL, {count} node{'s' * (count > 1)}", figures))
    after = report("SQLite, 1 node (after)", await on_sqlite("sqlite-after"))
    sqlite = (before["end_to_end_per_s"] + after["end_to_end_per_s"]) / 2
    print(f"\n== end to end against SQLite's mean ({sqlite:,.1f} jobs/s)")
    for figures in postgres:
        figures["end_to_end_vs_sqlite"] = figures["end_to_end_per_s"] / sqlite
        print(f"  {figures['scenario']:28} {figures['end_to_end_vs_sqlite']:.2f}")
    results += [*postgres, after]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_nodes", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("PUSHQ_TEST_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument(
        "--nodes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2, 3],
        help="PostgreSQL node counts to run, e.g. 1,2,3",
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per throughput run")
    parser.add_argument("--concurrency", type=int, default=64, help="enqueue requests in flight")
    parser.add_argument("--rate", type=float, default=300, help="offered jobs/s for latency")
    parser.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    parser.add_argument("--data-dir", help="where to keep the nodes' data dirs")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
