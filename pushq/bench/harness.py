"""`pushq bench`: a real pushq, a real local worker endpoint, open-loop HTTP load.

Every run checks its ledger (enqueued = delivered + still queued, duplicates
counted) and prints enqueue/s, end-to-end jobs/s, latency p50/p99/max and RSS.
docs/benchmarks.md records the figures and how they were taken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

BENCH_TOKEN = "bench-token-0123456789abcdef"
BENCH_SECRET = "whsec_" + "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_command() -> list[str]:
    """How this harness starts its own helper processes (the worker endpoint, the
    ceiling's handler): `pushq bench _worker PORT` from the package or the binary."""
    if getattr(sys, "frozen", False):  # the single binary: it is pushq itself
        return [sys.executable, "bench"]
    return [sys.executable, "-m", "pushq", "bench"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- the worker endpoint: a bare ASGI app that counts and times deliveries -------------


class WorkerState:
    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.received = 0
        self.latencies: list[float] = []
        self.first_at = 0.0
        self.last_at = 0.0


def worker_app(state: WorkerState) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "GET":
            stats = {
                "received": state.received,
                "unique": len(state.seen),
                "duplicates": state.received - len(state.seen),
                "first_at": state.first_at,
                "last_at": state.last_at,
                "latencies": state.latencies if scope["path"] == "/latencies" else None,
            }
            payload = json.dumps(stats).encode()
        else:
            if scope["path"] == "/reset":
                state.__init__()  # type: ignore[misc]
            else:
                now = time.time()
                headers = dict(scope["headers"])
                state.seen.add(headers.get(b"webhook-id", b"").decode())
                state.received += 1
                state.first_at = state.first_at or now
                state.last_at = now
                if body.startswith(b'{"t":'):
                    state.latencies.append(now - json.loads(body)["t"])
            payload = b""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": payload})

    return app


def ceiling_app() -> Any:
    """The raw push ceiling's endpoint: a trivial Starlette POST handler, no queue."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def job(request: Request) -> Response:
        await request.body()
        return Response(b"", status_code=200)

    return Starlette(routes=[Route("/job", job, methods=["POST"])])


def run_ceiling(port: int) -> None:
    import uvicorn

    uvicorn.run(
        ceiling_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


def run_worker(port: int) -> None:
    import uvicorn

    uvicorn.run(
        worker_app(WorkerState()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


# -- processes --------------------------------------------------------------------------


@dataclass
class Procs:
    data_dir: Path
    pushq_port: int = field(default_factory=free_port)
    worker_port: int = field(default_factory=free_port)
    pushq: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # How to run `pushq`: the installed package by default, or a binary (--pushq dist/pushq).
    command: list[str] = field(default_factory=lambda: bench_command()[:-1])

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.pushq_port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}"

    def start_worker(self) -> None:
        self.worker = subprocess.Popen([*bench_command(), "_worker", str(self.worker_port)])
        _wait_http(self.worker_url + "/stats")

    def start_pushq(self, wait: bool = True) -> float:
        env = dict(os.environ)
        env.update(
            {
                "PUSHQ_API_TOKEN": BENCH_TOKEN,
                "PUSHQ_SIGNING_SECRET": BENCH_SECRET,
                "PUSHQ_PORT": str(self.pushq_port),
                "PUSHQ_DATA_DIR": str(self.data_dir),
            }
        )
        env.update(self.env)
        started = time.time()
        log = open(self.data_dir / "pushq.log", "ab")  # noqa: SIM115 - the child owns it
        self.pushq = subprocess.Popen([*self.command, "serve"], env=env, stdout=log, stderr=log)
        log.close()
        if wait:
            _wait_http(self.api + "/health")
        return started

    def stop_pushq(self) -> None:
        if self.pushq is not None and self.pushq.poll() is None:
            self.pushq.send_signal(signal.SIGTERM)
            self.pushq.wait(timeout=60)

    def close(self) -> None:
        self.stop_pushq()
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()


def _wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


# -- load -------------------------------------------------------------------------------


async def _worker_stats(session: Any, procs: Procs, latencies: bool = False) -> dict[str, Any]:
    path = "/latencies" if latencies else "/stats"
    async with session.get(procs.worker_url + path) as response:
        data: dict[str, Any] = await response.json(content_type=None)
        return data


async def enqueue_load(
    procs: Procs,
    *,
    count: int,
    rate: float | None,
    concurrency: int,
    job_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Offer `count` jobs (open loop at `rate`/s, or as fast as `concurrency` allows)."""
    import aiohttp

    headers = {"authorization": f"Bearer {BENCH_TOKEN}", "content-type": "application/json"}
    url = procs.api + "/v1/jobs"
    target = procs.worker_url + "/job"
    extra = json.dumps(job_extra)[1:-1] if job_extra else ""
    enqueue_lat: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        semaphore = asyncio.Semaphore(concurrency)
        start = time.time()

        async def offer(i: int) -> None:
            nonlocal failures
            scheduled = start + i / rate if rate else time.time()
            body = f'{{"url":"{target}","body":{{"t":{scheduled}}}{"," + extra if extra else ""}}}'
            async with semaphore:
                try:
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
        enqueue_done = time.time()
    return {
        "start": start,
        "enqueue_seconds": enqueue_done - start,
        "enqueue_rate": count / (enqueue_done - start),
        "enqueue_p50_ms": percentile(enqueue_lat, 50) * 1000,
        "enqueue_p99_ms": percentile(enqueue_lat, 99) * 1000,
        "failures": failures,
    }


async def wait_delivered(procs: Procs, count: int, timeout: float = 600) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        deadline = time.time() + timeout
        while True:
            stats = await _worker_stats(session, procs)
            if stats["unique"] >= count or time.time() > deadline:
                return await _worker_stats(session, procs, latencies=True)
            await asyncio.sleep(0.05)


async def reset_worker(procs: Procs) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(procs.worker_url + "/reset") as response:
            await response.read()


def ledger(procs: Procs, delivered_unique: int, settle_wait: float = 10.0) -> dict[str, int]:
    """Counts by state from pushq's own metrics: enqueued must equal delivered + queued.

    The worker has answered the last job before pushq has recorded its answer: the
    counts are read once no attempt is still active (or after `settle_wait` s)."""
    import urllib.request

    deadline = time.monotonic() + settle_wait
    while True:
        counts: dict[str, int] = {}
        with urllib.request.urlopen(procs.api + "/metrics") as response:
            for line in response.read().decode().splitlines():
                if line.startswith("pushq_jobs{"):
                    state = line.split('state="')[1].split('"')[0]
                    counts[state] = counts.get(state, 0) + int(float(line.rsplit(" ", 1)[1]))
        if not counts.get("active") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    counts["delivered_unique"] = delivered_unique
    return counts


# -- scenarios --------------------------------------------------------------------------


def report(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    print(f"\n== {name}")
    for key, value in figures.items():
        print(f"  {key:28} {value:,.2f}" if isinstance(value, float) else f"  {key:28} {value}")
    sys.stdout.flush()
    return {"scenario": name, **figures}


async def throughput(
    procs: Procs, count: int, concurrency: int, profile: Path | None = None
) -> dict[str, Any]:
    await reset_worker(procs)
    assert procs.pushq is not None
    cpu_before = cpu_seconds(procs.pushq.pid)
    profiler = start_profiler(procs, profile) if profile else None
    load = await enqueue_load(procs, count=count, rate=None, concurrency=concurrency)
    stats = await wait_delivered(procs, count)
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=30)
    e2e_seconds = stats["last_at"] - load["start"]
    cpu_per_job_us = (cpu_seconds(procs.pushq.pid) - cpu_before) / count * 1e6
    counts = ledger(procs, stats["unique"])
    return {
        "jobs": count,
        "enqueue_per_s": load["enqueue_rate"],
        "end_to_end_per_s": count / e2e_seconds,
        "pushq_cpu_us_per_job": cpu_per_job_us,
        "duplicates": stats["duplicates"],
        "ledger_ok": stats["unique"] == count - load["failures"] and load["failures"] == 0,
        "rss_mb": rss_mb(procs.pushq.pid),
        "counts": counts,
    }


def start_profiler(procs: Procs, output: Path) -> subprocess.Popen[bytes]:
    """py-spy on the pushq process for the measured phase (pip install py-spy)."""
    assert procs.pushq is not None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "-p",
            str(procs.pushq.pid),
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(output),
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_profile(path: Path, top: int = 25) -> None:
    """Where pushq's CPU time went: per thread, then the hottest functions (inclusive)."""
    threads: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = stack.split(";")
        total += samples
        threads[frames[0]] = threads.get(frames[0], 0) + samples
        for frame in set(frames[1:]):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    print(f"\n== profile ({total} samples, {path})")
    for thread, samples in sorted(threads.items(), key=lambda kv: -kv[1]):
        print(f"  {samples / total:6.1%}  {thread}")
    for frame, samples in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {samples / total:6.1%}  {frame[:140]}")


async def latency(procs: Procs, rate: float, seconds: float) -> dict[str, Any]:
    await reset_worker(procs)
    count = int(rate * seconds)
    assert procs.pushq is not None
    cpu_before = cpu_seconds(procs.pushq.pid)
    load = await enqueue_load(procs, count=count, rate=rate, concurrency=256)
    stats = await wait_delivered(procs, count)
    # At a fixed offered rate every version batches alike: the fairest CPU figure
    # to compare commits by on a busy machine.
    cpu_per_job_us = (cpu_seconds(procs.pushq.pid) - cpu_before) / count * 1e6
    lat = stats["latencies"][count // 10 :]  # the first 10% warm up
    return {
        "offered_per_s": rate,
        "jobs": count,
        "pushq_cpu_us_per_job": cpu_per_job_us,
        "latency_p50_ms": percentile(lat, 50) * 1000,
        "latency_p99_ms": percentile(lat, 99) * 1000,
        "latency_max_ms": max(lat) * 1000,
        "enqueue_p99_ms": load["enqueue_p99_ms"],
        "ledger_ok": stats["unique"] == count and load["failures"] == 0,
        "duplicates": stats["duplicates"],
    }


async def batch(procs: Procs, count: int, size: int, delay: float) -> dict[str, Any]:
    """Batch enqueue; jobs are delayed so that delivery does not share the CPU."""
    import aiohttp

    target = procs.worker_url + "/job"
    headers = {"authorization": f"Bearer {BENCH_TOKEN}", "content-type": "application/json"}
    jobs = json.dumps(
        {"jobs": [{"url": target, "body": {"n": i}, "delay": delay} for i in range(size)]}
    )
    async with aiohttp.ClientSession(headers=headers) as session:
        start = time.time()

        async def post_batches(n: int) -> None:
            for _ in range(n):
                async with session.post(procs.api + "/v1/jobs/batch", data=jobs) as response:
                    await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"batch failed: {response.status}")

        calls = count // size
        await asyncio.gather(post_batches(calls // 2), post_batches(calls - calls // 2))
        elapsed = time.time() - start
    return {"jobs": calls * size, "batch_size": size, "enqueue_per_s": calls * size / elapsed}


def wrk_enqueue(procs: Procs, seconds: int, connections: int) -> dict[str, Any]:
    """Single-job enqueues driven by wrk; jobs are delayed an hour so only enqueue runs."""
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    body = json.dumps({"url": procs.worker_url + "/job", "body": {"n": 1}, "delay": 3600})
    script = procs.data_dir / "enqueue.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {BENCH_TOKEN}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        "end\n"
    )
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            procs.api + "/v1/jobs",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = float(result.stdout.split("Requests/sec:")[1].split()[0])
    errors = int(result.stdout.split("non2xx ")[1].split()[0])
    p99 = result.stdout.split("99%")[1].split()[0] if "99%" in result.stdout else "?"
    return {"enqueue_per_s": rate, "non_2xx": errors, "wrk_p99": p99, "connections": connections}


def populate(db_path: Path, rows: int, target: str) -> None:
    """Fill the jobs table with `rows` finished jobs (history), the way years of use would."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time() - 86400
    batch_rows = 100_000
    for start in range(0, rows, batch_rows):
        conn.executemany(
            "INSERT INTO jobs (id, queue, url, method, state, priority, attempts, max_attempts,"
            " backoff_base, backoff_max, backoff_jitter, timeout, created_at, run_at,"
            " finished_at, result)"
            " VALUES (?, 'default', ?, 'POST', 'succeeded', 0, 1, 13, 30, 28800, 1, 30, ?, ?, ?,"
            ' \'{"status":200,"body":null}\')',
            (
                (f"00HIST{n:020d}", target, now + n * 1e-6, now + n * 1e-6, now + n * 1e-6)
                for n in range(start, min(rows, start + batch_rows))
            ),
        )
        conn.commit()
    conn.close()


async def senders(procs: Procs, count: int, concurrency: int) -> dict[str, Any]:
    """The outbound path alone: signed-size POSTs to the local worker, per HTTP client."""
    from pushq.server.delivery import AiohttpSender, DeliveryRequest, HttpxSender
    from pushq.server.http_sender import LeanSender

    body = b'{"n":1}'
    headers = [("content-type", "application/json"), ("webhook-id", "x" * 26)]
    request = DeliveryRequest("POST", procs.worker_url + "/job", headers, body, 30.0)
    figures: dict[str, Any] = {"requests": count, "in_flight": concurrency}

    async def drive(send: Callable[[], Awaitable[Any]]) -> float:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                await send()

        await asyncio.gather(*(one() for _ in range(min(500, count))))  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - start)

    sender_classes: tuple[
        tuple[str, type[LeanSender] | type[AiohttpSender] | type[HttpxSender]], ...
    ] = (
        ("lean", LeanSender),
        ("aiohttp", AiohttpSender),
        ("httpx", HttpxSender),
    )
    for name, sender_class in sender_classes:
        sender = sender_class()
        try:
            figures[f"{name}_per_s"] = await drive(partial(sender.send, request))
        finally:
            await sender.aclose()
    try:
        import httpx
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        figures["httpx_aiohttp_per_s"] = "not installed (pip install httpx-aiohttp)"
    else:
        async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
            figures["httpx_aiohttp_per_s"] = await drive(
                lambda: client.post(request.url, content=body, headers=dict(headers))
            )
    return figures


async def ceiling(count: int, concurrency: int) -> dict[str, Any]:
    """The raw push ceiling: the same aiohttp client library as the load generator
    POSTing small JSON bodies to a trivial Starlette handler on uvicorn (the worker
    endpoint's server), no queue in between. pushq's end-to-end figure divided by
    this one is the share of a bare HTTP exchange that pushq keeps."""
    import aiohttp

    port = free_port()
    server = subprocess.Popen([*bench_command(), "_ceiling", str(port)])
    try:
        _wait_http_post(f"http://127.0.0.1:{port}/job")
        url = f"http://127.0.0.1:{port}/job"
        headers = {"content-type": "application/json"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            semaphore = asyncio.Semaphore(concurrency)
            failures = 0

            async def post(i: int) -> None:
                nonlocal failures
                async with semaphore:
                    async with session.post(url, data=f'{{"t":{i}}}') as response:
                        await response.read()
                        if response.status != 200:
                            failures += 1

            await asyncio.gather(*(post(i) for i in range(min(2000, count))))  # warm-up
            start = time.perf_counter()
            await asyncio.gather(*(post(i) for i in range(count)))
            elapsed = time.perf_counter() - start
    finally:
        server.kill()
        server.wait()
    return {
        "requests": count,
        "in_flight": concurrency,
        "requests_per_s": count / elapsed,
        "failures": failures,
    }


def _wait_http_post(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, b"{}"), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


PEERS = (
    ("celery_redis.py", 20_000),
    ("dramatiq_redis.py", 20_000),
    ("procrastinate_pg.py", 5_000),
    ("rq_redis.py", 2_000),
)


PEER_NAMES = tuple(script.split("_")[0] for script, _ in PEERS)


@dataclass
class PeerSetup:
    """Where the peers' programs (bench/peers/) and their virtualenv (.venv-peers) are."""

    folder: Path
    python: Path


def find_peers(peers_dir: str | None) -> PeerSetup | str:
    """The peers' programs and virtualenv, or a line saying what to do to get them.

    They live in the repository, not in the package: by default `bench/peers` under
    the working directory, else beside the source tree this pushq runs from (an
    editable install); the virtualenv is `.venv-peers` two folders up from them."""
    candidates = (
        [Path(peers_dir)]
        if peers_dir
        else [Path("bench/peers"), Path(__file__).resolve().parents[2] / "bench" / "peers"]
    )
    folder = next((path for path in candidates if (path / "run_all.sh").is_file()), None)
    if folder is None:
        where = ", ".join(str(path) for path in candidates)
        return (
            f"the peers' programs are not in {where}: run from a checkout of the pushq"
            " repository or pass --peers-dir .../bench/peers"
        )
    python = folder.resolve().parents[1] / ".venv-peers" / "bin" / "python"
    if not python.exists():
        return f"the peers' virtualenv {python} is missing: run `bash {folder}/run_all.sh` once"
    return PeerSetup(folder, python)


def run_peers(
    setup: PeerSetup, pushq_figures: dict[str, Any] | None, only: list[str] | None = None
) -> list[dict[str, Any]]:
    """The pull-queue peers on the same machine, same no-op work (bench/peers/), with
    pushq's figures from this same run as ratios. `only`: peer names (celery,
    dramatiq, procrastinate, rq) to run, default all."""
    results = []
    for script, jobs in PEERS:
        if only and script.split("_")[0] not in only:
            continue
        done = subprocess.run(
            [str(setup.python), str(setup.folder / script), "--jobs", str(jobs)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"\n== peer {script}: failed\n{done.stderr[-2000:]}")
            continue
        figures: dict[str, Any] = json.loads(lines[-1])
        if pushq_figures is not None:
            figures["pushq_enqueue_ratio"] = pushq_figures["enqueue_per_s"] / max(
                figures["enqueue_per_s"], 1e-9
            )
            figures["pushq_end_to_end_ratio"] = pushq_figures["end_to_end_per_s"] / max(
                figures["end_to_end_per_s"], 1e-9
            )
        results.append(report(f"peer {figures.get('peer', script)}", figures))
    return results


async def restart_backlog(procs: Procs, backlog: int) -> dict[str, Any]:
    """A million jobs waiting: RSS while they wait, then time from a restart to the
    first delivery. The jobs wait in a paused queue (enqueued through the batch
    route); with pushq stopped the queue is unpaused in the database, so that at the
    restart a million jobs are due at once."""
    import aiohttp

    await reset_worker(procs)
    target = procs.worker_url + "/job"
    headers = {"authorization": f"Bearer {BENCH_TOKEN}", "content-type": "application/json"}
    size = 1000
    jobs = json.dumps({"jobs": [{"url": target, "queue": "backlog"} for _ in range(size)]})
    assert procs.pushq is not None
    rss_samples = []
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(procs.api + "/v1/queues/backlog/pause") as response:
            await response.read()
        for n in range(backlog // size):
            async with session.post(procs.api + "/v1/jobs/batch", data=jobs) as response:
                await response.read()
                if response.status != 201:
                    raise RuntimeError(f"batch failed: {response.status}")
            if n % (backlog // size // 4 or 1) == 0:
                rss_samples.append(round(rss_mb(procs.pushq.pid), 1))
    rss_waiting = rss_mb(procs.pushq.pid)
    procs.stop_pushq()
    with sqlite3.connect(procs.data_dir / "pushq.db") as conn:
        conn.execute("UPDATE queues SET paused = 0 WHERE name = 'backlog'")
    started = procs.start_pushq(wait=False)
    async with aiohttp.ClientSession() as session:
        while (await _worker_stats(session, procs))["received"] == 0:
            await asyncio.sleep(0.005)
        first = (await _worker_stats(session, procs))["first_at"]
    return {
        "backlog": backlog,
        "rss_mb_while_filling": rss_samples,
        "rss_mb_with_backlog": rss_waiting,
        "restart_to_first_delivery_s": first - started,
    }


def sql_per_job(procs: Procs, jobs: int) -> dict[str, Any]:
    """The statements the server ran (pushq/bench/sql_count.py), per job of both phases."""
    counted = json.loads((procs.data_dir / "sql_count.json").read_text())
    total_jobs = jobs + min(2000, jobs)  # the warm-up's jobs ran on the same server
    per_job = {kind: n / total_jobs for kind, n in counted.items() if n / total_jobs >= 0.005}
    figures: dict[str, Any] = {"total_per_job": sum(counted.values()) / total_jobs}
    figures.update(sorted(per_job.items(), key=lambda kv: -kv[1]))
    return figures


CEILING_IN_FLIGHT = 32  # the raw push ceiling's requests in flight (shared/BENCHMARKS.md)


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose `key` is the median (the lower middle one of an even count)."""
    return sorted(runs, key=lambda run: run[key])[(len(runs) - 1) // 2]


def same_run(
    pushq: dict[str, Any], ceiling: dict[str, Any] | None, peers: list[dict[str, Any]]
) -> dict[str, Any]:
    """pushq's end-to-end figure beside the ceiling's and the peers' of this invocation."""
    figures: dict[str, Any] = {
        "pushq_end_to_end_per_s": pushq["end_to_end_per_s"],
        "pushq_cpu_us_per_job": pushq["pushq_cpu_us_per_job"],
        "pushq_ledger_ok": pushq["ledger_ok"],
        "pushq_duplicates": pushq["duplicates"],
    }
    if ceiling is not None:
        figures["ceiling_per_s"] = ceiling["requests_per_s"]
        figures["end_to_end_over_ceiling"] = pushq["end_to_end_per_s"] / ceiling["requests_per_s"]
    for peer in peers:
        name = peer.get("peer", "?")
        figures[f"{name}_end_to_end_per_s"] = peer["end_to_end_per_s"]
        figures[f"pushq_over_{name}"] = peer.get("pushq_end_to_end_ratio")
    return figures


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    base = Path(args.data_dir or tempfile.mkdtemp(prefix="pushq-bench-"))
    env = {"PUSHQ_SQLITE_SYNCHRONOUS": args.synchronous}
    if args.log_level:  # else pushq's default (INFO: a line per attempt)
        env["PUSHQ_LOG_LEVEL"] = args.log_level

    def fresh(name: str) -> Procs:
        data_dir = base / name
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        procs = Procs(data_dir, env=dict(env))
        if args.pushq:
            procs.command = [str(Path(args.pushq).resolve())]
        if args.count_sql and name == "throughput":  # pushq/bench/sql_count.py
            procs.command = [sys.executable, "-m", "pushq.bench.sql_count"]
            procs.env["PUSHQ_SQL_COUNT_FILE"] = str(data_dir / "sql_count.json")
        procs.start_worker()
        procs.start_pushq()
        return procs

    scenarios = set(args.scenarios)
    pushq_throughput: dict[str, Any] | None = None
    ceiling_figures: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    ceilings: list[dict[str, Any]] = []
    # Repeats alternate pushq and the ceiling, so that both see the same machine.
    for repeat in range(args.repeat):
        if "throughput" in scenarios:
            procs = fresh("throughput")
            try:
                await throughput(procs, min(2000, args.jobs), args.concurrency)  # warm-up
                profile = Path(args.profile) if args.profile and repeat == 0 else None
                figures = await throughput(procs, args.jobs, args.concurrency, profile)
                runs.append(figures)
                results.append(report(f"throughput (empty table) run {repeat + 1}", figures))
                if profile is not None:
                    summarize_profile(profile)
            finally:
                procs.close()
            if args.count_sql:
                results.append(report("SQL statements per job", sql_per_job(procs, args.jobs)))
        if "ceiling" in scenarios:
            figures = await ceiling(args.jobs, CEILING_IN_FLIGHT)
            ceilings.append(figures)
            results.append(report(f"raw push ceiling run {repeat + 1}", figures))
    if runs:
        pushq_throughput = median_run(runs, "end_to_end_per_s")
    if ceilings:
        ceiling_figures = median_run(ceilings, "requests_per_s")
    if "latency" in scenarios:
        procs = fresh("latency")
        try:
            results.append(report("latency", await latency(procs, args.rate, args.seconds)))
        finally:
            procs.close()
    if "enqueue" in scenarios:
        procs = fresh("enqueue")
        try:
            wrk_enqueue(procs, 2, 32)  # warm-up
            results.append(report("single enqueue (wrk)", wrk_enqueue(procs, 10, 32)))
        finally:
            procs.close()
    if "batch" in scenarios:
        procs = fresh("batch")
        try:
            await batch(procs, 10_000, 1000, 3600)  # warm-up
            results.append(report("batch enqueue", await batch(procs, 200_000, 1000, 3600)))
        finally:
            procs.close()
    if "senders" in scenarios:
        procs = fresh("senders")
        try:
            results.append(report("outbound HTTP clients", await senders(procs, 10_000, 64)))
        finally:
            procs.close()
    if "history" in scenarios:
        procs = fresh("history")
        try:
            procs.stop_pushq()
            populate(procs.data_dir / "pushq.db", args.history_rows, procs.worker_url + "/job")
            procs.start_pushq()
            await throughput(procs, min(2000, args.jobs), args.concurrency)  # warm-up
            figures = await throughput(procs, args.jobs, args.concurrency)
            figures["rows_in_table"] = args.history_rows
            results.append(report("throughput (with history rows)", figures))
        finally:
            procs.close()
    if "backlog" in scenarios:
        procs = fresh("backlog")
        try:
            results.append(
                report("backlog and restart", await restart_backlog(procs, args.backlog))
            )
        finally:
            procs.close()
    peers: list[dict[str, Any]] = []
    if "peers" in scenarios:
        peers = run_peers(args.peer_setup, pushq_throughput, args.only_peers)
        results += peers
    if pushq_throughput is not None and (ceiling_figures is not None or peers):
        results.append(report("same run", same_run(pushq_throughput, ceiling_figures, peers)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return results


SCENARIOS = (
    "throughput",
    "ceiling",
    "latency",
    "enqueue",
    "batch",
    "senders",
    "history",
    "backlog",
    "peers",
)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="pushq bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        default=["throughput", "latency", "enqueue", "batch"],
        help=f"any of {', '.join(SCENARIOS)} (default: the first four)",
    )
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per throughput run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="throughput and ceiling runs, alternated; the medians are compared",
    )
    parser.add_argument(
        "--peers",
        help="comma-separated peers for the peers scenario (celery,dramatiq,procrastinate,rq;"
        " default all)",
    )
    parser.add_argument(
        "--peers-dir",
        help="the repository's bench/peers folder (default: ./bench/peers, or the source tree's)",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="enqueue requests in flight")
    parser.add_argument("--rate", type=float, default=1000, help="offered jobs/s for latency")
    parser.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    parser.add_argument("--history-rows", type=int, default=10_000_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--synchronous", default="FULL", help="SQLite synchronous (FULL|NORMAL)")
    parser.add_argument(
        "--count-sql",
        action="store_true",
        help="count the server's SQLite statements per job (pushq/bench/sql_count.py)",
    )
    parser.add_argument("--log-level", help="the server's PUSHQ_LOG_LEVEL (default: pushq's)")
    parser.add_argument("--data-dir", help="where to keep the databases (default: a temp dir)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", help="record py-spy stacks of the throughput run here")
    parser.add_argument(
        "--pushq",
        metavar="EXECUTABLE",
        help="run this pushq (e.g. dist/pushq, the single binary) instead of python -m pushq",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        run_worker(int(argv[1]))
        return 0
    if argv[:1] == ["_ceiling"]:
        run_ceiling(int(argv[1]))
        return 0
    args = build_parser().parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        print(
            f"pushq bench: unknown scenario {', '.join(sorted(unknown))}"
            f" (choose from {', '.join(SCENARIOS)})",
            file=sys.stderr,
        )
        return 2
    args.only_peers = args.peers.split(",") if args.peers else None
    unknown = set(args.only_peers or ()) - set(PEER_NAMES)
    if unknown:
        print(
            f"pushq bench: unknown peer {', '.join(sorted(unknown))}"
            f" (choose from {', '.join(PEER_NAMES)})",
            file=sys.stderr,
        )
        return 2
    if "peers" in args.scenarios:
        # Checked before anything runs: a missing peer setup found after minutes of
        # pushq's runs would waste them.
        setup = find_peers(args.peers_dir)
        if isinstance(setup, str):
            print(f"pushq bench: {setup}", file=sys.stderr)
            return 2
        args.peer_setup = setup
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
