"""Celery + Redis broker: enqueue N no-op tasks with `.delay()`, wait until all ran.

acks_late, no result backend (task_ignore_result), default prefetch (4 per process),
one `celery worker --pool prefork --concurrency 2` (2 pool processes). The driver
enqueues from --concurrency threads (one `.delay()` call per job).
"""

from __future__ import annotations

import sys

import harness
from celery import Celery

app = Celery("bench", broker=harness.REDIS_URL)
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(n: int, run_id: str) -> None:
    harness.record(run_id, n)


def main() -> None:
    if sys.argv[1:] == ["worker"]:
        app.worker_main(["worker", "--pool", "prefork", "--concurrency", "2", "-l", "WARNING"])
        return
    args = harness.parser(__doc__, concurrency=1).parse_args()
    harness.flush_redis()
    harness.run(
        "celery",
        jobs=args.jobs,
        warmup=args.warmup,
        enqueue_all=lambda run_id, count: harness.threaded(
            lambda n: noop.delay(n, run_id), count, args.concurrency
        ),
        workers=lambda: harness.start([[sys.executable, __file__, "worker"]], "celery"),
        settings=f"{harness.versions('celery', 'kombu', 'redis')}; acks_late, ignore_result,"
        f" prefork 2 processes, prefetch_multiplier 4; enqueue: {args.concurrency} thread(s)",
    )


if __name__ == "__main__":
    main()
