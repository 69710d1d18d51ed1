"""/v1/flow-keys: per-key limits (concurrency, rate, pause) and live counts."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ...errors import BadRequest
from ..models import FlowKeyRecord
from .common import context, ok, read_json, validate
from .schemas import MAX_FLOW_KEY_LENGTH, FlowKeyRequest

LIST_LIMIT = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def flow_key(request: Request) -> str:
    key: str = request.path_params["key"]
    if not 1 <= len(key) <= MAX_FLOW_KEY_LENGTH or _CONTROL.search(key):
        raise BadRequest(f"flow keys are 1 to {MAX_FLOW_KEY_LENGTH} characters, no control ones")
    return key


def flow_key_json(record: FlowKeyRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "concurrency": record.concurrency,
        "rate_limit": record.rate_limit,
        "paused": record.paused,
        "in_flight": record.in_flight,
        "waiting": record.waiting,
    }


async def get_flow_key(request: Request) -> JSONResponse:
    ctx = context(request)
    return ok(flow_key_json(await ctx.store.get_flow_key(key=flow_key(request))))


async def list_flow_keys(request: Request) -> JSONResponse:
    ctx = context(request)
    records = await ctx.store.list_flow_keys(limit=LIST_LIMIT)
    return ok({"flow_keys": [flow_key_json(r) for r in records]})


async def _change(request: Request, changes: dict[str, Any]) -> JSONResponse:
    ctx = context(request)
    record = await ctx.store.put_flow_key(key=flow_key(request), changes=changes, now=ctx.clock())
    ctx.dispatcher.notify()  # a raised limit or a resume may free jobs now
    return ok(flow_key_json(record))


async def put_flow_key(request: Request) -> JSONResponse:
    given = validate(FlowKeyRequest, await read_json(request, limit=64 * 1024))
    changes = {field: getattr(given, field) for field in given.model_fields_set}
    if "paused" in changes and changes["paused"] is None:
        changes["paused"] = False
    return await _change(request, changes)


async def pause(request: Request) -> JSONResponse:
    return await _change(request, {"paused": True})


async def resume(request: Request) -> JSONResponse:
    return await _change(request, {"paused": False})
