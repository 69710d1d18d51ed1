"""Log output: plain text lines (default) or one JSON object per line.

A JSON line holds `time` (RFC 3339 UTC), `level`, `logger`, `message`, the
fields a call passed with `extra={...}` (the dispatcher's attempt lines carry
`job_id`, `queue`, `attempt`, `status`, `duration_ms`, `verdict`, `host`), and
`exception` when there is one. Callers never pass secrets, bodies or full URLs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=`
# (uvicorn's `color_message` is its message again, with terminal colours).
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str, fmt: str = "text") -> None:
    """Send pushq's logs (and uvicorn's) to stderr at `level`, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])
    # aiosqlite logs every statement with its parameters (job bodies) at DEBUG.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
