"""PostgreSQL for tests: each store gets a schema of its own, dropped after the test.

PUSHQ_TEST_POSTGRES_URL names the server (.ci/run sets it). Unset: PostgreSQL tests
skip. Set but unreachable: they fail, since the store cannot open.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg
import pytest

from pushq.server.store.postgres import PostgresStore

ENV = "PUSHQ_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The server's URL, or skip the test when none is configured."""
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"{ENV} is not set: no PostgreSQL to test against")
    return url


def new_schema() -> str:
    return f"pushq_test_{uuid.uuid4().hex[:12]}"


class SchemaStore(PostgresStore):
    """A PostgresStore in a fresh schema that it creates on open and drops on close."""

    async def open(self) -> None:
        assert self.schema is not None
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        finally:
            await conn.close()
        await super().open()

    async def close(self) -> None:
        await super().close()
        assert self.schema is not None
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()


def postgres_store(_tmp_path: Path) -> PostgresStore:
    return SchemaStore(postgres_url(), schema=new_schema(), min_size=1, max_size=4)
