"""One attempt: build the signed request, send it, and classify what came back.

The sender is a one-method seam (`Sender.send`) so the dispatcher can be
driven by any HTTP client, or by a fake in tests; classification is a pure
function of the response (pushq.policy.classify), tested as a table.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
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
from .guard import CheckedUrls, GuardedResolver, TargetRefusedError, guarded_transport
from .models import JobRecord, NewJob

RESPONSE_CAP = 64 * 1024
# Encodings pushq decodes itself (with a bound on the decoded size); only these are
# offered, so a compressed response can never inflate past the cap in memory.
ACCEPT_ENCODING = "gzip, deflate"
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


class DeliveryHook(Protocol):
    """Delivery rules of jobs another API made (QStash's /v2, pushq.server.qstash),
    chosen per job by `job.meta["kind"]`: how the request is signed, how a response
    is read, and the jobs (callbacks) each attempt makes."""

    def request(self, job: JobRecord, request: DeliveryRequest, now: float) -> DeliveryRequest:
        """The request to send instead of pushq's own `request`."""

    def outcome(
        self, job: JobRecord, response: DeliveryResponse | DeliveryFailed, outcome: Outcome
    ) -> Outcome:
        """The outcome instead of pushq's own reading `outcome`; a retry's `retry_after`
        is the whole wait (the job's own backoff is zero)."""

    def after_attempt(
        self,
        job: JobRecord,
        response: DeliveryResponse | DeliveryFailed,
        outcome: Outcome,
        now: float,
    ) -> list[NewJob]:
        """Jobs to enqueue once the attempt has settled (e.g. callbacks)."""


def hook_for(hooks: Mapping[str, DeliveryHook], job: JobRecord) -> DeliveryHook | None:
    """The job's delivery hook, or None for an ordinary /v1 job."""
    if job.meta is None or not hooks:
        return None
    return hooks.get(job.meta.get("kind", ""))


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


class BoundedBody:
    """A response body decoded (gzip, deflate, identity) as it arrives, up to `cap`
    decoded bytes: a gzip bomb stops at the cap instead of inflating in memory.

    An encoding it does not know is kept as received (capped), like a body whose
    compressed stream is broken: the excerpt is for people, not for the verdict.
    """

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.body = bytearray()
        self.raw_read = 0
        encoding = (content_encoding or "identity").strip().lower()
        self._decoder: zlib._Decompress | None = None
        self._deflate = encoding == "deflate"
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._deflate:
            self._decoder = zlib.decompressobj()
        self._broken = False

    @property
    def full(self) -> bool:
        # Raw bytes are bounded too: a stream of empty deflate blocks decodes to nothing.
        return len(self.body) >= self.cap or self.raw_read >= 4 * self.cap + 65536

    def feed(self, chunk: bytes) -> bool:
        """Add received bytes; True once the body is full (stop reading)."""
        self.raw_read += len(chunk)
        if self._decoder is None:
            self.body += chunk[: self.cap - len(self.body)]
            return self.full
        if self._broken:
            return self.full
        data = chunk
        try:
            while data and len(self.body) < self.cap:
                self.body += self._decoder.decompress(data, self.cap - len(self.body))
                data = self._decoder.unconsumed_tail
        except zlib.error:
            if self._deflate and not self.body and self.raw_read == len(chunk):
                # "deflate" sent without its zlib header, as some servers do
                self._decoder, self._deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                self.raw_read = 0
                return self.feed(chunk)
            self._broken = True
        return self.full


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _is_text(text: str) -> bool:
    return _CONTROL.search(text) is None


def response_excerpt(body: bytes) -> str | None:
    """The stored text of a response body (already capped by the sender): the text
    itself, or a one-line note for a binary body (NULs and control characters
    would be stored escaped, several bytes each)."""
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    if _is_text(text):
        return text
    return f"[{len(body)} bytes of binary data, not shown]"


ENDPOINT_MESSAGE_MAX = 300  # characters of an endpoint's own error message kept in last_error


def endpoint_message(body: str | None) -> str | None:
    """The endpoint's own word on a failure, from its response body: the `error` or
    `message` of a JSON object (also `{"error": {"message": ...}}`), else the first
    non-blank line of the text; None for an empty body."""
    if not body or not body.strip():
        return None
    text: object = None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("error")
            if isinstance(value, str) and value.strip():
                text = value
                break
    if text is None:
        text = next(line for line in body.splitlines() if line.strip())
    line = " ".join(str(text).split())
    return line[:ENDPOINT_MESSAGE_MAX]


def result_body(body: bytes) -> object:
    """A successful response body as the job's result: JSON when it parses, else text
    (a note for a binary body, as for the excerpt)."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return response_excerpt(body)


def _with_accept_encoding(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request's headers, offering only the encodings BoundedBody decodes (a job
    may set its own Accept-Encoding; an unknown encoding is then kept as received)."""
    listed = list(headers)
    if not any(name.lower() == "accept-encoding" for name, _ in listed):
        listed.append(("accept-encoding", ACCEPT_ENCODING))
    return listed


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
        self._urls = CheckedUrls(self.targets)
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
            self._urls.check(request.url)
            async with asyncio.timeout(request.timeout):
                async with self._client.stream(
                    request.method,
                    request.url,
                    headers=_with_accept_encoding(request.headers),
                    content=request.body,
                    timeout=request.timeout,
                ) as response:
                    body = BoundedBody(response.headers.get("content-encoding"), self.response_cap)
                    async for chunk in response.aiter_raw():
                        if body.feed(chunk):
                            break
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return DeliveryResponse(response.status_code, headers, bytes(body.body))
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
    """Sends deliveries with aiohttp (`PUSHQ_SENDER=aiohttp`; the default until the
    lean sender, pushq.server.http_sender, took ~20% off the CPU per job).

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
        self._urls = CheckedUrls(self.targets)
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
            auto_decompress=False,  # BoundedBody decodes, up to the cap
            # send()'s own deadline covers the whole attempt (connect, send, read):
            # aiohttp's timers on top would only cost a timer per request
            timeout=aiohttp.ClientTimeout(),
            skip_auto_headers=("User-Agent", "Content-Type"),
        )
        return self._session

    async def send(self, request: DeliveryRequest) -> DeliveryResponse:
        try:
            self._urls.check(request.url)  # IP literals never reach the resolver
            session = self._session or self._open()
            async with asyncio.timeout(request.timeout):
                async with session.request(
                    request.method,
                    request.url,
                    headers=_with_accept_encoding(request.headers),
                    data=request.body or None,
                    allow_redirects=False,
                ) as response:
                    body = BoundedBody(response.headers.get("content-encoding"), self.response_cap)
                    while not body.full:
                        chunk = await response.content.read(65536)
                        if not chunk or body.feed(chunk):
                            break
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    return DeliveryResponse(response.status, headers, bytes(body.body))
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
