"""Delivery control in the store (issue 13): topics, flow keys, circuits."""

from __future__ import annotations

from pushq.server.store.base import Store

from .conftest import WithStore
from .test_conformance import NOW


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
