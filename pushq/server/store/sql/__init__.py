"""SQL text: named queries and numbered migrations, loaded from the .sql files here."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(filename: str) -> dict[str, str]:
    """{name: sql} from a file of blocks that each start with '-- name: <name>'."""
    text = resources.files(__package__).joinpath(filename).read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, sql1, name2, sql2, ...]
    return {name: sql.strip() for name, sql in zip(parts[1::2], parts[2::2], strict=True)}


def migrations(folder_name: str = "migrations") -> list[tuple[int, str, str]]:
    """[(version, name, sql)] of every numbered migration in the folder (SQLite's by
    default, postgres_migrations for PostgreSQL), in order."""
    found = []
    folder = resources.files(__package__).joinpath(folder_name)
    for entry in folder.iterdir():
        match = re.match(r"^(\d+)_(\w+)\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)
