"""`pushq doctor`: checks a deployment from the machine that runs it and says what to fix.

Each check gives ok, warn or fail with one line, and a fix for anything not ok:
the data dir (exists, yours, 0700, writable, secrets 0600), the database (opens,
passes quick_check, its schema against this version's, writable), free disk,
the clock, and whether the public URL answers /health from this host.
"""

from __future__ import annotations

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

from .config import SECRET_FILE, TOKEN_FILE, Settings
from .store.sql import migrations

OK, WARN, FAIL = "ok", "warn", "FAIL"
EARLIEST = 1_735_689_600  # 2025-01-01: a clock before this is wrong
MAX_SKEW = 30.0  # seconds between this host's clock and the server's Date header
MIN_FREE = 1024**3


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
        return [Finding(WARN, "PostgreSQL: not checked by pushq doctor yet", "")]
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
