"""What `pushq serve` checks and claims before it serves anything.

Each step either succeeds or raises StartupError with one line saying what to
fix: the data dir (created 0700), the lock that keeps a second `pushq serve` off
the same SQLite database, the listening socket (bound before the dispatcher
claims a single job), file modes of the database files, and the file
descriptor limit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import resource
import socket
from pathlib import Path

from ..errors import StartupError

log = logging.getLogger("pushq")

# Files beside the database that SQLite creates in WAL mode.
SQLITE_SIDE_FILES = ("-wal", "-shm")
# Descriptors pushq needs besides client connections and deliveries: the database
# and its side files on three connections, the log, the listening socket, DNS.
FD_RESERVE = 64


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data dir 0700 (and tighten an existing one: it holds the secrets)."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if data_dir.stat().st_mode & 0o077:
            os.chmod(data_dir, 0o700)
    except OSError as exc:
        raise StartupError(
            f"--data-dir/PUSHQ_DATA_DIR {data_dir}: {_reason(exc)}: "
            "give a directory pushq can create and write"
        ) from None


def lock_path(database: Path) -> Path:
    """The lock file of a SQLite database: pushq-data/pushq.db -> pushq-data/pushq.lock."""
    return database.with_suffix(".lock")


class DatabaseLock:
    """An exclusive flock on the database's lock file, held for the life of the process.

    The kernel drops it when the process dies, however it dies, so a crashed
    server never leaves a stale lock behind.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = lock_path(database)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StartupError(
                f"cannot create the lock file {self.path}: {_reason(exc)}: "
                "check that the database's directory is writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StartupError(f"cannot lock {self.path}: {_reason(exc)}") from None
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StartupError(
                f"another pushq serve{who} is already using {self.database}: stop it, "
                "or give this one another --data-dir/PUSHQ_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the lock


def secure_database_files(database: Path) -> None:
    """Make the database and its WAL/SHM files 0600, creating the database empty if
    it is new (SQLite gives the side files the database file's mode)."""
    try:
        fd = os.open(database, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
        for path in (database, *(Path(f"{database}{s}") for s in SQLITE_SIDE_FILES)):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mode & 0o077:
                    os.chmod(path, 0o600)
    except OSError as exc:
        raise StartupError(
            f"cannot write the database {database}: {_reason(exc)}: check the permissions "
            "of the file and its directory, or give another --database/PUSHQ_DATABASE_URL"
        ) from None


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so that a port in use fails before any job is
    claimed. uvicorn serves on it."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on {where}: {exc.strerror}: give an address of this machine "
            "with --host/PUSHQ_HOST"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            hint = "another process is listening there: stop it, or pick another --port/PUSHQ_PORT"
        elif exc.errno == errno.EADDRNOTAVAIL:
            hint = "no interface of this machine has that address: fix --host/PUSHQ_HOST"
        elif exc.errno == errno.EACCES:
            hint = "ports below 1024 need privileges: pick another --port/PUSHQ_PORT"
        else:
            hint = "fix --host/PUSHQ_HOST or --port/PUSHQ_PORT"
        raise StartupError(f"cannot listen on {where}: {_reason(exc)}: {hint}") from None
    return sock


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; warn when it is still below
    `needed`. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit is %d (hard limit %d), below the %d that --max-connections and "
            "--delivery-concurrency need: raise it (LimitNOFILE= in the systemd unit, "
            "ulimit -n) or lower them; connections beyond the limit are refused",
            soft,
            hard,
            needed,
        )
    return int(soft)


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
