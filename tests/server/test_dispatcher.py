"""The dispatcher in process: a real store (once per backend), a fake sender and a
clock the test moves; claim rounds are driven one at a time, nothing sleeps."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from pushq.policy.backoff import BackoffPolicy
from pushq.server import dispatcher as dispatcher_module
from pushq.server.delivery import DeliveryFailed, DeliveryRequest, DeliveryResponse
from pushq.server.dispatcher import Dispatcher
from pushq.server.metrics import Metrics
from pushq.server.models import JobRecord, NewJob
from pushq.server.settle import INTERRUPTED
from pushq.server.store.base import Store
from pushq.server.store.errors import StoreUnavailable

from ..stores import WithStore
from .fakes import Clock, FakeSender, settings

NOW = 1_800_000_000.0
NO_JITTER = BackoffPolicy(base=10.0, max=100.0, jitter=False)


def job(path: str, **fields: object) -> NewJob:
    return NewJob(url=f"http://worker.test{path}", **fields)  # type: ignore[arg-type]


async def enqueue(store: Store, dispatcher: Dispatcher, *jobs: NewJob) -> list[JobRecord]:
    results = await store.enqueue(
        jobs=list(jobs),
        now=dispatcher.clock(),
        idempotency_ttl=60,
        defaults=dispatcher.settings.job_defaults,
    )
    return [result.job for result in results]


async def state(store: Store, job_id: str) -> JobRecord:
    found = await store.get(job_id=job_id)
    assert found is not None
    return found


def make(store: Store, tmp_path: Path, sender: FakeSender, clock: Clock) -> Dispatcher:
    return Dispatcher(
        store=store,
        sender=sender,
        settings=settings(tmp_path),
        metrics=Metrics(),
        clock=clock,
        rand=lambda: 0.0,
    )


def test_a_round_claims_delivers_and_settles_each_job(
    with_store: WithStore, tmp_path: Path
) -> None:
    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        sender = FakeSender(
            {
                "/retry": DeliveryResponse(503, {}, b"later"),
                "/dead": DeliveryResponse(410, {}, b"gone"),  # 410 Gone: permanent
                "/down": DeliveryFailed("connection", "refused"),
            }
        )
        dispatcher = make(store, tmp_path, sender, clock)
        ok, retry, dead, down = await enqueue(
            store,
            dispatcher,
            job("/ok"),
            job("/retry", backoff=NO_JITTER),
            job("/dead"),
            job("/down", backoff=NO_JITTER, max_attempts=1),
        )

        assert await dispatcher.claim_round() == 4
        await dispatcher.settled()

        assert {r.url.rsplit("/", 1)[1] for r in sender.sent} == {"ok", "retry", "dead", "down"}
        assert (await state(store, ok.id)).state == "succeeded"
        retried = await state(store, retry.id)
        assert (retried.state, retried.run_at) == ("retrying", NOW + 10)
        assert (await state(store, dead.id)).state == "dead"
        assert (await state(store, down.id)).state == "dead"  # its one attempt failed
        assert await dispatcher.claim_round() == 0  # the retry waits for the promoter

    with_store(scenario)


def test_one_job_that_breaks_pushq_is_set_aside_and_the_rest_are_served(
    with_store: WithStore, tmp_path: Path
) -> None:
    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        sender = FakeSender({"/boom": OverflowError("a bug with this one job")})
        dispatcher = make(store, tmp_path, sender, clock)
        boom, fine = await enqueue(store, dispatcher, job("/boom"), job("/fine"))

        assert await dispatcher.claim_round() == 2
        await dispatcher.settled()

        left = await state(store, boom.id)
        assert left.state == "active" and left.lease is not None  # the rescuer returns it
        assert (await state(store, fine.id)).state == "succeeded"
        (later,) = await enqueue(store, dispatcher, job("/fine"))
        assert await dispatcher.claim_round() == 1
        await dispatcher.settled()
        assert (await state(store, later.id)).state == "succeeded"

    with_store(scenario)


class FailingClaims:
    """A store whose claims fail with `error` (the rest is the real store)."""

    def __init__(self, store: Store, error: Exception) -> None:
        self._store, self.error = store, error

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def claim_snapshot(self, **kwargs: object) -> list[object]:
        raise self.error


@pytest.mark.parametrize("error", [StoreUnavailable("sqlite: database is locked"), KeyError("x")])
def test_a_claim_that_fails_does_not_end_the_loop(
    with_store: WithStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    monkeypatch.setattr(dispatcher_module, "CLAIM_FAILED_PAUSE", 0.0)

    async def scenario(store: Store) -> None:
        failing = FailingClaims(store, error)
        dispatcher = make(failing, tmp_path, FakeSender(), Clock(NOW))  # type: ignore[arg-type]
        await enqueue(store, dispatcher, job("/ok"))

        assert await dispatcher.claim_round() == 0  # logged, not raised
        dispatcher.claimer.store = store
        assert await dispatcher.claim_round() == 1

    with_store(scenario)


def test_notify_wakes_the_loop_now_and_hands_later_times_to_the_promoter(
    with_store: WithStore, tmp_path: Path
) -> None:
    async def scenario(store: Store) -> None:
        dispatcher = make(store, tmp_path, FakeSender(), Clock(NOW))
        later: list[float] = []
        dispatcher.on_waiting = later.append

        await enqueue(store, dispatcher, job("/a", run_at=NOW + 30))  # the store tells
        assert later == [NOW + 30] and not dispatcher._wake.is_set()
        await enqueue(store, dispatcher, job("/b"))
        assert dispatcher._wake.is_set()

    with_store(scenario)


def test_a_queue_whose_rate_limit_overflows_is_set_aside_and_the_rest_served(
    with_store: WithStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(store: Store) -> None:
        dispatcher = make(store, tmp_path, FakeSender(), Clock(NOW))
        # A rate no float holds (written past the API's validation).
        await store.put_queue(name="bad", changes={"rate_limit": "9" * 400 + "/s"}, now=NOW)
        stuck, fine = await enqueue(store, dispatcher, job("/a", queue="bad"), job("/b"))

        with caplog.at_level(logging.ERROR, logger="pushq.dispatcher"):
            assert await dispatcher.claim_round() == 1
            await dispatcher.settled()
            (again,) = await enqueue(store, dispatcher, job("/c"))
            assert await dispatcher.claim_round() == 1
            await dispatcher.settled()

        assert (await state(store, fine.id)).state == "succeeded"
        assert (await state(store, again.id)).state == "succeeded"
        assert (await state(store, stuck.id)).state == "pending"
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 1 and logged[0].startswith("queue bad set aside from claims")

    with_store(scenario)


class HangingSender(FakeSender):
    """Holds every request open until the attempt is cancelled."""

    async def send(self, request: DeliveryRequest) -> DeliveryResponse:
        self.sent.append(request)
        await asyncio.Event().wait()
        raise AssertionError("never answered")


def test_an_attempt_cut_off_by_the_grace_period_is_due_again_at_once_and_not_counted(
    with_store: WithStore, tmp_path: Path
) -> None:
    async def scenario(store: Store) -> None:
        clock = Clock(NOW)
        sender = HangingSender()
        dispatcher = make(store, tmp_path, sender, clock)
        (cut,) = await enqueue(store, dispatcher, job("/hang", backoff=NO_JITTER, max_attempts=1))
        assert await dispatcher.claim_round() == 1
        await asyncio.sleep(0)  # the request is in flight
        clock.now = NOW + 5

        await dispatcher.stop(0.01)

        released = await state(store, cut.id)
        assert (released.state, released.attempts, released.run_at) == ("pending", 0, NOW)
        (attempt,) = await store.list_attempts(job_id=cut.id)
        assert (attempt.number, attempt.status, attempt.error) == (1, None, INTERRUPTED)
        assert released.last_error is not None and released.last_error["message"] == INTERRUPTED
        # its one attempt is still to come: delivered, not dead
        again = make(store, tmp_path, FakeSender(), clock)
        assert await again.claim_round() == 1
        await again.settled()
        done = await state(store, cut.id)
        assert (done.state, done.attempts) == ("succeeded", 1)

    with_store(scenario)


def test_a_delivery_that_fails_inside_pushq_frees_its_place_at_the_origin(
    with_store: WithStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug while sending must not leave the origin's (or the queue's) in-flight
    count raised: a queue capped per origin would stall."""

    async def scenario(store: Store) -> None:
        sender = FakeSender({"/bug": RuntimeError("a bug in pushq")})
        dispatcher = make(store, tmp_path, sender, Clock(NOW))
        await store.put_queue(name="capped", changes={"endpoint_concurrency": 1}, now=NOW)
        dispatcher.endpoints.set_queues(await store.list_queues())
        await enqueue(store, dispatcher, job("/bug", queue="capped"))
        assert await dispatcher.claim_round() == 1
        await dispatcher.settled()
        view = dispatcher.endpoints.describe("http://worker.test:80", NOW)
        assert view is not None and view["in_flight"] == 0
        assert dispatcher.endpoints.admit("http://worker.test:80", NOW, "capped") is None

    with caplog.at_level(logging.CRITICAL, logger="pushq.dispatcher"):
        with_store(scenario)


def test_slots_in_use_is_read_at_scrape_time(with_store: WithStore, tmp_path: Path) -> None:
    def in_use(metrics: Metrics) -> float:
        line = next(
            line
            for line in metrics.render().decode().splitlines()
            if line.startswith("pushq_dispatcher_slots_in_use ")
        )
        return float(line.split()[1])

    async def scenario(store: Store) -> None:
        dispatcher = make(store, tmp_path, HangingSender(), Clock(NOW))
        assert in_use(dispatcher.metrics) == 0
        await enqueue(store, dispatcher, job("/a"), job("/b"), job("/c"))
        assert await dispatcher.claim_round() == 3
        await asyncio.sleep(0)  # the requests are in flight
        assert in_use(dispatcher.metrics) == 3
        await dispatcher.stop(0.01)  # cut off: the slots are free again
        assert in_use(dispatcher.metrics) == 0

    with_store(scenario)
