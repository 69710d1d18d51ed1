"""/v1/stats/timeseries: deliveries, failed attempts and latency per queue, minute by
minute over the last hour, as this process saw them (pushq.server.timeseries)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ...errors import BadRequest
from ..render import rfc3339
from ..timeseries import MINUTES, DeliverySeries
from .common import context, ok
from .jobs import query_queue
from .schemas import QUERY_SCHEMAS

MINUTES_PATTERN = QUERY_SCHEMAS["/v1/stats/timeseries minutes"]["pattern"]


def _minutes(request: Request) -> int:
    text = request.query_params.get("minutes")
    if text is None:
        return MINUTES
    if not re.fullmatch(MINUTES_PATTERN, text):
        raise BadRequest(f"minutes must be an integer from 1 to {MINUTES}")
    return int(text)


def _times(series: dict[str, Any]) -> dict[str, Any]:
    points = [{**p, "at": rfc3339(p["at"])} for p in series["points"]]
    return {**series, "points": points}


async def timeseries(request: Request) -> JSONResponse:
    ctx = context(request)
    queue, minutes = query_queue(request), _minutes(request)
    now = ctx.clock()
    if ctx.settler is None:  # an app without a dispatcher: nothing was delivered
        snapshot = DeliverySeries().snapshot(now, minutes=minutes)
    else:
        snapshot = ctx.settler.timeseries.snapshot(now, minutes=minutes, queue=queue)
    return ok(
        {
            "interval_seconds": snapshot["interval_seconds"],
            "from": rfc3339(snapshot["from"]),
            "to": rfc3339(snapshot["to"]),
            "total": _times(snapshot["total"]),
            "queues": [_times(q) for q in snapshot["queues"]],
        }
    )
