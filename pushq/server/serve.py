"""`pushq serve`: the store, the dispatcher and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator

import uvicorn

from .app import create_app
from .config import Settings
from .delivery import AiohttpSender, HttpxSender
from .dispatcher import Dispatcher
from .metrics import Metrics
from .notify import notify
from .scheduler import Scheduler
from .store.sqlite import SQLiteStore
from .waiters import JobWaiters

log = logging.getLogger("pushq")


class _Server(uvicorn.Server):
    # pushq owns SIGTERM/SIGINT: uvicorn's own handling would re-raise the signal
    # after its shutdown and kill the process before the dispatcher drains.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # listening: /health answers from now on
            notify(f"READY=1\nSTATUS=serving\nMAINPID={os.getpid()}")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight deliveries and return."""
    store = SQLiteStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    await store.open()
    metrics = Metrics()
    sender_class = AiohttpSender if settings.sender == "aiohttp" else HttpxSender
    sender = sender_class(
        max_connections=settings.delivery_concurrency, targets=settings.target_policy
    )
    waiters = JobWaiters()
    dispatcher = Dispatcher(
        store=store, sender=sender, settings=settings, metrics=metrics, waiters=waiters
    )
    scheduler = Scheduler(store=store, settings=settings, notify=dispatcher.notify)
    stop = asyncio.Event()  # set by SIGTERM/SIGINT; /ready answers 503 from then on
    app = create_app(
        settings,
        store,
        dispatcher=dispatcher,
        metrics=metrics,
        dispatcher_last_loop=lambda: dispatcher.last_loop_at,
        shutting_down=stop.is_set,
        queue_activity=lambda queue: dispatcher.activity.last_minute(queue, time.time()),
        scheduler_wake=scheduler.wake,
        settler=dispatcher.settler,
        waiters=waiters,
    )
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    dispatch_task = asyncio.create_task(dispatcher.run(), name="dispatcher")
    schedule_task = asyncio.create_task(scheduler.run(), name="scheduler")
    serve_task = asyncio.create_task(server.serve(), name="http")
    log.info(
        "pushq listening on http://%s:%d (database %s, synchronous=%s)",
        settings.host,
        settings.port,
        settings.sqlite_path,
        settings.sqlite_synchronous,
    )
    stop_task = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait(
        {serve_task, dispatch_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
    )
    stop.set()
    notify("STOPPING=1\nSTATUS=draining in-flight deliveries")
    log.info(
        "pushq stopping: no new claims; waiting up to %gs for deliveries", settings.shutdown_grace
    )
    schedule_task.cancel()
    try:
        await dispatcher.stop(settings.shutdown_grace)
        server.should_exit = True
        await serve_task
        dispatch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatch_task
    finally:
        stop_task.cancel()
        await sender.aclose()
        await store.close()
    for task in done:
        if task is not stop_task and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    log.info("pushq stopped")
