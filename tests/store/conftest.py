"""The store conformance fixture: every test that takes `with_store` runs once per backend.

There is no async test plugin here, and aiosqlite connections belong to the
event loop that opened them, so `with_store(scenario)` opens the store, runs
`await scenario(store)` and closes it, all inside one `asyncio.run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pushq.server.store.base import Store
from pushq.server.store.sqlite import SQLiteStore

Scenario = Callable[[Store], Awaitable[None]]
WithStore = Callable[[Scenario], None]

# One entry per backend. "postgres" joins once pushq/store/postgres.py exists:
# it skips when no server is configured locally and fails in CI without one.
BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "pushq.db"),
}


@pytest.fixture(params=list(BACKENDS))
def with_store(request: pytest.FixtureRequest, tmp_path: Path) -> WithStore:
    """Run an async scenario against a freshly opened store of the current backend."""
    make = BACKENDS[request.param]

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
