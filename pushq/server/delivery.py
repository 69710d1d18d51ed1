"""One attempt: build the signed request, send it, and classify what came back.

The sender is a one-method seam (`Sender.send`) so the dispatcher can be
driven by any HTTP client, or by a fake in tests; classification is a pure
function of the response (pushq.policy.classify), tested as a table.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver

from ..policy.classify import classify_response
from ..policy.targets import TargetPolicy
from ..signing import make_job_token, sign
from ..version import __version__
from .guard import GuardedResolver, TargetRefusedError, check_url, guarded_transport
from .models import JobRecord

RESPONSE_CAP = 64 * 1024
USER_AGENT = f"pushq/{__version__}"

# Headers pushq sets on every delivery; a job's own headers may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "user-agent",
        "pushq-attempt",
        "pushq-max-attempts",
        "pushq-queue",
        "pushq-job-token",
        "pushq-api-url",
    }
)
# Hop-by-hop and framing headers belong to the connection, not the job.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
        "proxy-connection",
    }
)


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    method: str
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    timeout: float


@dataclass(frozen=True, slots=True)
class DeliveryResponse:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes  # at most RESPONSE_CAP bytes


class DeliveryFailed(Exception):
    """No HTTP response: `kind` is "timeout", "connection", or "refused" (the target
    policy refused the address; nothing was sent)."""

    def __init__(self, kind: Literal["timeout", "connection", "refused"], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Sender(Protocol):
    async def send(self, request: DeliveryRequest) -> DeliveryResponse:
        """Send one request; raise DeliveryFailed when no response arrives in time."""

    async def aclose(self) -> None: ...


def build_request(
    job: JobRecord,
    *,
    now: float,
    signing_keys: Sequence[bytes],
    token_key: bytes,
    api_url: str | None = None,
) -> DeliveryRequest:
    """The signed request for the job's current attempt (job.attempts, under job.lease).

    `api_url` (PUSHQ_PUBLIC_URL) tells the worker where to send progress and results."""
    body = job.body or b""
    timestamp = int(now)
    headers: list[tuple[str, str]] = list(job.headers.items())
    if job.body is not None and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/json"))
    headers += [
        ("webhook-id", job.id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", sign(signing_keys, job.id, timestamp, body)),
        ("pushq-attempt", str(job.attempts)),
        ("pushq-max-attempts", str(job.max_attempts)),
        ("pushq-queue", job.queue),
        ("pushq-job-token", make_job_token(token_key, job.id, job.attempts, job.lease or "")),
        ("user-agent", USER_AGENT),
    ]
    if api_url is not None:
        headers.append(("pushq-api-url", api_url))
    return DeliveryRequest(job.method, job.url, headers, body, job.timeout)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a response means for the job."""

    verdict: Literal["succeeded", "async", "retry", "dead"]
    status: int | None
    error: str | None = None
    retry_after: float | None = None  # seconds the endpoint asked us to wait
    failure_class: str | None = None  # timeout | connection | 3xx | 4xx | 5xx


def classify(
    response: DeliveryResponse | DeliveryFailed,
    *,
    now: float,
    retry_after_cap: float,
    permanent_statuses: Collection[int] = (),
) -> Outcome:
    """Read a response as DESIGN.md's table says (the table is pushq.policy.classify)."""
    if isinstance(response, DeliveryFailed):
        if response.kind == "refused":  # the policy will refuse it again: no retry
            return Outcome("dead", None, response.message, failure_class="refused")
        return Outcome("retry", None, response.message, failure_class=response.kind)
    status = response.status
    verdict = classify_response(
        status,
        response.headers,
        permanent_statuses=permanent_statuses,
        retry_after_cap=retry_after_cap,
        now=now,
    )
    if verdict.kind in ("succeeded", "async"):
        return Outcome(verdict.kind, status)
    failure_class = f"{status // 100}xx" if 300 <= status < 600 else "other"
    return Outcome(verdict.kind, status, verdict.reason, verdict.retry_after, failure_class)


def response_excerpt(body: bytes) -> str | None:
    """The stored text of a response body: decoded leniently, already capped by the sender."""
    if not body:
        return None
    return body.decode("utf-8", errors="replace")


def result_body(body: bytes) -> object:
    """A successful response body as the job's result: JSON when it parses, else text."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


class HttpxSender:
    """Sends deliveries with httpx: no redirects, verified TLS, capped reads, one deadline."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        response_cap: int = RESPONSE_CAP,
        targets: TargetPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.response_cap = response_cap
        self.targets = targets if targets is not None else TargetPolicy()
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            verify=True,
            trust_env=False,  # no .netrc credentials or proxy surprises on a server
            limits=limits,
            # connects only to addresses the target policy allows (pushq.server.guard)
            transport=transport or guarded_transport(self.targets, limits=limits),
        )

    async def send(self, request: DeliveryRequest) -> DeliveryResponse:
        try:
            check_url(self.targets, request.url)
            async with asyncio.timeout(request.timeout):
                async with self._client.stream(
                    request.method,
                    request.url,
                    headers=list(request.headers),
                    content=request.body,
                    timeout=request.timeout,
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) >= self.response_cap:
                            break
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return DeliveryResponse(
                        response.status_code, headers, bytes(body[: self.response_cap])
                    )
        except TargetRefusedError as exc:
            raise DeliveryFailed("refused", f"target refused: {exc.reason}") from None
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryFailed(
                "timeout", f"no complete response within {request.timeout:g}s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError, ValueError) as exc:
            # InvalidURL and encoding errors are no response all the same: retried, recorded.
            raise DeliveryFailed("connection", f"{type(exc).__name__}: {exc}".strip()) from None

    async def aclose(self) -> None:
        await self._client.aclose()


class AiohttpSender:
    """Sends deliveries with aiohttp: the dispatcher's default (see docs/benchmarks.md:
    several times the throughput of httpx's default transport here).

    No redirects, verified TLS, capped reads, one total deadline per attempt,
    keep-alive connections reused per host from a bounded pool.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        response_cap: int = RESPONSE_CAP,
        targets: TargetPolicy | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.response_cap = response_cap
        self.max_connections = max_connections
        self.targets = targets if targets is not None else TargetPolicy()
        self._resolver = resolver  # resolves names; the guard filters what it returns
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop that will use it.
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            ttl_dns_cache=60,
            # connects only to addresses the target policy allows (pushq.server.guard)
            resolver=GuardedResolver(self.targets, self._resolver),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # no .netrc credentials or proxy surprises on a server
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Content-Type"),
        )
        return self._session

    async def send(self, request: DeliveryRequest) -> DeliveryResponse:
        try:
            check_url(self.targets, request.url)  # IP literals never reach the resolver
            session = self._session or self._open()
            async with asyncio.timeout(request.timeout):
                async with session.request(
                    request.method,
                    request.url,
                    headers=list(request.headers),
                    data=request.body or None,
                    allow_redirects=False,
                ) as response:
                    body = bytearray()
                    while len(body) < self.response_cap:
                        chunk = await response.content.read(self.response_cap - len(body))
                        if not chunk:
                            break
                        body += chunk
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return DeliveryResponse(response.status, headers, bytes(body))
        except TargetRefusedError as exc:
            raise DeliveryFailed("refused", f"target refused: {exc.reason}") from None
        except TimeoutError:
            raise DeliveryFailed(
                "timeout", f"no complete response within {request.timeout:g}s"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError, UnicodeError) as exc:
            # invalid URLs and unencodable headers are no response all the same
            message = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            raise DeliveryFailed("connection", message) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
