"""Connect-time target checks: pushq connects only to addresses the target policy
allows, and to the very addresses it checked (no DNS rebinding between a check
and the connection).

- `GuardedResolver` is the aiohttp sender's resolver: it resolves as aiohttp
  would, drops the addresses the policy refuses, and hands aiohttp the rest to
  connect to. (aiohttp does not ask a resolver about IP literals; the sender
  checks those with `check_url` first.)
- `GuardedBackend` is the httpx sender's network backend (httpcore): it
  resolves the host itself, checks the addresses and connects to a checked IP,
  while httpcore keeps the URL's host for the Host header and TLS SNI.

Both raise `TargetRefusedError` when nothing is left to connect to; the sender
turns it into a failed attempt that ends the job `dead`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from ..policy.targets import TargetPolicy, parse_ip


class TargetRefusedError(Exception):
    """The policy refuses a delivery target; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_url(policy: TargetPolicy, url: str) -> None:
    """The URL's own check (credentials, IP literals, the lists), before connecting."""
    decision = policy.check_url(url)
    if not decision.allowed:
        raise TargetRefusedError(decision.reason)


class CheckedUrls:
    """`check_url` with the verdict kept per scheme and authority: a delivery checks
    its URL on every attempt, and the verdict depends on that part alone (the
    policy is fixed for the process). A bounded cache: full, it starts over."""

    MAX_ENTRIES = 4096

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy
        self._verdicts: dict[tuple[str, str], str | None] = {}  # None: allowed

    def check(self, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:
            check_url(self.policy, url)  # the policy's own message
            return
        key = (parts.scheme, parts.netloc)
        if key in self._verdicts:
            refused = self._verdicts[key]
        else:
            decision = self.policy.check_url(url)
            refused = None if decision.allowed else decision.reason
            if len(self._verdicts) >= self.MAX_ENTRIES:
                self._verdicts.clear()
            self._verdicts[key] = refused
        if refused is not None:
            raise TargetRefusedError(refused)


def allowed_addresses(policy: TargetPolicy, host: str, addresses: Iterable[str]) -> list[str]:
    """The addresses `host` resolved to that the policy allows, in order; raises
    TargetRefusedError with the first refusal when none is."""
    allowed, refusals = [], []
    for address in addresses:
        decision = policy.check_address(address, host=host)
        if decision.allowed:
            allowed.append(address)
        else:
            refusals.append(decision.reason)
    if not allowed:
        raise TargetRefusedError(refusals[0] if refusals else f"{host} resolved to no address")
    return allowed


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that passes on only the addresses the policy allows."""

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = set(allowed_addresses(self.policy, host, (r["host"] for r in results)))
        return [r for r in results if r["host"] in allowed]

    async def close(self) -> None:
        await self._inner.close()


Resolve = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo gives for `host`, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to checked addresses."""

    def __init__(
        self,
        policy: TargetPolicy,
        *,
        inner: httpcore.AsyncNetworkBackend | None = None,
        resolve: Resolve = system_resolve,
    ) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()
        self._resolve = resolve

    async def addresses(self, host: str, port: int) -> list[str]:
        """What to connect to for `host`: the checked IP literal, or its allowed addresses."""
        try:
            literal = parse_ip(host)
        except ValueError as exc:
            raise TargetRefusedError(str(exc)) from None
        if literal is not None:
            decision = self.policy.check_address(literal, shown=host)
            if not decision.allowed:
                raise TargetRefusedError(decision.reason)
            return [str(literal)]
        try:
            resolved = await self._resolve(host, port)
        except OSError as exc:  # socket.gaierror: no such name
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        return allowed_addresses(self.policy, host, resolved)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: httpcore.ConnectError | None = None
        for address in await self.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # try the next checked address
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefusedError("deliveries do not go to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    policy: TargetPolicy, *, limits: httpx.Limits, resolve: Resolve = system_resolve
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (verified TLS, no proxies from the environment), its
    connection pool given a GuardedBackend.

    httpx has no public way to pass a network backend, so the pool it built is
    replaced by an equal one that has it."""
    transport = httpx.AsyncHTTPTransport(verify=True, trust_env=False, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(verify=True, trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy, resolve=resolve),
    )
    return transport
