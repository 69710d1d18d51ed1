"""Long-poll support: wake requests waiting on a job when it finishes."""

from __future__ import annotations

import asyncio


class JobWaiters:
    """Events per job id; whoever finishes a job wakes those waiting on it.

    Only this process's waiters are woken: callers re-read the job on a short
    period too, so a job finished by another node is seen within that period.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._counts: dict[str, int] = {}

    def wake(self, job_id: str) -> None:
        event = self._events.get(job_id)
        if event is not None:
            event.set()

    async def wait(self, job_id: str, timeout: float) -> None:
        """Return when the job is woken or after `timeout` seconds."""
        event = self._events.setdefault(job_id, asyncio.Event())
        self._counts[job_id] = self._counts.get(job_id, 0) + 1
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            self._counts[job_id] -= 1
            if self._counts[job_id] == 0:
                del self._counts[job_id]
                del self._events[job_id]
