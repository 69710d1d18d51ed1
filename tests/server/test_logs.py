"""pushq.server.logs: the buffered stderr handler keeps every line and lets none wait long."""

from __future__ import annotations

import io
import logging

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
