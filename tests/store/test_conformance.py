"""Store behaviour every backend must share, with the clock injected as plain floats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pushq.errors import Conflict, NotFound
from pushq.policy.backoff import BackoffPolicy, PartialBackoff
from pushq.policy.claim_plan import Bucket, ClaimPlan, QueueSnapshot
from pushq.server.models import (
    AttemptRecord,
    JobDefaults,
    JobFilter,
    JobRecord,
    NewJob,
    new_job_id,
)
from pushq.server.store.base import Promotion, Rescue, Store
from pushq.server.store.errors import InvalidCursor

from ..stores import claim_due
from .conftest import WithStore

NOW = 1_000_000.0
TTL = 3600.0
MARGIN = 5.0
SLOTS = 64
# What neither a job nor its queue sets; max_unfinished left unlimited.
DEFAULTS = JobDefaults(max_attempts=3, timeout=30.0, backoff=BackoffPolicy())


def new_job(**fields: Any) -> NewJob:
    """A NewJob as the API hands it over; the store fills in what it leaves unset."""
    return NewJob(**({"url": "https://worker.example/hook"} | fields))


async def enqueue(store: Store, *jobs: NewJob, now: float = NOW) -> list[JobRecord]:
    results = await store.enqueue(jobs=list(jobs), now=now, idempotency_ttl=TTL, defaults=DEFAULTS)
    assert all(result.created for result in results)
    return [result.job for result in results]


async def claim(
    store: Store, *, now: float = NOW, limit: int = 10, slots: int = SLOTS, lease: str = "L1"
) -> list[JobRecord]:
    """The jobs one claim round hands out, due jobs promoted first (wake_at dropped)."""
    await store.promote_due(now=now, limit=10_000)
    result = await claim_due(
        store, limit=limit, slots=slots, now=now, lease=lease, lease_margin=MARGIN
    )
    return result.jobs


LEASE_ERROR = "lease expired: no outcome in time"


async def rescue_expired(
    store: Store,
    *,
    now: float,
    limit: int,
    retry_at: Callable[[JobRecord], float] | None = None,
    callback: Callable[[JobRecord], NewJob | None] = lambda job: None,
) -> list[JobRecord]:
    """What the rescuer does, through the store's two verbs: read the expired leases,
    decide (out of attempts: dead; else retry at `retry_at`, default at once), apply."""
    rescues = []
    for job in await store.expired_leases(now=now, limit=limit):
        dead = job.attempts >= job.max_attempts
        run_at = None if dead else (now if retry_at is None else retry_at(job))
        assert job.lease is not None
        rescues.append(
            Rescue(job.id, job.lease, job.attempts, run_at, callback(job) if dead else None)
        )
    error = {"status": None, "message": LEASE_ERROR, "at": now}
    return await store.rescue(rescues=rescues, error=error, now=now, defaults=DEFAULTS)


async def fetch(store: Store, job_id: str) -> JobRecord:
    job = await store.get(job_id=job_id)
    assert job is not None
    return job


def attempt_of(
    job: JobRecord, *, number: int | None = None, status: int | None = 200
) -> AttemptRecord:
    return AttemptRecord(
        job_id=job.id,
        number=job.attempts if number is None else number,
        started_at=NOW,
        duration_ms=12.5,
        status=status,
        error=None if status == 200 else f"HTTP {status}",
        response_body="ok",
    )


def error_at(now: float, status: int = 500) -> dict[str, Any]:
    return {"status": status, "message": f"HTTP {status}", "at": now}


async def complete(
    store: Store, job: JobRecord, lease: str, attempt: AttemptRecord, now: float
) -> bool:
    result = {"status": 200, "body": "ok"}
    return await store.complete(job_id=job.id, lease=lease, attempt=attempt, result=result, now=now)


async def retry(
    store: Store, job: JobRecord, lease: str, attempt: AttemptRecord, now: float
) -> bool:
    return await store.schedule_retry(
        job_id=job.id, lease=lease, attempt=attempt, run_at=now + 60, error=error_at(now)
    )


async def kill(
    store: Store, job: JobRecord, lease: str, attempt: AttemptRecord, now: float
) -> bool:
    return await store.kill(
        job_id=job.id, lease=lease, attempt=attempt, error=error_at(now, 400), now=now
    )


SETTLES = {"complete": complete, "schedule_retry": retry, "kill": kill}
SETTLED_STATE = {"complete": "succeeded", "schedule_retry": "retrying", "kill": "dead"}


async def make_dead(store: Store, *jobs: NewJob, failed_at: list[float]) -> list[JobRecord]:
    """Enqueue, claim and kill jobs, the i-th failing at failed_at[i]."""
    created = await enqueue(store, *jobs)
    claimed = {job.id: job for job in await claim(store, limit=len(created), lease="doom")}
    for job, at in zip(created, failed_at, strict=True):
        assert await kill(store, claimed[job.id], "doom", attempt_of(claimed[job.id]), at)
    return [await fetch(store, job.id) for job in created]


# -- enqueue and get -----------------------------------------------------------


def test_enqueue_stores_pending_jobs_that_get_returns(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        full = new_job(
            queue="emails",
            method="PUT",
            headers={"x-tenant": "acme"},
            body=b'{"to": "a@example.com"}',
            priority=7,
            backoff=PartialBackoff(base=2.0, max=60.0, jitter=False),
            timeout=12.0,
            ordering_key="user-1",
            callback_url="https://app.example/done",
            failure_callback_url="https://app.example/failed",
        )
        results = await store.enqueue(
            jobs=[full, new_job()], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
        )

        assert [result.created for result in results] == [True, True]
        first, second = (result.job for result in results)
        assert first.id != second.id
        for job in (first, second):
            assert (job.state, job.attempts, job.created_at, job.run_at) == ("pending", 0, NOW, NOW)
            assert job.lease is None and job.finished_at is None and job.last_error is None
            assert await store.get(job_id=job.id) == job
        assert (first.queue, first.method, first.headers, first.body) == (
            "emails",
            "PUT",
            {"x-tenant": "acme"},
            b'{"to": "a@example.com"}',
        )
        assert (first.priority, first.max_attempts, first.timeout) == (7, 3, 12.0)
        assert first.backoff == BackoffPolicy(base=2.0, max=60.0, jitter=False)
        assert (first.ordering_key, first.callback_url, first.failure_callback_url) == (
            "user-1",
            "https://app.example/done",
            "https://app.example/failed",
        )
        assert (second.queue, second.headers, second.body) == ("default", {}, None)

    with_store(scenario)


def test_permanent_statuses_are_the_jobs_own_else_its_queues(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        queue = await store.put_queue(
            name="strict", changes={"permanent_statuses": (400, 422)}, now=NOW
        )
        assert queue.permanent_statuses == (400, 422)
        stored = await store.get_queue(name="strict")
        assert stored is not None and stored.permanent_statuses == (400, 422)
        inherited, own, cleared, plain = await enqueue(
            store,
            new_job(queue="strict"),
            new_job(queue="strict", permanent_statuses=(409,)),
            new_job(queue="strict", permanent_statuses=()),
            new_job(queue="lenient"),
        )
        assert inherited.permanent_statuses == (400, 422)
        assert own.permanent_statuses == (409,)
        assert cleared.permanent_statuses == ()
        assert plain.permanent_statuses is None
        for job in (inherited, own, cleared, plain):
            assert await store.get(job_id=job.id) == job
        claimed = {job.id: job.permanent_statuses for job in await claim(store, limit=4)}
        assert claimed == {
            inherited.id: (400, 422),
            own.id: (409,),
            cleared.id: (),
            plain.id: None,
        }  # what the dispatcher classifies with
        cleared_queue = await store.put_queue(
            name="strict", changes={"permanent_statuses": None}, now=NOW
        )
        assert cleared_queue.permanent_statuses is None
        assert (await fetch(store, inherited.id)).permanent_statuses == (400, 422)  # kept

    with_store(scenario)


def test_get_unknown_id_is_none(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get(job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV") is None

    with_store(scenario)


def test_a_pre_made_id_is_kept_and_a_repeat_returns_the_first_job(with_store: WithStore) -> None:
    """A /v2 workflow step names its own message in its body, so it brings its id;
    a repeat under the same idempotency key (another id) is the first job."""

    async def scenario(store: Store) -> None:
        made = new_job_id(NOW)
        (job,) = await enqueue(store, new_job(id=made, idempotency_key="step-1", tags=["wf:r"]))
        assert job.id == made and (await store.get(job_id=made)) == job
        (again,) = await store.enqueue(
            jobs=[new_job(id=new_job_id(NOW), idempotency_key="step-1")],
            now=NOW,
            idempotency_ttl=TTL,
            defaults=DEFAULTS,
        )
        assert (again.created, again.job.id) == (False, made)
        (other,) = await enqueue(store, new_job(tags=["wf:r"]), now=NOW + 1)
        page = await store.find_jobs(match=JobFilter(tag="wf:r"), limit=1, cursor=None, now=NOW)
        assert [j.id for j in page.jobs] == [other.id]  # newest first: a run's newest step

    with_store(scenario)


def test_batch_enqueue_is_all_or_nothing(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        good = new_job(idempotency_key="batch-key", unique_key="batch-unique")
        broken = new_job(url=None)  # violates NOT NULL after `good` was inserted
        with pytest.raises(Exception, match="(?i)null"):
            await store.enqueue(
                jobs=[good, broken], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
            )

        page = await store.list_jobs(queue=None, state=None, limit=10, cursor=None, now=NOW)
        assert page.jobs == []
        assert await store.count_by_state(now=NOW) == {}
        # Neither key survived the rollback, and the store still takes writes.
        (retried,) = await store.enqueue(
            jobs=[good], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
        )
        assert retried.created

    with_store(scenario)


# -- deduplication -------------------------------------------------------------


def test_idempotency_key_returns_the_same_job_within_ttl(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (first,) = await enqueue(store, new_job(idempotency_key="k"))

        repeat = new_job(idempotency_key="k", url="https://other.example/", queue="other")
        (again,) = await store.enqueue(
            jobs=[repeat], now=NOW + TTL - 1, idempotency_ttl=TTL, defaults=DEFAULTS
        )
        assert not again.created
        assert again.job == first  # the repeat call's own fields are ignored

        (late,) = await store.enqueue(
            jobs=[repeat], now=NOW + TTL + 1, idempotency_ttl=TTL, defaults=DEFAULTS
        )
        assert late.created
        assert late.job.id != first.id and late.job.url == "https://other.example/"

        (later,) = await store.enqueue(
            jobs=[new_job(idempotency_key="k")],
            now=NOW + TTL + 2,
            idempotency_ttl=TTL,
            defaults=DEFAULTS,
        )
        assert (later.created, later.job.id) == (False, late.job.id)

    with_store(scenario)


def test_idempotency_key_repeated_within_one_batch(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        jobs = [new_job(idempotency_key="k"), new_job(idempotency_key="k")]
        first, second = await store.enqueue(
            jobs=jobs, now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
        )
        assert (first.created, second.created) == (True, False)
        assert second.job.id == first.job.id

    with_store(scenario)


def test_unique_key_returns_the_unfinished_job_of_its_queue(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (first,) = await enqueue(store, new_job(unique_key="u"))

        (same,) = await store.enqueue(
            jobs=[new_job(unique_key="u")], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
        )
        assert (same.created, same.job.id) == (False, first.id)

        (elsewhere,) = await enqueue(store, new_job(unique_key="u", queue="other"))
        assert elsewhere.id != first.id

        (claimed,) = await claim(store, limit=1)
        assert claimed.id == first.id
        (active,) = await store.enqueue(
            jobs=[new_job(unique_key="u")], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
        )
        assert (active.created, active.job.id) == (False, first.id)

        assert await complete(store, claimed, "L1", attempt_of(claimed), NOW + 1)
        (fresh,) = await enqueue(store, new_job(unique_key="u"), now=NOW + 2)
        assert fresh.id not in (first.id, elsewhere.id)

    with_store(scenario)


def test_prune_forgets_only_expired_idempotency_keys(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (gone,) = await enqueue(store, new_job(idempotency_key="at-now"), now=NOW - TTL)
        await enqueue(
            store,
            new_job(idempotency_key="older"),
            new_job(idempotency_key="oldest"),
            now=NOW - TTL - 10,
        )
        (live,) = await enqueue(store, new_job(idempotency_key="live"), now=NOW - 1)

        assert await store.prune_idempotency_keys(now=NOW, limit=2) == 2
        assert await store.prune_idempotency_keys(now=NOW, limit=2) == 1
        assert await store.prune_idempotency_keys(now=NOW, limit=2) == 0

        (again,) = await store.enqueue(
            jobs=[new_job(idempotency_key="live")], now=NOW, idempotency_ttl=TTL, defaults=DEFAULTS
        )
        assert (again.created, again.job.id) == (False, live.id)
        assert await store.get(job_id=gone.id) == gone  # pruning a key keeps its job

    with_store(scenario)


# -- claiming ------------------------------------------------------------------


def test_claim_marks_due_jobs_active_under_the_lease(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        jobs = await enqueue(store, new_job(timeout=10.0), new_job(timeout=20.0))

        claimed = await claim(store, lease="lease-a")
        assert sorted(job.id for job in claimed) == sorted(job.id for job in jobs)
        for job in claimed:
            assert (job.state, job.attempts, job.lease) == ("active", 1, "lease-a")
            assert job.attempt_started_at == NOW
            assert job.lease_expires_at == NOW + job.timeout + MARGIN
            assert await store.get(job_id=job.id) == job

        assert await claim(store, lease="lease-b") == []

    with_store(scenario)


def test_claim_takes_only_due_jobs(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        due, future = await enqueue(store, new_job(), new_job(run_at=NOW + 60))

        assert [job.id for job in await claim(store)] == [due.id]
        assert await claim(store, now=NOW + 59) == []
        assert [job.id for job in await claim(store, now=NOW + 60)] == [future.id]

    with_store(scenario)


def test_claim_takes_highest_priority_first_then_oldest_run_at(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (low_oldest,) = await enqueue(store, new_job(priority=0), now=NOW - 40)
        (high_newer,) = await enqueue(store, new_job(priority=5), now=NOW - 10)
        (high_older,) = await enqueue(store, new_job(priority=5), now=NOW - 20)
        mid_first, mid_second = await enqueue(
            store, new_job(priority=1), new_job(priority=1), now=NOW - 5
        )

        first_two = await claim(store, limit=2)
        assert sorted(job.id for job in first_two) == sorted([high_older.id, high_newer.id])
        order = [[job.id for job in await claim(store, limit=1)] for _ in range(4)]
        assert order == [[mid_first.id], [mid_second.id], [low_oldest.id], []]

    with_store(scenario)


def test_retrying_job_is_claimed_again_at_its_run_at(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job())
        (job,) = await claim(store)
        assert await retry(store, job, "L1", attempt_of(job, status=503), NOW)  # run_at NOW + 60

        assert await claim(store, now=NOW + 59) == []
        (again,) = await claim(store, now=NOW + 60, lease="L2")
        assert (again.id, again.state, again.attempts, again.lease) == (job.id, "active", 2, "L2")

    with_store(scenario)


# -- settling ------------------------------------------------------------------


@pytest.mark.parametrize("how", SETTLES)
def test_settle_applies_under_its_lease_and_attempt(with_store: WithStore, how: str) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job())
        (job,) = await claim(store)
        attempt = attempt_of(job, status=200 if how == "complete" else 500)

        assert await SETTLES[how](store, job, "L1", attempt, NOW + 1)

        settled = await fetch(store, job.id)
        # a finished job keeps its last lease, so a late call with its job token is told
        # "already finished" (409) rather than "not your token" (403)
        lease = None if how == "schedule_retry" else "L1"
        assert (settled.state, settled.attempts, settled.lease) == (SETTLED_STATE[how], 1, lease)
        assert await store.list_attempts(job_id=job.id) == [attempt]
        if how == "complete":
            assert settled.result == {"status": 200, "body": "ok"}
            assert settled.finished_at == NOW + 1
        elif how == "schedule_retry":
            assert (settled.run_at, settled.last_error) == (NOW + 61, error_at(NOW + 1))
            assert settled.finished_at is None
        else:
            assert settled.last_error == error_at(NOW + 1, 400)
            assert settled.finished_at == settled.failed_at == NOW + 1

    with_store(scenario)


@pytest.mark.parametrize("how", SETTLES)
def test_settle_with_wrong_lease_or_attempt_changes_nothing(
    with_store: WithStore, how: str
) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job())
        (job,) = await claim(store)
        settle = SETTLES[how]

        assert not await settle(store, job, "someone-else", attempt_of(job), NOW + 1)
        assert not await settle(store, job, "L1", attempt_of(job, number=2), NOW + 1)
        assert not await settle(store, job, "L1", attempt_of(job, number=0), NOW + 1)

        assert await store.get(job_id=job.id) == job
        assert await store.list_attempts(job_id=job.id) == []

    with_store(scenario)


@pytest.mark.parametrize("how", SETTLES)
def test_settle_of_a_settled_job_changes_nothing(with_store: WithStore, how: str) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job())
        (job,) = await claim(store)
        assert await complete(store, job, "L1", attempt_of(job), NOW + 1)
        done = await fetch(store, job.id)

        assert not await SETTLES[how](store, job, "L1", attempt_of(job), NOW + 2)

        assert await store.get(job_id=job.id) == done
        assert len(await store.list_attempts(job_id=job.id)) == 1

    with_store(scenario)


def test_await_completion_extends_the_lease_of_the_current_attempt(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0))
        (job,) = await claim(store)

        assert not await store.await_completion(
            job_id=job.id, lease="someone-else", attempt=1, deadline=NOW + 1000
        )
        assert not await store.await_completion(
            job_id=job.id, lease="L1", attempt=2, deadline=NOW + 1000
        )
        assert (await fetch(store, job.id)).lease_expires_at == NOW + 10 + MARGIN

        assert await store.await_completion(
            job_id=job.id, lease="L1", attempt=1, deadline=NOW + 1000
        )
        assert await rescue_expired(store, now=NOW + 500, limit=10) == []
        waiting = await fetch(store, job.id)
        assert (waiting.state, waiting.lease, waiting.lease_expires_at) == (
            "active",
            "L1",
            NOW + 1000,
        )

    with_store(scenario)


# -- rescuing expired leases ---------------------------------------------------


def test_rescue_returns_an_expired_job_to_retrying(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0), new_job(timeout=100.0))
        expiring, lasting = sorted(await claim(store), key=lambda job: job.timeout)
        later = NOW + 50  # past NOW + 10 + MARGIN, before NOW + 100 + MARGIN

        (rescued,) = await rescue_expired(store, now=later, limit=10)

        assert rescued.id == expiring.id
        assert await store.get(job_id=rescued.id) == rescued
        assert (rescued.state, rescued.run_at, rescued.attempts) == ("retrying", later, 1)
        assert (rescued.lease, rescued.lease_expires_at, rescued.finished_at) == (None, None, None)
        assert rescued.last_error is not None and "lease" in rescued.last_error["message"]
        (attempt,) = await store.list_attempts(job_id=expiring.id)
        assert (attempt.number, attempt.started_at, attempt.status) == (1, NOW, None)
        assert attempt.error is not None and "lease" in attempt.error

        assert await store.get(job_id=lasting.id) == lasting
        assert await store.list_attempts(job_id=lasting.id) == []

    with_store(scenario)


def test_rescue_schedules_the_retry_when_asked(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0))
        (job,) = await claim(store)
        later = NOW + 50

        (rescued,) = await rescue_expired(
            store, now=later, limit=10, retry_at=lambda j: later + 30 * j.attempts
        )

        assert (rescued.state, rescued.run_at) == ("retrying", later + 30)
        assert await store.get(job_id=job.id) == rescued
        assert await claim(store, now=later + 29) == []  # waits out its backoff
        assert [j.id for j in await claim(store, now=later + 30)] == [job.id]

    with_store(scenario)


def test_rescue_sends_a_job_out_of_attempts_to_the_dlq(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(max_attempts=1, timeout=10.0))
        (job,) = await claim(store)
        later = NOW + 50

        (rescued,) = await rescue_expired(store, now=later, limit=10)

        assert (rescued.id, rescued.state, rescued.attempts) == (job.id, "dead", 1)
        assert rescued.failed_at == rescued.finished_at == later
        assert [
            dead.id for dead in (await store.list_dead(queue=None, limit=10, cursor=None)).jobs
        ] == [job.id]
        assert len(await store.list_attempts(job_id=job.id)) == 1

    with_store(scenario)


def test_stale_attempt_cannot_overwrite_a_rescued_job(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0))
        (stale,) = await claim(store, lease="old")
        await rescue_expired(store, now=NOW + 50, limit=10)
        rescued = await fetch(store, stale.id)

        for settle in SETTLES.values():
            assert not await settle(store, stale, "old", attempt_of(stale), NOW + 51)
        assert await store.get(job_id=stale.id) == rescued

        (fresh,) = await claim(store, now=NOW + 50, lease="new")
        assert fresh.attempts == 2
        for settle in SETTLES.values():
            assert not await settle(store, stale, "old", attempt_of(stale), NOW + 52)
        assert await store.get(job_id=stale.id) == fresh
        assert await complete(store, fresh, "new", attempt_of(fresh), NOW + 53)
        attempts = await store.list_attempts(job_id=stale.id)
        assert [attempt.number for attempt in attempts] == [1, 2]

    with_store(scenario)


async def rescue_orphans(store: Store, *, now: float) -> list[JobRecord]:
    """What start-up recovery does: read the orphaned attempts, decide (due at once,
    or dead on the last attempt), apply as orphaned rescues."""
    rescues = [
        Rescue(
            job.id,
            job.lease or "",
            job.attempts,
            None if job.attempts >= job.max_attempts else now,
            orphaned=True,
        )
        for job in await store.orphaned_attempts(limit=10)
    ]
    return await store.rescue(rescues=rescues, error=error_at(now), now=now, defaults=DEFAULTS)


def test_orphaned_attempts_are_rescued_at_once_but_not_the_async_ones(
    with_store: WithStore,
) -> None:
    """Start-up recovery: the attempts a killed process left in flight are read whatever
    their lease says and rescued at once; jobs an async worker holds are left to it.
    (This store's process took every lease here: a shared backend answers for its own.)"""

    async def scenario(store: Store) -> None:
        await enqueue(
            store, new_job(timeout=100.0), new_job(timeout=100.0, max_attempts=1), new_job()
        )
        in_flight, last, held = await claim(store)
        assert await store.await_completion(
            job_id=held.id, lease="L1", attempt=1, deadline=NOW + 1000
        )
        assert (await fetch(store, held.id)).awaiting and not in_flight.awaiting
        assert await store.expired_leases(now=NOW + 1, limit=10) == []  # no lease ran out

        orphans = await store.orphaned_attempts(limit=10)
        assert [j.id for j in orphans] == [in_flight.id, last.id]
        assert await store.get(job_id=in_flight.id) == orphans[0]  # a read
        rescued = {j.id: j for j in await rescue_orphans(store, now=NOW + 1)}

        assert (rescued[in_flight.id].state, rescued[in_flight.id].run_at) == ("retrying", NOW + 1)
        assert rescued[in_flight.id].attempts == 1  # the interrupted attempt counts
        assert rescued[last.id].state == "dead"
        assert held.id not in rescued and (await fetch(store, held.id)).state == "active"
        assert await store.orphaned_attempts(limit=10) == []
        (attempt,) = await store.list_attempts(job_id=in_flight.id)
        assert (attempt.number, attempt.status) == (1, None)
        assert [j.id for j in await claim(store, now=NOW + 1)] == [in_flight.id]

    with_store(scenario)


def test_an_orphaned_rescue_is_guarded_like_any_rescue(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=100.0), new_job(timeout=100.0))
        settled, handed_over = await claim(store)
        orphans = await store.orphaned_attempts(limit=10)
        assert await complete(store, settled, "L1", attempt_of(settled), NOW + 1)
        assert await store.await_completion(
            job_id=handed_over.id, lease="L1", attempt=1, deadline=NOW + 1000
        )
        rescues = [Rescue(j.id, "L1", 1, NOW + 1, orphaned=True) for j in orphans]

        assert (
            await store.rescue(rescues=rescues, error=error_at(NOW), now=NOW, defaults=DEFAULTS)
            == []
        )
        assert (await fetch(store, settled.id)).state == "succeeded"
        assert (await fetch(store, handed_over.id)).state == "active"
        # not orphaned: a lease that has not run out is not rescued
        plain = [Rescue(handed_over.id, "L1", 1, NOW + 1)]
        assert (
            await store.rescue(rescues=plain, error=error_at(NOW), now=NOW, defaults=DEFAULTS) == []
        )

    with_store(scenario)


def test_a_claim_clears_awaiting(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0))
        (job,) = await claim(store)
        assert await store.await_completion(job_id=job.id, lease="L1", attempt=1, deadline=NOW + 20)
        later = NOW + 30
        (expired,) = await store.expired_leases(now=later, limit=10)
        assert expired.awaiting
        await rescue_expired(store, now=later, limit=10)
        (again,) = await claim(store, now=later, lease="L2")
        assert (again.attempts, again.awaiting) == (2, False)
        assert [j.id for j in await store.orphaned_attempts(limit=10)] == [job.id]

    with_store(scenario)


def test_release_interrupted_makes_the_job_pending_at_once_without_counting_the_attempt(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        first, second = await enqueue(
            store, new_job(ordering_key="k", max_attempts=1), new_job(ordering_key="k")
        )
        (job,) = await claim(store)
        error = {"status": None, "message": "interrupted", "at": NOW + 1}
        cut = attempt_of(job, status=None)
        assert not await store.release_interrupted(
            job_id=job.id, lease="other", attempt=cut, error=error
        )

        assert await store.release_interrupted(job_id=job.id, lease="L1", attempt=cut, error=error)

        released = await fetch(store, job.id)
        assert (released.state, released.attempts, released.lease) == ("pending", 0, None)
        assert released.run_at == first.run_at and released.last_error == error
        assert (await fetch(store, second.id)).state == "blocked"  # it keeps its ordering key
        (attempt,) = await store.list_attempts(job_id=job.id)
        assert (attempt.number, attempt.status) == (1, None)
        assert not await store.release_interrupted(
            job_id=job.id, lease="L1", attempt=cut, error=error
        )  # guarded: no longer active
        (again,) = await claim(store, now=NOW + 1, lease="L2")
        assert (again.id, again.attempts) == (job.id, 1)  # its one attempt is still to come

    with_store(scenario)


def test_expired_leases_reads_without_changing_anything(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0), new_job(timeout=100.0))
        expiring, lasting = sorted(await claim(store), key=lambda job: job.timeout)

        assert await store.expired_leases(now=NOW + 10, limit=10) == []  # not yet past
        assert await store.expired_leases(now=NOW + 50, limit=10) == [expiring]
        assert len(await store.expired_leases(now=NOW + 500, limit=10)) == 2
        assert len(await store.expired_leases(now=NOW + 500, limit=1)) == 1
        assert await fetch(store, expiring.id) == expiring

    with_store(scenario)


def test_a_rescue_applies_only_under_the_lease_and_attempt_it_read(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0))
        (job,) = await claim(store)
        later = NOW + 50
        error = {"status": None, "message": LEASE_ERROR, "at": later}

        async def rescue(rescue: Rescue, now: float = later) -> list[JobRecord]:
            return await store.rescue(rescues=[rescue], error=error, now=now, defaults=DEFAULTS)

        assert await rescue(Rescue(job.id, "someone-else", 1, later)) == []
        assert await rescue(Rescue(job.id, "L1", 2, later)) == []
        assert await rescue(Rescue(job.id, "L1", 1, later), now=NOW + 10) == []  # not expired
        assert await fetch(store, job.id) == job
        assert await store.list_attempts(job_id=job.id) == []

        (rescued,) = await rescue(Rescue(job.id, "L1", 1, later + 30))
        assert (rescued.state, rescued.run_at) == ("retrying", later + 30)
        assert await rescue(Rescue(job.id, "L1", 1, later)) == []  # only once
        assert len(await store.list_attempts(job_id=job.id)) == 1

    with_store(scenario)


def test_a_rescue_to_the_dlq_stores_its_callback_in_the_same_transaction(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(max_attempts=1, timeout=10.0), new_job(max_attempts=1))
        first, second = await claim(store)
        later = NOW + 50

        def failure_callback(job: JobRecord) -> NewJob:
            return new_job(queue="pushq.callbacks", idempotency_key=f"callback:{job.id}")

        rescued = await rescue_expired(store, now=later, limit=10, callback=failure_callback)

        assert {(job.id, job.state) for job in rescued} == {(first.id, "dead"), (second.id, "dead")}
        callbacks = await store.list_jobs(
            queue="pushq.callbacks", state=None, limit=10, cursor=None, now=later
        )
        assert len(callbacks.jobs) == 2
        assert {job.state for job in callbacks.jobs} == {"pending"}
        assert (await store.get_queue(name=first.queue)).unfinished == 0  # type: ignore[union-attr]

    with_store(scenario)


def test_promote_due_moves_due_jobs_and_names_the_next(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.promote_due(now=NOW, limit=10) == Promotion(0, None)
        soon, later, _ = await enqueue(
            store, new_job(run_at=NOW + 10), new_job(run_at=NOW + 20), new_job(run_at=NOW + 20)
        )
        assert await store.promote_due(now=NOW, limit=10) == Promotion(0, NOW + 10)
        assert await store.promote_due(now=NOW + 10, limit=10) == Promotion(1, NOW + 20)
        assert (await fetch(store, soon.id)).state == "pending"
        assert await store.promote_due(now=NOW + 30, limit=1) == Promotion(1, NOW + 20)
        assert await store.promote_due(now=NOW + 30, limit=1) == Promotion(1, None)

        (job, _, _) = await claim(store, now=NOW + 30)
        assert await retry(store, job, "L1", attempt_of(job, status=503), NOW + 31)
        assert await store.promote_due(now=NOW + 31, limit=10) == Promotion(0, NOW + 91)
        assert await store.promote_due(now=NOW + 91, limit=10) == Promotion(1, None)
        assert (await fetch(store, job.id)).state == "pending"

    with_store(scenario)


def test_listen_hears_what_became_due(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        heard: list[float | None] = []
        store.listen(heard.append)

        await enqueue(store, new_job())
        assert heard == [None]  # pending: claim now
        await enqueue(store, new_job(run_at=NOW + 60), new_job(run_at=NOW + 30))
        assert heard == [None, NOW + 30]  # waiting: the earliest
        heard.clear()
        await store.enqueue(jobs=[new_job(run_at=NOW + 5)] * 0, now=NOW, idempotency_ttl=TTL,
                            defaults=DEFAULTS)  # fmt: skip
        assert heard == []

        (job,) = await claim(store)
        heard.clear()
        assert await retry(store, job, "L1", attempt_of(job, status=503), NOW + 1)
        assert heard == [NOW + 61]

    with_store(scenario)


def test_rescue_respects_its_limit(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, *(new_job(timeout=1.0) for _ in range(3)))
        await claim(store)

        assert len(await rescue_expired(store, now=NOW + 50, limit=2)) == 2
        assert len(await rescue_expired(store, now=NOW + 50, limit=2)) == 1
        assert await rescue_expired(store, now=NOW + 50, limit=2) == []

    with_store(scenario)


# -- cancelling ----------------------------------------------------------------


def test_cancel_pending_job(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (job,) = await enqueue(store, new_job())

        cancelled = await store.cancel(job_id=job.id, now=NOW + 1)

        assert (cancelled.id, cancelled.state, cancelled.finished_at) == (
            job.id,
            "cancelled",
            NOW + 1,
        )
        assert await store.get(job_id=job.id) == cancelled
        assert await claim(store, now=NOW + 2) == []

    with_store(scenario)


def test_cancel_active_job_makes_its_attempt_stale(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job())
        (job,) = await claim(store)

        assert (await store.cancel(job_id=job.id, now=NOW + 1)).state == "cancelled"
        assert not await complete(store, job, "L1", attempt_of(job), NOW + 2)
        assert (await fetch(store, job.id)).state == "cancelled"

    with_store(scenario)


def test_cancel_finished_job_is_a_conflict(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        done, cancelled = await enqueue(store, new_job(), new_job())
        (claimed,) = await claim(store, limit=1)
        assert await complete(store, claimed, "L1", attempt_of(claimed), NOW + 1)
        await store.cancel(job_id=cancelled.id, now=NOW + 1)
        (dead,) = await make_dead(store, new_job(), failed_at=[NOW + 2])

        for job in (await fetch(store, done.id), await fetch(store, cancelled.id), dead):
            with pytest.raises(Conflict):
                await store.cancel(job_id=job.id, now=NOW + 3)
            assert await store.get(job_id=job.id) == job

    with_store(scenario)


def test_cancel_unknown_job_is_not_found(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        with pytest.raises(NotFound):
            await store.cancel(job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", now=NOW)

    with_store(scenario)


# -- the dead-letter queue -----------------------------------------------------


def test_list_dead_pages_newest_failure_first(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        failed_at = [NOW + 10, NOW + 20, NOW + 20, NOW + 20, NOW + 30, NOW + 40, NOW + 40]
        queues = ["a", "b", "a", "a", "b", "a", "a"]
        dead = await make_dead(store, *(new_job(queue=q) for q in queues), failed_at=failed_at)
        await enqueue(store, new_job(queue="a"))  # not dead: never listed
        newest_first = sorted(dead, key=lambda job: (job.failed_at, job.id), reverse=True)

        for queue in (None, "a", "b"):
            seen: list[str] = []
            cursor = None
            while True:
                page = await store.list_dead(queue=queue, limit=2, cursor=cursor)
                assert len(page.jobs) <= 2
                seen += [job.id for job in page.jobs]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            expected = [job.id for job in newest_first if queue in (None, job.queue)]
            assert seen == expected

        (first,) = (await store.list_dead(queue="b", limit=1, cursor=None)).jobs
        assert first == await fetch(store, first.id)
        assert first.last_error == error_at(NOW + 30, 400)

    with_store(scenario)


def test_redrive_resets_a_dead_job_to_pending(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(), failed_at=[NOW + 1])

        job = await store.redrive(job_id=dead.id, now=NOW + 100)

        assert (job.id, job.state, job.attempts, job.run_at) == (dead.id, "pending", 0, NOW + 100)
        assert (job.failed_at, job.finished_at) == (None, None)
        assert await store.get(job_id=dead.id) == job
        assert (await store.list_dead(queue=None, limit=10, cursor=None)).jobs == []
        (again,) = await claim(store, now=NOW + 100, lease="L2")
        assert (again.id, again.attempts) == (dead.id, 1)
        assert len(await store.list_attempts(job_id=dead.id)) == 1  # history kept

    with_store(scenario)


def test_redrive_of_a_job_that_is_not_dead_is_not_found(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (pending,) = await enqueue(store, new_job())

        for job_id in (pending.id, "01ARZ3NDEKTSV4RRFFQ69G5FAV"):
            with pytest.raises(NotFound):
                await store.redrive(job_id=job_id, now=NOW + 1)
        assert await store.get(job_id=pending.id) == pending

    with_store(scenario)


def test_redrive_while_its_unique_key_is_taken_is_a_conflict(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(unique_key="u"), failed_at=[NOW + 1])
        (successor,) = await enqueue(store, new_job(unique_key="u"), now=NOW + 2)

        with pytest.raises(Conflict):
            await store.redrive(job_id=dead.id, now=NOW + 3)

        assert await store.get(job_id=dead.id) == dead
        assert await store.get(job_id=successor.id) == successor

    with_store(scenario)


def test_redrive_many_by_queue(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        queues = ["a", "a", "b", "a", "b"]
        await make_dead(store, *(new_job(queue=q) for q in queues), failed_at=[NOW + 1] * 5)
        (pending,) = await enqueue(store, new_job(queue="a"), now=NOW + 2)

        assert await store.redrive_many(queue="a", now=NOW + 10) == 3
        assert await store.count_by_state(now=NOW + 10) == {
            ("a", "pending"): 4,
            ("b", "dead"): 2,
        }
        assert await store.redrive_many(queue="a", now=NOW + 11) == 0
        assert await store.redrive_many(queue=None, now=NOW + 12) == 2
        assert await store.redrive_many(queue=None, now=NOW + 13) == 0
        redriven = await claim(store, now=NOW + 13)
        assert len(redriven) == 6 and {job.attempts for job in redriven} == {1}
        assert pending.id in {job.id for job in redriven}

    with_store(scenario)


def test_delete_dead_removes_the_job_and_its_attempts(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        (dead,) = await make_dead(store, new_job(), failed_at=[NOW + 1])
        (pending,) = await enqueue(store, new_job())
        assert await store.list_attempts(job_id=dead.id) != []

        assert not await store.delete_dead(job_id=pending.id)
        assert await store.get(job_id=pending.id) == pending
        assert await store.delete_dead(job_id=dead.id)
        assert await store.get(job_id=dead.id) is None
        assert await store.list_attempts(job_id=dead.id) == []
        assert not await store.delete_dead(job_id=dead.id)

    with_store(scenario)


# -- listing and counting ------------------------------------------------------


def test_list_jobs_filters_by_queue_and_state(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        a_due, a_future, b_due, b_active = await enqueue(
            store,
            new_job(queue="a"),
            new_job(queue="a", run_at=NOW + 60),
            new_job(queue="b"),
            new_job(queue="b", priority=9),
        )
        # Job priority orders jobs within a queue; queue priority picks b's first.
        await store.put_queue(name="b", changes={"priority": 1}, now=NOW)
        await claim(store, limit=1)

        async def ids(queue: str | None, state: str | None) -> list[str]:
            page = await store.list_jobs(queue=queue, state=state, limit=10, cursor=None, now=NOW)
            assert page.next_cursor is None
            return [job.id for job in page.jobs]

        assert await ids(None, None) == [b_active.id, b_due.id, a_future.id, a_due.id]
        assert await ids("a", None) == [a_future.id, a_due.id]
        assert await ids(None, "scheduled") == [a_future.id]
        assert await ids(None, "pending") == [b_due.id, a_due.id]
        assert await ids("a", "pending") == [a_due.id]
        assert await ids("b", "active") == [b_active.id]
        assert await ids("a", "active") == []
        assert await ids("c", None) == []

    with_store(scenario)


def test_list_jobs_pages_cover_every_job_once(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        jobs = await enqueue(store, *(new_job(queue="ab"[i % 2]) for i in range(7)))

        for queue, limit in ((None, 3), (None, 7), (None, 1), ("a", 2), ("b", 3)):
            seen: list[str] = []
            cursor = None
            while True:
                page = await store.list_jobs(
                    queue=queue, state=None, limit=limit, cursor=cursor, now=NOW
                )
                assert len(page.jobs) <= limit
                seen += [job.id for job in page.jobs]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            expected = [job.id for job in reversed(jobs) if queue in (None, job.queue)]
            assert seen == expected, (queue, limit)

    with_store(scenario)


@pytest.mark.parametrize("cursor", ["", "not a cursor", "e30", "W10", "!!!", "eyJ9"])
def test_a_cursor_the_store_did_not_make_is_invalid(with_store: WithStore, cursor: str) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job())
        with pytest.raises(InvalidCursor):
            await store.list_jobs(queue=None, state=None, limit=10, cursor=cursor, now=NOW)
        with pytest.raises(InvalidCursor):
            await store.list_dead(queue=None, limit=10, cursor=cursor)

    with_store(scenario)


def test_count_by_state_separates_scheduled_from_pending(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.count_by_state(now=NOW) == {}
        await enqueue(
            store,
            new_job(queue="a"),
            new_job(queue="a", run_at=NOW + 60),
            new_job(queue="a", run_at=NOW + 60),
            new_job(queue="b", priority=9),
            new_job(queue="b"),
        )
        await store.put_queue(name="b", changes={"priority": 1}, now=NOW)  # b's job goes first
        await claim(store, limit=1)

        assert await store.count_by_state(now=NOW) == {
            ("a", "pending"): 1,
            ("a", "scheduled"): 2,
            ("b", "active"): 1,
            ("b", "pending"): 1,
        }
        assert (await store.count_by_state(now=NOW + 60))[("a", "pending")] == 3

    with_store(scenario)


def test_ping(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.ping()
        await store.ping()

    with_store(scenario)


# -- the claim plan's two verbs, progress, retention ----------------------------


def test_claim_snapshot_shows_unpaused_queues_with_ready_counted_up_to_the_limit(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        await store.put_queue(name="c", changes={"concurrency": 2, "priority": 1}, now=NOW)
        await store.put_queue(name="p", changes={"paused": True}, now=NOW)
        await store.put_queue(name="r", changes={"rate_limit": "5/s"}, now=NOW)
        await enqueue(store, *(new_job(queue="a") for _ in range(5)))
        await enqueue(store, *(new_job(queue=q) for q in "cccpr"))
        await enqueue(store, new_job(queue="a", run_at=NOW + 60))  # scheduled: not ready
        await claim(store, limit=1)  # c (priority 1) goes first

        snapshot = await store.claim_snapshot(limit=3, count_active=False)
        assert snapshot == [
            QueueSnapshot("a", ready=3),
            QueueSnapshot("c", priority=1, ready=2, concurrency=2, active=1),
            QueueSnapshot("r", ready=1, rate_limit="5/s"),
        ]
        counted = await store.claim_snapshot(limit=10, count_active=True)
        assert [(q.name, q.ready, q.active) for q in counted] == [
            ("a", 5, 0),
            ("c", 2, 1),
            ("r", 1, 0),
        ]

    with_store(scenario)


def test_claim_snapshot_of_many_queues_reads_the_same_as_of_few(with_store: WithStore) -> None:
    # (SQLite reads a quick snapshot on the calling thread, a slow one on its reader.)
    async def scenario(store: Store) -> None:
        names = [f"q{n:03d}" for n in range(100)]
        await enqueue(store, *(new_job(queue=name) for name in names[:3]))
        for _ in range(2):
            few = await store.claim_snapshot(limit=5, count_active=True)
            assert [(q.name, q.ready, q.active) for q in few] == [(n, 1, 0) for n in names[:3]]
        await enqueue(store, *(new_job(queue=name) for name in names[3:]))
        for _ in range(2):  # the second read follows a snapshot of 100 queues
            many = await store.claim_snapshot(limit=5, count_active=True)
            assert [(q.name, q.ready, q.active) for q in many] == [(n, 1, 0) for n in names]
        assert len(await claim(store, limit=100)) == 100
        again = await store.claim_snapshot(limit=5, count_active=True)
        assert [(q.name, q.ready, q.active) for q in again] == [(n, 0, 1) for n in names]

    with_store(scenario)


def test_claim_applies_a_plan_in_order_guarded_by_state_and_pause(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.put_queue(name="r", changes={"rate_limit": "5/s"}, now=NOW)
        a1, a2, a3 = await enqueue(store, *(new_job(queue="a") for _ in range(3)))
        (b1,) = await enqueue(store, new_job(queue="b", priority=5))
        (r1,) = await enqueue(store, new_job(queue="r"))
        plan = ClaimPlan(
            takes=(("b", 1), ("a", 2), ("r", 1), ("a", 5)),
            buckets={"r": Bucket("5/s", 4.0, NOW)},
        )

        jobs = await store.claim(plan=plan, now=NOW, lease="L", lease_margin=MARGIN)

        assert [job.id for job in jobs] == [b1.id, a1.id, a2.id, r1.id, a3.id]
        assert {(job.state, job.lease, job.attempts) for job in jobs} == {("active", "L", 1)}
        assert jobs[0].lease_expires_at == NOW + DEFAULTS.timeout + MARGIN
        queues = {q.name: q for q in await store.claim_snapshot(limit=1, count_active=False)}
        assert (queues["r"].tokens, queues["r"].tokens_at) == (4.0, NOW)  # the bucket saved

        # Only pending jobs, and only of unpaused queues; a bucket only under its rate.
        (a4,) = await enqueue(store, new_job(queue="a"))
        await store.put_queue(name="a", changes={"paused": True}, now=NOW)
        await store.put_queue(name="r", changes={"rate_limit": "9/s"}, now=NOW)
        again = ClaimPlan(takes=(("a", 1), ("b", 1)), buckets={"r": Bucket("5/s", 0.0, NOW)})
        assert await store.claim(plan=again, now=NOW, lease="L2", lease_margin=MARGIN) == []
        assert (await fetch(store, a4.id)).state == "pending"
        queues = {q.name: q for q in await store.claim_snapshot(limit=1, count_active=False)}
        assert (queues["r"].rate_limit, queues["r"].tokens) == ("9/s", None)  # not overwritten

    with_store(scenario)


def test_report_progress_holds_the_lease_of_the_current_attempt_only(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job(timeout=10.0))
        (job,) = await claim(store)
        progress = {"done": 3, "of": 10}

        assert not await store.report_progress(
            job_id=job.id, lease="other", attempt=1, progress=progress, deadline=NOW + 100
        )
        assert not await store.report_progress(
            job_id=job.id, lease="L1", attempt=2, progress=progress, deadline=NOW + 100
        )
        assert await store.report_progress(
            job_id=job.id, lease="L1", attempt=1, progress=progress, deadline=NOW + 100
        )
        held = await fetch(store, job.id)
        assert (held.progress, held.lease_expires_at) == (progress, NOW + 100)
        # never shortens the lease
        assert await store.report_progress(
            job_id=job.id, lease="L1", attempt=1, progress=None, deadline=NOW + 1
        )
        assert (await fetch(store, job.id)).lease_expires_at == NOW + 100

    with_store(scenario)


def test_prune_finished_deletes_past_retention_with_attempts_up_to_its_limit(
    with_store: WithStore,
) -> None:
    async def scenario(store: Store) -> None:
        ok = await enqueue(store, new_job(), new_job())
        claimed = await claim(store, limit=2)
        for job in claimed:
            assert await complete(store, job, "L1", attempt_of(job), NOW + 1)
        (dead,) = await make_dead(store, new_job(), failed_at=[NOW + 2])
        (waiting,) = await enqueue(store, new_job())

        kept = {"succeeded_before": NOW + 1, "dead_before": NOW + 2}
        assert await store.prune_finished(**kept, limit=10) == 0
        assert await store.prune_finished(succeeded_before=NOW + 5, dead_before=0, limit=1) == 1
        assert (
            await store.prune_finished(succeeded_before=NOW + 5, dead_before=NOW + 5, limit=10) == 2
        )
        for job in (*ok, dead):
            assert await store.get(job_id=job.id) is None
            assert await store.list_attempts(job_id=job.id) == []
        assert await store.get(job_id=waiting.id) is not None

    with_store(scenario)


def test_the_conformance_suite_exercises_every_verb_of_the_protocol() -> None:
    """A new verb on Store needs a test here, so every backend is held to it."""
    here = Path(__file__).parent
    text = "".join(path.read_text() for path in sorted(here.glob("test_*.py")))
    verbs = [name for name in vars(Store) if not name.startswith("_")]
    assert len(verbs) > 30
    missing = [v for v in verbs if f".{v}(" not in text and v not in ("open", "close")]
    assert missing == []


def test_an_id_the_caller_chose_is_kept(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, new_job())  # the queue exists: the store's quickest path
        chosen = "06H3A0000000000000000000AA"
        [job] = await enqueue(store, new_job(id=chosen))
        assert job.id == chosen and (await fetch(store, chosen)).state == "pending"

    with_store(scenario)
