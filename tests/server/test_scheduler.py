"""Cron schedules: the cron helper, the Scheduler with an injected clock on a real
SQLite store, and one real-time check that a firing missed during downtime is made
up once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pushq.policy.cron import check_cron, next_fire, zone
from pushq.policy.fairness import fair_shares
from pushq.server.api.jobs import job_from_template
from pushq.server.config import Settings
from pushq.server.scheduler import Scheduler
from pushq.server.store.base import Store
from pushq.signing import generate_secret

from ..harness import PushqProcess, Worker, wait_until
from ..stores import WithStore


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_next_fire_in_utc_and_in_a_zone_across_dst() -> None:
    assert next_fire("*/15 * * * *", "UTC", ts("2026-03-01T10:07:00+00:00")) == ts(
        "2026-03-01T10:15:00+00:00"
    )
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC after the March change
    before = next_fire("0 9 * * *", "Europe/Paris", ts("2026-03-27T12:00:00+00:00"))
    after = next_fire("0 9 * * *", "Europe/Paris", before)
    assert datetime.fromtimestamp(before, UTC).hour == 8
    assert datetime.fromtimestamp(after, UTC).hour == 7


@pytest.mark.parametrize("expression", ["* * * *", "* * * * * *", "61 * * * *", "a b c d e"])
def test_bad_cron_expressions(expression: str) -> None:
    with pytest.raises(ValueError):
        check_cron(expression)


def test_unknown_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        zone("Mars/Olympus")


def test_fair_shares_follow_weights_slot_by_slot() -> None:
    credit: dict[str, float] = {}
    got = {"critical": 0, "batch": 0}
    for _ in range(170):  # one free slot at a time, as the dispatcher usually claims
        for queue, n in fair_shares(
            {"critical": 5, "batch": 5}, {"critical": 2, "batch": 0}, 1, credit
        ).items():
            got[queue] += n
    assert got == {"critical": 160, "batch": 10}  # 16 : 1
    assert fair_shares({"a": 2, "b": 10}, {"a": 0, "b": 0}, 8, {}) == {"a": 2, "b": 6}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings(tmp_path: Path) -> Settings:
    return Settings(api_token="t" * 20, signing_secrets=(generate_secret(),), data_dir=tmp_path)


def run_with_scheduler(
    with_store: WithStore,
    tmp_path: Path,
    start: float,
    body: Callable[[Store, Scheduler, Clock], Awaitable[None]],
) -> None:
    async def scenario(store: Store) -> None:
        clock = Clock(start)
        config = settings(tmp_path)
        scheduler = Scheduler(
            store=store,
            settings=config,
            notify=lambda _: None,
            job_from_template=lambda template, now: job_from_template(template, config, now),
            clock=clock,
        )
        await body(store, scheduler, clock)

    with_store(scenario)


def test_each_firing_enqueues_one_job_and_downtime_is_made_up_once(
    with_store: WithStore, tmp_path: Path
) -> None:
    start = ts("2026-05-01T10:00:30+00:00")

    async def body(store: Store, scheduler: Scheduler, clock: Clock) -> None:
        await store.put_schedule(
            name="report",
            cron="*/5 * * * *",
            timezone="UTC",
            job={"url": "http://127.0.0.1:9/report", "queue": "reports"},
            next_run_at=next_fire("*/5 * * * *", "UTC", start),
            now=start,
        )
        assert await scheduler.fire_due() == 0  # not yet
        clock.now = ts("2026-05-01T10:05:01+00:00")
        assert await scheduler.fire_due() == 1
        assert await scheduler.fire_due() == 0  # the same firing never twice
        schedule = await store.get_schedule(name="report")
        assert schedule is not None
        assert schedule.last_run_at == ts("2026-05-01T10:05:00+00:00")
        assert schedule.next_run_at == ts("2026-05-01T10:10:00+00:00")
        # pushq was down for an hour: twelve firings missed, made up once
        clock.now = ts("2026-05-01T11:07:00+00:00")
        assert await scheduler.fire_due() == 1
        schedule = await store.get_schedule(name="report")
        assert schedule is not None
        assert schedule.next_run_at == ts("2026-05-01T11:10:00+00:00")
        page = await store.list_jobs(
            queue="reports", state=None, limit=10, cursor=None, now=clock.now
        )
        assert len(page.jobs) == 2
        assert {j.idempotency_key for j in page.jobs} == {
            f"schedule:report:{ts('2026-05-01T10:05:00+00:00'):.0f}",
            f"schedule:report:{ts('2026-05-01T10:10:00+00:00'):.0f}",
        }
        assert {j.schedule for j in page.jobs} == {"report"}  # the jobs name what made them

    run_with_scheduler(with_store, tmp_path, start, body)


def test_macros_fire_at_their_times() -> None:
    start = ts("2026-05-13T10:07:00+00:00")  # a Wednesday
    expected = {
        "@hourly": "2026-05-13T11:00:00+00:00",
        "@daily": "2026-05-14T00:00:00+00:00",
        "@weekly": "2026-05-17T00:00:00+00:00",
        "@monthly": "2026-06-01T00:00:00+00:00",
        "@yearly": "2027-01-01T00:00:00+00:00",
    }
    for macro, at in expected.items():
        assert next_fire(check_cron(macro.upper()), "UTC", start) == ts(at), macro


def test_cron_days_of_week_take_names_and_seven_for_sunday() -> None:
    assert check_cron("0 9 * * mon-fri") == "0 9 * * mon-fri"
    assert check_cron("0 9 * * 5-7") == "0 9 * * 5-7"
    assert check_cron("0 0 1,15 jan-jun/2 *") == "0 0 1,15 jan-jun/2 *"
    with pytest.raises(ValueError, match="day-of-week: 9 is out of range 0-6"):
        check_cron("0 0 * * 9")


def test_two_schedulers_on_one_database_fire_once(with_store: WithStore, tmp_path: Path) -> None:
    start = ts("2026-05-01T10:00:30+00:00")

    async def body(store: Store, scheduler: Scheduler, clock: Clock) -> None:
        await store.put_schedule(
            name="sync",
            cron="* * * * *",
            timezone="UTC",
            job={"url": "http://127.0.0.1:9/sync"},
            next_run_at=ts("2026-05-01T10:01:00+00:00"),
            now=start,
        )
        other = Scheduler(
            store=store,
            settings=scheduler.settings,
            notify=lambda _: None,
            job_from_template=scheduler.job_from_template,
            clock=clock,
        )
        clock.now = ts("2026-05-01T10:01:00.5+00:00")
        fired = await asyncio.gather(scheduler.fire_due(), other.fire_due())
        assert sorted(fired) == [0, 1]

    run_with_scheduler(with_store, tmp_path, start, body)


def test_schedules_api_and_a_missed_firing_made_up_at_start(
    start_pushq: Callable[..., PushqProcess], worker: Worker, tmp_path: Path
) -> None:
    data_dir = tmp_path / "sched"
    server = start_pushq(data_dir)
    bad = server.client.put("/v1/schedules/x", json={"cron": "every day", "job": {"url": "x"}})
    assert bad.status_code == 400 and "cron" in bad.json()["error"]["message"]
    bad = server.client.put(
        "/v1/schedules/x", json={"cron": "* * * * *", "job": {"url": "ftp://x"}}
    )
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("job.url")
    bad = server.client.put(
        "/v1/schedules/x",
        json={"cron": "* * * * *", "timezone": "Nowhere/Land", "job": {"url": worker.url("a")}},
    )
    assert bad.status_code == 400
    created = server.client.put(
        "/v1/schedules/nightly",
        json={
            "cron": "0 3 * * *",
            "timezone": "Europe/Paris",
            "job": {"url": worker.url("nightly"), "body": {"kind": "nightly"}},
        },
    )
    assert created.status_code == 200, created.text
    assert created.json()["next_run_at"].endswith("Z") and created.json()["last_run_at"] is None
    assert server.client.get("/v1/schedules").json()["schedules"][0]["name"] == "nightly"
    assert server.terminate() == 0

    # while pushq is down, the 03:00 firing passes (we move it into the past)
    with sqlite3.connect(data_dir / "pushq.db") as conn:
        conn.execute("UPDATE schedules SET next_run_at = next_run_at - 2 * 86400")
    server = start_pushq(data_dir)
    [delivery] = worker.wait_for("nightly", timeout=10)
    assert delivery.body == b'{"kind":"nightly"}'
    schedule = wait_until(
        lambda: (s := server.client.get("/v1/schedules/nightly").json())["last_run_at"] and s
    )
    assert schedule["next_run_at"] > schedule["last_run_at"]
    assert server.client.delete("/v1/schedules/nightly").status_code == 204
    assert server.client.get("/v1/schedules/nightly").status_code == 404
