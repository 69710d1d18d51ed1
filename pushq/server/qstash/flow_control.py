"""QStash flow control as pushq flow keys.

A message's `Upstash-Flow-Control-Key` is its job's `flow_key`, so pushq's flow
control enforces it across queues and nodes. `Upstash-Flow-Control-Value` sets
the key's limits, as in QStash, where the latest message's values win:
`parallelism` is the key's `concurrency`, `rate` per `period` its `rate_limit`.
pushq's rates are counts per second, minute or hour, so `rate=5, period=10s`
becomes `30/m` (the same rate; the bucket holds a minute's worth), and a rate
slower than one an hour is raised to `1/h`.

`/v2/flowControl/{key}` shows and changes a key (pause, resume, resetRate, pin,
unpin); `/v2/globalParallelism` the server's delivery concurrency.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ...errors import BadRequest
from ...policy.ratelimit import MAX_RATE_COUNT, parse_rate
from ..api.schemas import MAX_FLOW_KEY_LENGTH
from ..models import FlowKeyRecord, NewJob

if TYPE_CHECKING:
    from .routes import V2, Handler

APPLIED_CACHE = 10_000  # keys whose last applied limits this node remembers
_UNITS = (("s", 1), ("m", 60), ("h", 3600))


def rate_limit(rate: int, period: int = 1) -> str:
    """QStash's `rate` per `period` seconds as a pushq rate ("N/s", "N/m", "N/h")."""
    period = max(1, period)
    for unit, seconds in _UNITS:
        count, rest = divmod(rate * seconds, period)
        if rest == 0 and 1 <= count <= MAX_RATE_COUNT:
            return f"{count}/{unit}"
    return f"{min(MAX_RATE_COUNT, max(1, round(rate * 3600 / period)))}/h"


def limits_of(values: dict[str, int]) -> dict[str, Any]:
    """A Flow-Control-Value (parsed) as flow-key changes."""
    changes: dict[str, Any] = {}
    if "parallelism" in values:
        changes["concurrency"] = values["parallelism"]
    if "rate" in values:
        changes["rate_limit"] = rate_limit(values["rate"], values.get("period", 1))
    return changes


def flow_key(text: str) -> str:
    if not 1 <= len(text) <= MAX_FLOW_KEY_LENGTH or any(ord(c) < 32 or c == "\x7f" for c in text):
        raise BadRequest(f"a flow control key is 1 to {MAX_FLOW_KEY_LENGTH} characters")
    return text


class FlowControl:
    """Applies messages' flow-control values, and the /v2/flowControl handlers.

    Pins are kept by this node (in memory): a pinned limit is not changed by the
    values of incoming messages until it is unpinned or pushq restarts."""

    def __init__(self, v2: V2) -> None:
        self.v2 = v2
        self.ctx = v2.ctx
        self._applied: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._pinned: dict[str, set[str]] = {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/flowControl", self.list),
            ("GET", "/flowControl/{key}", self.get),
            ("POST", "/flowControl/{key}/pause", self.pause),
            ("POST", "/flowControl/{key}/resume", self.resume),
            ("POST", "/flowControl/{key}/resetRate", self.reset_rate),
            ("POST", "/flowControl/{key}/pin", self.pin),
            ("POST", "/flowControl/{key}/unpin", self.unpin),
            ("GET", "/globalParallelism", self.global_parallelism),
        ]

    # -- publishing ------------------------------------------------------------------
    async def apply(self, jobs: list[NewJob]) -> None:
        """Set the limits the messages' Flow-Control-Values ask for, when they changed
        since this node last set them (a publish costs no write otherwise)."""
        wanted: dict[str, dict[str, Any]] = {}
        for job in jobs:
            flow = (job.meta or {}).get("flowControl")
            if job.flow_key is None or not flow:
                continue
            values = {k: v for k, v in flow.items() if k in ("parallelism", "rate", "period")}
            changes = limits_of(values)
            for field in self._pinned.get(job.flow_key, ()):
                changes.pop(field, None)
            if changes:
                wanted.setdefault(job.flow_key, {}).update(changes)
        for key, changes in wanted.items():
            if self._applied.get(key) == changes:
                self._applied.move_to_end(key)
                continue
            await self.ctx.store.put_flow_key(key=key, changes=changes, now=self.ctx.clock())
            self._applied[key] = changes
            while len(self._applied) > APPLIED_CACHE:
                self._applied.popitem(last=False)

    # -- the API ------------------------------------------------------------------------
    def _json(self, record: FlowKeyRecord) -> dict[str, Any]:
        rate_max = period = 0
        if record.rate_limit:
            rate = parse_rate(record.rate_limit)
            rate_max, period = rate.count, int(rate.period)
        pinned = self._pinned.get(record.key, set())
        return {
            "flowControlKey": record.key,
            "waitListSize": record.waiting,
            "parallelismMax": record.concurrency or 0,
            "parallelismCount": record.in_flight,
            "rateMax": rate_max,
            "rateCount": 0,  # pushq keeps a token bucket, not a count per period
            "ratePeriod": period,
            "ratePeriodStart": 0,
            "isPaused": record.paused,
            "isPinnedParallelism": "concurrency" in pinned,
            "isPinnedRate": "rate_limit" in pinned,
        }

    async def _change(self, key: str, changes: dict[str, Any]) -> FlowKeyRecord:
        record = await self.ctx.store.put_flow_key(key=key, changes=changes, now=self.ctx.clock())
        self._applied.pop(key, None)
        self.ctx.dispatcher.notify()  # a raised limit or a resume may free messages now
        return record

    async def list(self, request: Request) -> Response:
        records = await self.ctx.store.list_flow_keys(limit=1000)
        return self.v2.answer([self._json(r) for r in records])

    async def get(self, request: Request) -> Response:
        key = flow_key(request.path_params["key"])
        return self.v2.answer(self._json(await self.ctx.store.get_flow_key(key=key)))

    async def pause(self, request: Request) -> Response:
        await self._change(flow_key(request.path_params["key"]), {"paused": True})
        return self.v2.answer({})

    async def resume(self, request: Request) -> Response:
        await self._change(flow_key(request.path_params["key"]), {"paused": False})
        return self.v2.answer({})

    async def reset_rate(self, request: Request) -> Response:
        """A full bucket now: the rate is cleared and set again (a new bucket)."""
        key = flow_key(request.path_params["key"])
        record = await self.ctx.store.get_flow_key(key=key)
        if record.rate_limit:
            await self._change(key, {"rate_limit": None})
            await self._change(key, {"rate_limit": record.rate_limit})
        return self.v2.answer({})

    def _number(self, request: Request, name: str) -> int | None:
        text = request.query_params.get(name)
        if text is None or text == "":
            return None
        if not text.isdigit() or not 1 <= int(text) <= MAX_RATE_COUNT:
            raise BadRequest(f"{name} must be an integer from 1 to {MAX_RATE_COUNT}")
        return int(text)

    async def pin(self, request: Request) -> Response:
        key = flow_key(request.path_params["key"])
        values = {
            name: number
            for name in ("parallelism", "rate", "period")
            if (number := self._number(request, name)) is not None
        }
        if "period" in values and "rate" not in values:
            record = await self.ctx.store.get_flow_key(key=key)
            if record.rate_limit is None:
                raise BadRequest("period needs a rate (the key has none)")
            current = parse_rate(record.rate_limit)
            values["rate"] = max(1, round(current.count * values["period"] / current.period))
        changes = limits_of(values)
        if not changes:
            raise BadRequest("pin needs parallelism or rate")
        await self._change(key, changes)
        self._pinned.setdefault(key, set()).update(changes)
        return self.v2.answer({})

    async def unpin(self, request: Request) -> Response:
        key = flow_key(request.path_params["key"])
        pinned = self._pinned.get(key, set())
        for name, field in (("parallelism", "concurrency"), ("rate", "rate_limit")):
            text = (request.query_params.get(name) or "").lower()
            if text not in ("", "true", "false"):
                raise BadRequest(f"{name} must be true or false")
            if text == "true":
                pinned.discard(field)
        if not pinned:
            self._pinned.pop(key, None)
        return self.v2.answer({})

    async def global_parallelism(self, request: Request) -> Response:
        counts = await self.ctx.store.count_by_state(now=self.ctx.clock())
        active = sum(n for (_, state), n in counts.items() if state == "active")
        return self.v2.answer(
            {
                "parallelismMax": self.ctx.settings.delivery_concurrency,
                "parallelismCount": active,
            }
        )
