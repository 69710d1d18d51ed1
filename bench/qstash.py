"""/v2 (QStash) publish -> delivery beside /v1 enqueue -> delivery, in one invocation:
one pushq, one worker endpoint (bench/pushq_bench.py's), the same job body, the same
client concurrency, closed loop (latency is not compared: /v1's load generator
stamps jobs when it creates them, not when it sends them). Rounds alternate /v1
and /v2 so drift on a shared machine falls on both; the medians, and the median
of each round's /v2 : /v1 ratio (the two measured back to back), are printed.

A /v2 delivery does more per message than a /v1 one: it parses the publish
headers, signs an Upstash-Signature JWT on every attempt besides the Standard
Webhooks signature, and keeps its QStash facts in the job's meta. The worker does
not verify either signature (that cost is the receiver's, not pushq's).

    python -m bench.qstash [--jobs 3000] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pushq.bench.harness import (
    BENCH_TOKEN,
    Procs,
    cpu_seconds,
    enqueue_load,
    reset_worker,
    wait_delivered,
)


async def publish_load(procs: Procs, *, count: int, concurrency: int) -> dict[str, Any]:
    """`count` /v2 publishes to the worker, as fast as `concurrency` allows."""
    import aiohttp

    headers = {"authorization": f"Bearer {BENCH_TOKEN}", "content-type": "application/json"}
    url = f"{procs.api}/v2/publish/{procs.worker_url}/job"
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        semaphore = asyncio.Semaphore(concurrency)
        start = time.time()

        async def offer() -> None:
            nonlocal failures
            async with semaphore:
                body = json.dumps({"n": 1})
                try:
                    async with session.post(url, data=body) as response:
                        await response.read()
                        if response.status != 201:
                            failures += 1
                except aiohttp.ClientError:
                    failures += 1

        await asyncio.gather(*(offer() for _ in range(count)))
        done = time.time()
    return {"start": start, "enqueue_rate": count / (done - start), "failures": failures}


async def one_round(procs: Procs, api: str, count: int, concurrency: int) -> dict[str, Any]:
    await reset_worker(procs)
    assert procs.pushq is not None
    cpu_before = cpu_seconds(procs.pushq.pid)
    if api == "v1":
        load = await enqueue_load(procs, count=count, rate=None, concurrency=concurrency)
    else:
        load = await publish_load(procs, count=count, concurrency=concurrency)
    stats = await wait_delivered(procs, count)
    return {
        "enqueue_per_s": load["enqueue_rate"],
        "end_to_end_per_s": count / (stats["last_at"] - load["start"]),
        "cpu_us_per_job": (cpu_seconds(procs.pushq.pid) - cpu_before) / count * 1e6,
        "ok": stats["unique"] == count and load["failures"] == 0,
    }


async def run(jobs: int, rounds: int, concurrency: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        procs = Procs(data_dir=Path(tmp))
        try:
            procs.start_worker()
            procs.start_pushq()
            await one_round(procs, "v1", min(jobs, 500), concurrency)  # warm up both paths
            await one_round(procs, "v2", min(jobs, 500), concurrency)
            seen: dict[str, list[dict[str, Any]]] = {"v1": [], "v2": []}
            for r in range(rounds):
                for api in ("v1", "v2") if r % 2 == 0 else ("v2", "v1"):
                    figures = await one_round(procs, api, jobs, concurrency)
                    if not figures["ok"]:
                        raise SystemExit(f"{api} round {r}: the ledger does not add up")
                    seen[api].append(figures)
                    print(
                        f"round {r} {api}: "
                        + ", ".join(f"{k} {v:.1f}" for k, v in figures.items() if k != "ok")
                    )
        finally:
            procs.close()
    keys = [k for k in seen["v1"][0] if k != "ok"]
    medians = {
        api: {k: statistics.median(f[k] for f in runs) for k in keys} for api, runs in seen.items()
    }
    # each round's /v2 against its own /v1 (measured back to back): drift cancels out
    medians["ratio"] = {
        k: statistics.median(v2[k] / v1[k] for v1, v2 in zip(seen["v1"], seen["v2"], strict=True))
        for k in keys
    }
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    medians = asyncio.run(run(args.jobs, args.rounds, args.concurrency))
    print(f"\nmedians of {args.rounds} rounds of {args.jobs} jobs, {args.concurrency} in flight:")
    print(f"  {'':18} {'/v1':>10} {'/v2':>10} {'v2/v1 per round':>16}")
    for key in medians["v1"]:
        v1, v2, ratio = medians["v1"][key], medians["v2"][key], medians["ratio"][key]
        print(f"  {key:18} {v1:10.1f} {v2:10.1f} {ratio:16.2f}")


if __name__ == "__main__":
    main()
