"""Maintenance services in process: promoter, rescuer, pruners and the service loop,
on a real store (once per backend) with a clock the test moves; nothing sleeps."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pushq.policy.backoff import BackoffPolicy
from pushq.server.maintenance import (
    LEASE_EXPIRED,
    ORPHANED,
    Promoter,
    Rescuer,
    RetentionPruner,
    Service,
    ThisNode,
)
from pushq.server.metrics import Metrics
from pushq.server.models import AttemptRecord, JobDefaults, JobRecord, NewJob
from pushq.server.settle import Settler
from pushq.server.store.base import Store
from pushq.server.waiters import JobWaiters

from ..stores import WithStore, claim_due
from .fakes import Clock, settings

NOW = 1_800_000_000.0
NO_JITTER = BackoffPolicy(base=10.0, max=100.0, jitter=False)
DEFAULTS = JobDefaults(3, 30.0, NO_JITTER)


async def enqueue(store: Store, *jobs: NewJob, now: float = NOW) -> list[JobRecord]:
    results = await store.enqueue(jobs=list(jobs), now=now, idempotency_ttl=60, defaults=DEFAULTS)
    return [result.job for result in results]


async def claim(store: Store, now: float = NOW) -> list[JobRecord]:
    return (await claim_due(store, limit=10, slots=8, now=now, lease="L", lease_margin=1)).jobs


def rescuer(store: Store, tmp_path: Path, clock: Clock, notified: list[None]) -> Rescuer:
    config = settings(tmp_path)
    settler = Settler(
        store=store,
        settings=config,
        metrics=Metrics(),
        notify=lambda run_at: None,
        waiters=JobWaiters(),
    )
    return Rescuer(
        store=store,
        settler=settler,
        metrics=Metrics(),
        settings=config,
        notify=lambda: notified.append(None),
        leadership=ThisNode(),
        clock=clock,
        rand=lambda: 0.0,
    )


def test_the_rescuer_retries_at_once_or_with_backoff_or_kills_with_the_callback_in_one_go(
    with_store: WithStore, tmp_path: Path
) -> None:
    """An attempt in flight when its node died is pushq's fault: due at once. A job an
    async worker held and let go quiet is the worker's: it waits out its backoff."""

    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        notified: list[None] = []
        service = rescuer(store, tmp_path, clock, notified)
        retried, killed, lasting, quiet = await enqueue(
            store,
            NewJob(url="http://w.test/a", timeout=5.0, backoff=NO_JITTER),
            NewJob(
                url="http://w.test/b",
                timeout=5.0,
                max_attempts=1,
                failure_callback_url="http://w.test/failed",
            ),
            NewJob(url="http://w.test/c", timeout=500.0),
            NewJob(url="http://w.test/d", timeout=5.0, backoff=NO_JITTER),
        )
        await claim(store)
        assert await store.await_completion(
            job_id=quiet.id, lease="L", attempt=1, deadline=NOW + 10
        )
        clock.now = NOW + 60

        assert await service.step() is False  # one batch held them all

        a = await store.get(job_id=retried.id)
        assert a is not None and (a.state, a.run_at) == ("retrying", NOW + 60)  # no backoff
        d = await store.get(job_id=quiet.id)
        assert d is not None and (d.state, d.run_at) == ("retrying", NOW + 60 + 10)
        assert a.last_error is not None and a.last_error["message"] == LEASE_EXPIRED
        b = await store.get(job_id=killed.id)
        assert b is not None and (b.state, b.failed_at) == ("dead", NOW + 60)
        c = await store.get(job_id=lasting.id)
        assert c is not None and c.state == "active"
        (callback,) = (
            await store.list_jobs(
                queue="pushq.callbacks", state=None, limit=10, cursor=None, now=clock.now
            )
        ).jobs
        assert callback.url == "http://w.test/failed"
        assert callback.headers == {"pushq-callback-for": killed.id}
        attempts = await store.list_attempts(job_id=retried.id)
        assert [(x.number, x.status, x.error) for x in attempts] == [(1, None, LEASE_EXPIRED)]
        assert notified == [None]
        assert await service.step() is False and notified == [None]  # nothing more to do

    with_store(scenario)


def test_recovery_retries_at_once_what_the_previous_run_left_in_flight(
    with_store: WithStore, tmp_path: Path
) -> None:
    """Start-up: the attempts a killed process left in flight are due now, long before
    their leases run out, and no longer fill their queue's concurrency; out of attempts
    they go to the DLQ with their failure callback; async-held jobs are not touched."""

    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        notified: list[None] = []
        service = rescuer(store, tmp_path, clock, notified)
        await store.put_queue(name="one", changes={"concurrency": 1}, now=NOW)
        cut, last, held, waiting = await enqueue(
            store,
            NewJob(url="http://w.test/a", queue="one", timeout=300.0, backoff=NO_JITTER),
            NewJob(
                url="http://w.test/b",
                timeout=300.0,
                max_attempts=1,
                failure_callback_url="http://w.test/failed",
            ),
            NewJob(url="http://w.test/c", timeout=300.0),
        ) + await enqueue(store, NewJob(url="http://w.test/e", queue="one"), now=NOW + 1)
        await claim(store)
        assert await store.await_completion(
            job_id=held.id, lease="L", attempt=1, deadline=NOW + 1000
        )
        clock.now = NOW + 2  # the process died and started again at once
        assert await claim(store, now=clock.now) == []  # the dead lease fills "one"

        assert await service.recover() == 2

        a = await store.get(job_id=cut.id)
        assert a is not None and (a.state, a.run_at, a.attempts) == ("retrying", NOW + 2, 1)
        assert a.last_error is not None and a.last_error["message"] == ORPHANED
        b = await store.get(job_id=last.id)
        assert b is not None and b.state == "dead"
        (callback,) = (
            await store.list_jobs(
                queue="pushq.callbacks", state=None, limit=10, cursor=None, now=clock.now
            )
        ).jobs
        assert callback.headers == {"pushq-callback-for": last.id}
        c = await store.get(job_id=held.id)
        assert c is not None and c.state == "active"  # its worker still holds it
        assert [
            (x.number, x.status, x.error) for x in await store.list_attempts(job_id=cut.id)
        ] == [(1, None, ORPHANED)]
        assert notified == [None]
        assert await service.recover() == 0
        await store.promote_due(now=clock.now, limit=10)
        claimed = [job.queue for job in await claim(store, now=clock.now)]
        assert claimed.count("one") == 1  # its slot is free again: "one" delivers
        assert {cut.id, waiting.id} & {j.id for j in await store.orphaned_attempts(limit=10)}

    with_store(scenario)


def test_the_rescuer_sets_aside_a_job_it_cannot_decide_and_rescues_the_rest(
    with_store: WithStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        service = rescuer(store, tmp_path, clock, [])
        bad, good = await enqueue(
            store,
            NewJob(url="http://w.test/x", timeout=5.0),
            NewJob(url="http://w.test/y", timeout=5.0),
        )
        await claim(store)
        clock.now = NOW + 60
        decide = service.decide

        def picky(job: JobRecord, now: float, error: dict[str, object]) -> object:
            if job.id == bad.id:
                raise OverflowError("no delay for this one")
            return decide(job, now, error)

        service.decide = picky  # type: ignore[assignment,method-assign]
        with caplog.at_level(logging.ERROR, logger="pushq.maintenance"):
            await service.step()
            await service.step()

        assert [r.message for r in caplog.records].count(
            f"rescuing job={bad.id} queue=default failed; set aside"
        ) == 1  # logged once
        kept = await store.get(job_id=bad.id)
        assert kept is not None and kept.state == "active"
        rescued = await store.get(job_id=good.id)
        assert rescued is not None and rescued.state == "retrying"

    with_store(scenario)


def test_the_promoter_promotes_due_jobs_wakes_the_dispatcher_and_sleeps_until_the_next(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        woken: list[None] = []
        promoter = Promoter(
            store=store,
            on_due=lambda: woken.append(None),
            poll_interval=1.0,
            leadership=ThisNode(),
            clock=clock,
            rand=lambda: 0.5,
        )
        soon, _ = await enqueue(
            store,
            NewJob(url="http://w.test/a", run_at=NOW + 0.25),
            NewJob(url="http://w.test/b", run_at=NOW + 30),
        )
        assert await promoter.step() is False
        assert woken == [] and promoter.timeout() == 0.25  # the next due job comes first
        clock.now = NOW + 0.25
        await promoter.step()
        assert woken == [None]
        assert (await store.get(job_id=soon.id)).state == "pending"  # type: ignore[union-attr]
        assert promoter.timeout() == 1.0  # the poll, sooner than the job at +30
        promoter.due_at(NOW + 0.5)
        assert promoter.timeout() == 0.25

    with_store(scenario)


def test_retention_prunes_finished_jobs(with_store: WithStore, tmp_path: Path) -> None:
    """Succeeded jobs go after 7 days, dead ones after 30, with their attempts; nothing
    unfinished is touched."""

    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        pruner = RetentionPruner(
            store=store, settings=settings(tmp_path), leadership=ThisNode(), clock=clock
        )
        await enqueue(store, *(NewJob(url="http://127.0.0.1:9/x") for _ in range(4)))
        ok, dead, _ = (
            await claim_due(store, limit=3, slots=8, now=NOW, lease="L", lease_margin=1)
        ).jobs
        await store.complete(
            job_id=ok.id,
            lease="L",
            attempt=AttemptRecord(ok.id, 1, NOW, 1.0, 200, None, None),
            result={},
            now=NOW,
        )
        await store.kill(
            job_id=dead.id,
            lease="L",
            attempt=AttemptRecord(dead.id, 1, NOW, 1.0, 400, None, None),
            error={},
            now=NOW,
        )
        clock.now = NOW + 6 * 86400
        assert await pruner.prune() == 0
        clock.now = NOW + 8 * 86400
        assert await pruner.prune() == 1  # the succeeded one
        assert await store.get(job_id=ok.id) is None
        assert await store.list_attempts(job_id=ok.id) == []
        assert await store.get(job_id=dead.id) is not None
        clock.now = NOW + 31 * 86400
        assert await pruner.step() is False
        assert await store.get(job_id=dead.id) is None
        remaining = await store.count_by_state(now=clock.now)
        assert sum(remaining.values()) == 2  # the active and the pending job stay

    with_store(scenario)


class Scripted(Service):
    """A service whose rounds follow a script; it stops the loop at the end."""

    name = "scripted"

    def __init__(self, script: list[object], leader: bool = True) -> None:
        class Lead:
            def is_leader(self) -> bool:
                return leader

        super().__init__(leadership=Lead(), clock=lambda: NOW)
        self.script = script
        self.steps = 0
        self.waits = 0

    async def step(self) -> bool:
        self.steps += 1
        action = self.script.pop(0)
        if isinstance(action, BaseException):
            raise action
        return bool(action)

    def timeout(self) -> float:
        self.waits += 1
        if self.waits > 5:
            raise asyncio.CancelledError  # end of the test
        return 0.0


def test_a_service_survives_any_exception_from_a_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = Scripted([OverflowError("a bad rate"), True, False, asyncio.CancelledError()])
    with (
        caplog.at_level(logging.ERROR, logger="pushq.maintenance"),
        pytest.raises(asyncio.CancelledError),
    ):
        asyncio.run(service.run())
    assert service.steps == 4  # failed, then a full batch ran again at once, then idle
    assert "scripted failed" in caplog.records[0].message


def test_a_service_runs_nothing_on_a_node_that_does_not_lead() -> None:
    service = Scripted([], leader=False)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(service.run())
    assert service.steps == 0 and service.waits == 6
