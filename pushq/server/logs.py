"""Log output: plain text lines (default) or one JSON object per line.

A JSON line holds `time` (RFC 3339 UTC), `level`, `logger`, `message`, the
fields a call passed with `extra={...}` (the dispatcher's attempt lines carry
`job_id`, `queue`, `attempt`, `status`, `duration_ms`, `verdict`, `host`), and
`exception` when there is one. Callers never pass secrets, bodies or full URLs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
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


FLUSH_INTERVAL = 0.1  # seconds an INFO line may wait in the buffer, at most


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines go to stderr through a buffer rather than one write each: a line per
    delivery attempt would otherwise cost a system call per job.

    A WARNING or worse is written at once, with everything before it; INFO lines
    wait at most FLUSH_INTERVAL (a daemon thread flushes; logging flushes every
    handler at exit). Lines that cannot be written (stderr on a full disk) stay in
    the buffer, up to MAX_PENDING bytes, and go out once the write succeeds: the
    operator still reads why writes were refused once space returns."""

    MAX_PENDING = 1 << 20

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._lines: list[bytes] = []
        self._size = 0
        self._closed = threading.Event()
        thread = threading.Thread(target=self._flusher, name="pushq-log-flush", daemon=True)
        thread.start()

    def close(self) -> None:
        self._closed.set()
        try:
            self.flush()
        finally:
            super().close()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines, self._size = [], 0
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (tests replace stderr)
            self.stream.write(data.decode())
            self.stream.flush()
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:  # kept for the next flush, the newest MAX_PENDING bytes at most
            rest = bytes(view[-self.MAX_PENDING :])
            self._lines, self._size = [rest], len(rest)

    def emit(self, record: logging.LogRecord) -> None:
        # Never raises into the caller: the group commit logs from the loop that
        # answers every write, also while the disk is full.
        try:
            line = (self.format(record) + self.terminator).encode("utf-8", "replace")
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self.acquire()
        try:
            self._lines.append(line)
            self._size += len(line)
            if record.levelno >= logging.WARNING or self._size > self.MAX_PENDING:
                self._write_pending()
        except OSError:
            pass
        finally:
            self.release()

    def _flusher(self) -> None:
        while not self._closed.wait(FLUSH_INTERVAL):
            try:
                self.flush()
            except Exception:  # stderr closed: nothing to be done
                pass


def _buffered_stderr() -> None:
    """Make stderr block-buffered (Python line-buffers it even to a file)."""
    try:
        sys.stderr.reconfigure(line_buffering=False, write_through=False)  # type: ignore[union-attr]
    except (AttributeError, ValueError):  # not a TextIOWrapper (tests may replace it)
        pass


def configure(level: str, fmt: str = "text") -> None:
    """Send pushq's logs (and uvicorn's) to stderr at `level`, as text or JSON lines."""
    # No record needs the caller's file and line, thread or process (neither format
    # shows them); finding the caller walks the stack on every line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    _buffered_stderr()
    handler = BufferedStderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])
    # aiosqlite logs every statement with its parameters (job bodies) at DEBUG.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
