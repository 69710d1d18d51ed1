"""`python -m pushq.bench.sql_count serve`: `pushq serve` with every SQLite statement counted.

Each connection pushq opens gets a trace callback that counts the statements it
runs by kind (first word, or the named query's first line); the counts are written
as JSON to $PUSHQ_SQL_COUNT_FILE when the server stops. `pushq bench throughput
--count-sql` runs the server this way and divides by the jobs of the measured
phase. The callback costs CPU of its own: read the counts, not the timings.
"""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import sys
from collections import Counter

COUNTS: Counter[str] = Counter()
_connect = sqlite3.connect


def _kind(statement: str) -> str:
    words = statement.split(None, 3)
    head = " ".join(words[:3]).upper() if words else "?"
    return head[:60]


def _traced_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
    conn: sqlite3.Connection = _connect(*args, **kwargs)  # type: ignore[call-overload]
    conn.set_trace_callback(lambda statement: COUNTS.update((_kind(statement),)))
    return conn


def _dump() -> None:
    path = os.environ.get("PUSHQ_SQL_COUNT_FILE")
    if path:
        with open(path, "w") as out:
            json.dump(dict(COUNTS), out, indent=1, sort_keys=True)


def main() -> int:
    sqlite3.connect = _traced_connect  # type: ignore[assignment]
    atexit.register(_dump)
    from pushq.cli import main as pushq_main

    return pushq_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
