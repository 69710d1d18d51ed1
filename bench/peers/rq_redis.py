"""RQ + Redis: enqueue N no-op jobs with `Queue.enqueue()`, wait until all ran.

Two worker processes with RQ's default Worker (it forks a work horse per job),
default result_ttl. Each imports the job module before it forks, as RQ's docs advise
for worker scripts, so the horses do not import it per job. The driver enqueues from
--concurrency threads (one `enqueue()` call per job). Named rq_redis.py, not rq.py,
so that it does not shadow the package.
"""

from __future__ import annotations

import sys

import harness
import redis
from rq import Queue, Worker


def noop(n: int, run_id: str) -> None:
    harness.record(run_id, n)


def work() -> None:
    import rq_redis  # noqa: F401 - preloaded: every forked work horse inherits it

    connection = redis.Redis.from_url(harness.REDIS_URL)
    Worker(["bench"], connection=connection).work(logging_level="WARNING")


def main() -> None:
    if sys.argv[1:] == ["worker"]:
        work()
        return
    args = harness.parser(__doc__, concurrency=1).parse_args()
    harness.flush_redis()
    queue = Queue("bench", connection=redis.Redis.from_url(harness.REDIS_URL))
    worker = [sys.executable, __file__, "worker"]
    harness.run(
        "rq",
        jobs=args.jobs,
        warmup=args.warmup,
        enqueue_all=lambda run_id, count: harness.threaded(
            lambda n: queue.enqueue("rq_redis.noop", n, run_id), count, args.concurrency
        ),
        workers=lambda: harness.start([worker, worker], "rq"),
        settings=f"{harness.versions('rq', 'redis')}; 2 forking workers (default Worker),"
        f" default result_ttl; enqueue: {args.concurrency} thread(s)",
    )


if __name__ == "__main__":
    main()
