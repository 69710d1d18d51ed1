"""The storage seam: the Store protocol (base.py), its errors and its backends.

`open_store(settings)` picks the backend by the database URL's scheme, so
nothing above this package names a backend.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ...errors import ConfigError
from ..config import Settings
from .base import Store
from .errors import StoreUnavailable


async def open_store(settings: Settings) -> Store:
    """The store for `settings.database_url` (default: SQLite in the data dir), opened."""
    scheme = urlsplit(settings.database_url).scheme if settings.database_url else "sqlite"
    store: Store
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        store = SQLiteStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    elif scheme in {"postgresql", "postgres"}:
        from .postgres import PostgresStore

        assert settings.database_url is not None
        store = PostgresStore(settings.database_url)
        try:
            await store.open()
        except StoreUnavailable as exc:
            # A server that cannot be reached or a database that does not exist at
            # start-up is a setting to fix (exit 2), not a fault of the data.
            raise ConfigError(f"--database/PUSHQ_DATABASE_URL: {exc.reason}") from None
        return store
    else:
        raise ConfigError(
            f"--database/PUSHQ_DATABASE_URL: no store for {scheme}:// in this version; "
            "use sqlite:///path/file.db or postgresql://…"
        )
    await store.open()
    return store
