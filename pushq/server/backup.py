"""Online backups of the SQLite database, and restoring one.

`backup` copies a live database with SQLite's online backup API: one read
transaction, so the copy is the database as of one commit, whatever `pushq
serve` writes meanwhile. The copy is made 0600 beside its destination, checked
with `PRAGMA integrity_check`, then renamed into place: a failed backup leaves
no file behind. `restore` checks a backup the same way and installs it as the
database of a data dir that has none.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int
    jobs: int
    schema_version: int


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
    connection = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def check(path: Path) -> BackupReport:
    """Integrity-check a database file; ConfigError says what is wrong with it."""
    try:
        with _connect(path, read_only=True) as db:
            result = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                raise ConfigError(f"{path} failed integrity_check: {'; '.join(result[:3])}")
            jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
            version = db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a pushq database: {exc}") from None
    return BackupReport(path, path.stat().st_size, jobs, version)


def _create_private(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise ConfigError(f"{path} already exists: remove it or choose another path") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def backup(database: Path, destination: Path) -> BackupReport:
    """Copy the live `database` to `destination` (which must not exist), checked."""
    if not database.is_file():
        raise ConfigError(f"no database at {database}: check --data-dir/--database")
    if destination.exists():
        raise ConfigError(f"{destination} already exists: remove it or choose another path")
    partial = destination.with_name(f".{destination.name}.partial")
    _create_private(partial)
    try:
        with _connect(database, read_only=True) as source, _connect(partial) as copy:
            source.backup(copy)  # all pages in one step: a consistent snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        report = check(partial)
        os.rename(partial, destination)
    except sqlite3.Error as exc:
        raise ConfigError(f"backup of {database} failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(destination, report.size, report.jobs, report.schema_version)


def restore(source: Path, database: Path) -> BackupReport:
    """Install the backup `source` as `database`, which must not exist yet."""
    if not source.is_file():
        raise ConfigError(f"no backup at {source}")
    report = check(source)
    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if leftover.exists():
            raise ConfigError(f"{leftover} exists: stop pushq and move the old database away first")
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = database.with_name(f".{database.name}.partial")
    _create_private(partial)
    try:
        with _connect(source, read_only=True) as src, _connect(partial) as copy:
            src.backup(copy)
        os.rename(partial, database)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(database, report.size, report.jobs, report.schema_version)
