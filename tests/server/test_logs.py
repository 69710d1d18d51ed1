"""pushq.server.logs: the buffered stderr handler keeps every line and lets none wait long."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from pushq.server.logs import TEXT_FORMAT, BufferedStderrHandler

from ..harness import wait_until


class Stream(io.StringIO):
    """stderr as the handler sees it: what was written, and what was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


def test_a_warning_is_flushed_at_once_with_the_lines_before_it_and_info_soon_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = Stream()
    monkeypatch.setattr("sys.stderr", stream)
    handler = BufferedStderrHandler()
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    log = logging.getLogger("pushq.test_logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("attempt one")
        log.info("attempt two")
        log.warning("circuit open")  # flushed before warning() returns, with both lines
        assert [line.rsplit(": ", 1)[1] for line in stream.flushed.splitlines()] == [
            "attempt one",
            "attempt two",
            "circuit open",
        ]
        log.info("attempt three")  # an INFO line alone is flushed by the handler's thread
        wait_until(lambda: "attempt three" in stream.flushed, timeout=10)
    finally:
        log.removeHandler(handler)
        handler.close()


def test_lines_that_cannot_be_written_wait_for_space_and_never_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """stderr on a full disk (/dev/full answers every write with ENOSPC): logging
    must not raise into the caller (the group commit logs while it answers writes),
    and the lines come out once a write succeeds."""
    with open("/dev/full", "w") as full, open(tmp_path / "log", "w+") as later:
        monkeypatch.setattr("sys.stderr", full)
        handler = BufferedStderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        try:
            record = logging.LogRecord(
                "t", logging.ERROR, "", 0, "database unavailable", None, None
            )
            handler.emit(record)  # ENOSPC: kept, not raised
            handler.stream = later
            handler.flush()
            later.seek(0)
            assert later.read() == "ERROR database unavailable\n"
        finally:
            handler.close()
