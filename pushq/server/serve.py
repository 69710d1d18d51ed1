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
from typing import TYPE_CHECKING

import uvicorn

from ..errors import StartupError
from .api.fast import outermost
from .api.jobs import job_from_template
from .app import create_app
from .config import Settings
from .delivery import HOP_BY_HOP_HEADERS, RESERVED_HEADERS, AiohttpSender, HttpxSender, Sender
from .dispatcher import Dispatcher
from .endpoints import QueueRules
from .http_sender import LeanSender
from .listener import ConnectionLimits, protocol_class
from .maintenance import (
    Background,
    IdempotencyPruner,
    Leadership,
    Promoter,
    Rescuer,
    RetentionPruner,
    ThisNode,
)
from .metrics import Metrics
from .notify import notify
from .qstash.hook import QStashDelivery
from .qstash.keys import SigningKeys
from .qstash.schedules import TEMPLATE_KEY as QSTASH_TEMPLATE
from .qstash.schedules import job_of_template as qstash_job_of_template
from .scheduler import Scheduler
from .startup import (
    FD_RESERVE,
    DatabaseLock,
    bind_socket,
    prepare_data_dir,
    raise_fd_limit,
    secure_database_files,
)
from .store import open_store
from .store.base import Store
from .store.errors import StoreError, StoreUnavailable
from .waiters import JobWaiters

if TYPE_CHECKING:
    from .store.postgres import PostgresStore

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
    """Run until SIGTERM or SIGINT, then drain in-flight deliveries and return.

    StartupError (one line, nothing left running) when it cannot start."""
    os.umask(0o077)  # every file pushq creates is its own: 0600 files, 0700 dirs
    prepare_data_dir(settings.data_dir)
    # The lock and the file modes are SQLite's: nodes share a PostgreSQL database.
    lock = DatabaseLock(settings.sqlite_path) if settings.uses_sqlite else None
    if lock is not None:
        lock.acquire()
    try:
        if lock is not None:
            secure_database_files(settings.sqlite_path)
        fd_limit = raise_fd_limit(
            settings.max_connections + settings.delivery_concurrency + FD_RESERVE
        )
        listener = bind_socket(settings.host, settings.port)
        try:
            await _serve(settings, listener, _connection_cap(settings, fd_limit))
        finally:
            listener.close()
    finally:
        if lock is not None:
            lock.release()


async def _recover(rescuer: Rescuer) -> None:
    """Retry at once what the previous run left in flight; the rescuer's lease expiry
    is the fallback if the database refuses now."""
    try:
        await rescuer.recover()
    except Exception:
        log.exception("recovering the attempts left in flight failed; their leases will expire")


async def _publish_enqueue_settings(store: PostgresStore, settings: Settings) -> None:
    """The defaults transactional enqueues (pushq_enqueue in SQL) apply, as this
    node's enqueues do; a failure leaves the last node's and is logged."""
    try:
        await store.publish_enqueue_settings(
            defaults=settings.job_defaults,
            idempotency_ttl=settings.idempotency_ttl,
            max_body_size=settings.max_body_size,
            reserved_headers=RESERVED_HEADERS | HOP_BY_HOP_HEADERS,
        )
    except StoreError as exc:
        log.warning("publishing the enqueue defaults for transactional enqueue failed: %s", exc)


def _connection_cap(settings: Settings, fd_limit: int) -> int:
    """--max-connections, lowered to what the open-file limit leaves room for."""
    room = fd_limit - settings.delivery_concurrency - FD_RESERVE
    return max(16, min(settings.max_connections, room))


async def _serve(settings: Settings, listener: socket.socket, max_connections: int) -> None:
    try:
        store = await open_store(settings)
    except StoreUnavailable as exc:
        raise StartupError(f"cannot open the database {exc.reason}") from None
    try:
        await _run(settings, store, listener, max_connections)
    finally:
        await store.close()


async def _run(
    settings: Settings, store: Store, listener: socket.socket, max_connections: int
) -> None:
    metrics = Metrics()
    sender_class = {"lean": LeanSender, "aiohttp": AiohttpSender, "httpx": HttpxSender}[
        settings.sender
    ]
    sender: Sender = sender_class(
        max_connections=settings.delivery_concurrency, targets=settings.target_policy
    )
    waiters = JobWaiters()
    qstash_keys = SigningKeys.from_settings(settings)  # shared: /v2/keys/rotate, deliveries
    dispatcher = Dispatcher(
        store=store,
        sender=sender,
        settings=settings,
        metrics=metrics,
        waiters=waiters,
        hooks={"qstash": QStashDelivery(qstash_keys, settings)},
    )
    leadership: Leadership = ThisNode()  # SQLite: one node owns the database
    cluster = None
    if not settings.uses_sqlite:
        from .cluster import Cluster
        from .store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        cluster = Cluster(store, node_timeout=settings.node_timeout, endpoints=dispatcher.endpoints)
        await cluster.step()  # heartbeat and, if no node leads, lead before serving
        leadership = cluster
        await _publish_enqueue_settings(store, settings)
    scheduler = Scheduler(
        store=store,
        settings=settings,
        notify=dispatcher.notify,
        job_from_template=lambda template, now: (
            qstash_job_of_template if QSTASH_TEMPLATE in template else job_from_template
        )(template, settings, now),
        leadership=leadership,
    )
    promoter = Promoter(
        store=store,
        on_due=dispatcher.notify,
        poll_interval=settings.poll_interval,
        leadership=leadership,
    )
    dispatcher.on_waiting = promoter.due_at
    rescuer = Rescuer(
        store=store,
        settler=dispatcher.settler,
        metrics=metrics,
        settings=settings,
        notify=dispatcher.notify,
        leadership=leadership,
    )
    services: list[Background] = [
        QueueRules(store=store, endpoints=dispatcher.endpoints),
        promoter,
        rescuer,
        IdempotencyPruner(store=store, interval=settings.rescue_interval, leadership=leadership),
        RetentionPruner(store=store, settings=settings, leadership=leadership),
        scheduler,
    ]
    if cluster is not None:
        cluster.on_rescue = rescuer.wake
        services.append(cluster)
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
        qstash_keys=qstash_keys,
        endpoints=dispatcher.endpoints,
    )
    if cluster is not None:  # queue stats count every node's deliveries
        app.state.pushq.cluster_activity = lambda since: cluster.store.recent_activity(since=since)
    limits = ConnectionLimits(
        max_connections=max_connections,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )
    # uvicorn's default for whose X-Forwarded-* headers count, as it reads it itself
    forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    server = _Server(
        uvicorn.Config(
            outermost(app, forwarded_allow_ips),  # POST /v1/jobs before any middleware
            proxy_headers=False,  # outermost applies them, after the enqueue's turn
            http=protocol_class(limits),
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=max(1, round(settings.keep_alive_timeout)),
            timeout_graceful_shutdown=5,
        )
    )
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():  # the second one: the operator does not want to wait
            log.warning("pushq: second %s, exiting now without waiting for deliveries", sig.name)
            os._exit(128 + sig.value)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    await _recover(rescuer)  # before the first claim: their slots are free again
    dispatch_task = asyncio.create_task(dispatcher.run(), name="dispatcher")
    service_tasks = [asyncio.create_task(s.run(), name=type(s).__name__) for s in services]
    serve_task = asyncio.create_task(server.serve(sockets=[listener]), name="http")
    host, port = listener.getsockname()[:2]
    log.info(
        "pushq listening on http://%s:%d (database %s, synchronous=%s)",
        f"[{host}]" if ":" in host else host,
        port,
        settings.database_label,
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
    for service_task in service_tasks:
        service_task.cancel()
    await asyncio.gather(*service_tasks, return_exceptions=True)
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
    for task in done:
        if task is not stop_task and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    log.info("pushq stopped")
