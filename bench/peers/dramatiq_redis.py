"""Dramatiq + Redis broker: enqueue N no-op messages with `.send()`, wait until all ran.

One `dramatiq` worker command with 2 processes x 8 threads, default middleware,
no results backend. The driver enqueues from --concurrency threads (one `.send()`
call per job).
"""

from __future__ import annotations

import sys

import dramatiq
import harness
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=harness.REDIS_URL))


@dramatiq.actor(actor_name="noop")
def noop(n: int, run_id: str) -> None:
    harness.record(run_id, n)


def main() -> None:
    args = harness.parser(__doc__, concurrency=1).parse_args()
    harness.flush_redis()
    worker = [sys.executable, "-m", "dramatiq", "dramatiq_redis", "--processes", "2"]
    harness.run(
        "dramatiq",
        jobs=args.jobs,
        warmup=args.warmup,
        enqueue_all=lambda run_id, count: harness.threaded(
            lambda n: noop.send(n, run_id), count, args.concurrency
        ),
        workers=lambda: harness.start([[*worker, "--threads", "8"]], "dramatiq"),
        settings=f"{harness.versions('dramatiq', 'redis')}; 2 processes x 8 threads,"
        f" default middleware, no results; enqueue: {args.concurrency} thread(s)",
    )


if __name__ == "__main__":
    main()
