"""Single enqueues in the log: a line per queue per interval at INFO, each job at DEBUG."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pushq.server.api.common import EnqueueLog


def test_info_counts_enqueues_per_queue_and_debug_names_each_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        enqueues = EnqueueLog()
        with caplog.at_level(logging.INFO, logger="pushq.api"):
            for n in range(3):
                enqueues.enqueued(f"job{n}", "emails", "pending")
            enqueues.enqueued("job3", "sms", "scheduled")
            assert caplog.messages == []  # nothing per job at INFO
            enqueues.flush()  # what the timer does INTERVAL seconds after the first
        assert caplog.messages == [
            "3 jobs enqueued in emails in the last 10s",
            "1 job enqueued in sms in the last 10s",
        ]
        assert [r.__dict__["enqueued"] for r in caplog.records] == [3, 1]
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="pushq.api"):
            enqueues.enqueued("job4", "emails", "pending")
        assert caplog.messages == ["job job4 enqueued in emails (pending)"]

    asyncio.run(scenario())


def test_the_interval_timer_flushes_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        enqueues = EnqueueLog()
        enqueues.INTERVAL = 0.01
        enqueues.enqueued("job", "emails", "pending")
        assert enqueues.counts == {"emails": 1}
        while enqueues.counts:  # until the timer has written the line
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.INFO, logger="pushq.api"):
        asyncio.run(scenario())
    assert caplog.messages == ["1 job enqueued in emails in the last 0.01s"]
