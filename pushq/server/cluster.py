"""Several nodes on one PostgreSQL database: liveness and leadership.

Each node heartbeats every third of PUSHQ_NODE_TIMEOUT. One node at a time leads
(it holds an advisory lock on a connection of its own) and runs the maintenance
services; when it dies its session ends, the lock is free, and the next node to
try takes it. The leader also looks for nodes that stopped heartbeating and has
their in-flight attempts rescued at once, instead of when their leases run out.

The circuit breaker is the cluster's too: a node that opens or closes a circuit
stores it and NOTIFYs the others, which take it at once (`Endpoints.apply`); each
round also reads the stored circuits again, in case a notification was lost. The
half-open probe is taken in the database (`PostgresStore.take_probe`), so one node
in the cluster sends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .endpoints import Endpoints
from .store.errors import StoreError
from .store.postgres import PostgresStore

log = logging.getLogger("pushq.cluster")


class Cluster:
    """The Leadership of a node sharing PostgreSQL, and the loop that keeps it."""

    def __init__(
        self,
        store: PostgresStore,
        *,
        node_timeout: float,
        on_rescue: Callable[[], None] = lambda: None,
        endpoints: Endpoints | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.endpoints = endpoints
        self.clock = clock
        if endpoints is not None:
            endpoints.shared = store
            store.listen_circuits(lambda record: endpoints.apply(record, self.clock()))
        self.node_timeout = node_timeout
        self.interval = max(node_timeout / 3, 0.2)
        self.on_rescue = on_rescue
        self._leading = False

    def is_leader(self) -> bool:
        return self._leading

    async def step(self) -> None:
        """One round: heartbeat, keep or take the lead, and (leading) expire the
        attempts of dead nodes."""
        try:
            await self.store.heartbeat()
        except StoreError as exc:
            log.warning("node heartbeat failed: %s", exc)
        await self.store.keep_listening()
        await self.refresh_circuits()
        leading = await self.store.lead()
        if leading != self._leading:
            log.info("node %s %s", self.store.node, "leads" if leading else "no longer leads")
        self._leading = leading
        if leading:
            try:
                expired = await self.store.expire_dead_nodes(timeout=self.node_timeout)
            except StoreError as exc:
                log.warning("looking for dead nodes failed: %s", exc)
                return
            if expired:
                log.warning(
                    "rescuing %d attempts of nodes silent for %gs", expired, self.node_timeout
                )
                self.on_rescue()

    async def refresh_circuits(self) -> None:
        """Take the circuits the other nodes stored (a lost NOTIFY is made up here)."""
        if self.endpoints is None:
            return
        try:
            records = await self.store.load_circuits()
        except StoreError as exc:
            log.warning("reading the cluster's circuits failed: %s", exc)
            return
        now = self.clock()
        for record in records:
            if record.probe_by != self.store.node:  # this node's own probe is in flight
                self.endpoints.apply(record, now)

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("cluster round failed; trying again")
            await asyncio.sleep(self.interval)
