"""`pushq doctor`: checks a deployment from the machine that runs it and says what to fix.

Each check gives ok, warn or fail with one line, and a fix for anything not ok:
the data dir (exists, yours, 0700, writable, secrets 0600), the database (opens,
passes quick_check, its schema against this version's, writable), free disk,
the clock, and whether the public URL answers /health from this host.

With PostgreSQL (`--database postgresql://…`) the database checks are: it can be
reached, its migrations against this version's, this host's clock against the
database's (the nodes compare times they write), and the nodes' heartbeats (which
are alive, which silent, whether one leads).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import shutil
import sqlite3
import stat
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .config import SECRET_FILE, TOKEN_FILE, Settings, redact_url
from .store.sql import migrations

OK, WARN, FAIL = "ok", "warn", "FAIL"
EARLIEST = 1_735_689_600  # 2025-01-01: a clock before this is wrong
MAX_SKEW = 30.0  # seconds between this host's clock and the server's Date header
MIN_FREE = 1024**3
MAX_NODE_SKEW = 2.0  # seconds between this host's clock and PostgreSQL's


@dataclass(frozen=True)
class Finding:
    level: str
    what: str
    fix: str = ""


def check_all(settings: Settings) -> list[Finding]:
    return [
        *_data_dir(settings.data_dir),
        *_database(settings),
        *_disk(settings.sqlite_path.parent),
        *_reachable_and_clock(settings.base_url),
    ]


def _data_dir(data_dir: Path) -> list[Finding]:
    if not data_dir.exists():
        return [Finding(WARN, f"data dir {data_dir} does not exist yet", "pushq serve makes it")]
    if not data_dir.is_dir():
        return [Finding(FAIL, f"data dir {data_dir} is not a directory", "point --data-dir at one")]
    found = []
    info = data_dir.stat()
    if info.st_uid != os.geteuid():
        found.append(
            Finding(
                FAIL,
                f"data dir {data_dir} belongs to uid {info.st_uid}, not you",
                f"run pushq as its owner, or chown -R {os.geteuid()} {data_dir}",
            )
        )
    if not os.access(data_dir, os.W_OK | os.X_OK):
        found.append(
            Finding(FAIL, f"data dir {data_dir} is not writable", f"chmod u+rwx {data_dir}")
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        found.append(
            Finding(
                WARN,
                f"data dir {data_dir} is mode {mode:04o}: others can look in",
                f"chmod 700 {data_dir}",
            )
        )
    for name in (TOKEN_FILE, SECRET_FILE):
        path = data_dir / name
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            found.append(Finding(FAIL, f"{path} is readable by others", f"chmod 600 {path}"))
    if not found:
        found.append(Finding(OK, f"data dir {data_dir}: yours, 0700, writable"))
    return found


def _database(settings: Settings) -> list[Finding]:
    if settings.database_url and not settings.database_url.startswith("sqlite:///"):
        return asyncio.run(_postgres(settings.database_url, settings.node_timeout))
    path = settings.sqlite_path
    if not path.exists():
        return [Finding(WARN, f"no database at {path} yet", "pushq serve creates it")]
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
            version = db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return [
            Finding(
                FAIL,
                f"database {path} cannot be read: {exc}",
                "restore the last backup (docs/deploy.md)",
            )
        ]
    found = []
    if result != "ok":
        found.append(
            Finding(
                FAIL,
                f"database {path} fails quick_check: {result}",
                "stop pushq and restore the last backup (docs/deploy.md)",
            )
        )
    latest = max(number for number, _, _ in migrations())
    if version < latest:
        found.append(
            Finding(
                WARN,
                f"database schema {version}, this pushq has {latest}",
                "the next pushq serve migrates it: take a backup first",
            )
        )
    elif version > latest:
        found.append(
            Finding(
                FAIL,
                f"database schema {version} is newer than this pushq's {latest}",
                "run the pushq version that made it, or a newer one",
            )
        )
    if not os.access(path, os.W_OK):
        found.append(Finding(FAIL, f"database {path} is not writable", f"chmod u+rw {path}"))
    if not found:
        found.append(Finding(OK, f"database {path}: quick_check ok, schema {version}, writable"))
    return found


def _disk(folder: Path) -> list[Finding]:
    if not folder.exists():
        return []
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE:
        return [
            Finding(
                WARN,
                f"{free / 1e6:.0f} MB free under {folder}",
                "free space or move the data dir: enqueue fails when the disk fills",
            )
        ]
    return [Finding(OK, f"{free / 1e9:.1f} GB free under {folder}")]


def _reachable_and_clock(base_url: str) -> list[Finding]:
    now = time.time()
    found = []
    if now < EARLIEST:
        found.append(
            Finding(
                FAIL,
                "the clock says " + time.ctime(now),
                "set the time (enable NTP: timedatectl set-ntp true)",
            )
        )
    url = base_url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status, date = response.status, response.headers.get("date")
    except urllib.error.HTTPError as exc:
        status, date = exc.code, exc.headers.get("date")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return [
            *found,
            Finding(
                FAIL,
                f"{url} does not answer from this host: {reason}",
                "start pushq serve, or fix PUSHQ_PUBLIC_URL / DNS / firewall",
            ),
        ]
    if status != 200:
        found.append(Finding(FAIL, f"{url} answered {status}", "see its body: curl " + url))
    else:
        found.append(Finding(OK, f"{url} answers 200 from this host"))
    if date:
        skew = email.utils.parsedate_to_datetime(date).timestamp() - now
        if abs(skew) > MAX_SKEW:
            found.append(
                Finding(
                    WARN,
                    f"the server's clock is {skew:+.0f} s from this host's",
                    "enable NTP on both (timedatectl set-ntp true)",
                )
            )
        else:
            found.append(Finding(OK, f"clock within {MAX_SKEW:.0f} s of the server's"))
    return found


async def _postgres(url: str, node_timeout: float) -> list[Finding]:
    from .store.postgres import LEADER_LOCK

    where = f"PUSHQ_DATABASE_URL {redact_url(url)}"
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (TimeoutError, OSError, ValueError, asyncpg.PostgresError) as exc:
        return [
            Finding(
                FAIL,
                f"{where} cannot be reached: {exc}",
                "check the host, port, database name, role and password in the URL",
            )
        ]
    try:
        return await _postgres_checks(conn, where, node_timeout, LEADER_LOCK)
    except asyncpg.PostgresError as exc:
        return [Finding(FAIL, f"{where}: {exc}", "check the role's rights on the schema")]
    finally:
        await conn.close()


async def _postgres_checks(
    conn: asyncpg.Connection, where: str, node_timeout: float, leader_lock: int
) -> list[Finding]:
    found: list[Finding] = []
    before = time.time()
    db_now = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
    here = (before + time.time()) / 2
    skew = here - db_now
    if abs(skew) > MAX_NODE_SKEW:
        found.append(
            Finding(
                WARN,
                f"this host's clock is {skew:+.1f} s from PostgreSQL's",
                "enable NTP on every node and the database host (timedatectl set-ntp true): "
                "nodes compare the times they write (leases, circuits)",
            )
        )
    else:
        found.append(Finding(OK, f"clock within {MAX_NODE_SKEW:.0f} s of PostgreSQL's"))
    schema = await conn.fetchval("SELECT current_schema()")
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        found.append(
            Finding(
                WARN,
                f"{where}: no pushq tables in schema {schema} yet",
                "the first pushq serve creates them (or set ?search_path= to pushq's schema)",
            )
        )
        return found
    version = await conn.fetchval("SELECT max(version) FROM schema_migrations") or 0
    latest = max(number for number, _, _ in migrations("postgres_migrations"))
    if version < latest:
        found.append(
            Finding(
                WARN,
                f"database schema {version}, this pushq has {latest}",
                "the next pushq serve migrates it (under a lock: nodes may start together)",
            )
        )
    elif version > latest:
        found.append(
            Finding(
                FAIL,
                f"database schema {version} is newer than this pushq's {latest}",
                "run the pushq version that made it, or a newer one, on every node",
            )
        )
    else:
        found.append(Finding(OK, f"{where}: reachable, schema {schema}, migrations current"))
    rows = await conn.fetch(
        "SELECT id, extract(epoch FROM clock_timestamp()) - heartbeat_at AS silent"
        " FROM nodes ORDER BY id"
    )
    alive = [r["id"] for r in rows if r["silent"] <= node_timeout]
    silent = [(r["id"], r["silent"]) for r in rows if r["silent"] > node_timeout]
    leading = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid::bigint = $1 AND objid::bigint = hashtext(current_schema())::bigint"
        " & 4294967295 AND database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database())",
        leader_lock,
    )
    if not alive:
        found.append(
            Finding(
                WARN,
                "no pushq node heartbeats on this database",
                "start pushq serve (every node heartbeats each third of PUSHQ_NODE_TIMEOUT)",
            )
        )
    else:
        lead = "one leads" if leading else "none leads yet"
        found.append(Finding(OK, f"{len(alive)} node(s) heartbeating ({', '.join(alive)}); {lead}"))
        if not leading:
            found.append(
                Finding(
                    WARN,
                    "no node holds the leader lock: maintenance (promotion, rescue) waits",
                    "wait a third of PUSHQ_NODE_TIMEOUT; if it stays, see the nodes' logs",
                )
            )
    for node, quiet in silent:
        found.append(
            Finding(
                WARN,
                f"node {node} silent for {quiet:.0f} s (PUSHQ_NODE_TIMEOUT {node_timeout:g} s)",
                "its attempts are rescued by the leader; restart or remove that node",
            )
        )
    return found
