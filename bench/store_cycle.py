"""The SQLite store's part of a delivered job without HTTP: claim rounds of 25 jobs
(one group commit each) and their 25 settles gathered into one group commit, as
the dispatcher makes them; CPU per job of each (the process's, so the writer
thread is counted), synchronous=FULL. With --baseline an older source tree's
store is measured too, the two in turns, each in a child process of its own.

    python -m bench.store_cycle [--jobs 5000] [--rounds 5] [--baseline CHECKOUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUND = 25  # jobs per claim round and per group commit of settles


def run_cycle(jobs: int) -> None:
    """In the child: enqueue `jobs` jobs, then claim and complete them all; prints JSON."""
    if os.environ.get("PUSHQ_BENCH_CHECKOUT"):
        sys.path.insert(0, os.environ["PUSHQ_BENCH_CHECKOUT"])
    from pushq.policy.claim_plan import ClaimPlan
    from pushq.server.config import Settings
    from pushq.server.models import AttemptRecord, NewJob
    from pushq.server.store.sqlite import SQLiteStore
    from pushq.signing import generate_secret

    defaults = Settings(api_token="t" * 20, signing_secrets=(generate_secret(),)).job_defaults

    async def main(where: Path) -> dict[str, float]:
        store = SQLiteStore(where / "pushq.db")
        await store.open()
        now = time.time()
        for start in range(0, jobs, 1000):
            batch = min(1000, jobs - start)
            new = [NewJob(url="http://127.0.0.1:9/job", body=b'{"n": 1}') for _ in range(batch)]
            await store.enqueue(jobs=new, now=now, idempotency_ttl=3600, defaults=defaults)
        claim_cpu = settle_cpu = 0.0
        done = 0
        plan = ClaimPlan(takes=(("default", ROUND),))
        while done < jobs:
            t0 = time.process_time()
            claimed = await store.claim(plan=plan, now=now, lease="L", lease_margin=5.0)
            t1 = time.process_time()
            settles = [
                store.complete(
                    job_id=job.id,
                    lease="L",
                    attempt=AttemptRecord(job.id, job.attempts, now, 1.0, 200, None, "ok"),
                    result={"status": 200, "body": "ok"},
                    now=now,
                )
                for job in claimed
            ]
            assert all(await asyncio.gather(*settles))
            t2 = time.process_time()
            claim_cpu, settle_cpu = claim_cpu + t1 - t0, settle_cpu + t2 - t1
            done += len(claimed)
        await store.close()
        return {
            "claim": claim_cpu / jobs * 1e6,
            "settle": settle_cpu / jobs * 1e6,
            "total": (claim_cpu + settle_cpu) / jobs * 1e6,
        }

    with tempfile.TemporaryDirectory(prefix="pushq-cycle-") as where:
        print(json.dumps(asyncio.run(main(Path(where)))))


def main() -> None:
    if sys.argv[1:2] == ["_cycle"]:
        run_cycle(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="an older checkout, measured in turns")
    args = parser.parse_args()
    trees: dict[str, Path | None] = {"pushq": None}
    if args.baseline is not None:
        trees["baseline"] = args.baseline
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            env = dict(os.environ, PUSHQ_BENCH_CHECKOUT=str(tree.resolve()) if tree else "")
            out = subprocess.run(
                [sys.executable, "-m", "bench.store_cycle", "_cycle", str(args.jobs)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"claim + complete through the SQLite store, CPU µs per job (median of {args.rounds})")
    for name, results in runs.items():
        figures = {k: statistics.median(r[k] for r in results) for k in results[0]}
        totals = " / ".join(f"{r['total']:.0f}" for r in results)
        print(
            f"  {name:<9} claim {figures['claim']:6.1f}  settle {figures['settle']:6.1f}"
            f"  total {figures['total']:6.1f}  (totals: {totals})"
        )


if __name__ == "__main__":
    main()
