"""/v2/topics: QStash URL groups as pushq topics.

A URL group is a pushq topic (visible in `/v1/topics`) whose endpoints are
`{"url", "name"?}`; publishing to a group's name (`/v2/publish/{name}`,
`/v2/enqueue/{queue}/{name}`, a batch item) makes one /v2 message per endpoint,
each with `topicName` and `endpointName`, stored in one transaction, and answers
a JSON array, as the SDKs expect (not the OpenAPI's `{"messages": [...]}`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ...errors import BadRequest, NotFound
from ..api.schemas import MAX_TOPIC_ENDPOINTS, NAME_PATTERN
from ..models import NewJob, TopicRecord
from .headers import Publish
from .jobs import check_url, make_job
from .render import ms

if TYPE_CHECKING:
    from .routes import V2, Handler


def group_name(text: str) -> str:
    if not re.fullmatch(NAME_PATTERN, text):
        raise BadRequest("a URL group name must match [A-Za-z0-9_.-]{1,64}")
    return text


def group_json(topic: TopicRecord) -> dict[str, Any]:
    endpoints = []
    for endpoint in topic.endpoints:
        shown = {"url": endpoint["url"]}
        if endpoint.get("name"):
            shown["name"] = endpoint["name"]
        endpoints.append(shown)
    return {
        "name": topic.name,
        "createdAt": ms(topic.created_at),
        "updatedAt": ms(topic.updated_at),
        "endpoints": endpoints,
    }


def fan_out(
    topic: TopicRecord, publish: Publish, *, body: bytes, now: float, **job: Any
) -> list[NewJob]:
    """One message per endpoint of the group; a deduplication id is made distinct per
    endpoint (the content hash already is: it covers the destination)."""
    made = []
    for endpoint in topic.endpoints:
        own = publish
        extra_headers: dict[str, str] = endpoint.get("headers") or {}  # a /v1 endpoint's
        if extra_headers:
            lowered = {k.lower() for k in extra_headers}
            headers = {k: v for k, v in publish.headers.items() if k.lower() not in lowered}
            own = replace(publish, headers=headers | extra_headers)
        key = own.dedup_key(endpoint["url"], body)
        if key is not None and publish.deduplication_id is not None:
            key += "#" + hashlib.sha256(endpoint["url"].encode()).hexdigest()[:16]
        extra = {"topicName": topic.name}
        if endpoint.get("name"):
            extra["endpointName"] = endpoint["name"]
        new = make_job(
            own,
            destination=endpoint["url"],
            body=body,
            now=now,
            extra=extra,
            idempotency_key=key,
            **job,
        )
        new.topic = topic.name
        made.append(new)
    return made


class UrlGroups:
    """The /v2/topics handlers, over the V2 plumbing (routes.V2)."""

    def __init__(self, v2: V2) -> None:
        self.v2 = v2
        self.ctx = v2.ctx
        # An endpoint change reads and rewrites the group: one at a time on this node.
        self._changing = asyncio.Lock()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/topics/{group}/endpoints", self.upsert_endpoints),
            ("DELETE", "/topics/{group}/endpoints", self.remove_endpoints),
            ("GET", "/topics", self.list),
            ("GET", "/topics/{group}", self.get),
            ("DELETE", "/topics/{group}", self.delete),
        ]

    async def topic(self, name: str) -> TopicRecord:
        topic = await self.ctx.store.get_topic(name=name)
        if topic is None:
            raise NotFound(f"url group {name[:100]} not found")
        return topic

    async def _endpoints(self, request: Request) -> list[dict[str, str]]:
        data = await self.v2.json_body(request)
        given = data.get("endpoints") if isinstance(data, dict) else None
        if not isinstance(given, list) or not given:
            raise BadRequest('the body must be {"endpoints": [{"url", "name"?}, ...]}')
        endpoints = []
        for i, item in enumerate(given):
            if not isinstance(item, dict) or not set(item) <= {"url", "name"}:
                raise BadRequest(f"endpoints[{i}] must be an object with url and name")
            endpoint = {}
            for field in ("url", "name"):
                value = item.get(field)
                if value is None or value == "":
                    continue
                if not isinstance(value, str):
                    raise BadRequest(f"endpoints[{i}].{field} must be a string")
                endpoint[field] = value
            if "name" in endpoint and not re.fullmatch(NAME_PATTERN, endpoint["name"]):
                raise BadRequest(f"endpoints[{i}].name must match [A-Za-z0-9_.-]{{1,64}}")
            endpoints.append(endpoint)
        return endpoints

    async def upsert_endpoints(self, request: Request) -> Response:
        """Adds the endpoints. One updates the endpoint of its name, else one of its url
        (with no other name): an upsert can name or rename an endpoint."""
        name = group_name(request.path_params["group"])
        given = await self._endpoints(request)
        for i, endpoint in enumerate(given):
            if "url" not in endpoint:
                raise BadRequest(f"endpoints[{i}].url is required")
            check_url(endpoint["url"], f"endpoints[{i}].url", self.ctx.settings)
        async with self._changing:
            await self._upsert(name, given)
        return self.v2.answer({})

    async def _upsert(self, name: str, given: list[dict[str, str]]) -> None:
        current = await self.ctx.store.get_topic(name=name)
        endpoints = [dict(e) for e in current.endpoints] if current else []
        for endpoint in given:
            label = endpoint.get("name")
            same = next((e for e in endpoints if label and e.get("name") == label), None)
            if same is None:
                same = next(
                    (
                        e
                        for e in endpoints
                        if e["url"] == endpoint["url"] and not (label and e.get("name"))
                    ),
                    None,
                )
            if same is not None:
                same.update(endpoint)
            else:
                endpoints.append(endpoint)
        if len(endpoints) > MAX_TOPIC_ENDPOINTS:
            raise BadRequest(f"a URL group holds at most {MAX_TOPIC_ENDPOINTS} endpoints")
        await self.ctx.store.put_topic(name=name, endpoints=endpoints, now=self.ctx.clock())

    async def remove_endpoints(self, request: Request) -> Response:
        """Removes the endpoints matching by url or name; an emptied group is deleted."""
        name = group_name(request.path_params["group"])
        given = await self._endpoints(request)
        for i, endpoint in enumerate(given):
            if not endpoint:
                raise BadRequest(f"endpoints[{i}] needs a url or a name")
        async with self._changing:
            await self._remove(name, given)
        return self.v2.answer({})

    async def _remove(self, name: str, given: list[dict[str, str]]) -> None:
        topic = await self.topic(name)

        def removed(endpoint: dict[str, Any]) -> bool:
            for match in given:
                if "url" in match and "name" in match:
                    if endpoint["url"] == match["url"] and endpoint.get("name") == match["name"]:
                        return True
                elif endpoint["url"] == match.get("url") or (
                    "name" in match and endpoint.get("name") == match["name"]
                ):
                    return True
            return False

        kept = [e for e in topic.endpoints if not removed(e)]
        if not kept:
            await self.ctx.store.delete_topic(name=name)
        elif len(kept) != len(topic.endpoints):
            await self.ctx.store.put_topic(name=name, endpoints=kept, now=self.ctx.clock())

    async def list(self, request: Request) -> Response:
        return self.v2.answer([group_json(t) for t in await self.ctx.store.list_topics()])

    async def get(self, request: Request) -> Response:
        return self.v2.answer(group_json(await self.topic(request.path_params["group"])))

    async def delete(self, request: Request) -> Response:
        name = request.path_params["group"]
        if not await self.ctx.store.delete_topic(name=name):
            raise NotFound(f"url group {name[:100]} not found")
        return self.v2.answer({})
