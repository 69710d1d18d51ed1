"""The store conformance fixture's backends: every test that takes `with_store` runs
once per entry of BACKENDS (tests/conftest.py defines the fixture).

There is no async test plugin here, and aiosqlite connections belong to the
event loop that opened them, so `with_store(scenario)` opens the store, runs
`await scenario(store)` and closes it, all inside one `asyncio.run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from weakref import WeakKeyDictionary

from pushq.server.claimer import Claimer
from pushq.server.models import Claim
from pushq.server.store.base import Store
from pushq.server.store.sqlite import SQLiteStore

Scenario = Callable[[Store], Awaitable[None]]
WithStore = Callable[[Scenario], None]

# One entry per backend: adding PostgreSQL is one line here (its factory skips the
# test when no server is configured locally, and fails in CI without one).
BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "pushq.db"),
}


def runner(backend: str, tmp_path: Path) -> WithStore:
    """`with_store` for one backend: run a scenario against a freshly opened store."""
    make = BACKENDS[backend]

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            store = make(tmp_path)
            await store.open()
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())

    return run


_claimers: WeakKeyDictionary[Store, Claimer] = WeakKeyDictionary()


async def claim_due(
    store: Store,
    *,
    limit: int,
    slots: int,
    now: float,
    lease: str,
    lease_margin: float,
    busy: Mapping[str, int] | None = None,
) -> Claim:
    """One claim round as the dispatcher makes it (snapshot, plan, apply), with the
    fair-share credit carried between the rounds of one store."""
    claimer = _claimers.setdefault(store, Claimer(store))
    return await claimer.claim(
        limit=limit, slots=slots, now=now, lease=lease, lease_margin=lease_margin, busy=busy
    )
