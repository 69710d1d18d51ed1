"""Delivery control in the store (issue 13): topics, flow keys, circuits."""

from __future__ import annotations

from pushq.server.models import CircuitRecord
from pushq.server.store.base import Store

from .conftest import WithStore
from .test_conformance import NOW, claim, enqueue, new_job


async def put_queue(store: Store, name: str, **changes: object) -> None:
    await store.put_queue(name=name, changes=dict(changes), now=NOW)


def test_topics_are_stored_replaced_listed_and_deleted(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.get_topic(name="t") is None
        endpoints = [{"url": "https://a.example/"}, {"url": "https://b.example/", "name": "b"}]
        created = await store.put_topic(name="t", endpoints=endpoints, now=NOW)
        assert (created.endpoints, created.created_at, created.updated_at) == (endpoints, NOW, NOW)
        replaced = await store.put_topic(name="t", endpoints=endpoints[:1], now=NOW + 5)
        assert (replaced.endpoints, replaced.created_at) == (endpoints[:1], NOW)
        assert replaced.updated_at == NOW + 5
        await store.put_topic(name="a", endpoints=endpoints, now=NOW)
        assert [t.name for t in await store.list_topics()] == ["a", "t"]
        assert await store.get_topic(name="t") == replaced
        assert await store.delete_topic(name="t")
        assert not await store.delete_topic(name="t")
        assert await store.get_topic(name="t") is None

    with_store(scenario)


def test_a_key_at_its_limit_does_not_hold_back_other_keys(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await put_queue(store, "q", key_concurrency=1)
        await enqueue(store, *[new_job(queue="q", flow_key="big") for _ in range(20)])
        await enqueue(store, new_job(queue="q", flow_key="small"), new_job(queue="q"))
        first = await claim(store, limit=10)
        assert sorted(str(job.flow_key) for job in first) == ["None", "big", "small"]
        assert all(job.attempts == 1 for job in first)
        # big is at its limit: nothing more of it until its job finishes
        assert await claim(store, limit=10, lease="L2") == []
        record = await store.get_flow_key(key="big")
        assert (record.in_flight, record.waiting, record.concurrency) == (1, 19, None)

    with_store(scenario)


def test_own_limits_pause_and_rate(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await store.put_flow_key(key="p", changes={"paused": True}, now=NOW)
        await store.put_flow_key(key="two", changes={"concurrency": 2}, now=NOW)
        await store.put_flow_key(key="rated", changes={"rate_limit": "3/m"}, now=NOW)
        await enqueue(
            store, *[new_job(flow_key=k) for k in ("p", "two", "rated") for _ in range(5)]
        )
        got = await claim(store, limit=20)
        keys = sorted(str(job.flow_key) for job in got)
        assert keys == ["rated"] * 3 + ["two"] * 2
        # the rated key's bucket is spent: none until a token comes back (20 s for 3/m)
        assert await claim(store, limit=20, lease="L2", now=NOW + 1) == []
        assert [j.flow_key for j in await claim(store, limit=20, lease="L3", now=NOW + 21)] == [
            "rated"
        ]
        resumed = await store.put_flow_key(key="p", changes={"paused": False}, now=NOW + 22)
        assert (resumed.paused, resumed.waiting) == (False, 5)
        assert len(await claim(store, limit=20, lease="L4", now=NOW + 22)) == 5
        listed = [r.key for r in await store.list_flow_keys(limit=10)]
        assert listed == ["rated", "two"]  # p has no settings of its own left

    with_store(scenario)


def test_the_flow_key_snapshot_reads_only_keys_that_can_limit(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        await enqueue(store, *[new_job(flow_key=f"waiting-{i}") for i in range(50)])
        await enqueue(store, new_job(flow_key="busy", priority=10))
        await store.put_flow_key(key="own", changes={"concurrency": 3}, now=NOW)
        await claim(store, limit=1)  # busy's job goes active
        keys = {k.key: k for k in await store.flow_key_snapshot(now=NOW)}
        assert set(keys) == {"busy", "own"}  # not the 50 keys that only wait
        assert (keys["busy"].active, keys["own"].concurrency) == (1, 3)

    with_store(scenario)


def test_release_hands_a_claimed_job_back_without_an_attempt(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        [job] = await enqueue(store, new_job())
        [claimed] = await claim(store)
        assert claimed.attempts == 1
        assert not await store.release(job_id=job.id, lease="other", attempt=1, run_at=NOW + 9)
        assert await store.release(job_id=job.id, lease="L1", attempt=1, run_at=NOW + 9)
        back = await store.get(job_id=job.id)
        assert back is not None
        assert (back.state, back.attempts, back.lease, back.run_at) == (
            "scheduled",
            0,
            None,
            NOW + 9,
        )
        assert not await store.release(job_id=job.id, lease="L1", attempt=1, run_at=NOW + 9)
        assert await claim(store, now=NOW + 1, lease="L2") == []
        [again] = await claim(store, now=NOW + 9, lease="L3")
        assert again.attempts == 1

    with_store(scenario)


def test_circuits_are_stored_and_only_unclosed_ones_loaded(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        assert await store.load_circuits() == []
        opened = CircuitRecord("http://a:80", "open", 10, 1, NOW + 10)
        await store.save_circuit(circuit=opened, now=NOW)
        await store.save_circuit(
            circuit=CircuitRecord("http://b:80", "closed", 0, 0, None), now=NOW
        )
        assert await store.load_circuits() == [opened]
        reopened = CircuitRecord("http://a:80", "open", 11, 2, NOW + 30)
        await store.save_circuit(circuit=reopened, now=NOW + 10)
        assert await store.load_circuits() == [reopened]
        await store.save_circuit(
            circuit=CircuitRecord("http://a:80", "closed", 0, 0, None), now=NOW
        )
        assert await store.load_circuits() == []

    with_store(scenario)


def test_a_queues_delivery_rules_are_stored(with_store: WithStore) -> None:
    async def scenario(store: Store) -> None:
        fresh = await store.put_queue(name="q", changes={}, now=NOW)
        assert (fresh.adaptive_concurrency, fresh.endpoint_concurrency) == (True, None)
        changes = {"adaptive_concurrency": False, "endpoint_concurrency": 3}
        await store.put_queue(name="q", changes=changes, now=NOW)
        await store.put_queue(name="q", changes={"concurrency": 9}, now=NOW)  # others kept
        got = await store.get_queue(name="q")
        assert got is not None
        assert (got.adaptive_concurrency, got.endpoint_concurrency, got.concurrency) == (
            False,
            3,
            9,
        )
        [listed] = [q for q in await store.list_queues() if q.name == "q"]
        assert listed == got

    with_store(scenario)
