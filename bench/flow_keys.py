"""How fast a claim round is with many flow keys waiting: fills a SQLite store with
N pending jobs (default 100,000), each of its own flow key, in a queue with
key_concurrency 1, and times claim rounds of 64 jobs (snapshot, plan, guarded
claim) through the Claimer, as the dispatcher runs them. Claimed jobs stay active,
so the keys in flight grow round by round (up to 64 x rounds). The same rounds
without flow keys, one hot key with N jobs ahead of the others, and N paused keys
are measured beside it.

    python -m bench.flow_keys [--jobs 100000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pushq.policy.backoff import BackoffPolicy
from pushq.server.claimer import Claimer
from pushq.server.models import JobDefaults, NewJob
from pushq.server.store.sqlite import SQLiteStore

DEFAULTS = JobDefaults(max_attempts=3, backoff=BackoffPolicy(1.0, 60.0, True), timeout=30.0)
SLOTS = 64


async def scenario(path: Path, jobs: int, rounds: int, kind: str) -> dict[str, float]:
    store = SQLiteStore(path, synchronous="OFF")
    await store.open()
    try:
        now = time.time()
        await store.put_queue(name="q", changes={"key_concurrency": 1}, now=now)
        for start in range(0, jobs, 5000):
            batch = []
            for i in range(start, min(start + 5000, jobs)):
                key = {"keys": f"customer-{i}", "plain": None, "hot": "hot", "paused": f"p-{i}"}[
                    kind
                ]
                batch.append(NewJob(url="https://w.example/", queue="q", flow_key=key, run_at=now))
            await store.enqueue(jobs=batch, now=now, idempotency_ttl=60, defaults=DEFAULTS)
        if kind in ("hot", "paused"):  # then 64 x rounds jobs of distinct keys behind them
            if kind == "paused":
                for i in range(jobs):  # (one PUT each: keep --jobs modest for this kind)
                    await store.put_flow_key(key=f"p-{i}", changes={"paused": True}, now=now)
            batch = [
                NewJob(url="https://w.example/", queue="q", flow_key=f"c-{i}", run_at=now)
                for i in range(SLOTS * rounds)
            ]
            await store.enqueue(jobs=batch, now=now, idempotency_ttl=60, defaults=DEFAULTS)
        claimer = Claimer(store)
        times, claimed = [], 0
        for r in range(rounds):
            t0 = time.perf_counter()
            result = await claimer.claim(
                limit=SLOTS, slots=SLOTS, now=now + 2, lease=f"L{r}", lease_margin=30, busy={}
            )
            times.append((time.perf_counter() - t0) * 1000)
            claimed += len(result.jobs)
        return {
            "p50_ms": statistics.median(times),
            "max_ms": max(times),
            "jobs_per_round": claimed / rounds,
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--kinds", default="plain,keys,hot")
    args = parser.parse_args()
    for kind in args.kinds.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            figures = asyncio.run(scenario(Path(tmp) / "bench.db", args.jobs, args.rounds, kind))
        print(
            f"{kind:7} {args.jobs:>7} jobs: claim round p50 {figures['p50_ms']:.2f} ms, "
            f"max {figures['max_ms']:.2f} ms, {figures['jobs_per_round']:.1f} jobs/round"
        )


if __name__ == "__main__":
    main()
