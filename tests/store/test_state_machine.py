"""The job state machine under hypothesis's stateful testing, against the real store.

Hypothesis drives random sequences of what the dispatcher, the rescuer and operators
do (enqueue, claim, succeed, fail and retry, fail for good, let a lease expire and
rescue it, settle with a stale lease, cancel, redrive, restart the store on the same
file) and checks, after every step, a model of what each job must be:

- one state per job, the model's (waiting, active, succeeded, dead, cancelled);
- attempts never above max_attempts;
- no job lost: every job enqueued is still there, across restarts;
- terminal states are final: only a redrive takes a job out of `dead`, and a settle
  under a lease the rescuer took back changes nothing.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pushq.errors import Conflict, NotFound
from pushq.server.models import AttemptRecord
from pushq.server.render import public_state
from pushq.server.store.sqlite import SQLiteStore

from .test_conformance import (
    DEFAULTS,
    MARGIN,
    NOW,
    TTL,
    claim,
    error_at,
    new_job,
    rescue_expired,
)

TERMINAL = {"succeeded", "dead", "cancelled"}
# How the store's states read in the model: waiting covers every "not yet due or due" one.
ABSTRACT = {"scheduled": "waiting", "pending": "waiting", "blocked": "waiting"}
ABSTRACT |= {"retrying": "waiting"}
LEASE_SPAN = DEFAULTS.timeout + MARGIN  # a claim holds the job this long


@dataclass
class Expected:
    state: str
    attempts: int
    max_attempts: int
    run_at: float
    lease: str | None = None
    leased_until: float = 0.0


class JobStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pushq-stateful-"))
        self.loop = asyncio.new_event_loop()
        self.store = self._open()
        self.now = NOW
        self.jobs: dict[str, Expected] = {}
        self.leases = 0
        self.stale: list[tuple[str, str, int]] = []  # (job, lease, attempt) taken back

    # -- plumbing ---------------------------------------------------------------------
    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    def _open(self) -> SQLiteStore:
        store = SQLiteStore(self.dir / "pushq.db")
        self.run(store.open())
        return store

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _in(self, *states: str) -> list[str]:
        return sorted(job_id for job_id, job in self.jobs.items() if job.state in states)

    def _attempt(self, job_id: str, number: int, status: int | None) -> AttemptRecord:
        error = None if status == 200 else f"HTTP {status}"
        return AttemptRecord(job_id, number, self.now, 1.0, status, error, None)

    # -- rules ------------------------------------------------------------------------
    @rule(max_attempts=st.integers(1, 3), delay=st.sampled_from([0.0, 0.0, 5.0]))
    def enqueue(self, max_attempts: int, delay: float) -> None:
        job = new_job(max_attempts=max_attempts, run_at=self.now + delay)
        [result] = self.run(
            self.store.enqueue(jobs=[job], now=self.now, idempotency_ttl=TTL, defaults=DEFAULTS)
        )
        assert result.created
        self.jobs[result.job.id] = Expected("waiting", 0, max_attempts, self.now + delay)

    @rule(limit=st.integers(1, 5))
    def claim_some(self, limit: int) -> None:
        self.leases += 1
        lease = f"L{self.leases}"
        claimed = self.run(claim(self.store, now=self.now, limit=limit, lease=lease))
        assert len(claimed) <= limit
        for job in claimed:
            expected = self.jobs[job.id]
            assert expected.state == "waiting" and expected.run_at <= self.now, (job, expected)
            expected.state, expected.lease = "active", lease
            expected.attempts += 1
            expected.leased_until = self.now + LEASE_SPAN
            assert job.attempts == expected.attempts

    @precondition(lambda self: self._in("active"))
    @rule(data=st.data())
    def succeed(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self._in("active")))
        expected = self.jobs[job_id]
        done = self.run(
            self.store.complete(
                job_id=job_id,
                lease=expected.lease or "",
                attempt=self._attempt(job_id, expected.attempts, 200),
                result={"status": 200, "body": "ok"},
                now=self.now,
            )
        )
        assert done
        expected.state, expected.lease = "succeeded", None

    @precondition(lambda self: self._in("active"))
    @rule(data=st.data(), backoff=st.sampled_from([0.0, 10.0]))
    def fail(self, data: st.DataObject, backoff: float) -> None:
        """A failed attempt, settled as the settler does: retried while attempts remain."""
        job_id = data.draw(st.sampled_from(self._in("active")))
        expected = self.jobs[job_id]
        attempt = self._attempt(job_id, expected.attempts, 500)
        if expected.attempts < expected.max_attempts:
            run_at = self.now + backoff
            done = self.run(
                self.store.schedule_retry(
                    job_id=job_id,
                    lease=expected.lease or "",
                    attempt=attempt,
                    run_at=run_at,
                    error=error_at(self.now),
                )
            )
            expected.state, expected.run_at = "waiting", run_at
        else:
            done = self.run(
                self.store.kill(
                    job_id=job_id,
                    lease=expected.lease or "",
                    attempt=attempt,
                    error=error_at(self.now),
                    now=self.now,
                )
            )
            expected.state = "dead"
        assert done
        expected.lease = None

    @precondition(lambda self: self._in("active"))
    @rule(data=st.data())
    def fail_permanently(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self._in("active")))
        expected = self.jobs[job_id]
        done = self.run(
            self.store.kill(
                job_id=job_id,
                lease=expected.lease or "",
                attempt=self._attempt(job_id, expected.attempts, 410),
                error=error_at(self.now, 410),
                now=self.now,
            )
        )
        assert done
        expected.state, expected.lease = "dead", None

    @rule(seconds=st.sampled_from([1.0, 6.0, LEASE_SPAN + 1]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def rescue(self) -> None:
        """The rescuer: every active job whose lease ran out goes back (or dies)."""
        rescued = self.run(rescue_expired(self.store, now=self.now, limit=1000))
        due = {i for i, job in self.jobs.items() if job.state == "active"}
        due = {i for i in due if self.jobs[i].leased_until < self.now}
        assert {job.id for job in rescued} == due
        for job in rescued:
            expected = self.jobs[job.id]
            self.stale.append((job.id, expected.lease or "", expected.attempts))
            expected.lease = None
            if expected.attempts >= expected.max_attempts:
                expected.state = "dead"
            else:
                expected.state, expected.run_at = "waiting", job.run_at

    @precondition(lambda self: self.stale)
    @rule(data=st.data(), outcome=st.sampled_from(["complete", "retry", "kill"]))
    def stale_settle(self, data: st.DataObject, outcome: str) -> None:
        """A worker that answers after the rescuer took its job back changes nothing."""
        job_id, lease, number = data.draw(st.sampled_from(self.stale))
        attempt = self._attempt(job_id, number, 200)
        if outcome == "complete":
            call = self.store.complete(
                job_id=job_id, lease=lease, attempt=attempt, result={}, now=self.now
            )
        elif outcome == "retry":
            call = self.store.schedule_retry(
                job_id=job_id,
                lease=lease,
                attempt=attempt,
                run_at=self.now,
                error=error_at(self.now),
            )
        else:
            call = self.store.kill(
                job_id=job_id, lease=lease, attempt=attempt, error=error_at(self.now), now=self.now
            )
        assert not self.run(call)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        expected = self.jobs[job_id]
        if expected.state in TERMINAL:
            with pytest.raises(Conflict):
                self.run(self.store.cancel(job_id=job_id, now=self.now))
            return
        job = self.run(self.store.cancel(job_id=job_id, now=self.now))
        assert job.state == "cancelled"
        if expected.lease is not None:
            self.stale.append((job_id, expected.lease, expected.attempts))
        expected.state, expected.lease = "cancelled", None

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def redrive(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        expected = self.jobs[job_id]
        if expected.state != "dead":
            with pytest.raises(NotFound):
                self.run(self.store.redrive(job_id=job_id, now=self.now))
            return
        job = self.run(self.store.redrive(job_id=job_id, now=self.now))
        assert job.attempts == 0
        expected.state, expected.attempts, expected.run_at = "waiting", 0, self.now

    @rule()
    def restart(self) -> None:
        """pushq stops and starts again on the same database file."""
        self.run(self.store.close())
        self.store = self._open()

    # -- invariants -------------------------------------------------------------------
    @invariant()
    def every_job_is_where_the_model_says(self) -> None:
        counts = self.run(self.store.count_by_state(now=self.now))
        assert sum(counts.values()) == len(self.jobs), "a job was lost or made up"
        public: Counter[tuple[str, str]] = Counter()
        for job_id, expected in self.jobs.items():
            job = self.run(self.store.get(job_id=job_id))
            assert job is not None, f"job {job_id} was lost"
            public[job.queue, public_state(job, self.now)] += 1
            assert ABSTRACT.get(job.state, job.state) == expected.state, (job, expected)
            assert job.attempts == expected.attempts
            assert job.attempts <= job.max_attempts == expected.max_attempts
        assert counts == dict(public), "count_by_state differs from the jobs' states"


JobStateMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
test_job_state_machine = JobStateMachine.TestCase
