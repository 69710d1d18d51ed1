"""Group commit for PostgreSQL: the calls of one kind that arrive together go to the
database as one statement.

SQLite's group commit (group_commit.py) folds every write of a batch into one
transaction on its writer thread. PostgreSQL takes writes from many connections in
parallel, but each statement still costs a round trip, a parse/bind/execute and a
durable commit (~4 ms of WAL flush here), on both sides of the connection. A
`Batcher` takes the calls of one kind (the plain enqueues, the plain completes):
the first call starts a flush on the next turn of the event loop, so every call
made in the same tick joins it; while that batch is in flight, new calls queue up,
and the next batch takes them all. The batch's `run` is one statement (a multi-row
form of the single call's statement) that commits by itself, so every call is
answered only after its commit.

Each call still gets its own answer or its own error: `run` returns one Outcome
per item, and falls back to one statement per item when the batch's statement
fails (one bad row must not fail its neighbours).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("pushq.store")

I = TypeVar("I")  # noqa: E741 - an item of a batch
Outcome = tuple[bool, Any]  # (True, value) or (False, the exception)
MAX_BATCH = 500  # rows per statement: bounds its size and its time holding locks
MAX_BATCH_BYTES = 4 << 20  # and the bytes it carries (bodies up to the body limit)


class Batcher(Generic[I]):
    """Calls of one kind, run `MAX_BATCH` at a time by `run(items) -> outcomes`, one
    batch in flight at a time (the next one forms while it commits)."""

    def __init__(
        self,
        run: Callable[[list[I]], Awaitable[list[Outcome]]],
        *,
        weight: Callable[[I], int] = lambda item: 0,
        max_batch: int = MAX_BATCH,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._run = run
        self._weight = weight  # an item's bytes in the statement, roughly
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._queue: list[tuple[I, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> Any:
        """Run `item` in the next batch; its value, or its exception, once committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        batch: list[tuple[I, asyncio.Future[Any]]] = []
        try:
            await asyncio.sleep(0)  # the tick's other calls join this batch
            while self._queue:
                size = self._take()
                batch, self._queue = self._queue[:size], self._queue[size:]
                try:
                    outcomes = await self._run([item for item, _ in batch])
                except Exception as exc:  # `run` answers per item; this is a bug's way out
                    log.exception("a batch of %d failed as a whole", len(batch))
                    outcomes = [(False, exc)] * len(batch)
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller gave up waiting
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:  # cancelled (shutdown): no caller is left waiting
            self._flusher = None
            for _, future in [*batch, *self._queue]:
                if not future.done():
                    future.cancel()
            self._queue = []

    def _take(self) -> int:
        """How many queued calls the next batch takes: up to MAX_BATCH, and up to
        MAX_BATCH_BYTES (at least one, whatever its size)."""
        total = 0
        for size, (item, _) in enumerate(self._queue[: self._max_batch]):
            total += self._weight(item)
            if total > self._max_bytes and size > 0:
                return size
        return min(len(self._queue), self._max_batch)

    async def close(self) -> None:
        """Wait for the batches in flight (the store closes its pool after)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
