"""The settler in process: each outcome of an attempt and the verdict it returns,
on a real store (once per backend) with a clock the test sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushq.policy.backoff import BackoffPolicy
from pushq.server.delivery import DeliveryResponse, Outcome
from pushq.server.metrics import Metrics
from pushq.server.models import AttemptRecord, JobRecord, NewJob
from pushq.server.settle import Settled, Settler, Verdict
from pushq.server.store.base import Store
from pushq.server.waiters import JobWaiters

from ..stores import WithStore, claim_due
from .fakes import settings

NOW = 1_800_000_000.0
NO_JITTER = BackoffPolicy(base=10.0, max=100.0, jitter=False)


async def claimed(store: Store, settler: Settler, **fields: object) -> JobRecord:
    new = NewJob(url="http://worker.test/x", backoff=NO_JITTER, **fields)  # type: ignore[arg-type]
    await store.enqueue(
        jobs=[new], now=NOW, idempotency_ttl=60, defaults=settler.settings.job_defaults
    )
    (job,) = (await claim_due(store, limit=1, slots=8, now=NOW, lease="L", lease_margin=1)).jobs
    return job


def attempt(job: JobRecord, status: int | None) -> AttemptRecord:
    return AttemptRecord(job.id, job.attempts, NOW, 5.0, status, None, None)


CASES = [
    (Outcome("succeeded", 200), {}, Settled(Verdict.SUCCEEDED), "succeeded", "succeeded"),
    (
        Outcome("async", 202),
        {},
        Settled(Verdict.AWAITING),
        "active",
        "active (awaiting completion)",
    ),
    (
        Outcome("retry", 503, "HTTP 503"),
        {},
        Settled(Verdict.RETRY_SCHEDULED, NOW + 1 + 10),
        "retrying",
        "retrying in 10.0s",
    ),
    (
        Outcome("retry", 503, "HTTP 503", retry_after=60.0),
        {},
        Settled(Verdict.RETRY_SCHEDULED, NOW + 1 + 60),
        "retrying",
        "retrying in 60.0s",
    ),
    (Outcome("retry", 503, "HTTP 503"), {"max_attempts": 1}, Settled(Verdict.DEAD), "dead", "dead"),
    (Outcome("dead", 400, "HTTP 400"), {}, Settled(Verdict.DEAD), "dead", "dead"),
]


@pytest.mark.parametrize(("outcome", "fields", "expected", "state", "described"), CASES)
def test_each_outcome_settles_to_its_verdict(
    with_store: WithStore,
    tmp_path: Path,
    outcome: Outcome,
    fields: dict[str, object],
    expected: Settled,
    state: str,
    described: str,
) -> None:
    async def scenario(store: Store) -> None:
        woken: list[float | None] = []
        settler = Settler(
            store=store,
            settings=settings(tmp_path),
            metrics=Metrics(),
            notify=woken.append,
            waiters=JobWaiters(),
        )
        job = await claimed(store, settler, **fields)
        now = NOW + 1

        settled = await settler.settle(job, outcome, attempt(job, outcome.status), "ok", now)

        assert settled == expected
        assert settled.describe(now) == described
        after = await store.get(job_id=job.id)
        assert after is not None and after.state == state
        if expected.verdict is Verdict.RETRY_SCHEDULED:
            assert after.run_at == expected.run_at
        if expected.verdict in (Verdict.SUCCEEDED, Verdict.DEAD):
            assert woken == [None]  # a finished job may free a slot or a key
        # The same attempt settled again is stale (except while it awaits completion).
        again = await settler.settle(job, outcome, attempt(job, outcome.status), "ok", now)
        if expected.verdict is not Verdict.AWAITING:
            assert again == Settled(Verdict.STALE)

    with_store(scenario)


def test_a_dead_job_stores_its_failure_callback_with_the_kill(
    with_store: WithStore, tmp_path: Path
) -> None:
    async def scenario(store: Store) -> None:
        settler = Settler(
            store=store,
            settings=settings(tmp_path),
            metrics=Metrics(),
            notify=lambda run_at: None,
            waiters=JobWaiters(),
        )
        job = await claimed(store, settler, failure_callback_url="http://worker.test/failed")
        outcome = Outcome("dead", 400, "HTTP 400")
        assert (await settler.settle(job, outcome, attempt(job, 400), None, NOW + 1)).verdict is (
            Verdict.DEAD
        )
        page = await store.list_jobs(
            queue="pushq.callbacks", state=None, limit=10, cursor=None, now=NOW + 1
        )
        (callback,) = page.jobs
        assert callback.url == "http://worker.test/failed"
        assert callback.headers == {"pushq-callback-for": job.id}

    with_store(scenario)


class OneFollowUp:
    """A delivery hook (as QStash's /v2 has) that makes one job of each attempt."""

    def request(self, job: JobRecord, request: object, now: float) -> object:
        return request

    def outcome(self, job: JobRecord, response: object, outcome: Outcome) -> Outcome:
        return outcome

    def after_attempt(
        self, job: JobRecord, response: object, outcome: Outcome, now: float
    ) -> list[NewJob]:
        return [NewJob(url="http://worker.test/after", queue="follow-ups")]


@pytest.mark.parametrize(
    ("outcome", "fields"),
    [
        (Outcome("succeeded", 200), {}),
        (Outcome("dead", 400, "HTTP 400"), {}),
        (Outcome("retry", 503, "HTTP 503"), {"max_attempts": 1}),
    ],
)
def test_a_hooks_follow_up_is_stored_with_an_outcome_that_ends_the_job(
    with_store: WithStore, tmp_path: Path, outcome: Outcome, fields: dict[str, object]
) -> None:
    """A workflow's context.call answer and its failure function are follow-ups: they
    must not be lost to a crash between the outcome and a second write, so they are
    written in the settle's own transaction (no separate enqueue)."""

    async def scenario(store: Store) -> None:
        settler = Settler(
            store=store,
            settings=settings(tmp_path),
            metrics=Metrics(),
            notify=lambda run_at: None,
            waiters=JobWaiters(),
            hooks={"test": OneFollowUp()},  # type: ignore[dict-item]
        )
        job = await claimed(store, settler, meta={"kind": "test"}, **fields)
        enqueues: list[object] = []
        real_enqueue = store.enqueue

        async def counted(**kwargs: object) -> object:
            enqueues.append(kwargs)
            return await real_enqueue(**kwargs)  # type: ignore[arg-type]

        store.enqueue = counted  # type: ignore[method-assign,assignment]
        response = DeliveryResponse(outcome.status or 0, {}, b"")
        settled = await settler.settle(
            job, outcome, attempt(job, outcome.status), None, NOW + 1, response
        )
        assert settled.verdict in (Verdict.SUCCEEDED, Verdict.DEAD)
        assert enqueues == []  # nothing written after the settle
        page = await store.list_jobs(
            queue="follow-ups", state=None, limit=10, cursor=None, now=NOW + 1
        )
        assert [j.url for j in page.jobs] == ["http://worker.test/after"]

    with_store(scenario)
