"""The storage seam: the Store protocol (base.py), its errors and its backends.

`open_store(settings)` picks the backend by the database URL's scheme, so
nothing above this package names a backend.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ...errors import ConfigError
from ..config import Settings
from .base import Store


async def open_store(settings: Settings) -> Store:
    """The store for `settings.database_url` (default: SQLite in the data dir), opened."""
    scheme = urlsplit(settings.database_url).scheme if settings.database_url else "sqlite"
    store: Store
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        store = SQLiteStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    else:
        raise ConfigError(
            f"--database/PUSHQ_DATABASE_URL: no store for {scheme}:// in this version; "
            "use sqlite:///path/file.db"
        )
    await store.open()
    return store
