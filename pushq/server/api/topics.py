"""/v1/topics: fan-out. A topic is a named list of endpoints; publishing to it
stores one independent job per endpoint, all in one transaction."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import BadRequest, NotFound
from ..models import TopicRecord
from ..render import job_json, rfc3339
from .common import context, ok, read_json, validate
from .jobs import REQUEST_OVERHEAD, to_new_job
from .schemas import NAME_PATTERN, JobRequest, PublishRequest, TopicRequest
from .targets import check_target


def topic_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadRequest("topic names match [A-Za-z0-9_.-]{1,64}")
    return name


def topic_json(topic: TopicRecord) -> dict[str, Any]:
    return {
        "name": topic.name,
        "endpoints": topic.endpoints,
        "created_at": rfc3339(topic.created_at),
        "updated_at": rfc3339(topic.updated_at),
    }


async def put_topic(request: Request) -> JSONResponse:
    ctx = context(request)
    name = topic_name(request)
    given = validate(TopicRequest, await read_json(request, limit=1024 * 1024))
    for i, endpoint in enumerate(given.endpoints):
        check_target(ctx.settings.target_policy, endpoint.url, f"endpoints[{i}].url")
    endpoints = [e.model_dump(exclude_none=True) for e in given.endpoints]
    topic = await ctx.store.put_topic(name=name, endpoints=endpoints, now=ctx.clock())
    return ok(topic_json(topic))


async def get_topic(request: Request) -> JSONResponse:
    ctx = context(request)
    name = topic_name(request)
    topic = await ctx.store.get_topic(name=name)
    if topic is None:
        raise NotFound(f"no topic {name}")
    return ok(topic_json(topic))


async def list_topics(request: Request) -> JSONResponse:
    ctx = context(request)
    return ok({"topics": [topic_json(t) for t in await ctx.store.list_topics()]})


async def delete_topic(request: Request) -> Response:
    ctx = context(request)
    name = topic_name(request)
    if not await ctx.store.delete_topic(name=name):
        raise NotFound(f"no topic {name}")
    return Response(status_code=204)


def _suffixed(key: str | None, i: int) -> str | None:
    """A publish's idempotency or unique key, made distinct per endpoint."""
    return None if key is None else f"{key}#{i}"


async def publish(request: Request) -> JSONResponse:
    """One job per endpoint of the topic (the endpoint's url, its headers added to the
    job's), each with `topic` set, stored in one transaction."""
    ctx = context(request)
    name = topic_name(request)
    data = await read_json(request, limit=ctx.settings.max_body_size + REQUEST_OVERHEAD)
    fields = validate(PublishRequest, data)
    topic = await ctx.store.get_topic(name=name)
    if topic is None:
        raise NotFound(f"no topic {name}")
    now = ctx.clock()
    jobs = []
    for i, endpoint in enumerate(topic.endpoints):
        own: dict[str, str] = endpoint.get("headers") or {}
        lowered = {k.lower() for k in own}
        headers = {k: v for k, v in fields.headers.items() if k.lower() not in lowered}
        headers.update(own)
        job = JobRequest.model_construct(
            **{**dict(fields), "url": endpoint["url"], "headers": headers}
        )
        new = to_new_job(job, ctx.settings, now, f"endpoints[{i}].")
        new.topic = name
        new.idempotency_key = _suffixed(new.idempotency_key, i)
        new.unique_key = _suffixed(new.unique_key, i)
        jobs.append(new)
    results = await ctx.store.enqueue(
        jobs=jobs,
        now=now,
        idempotency_ttl=ctx.settings.idempotency_ttl,
        defaults=ctx.settings.job_defaults,
    )
    out = []
    for result in results:
        body = job_json(result.job, now)
        body["deduplicated"] = not result.created
        out.append(body)
        if result.created:
            ctx.metrics.enqueued.labels(queue=result.job.queue).inc()
    return ok({"jobs": out}, 201)
