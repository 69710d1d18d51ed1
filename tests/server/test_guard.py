"""pushq.server.guard and the senders: the connect-time target check.

Names resolve through fake resolvers. Every address a test here could connect
to is on loopback, so a broken check sends nothing off the machine; the cases
with other addresses (metadata, RFC 1918) stop before any connection, or run in
tests/e2e/test_targets.py inside a loopback-only network namespace."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from pushq.policy.targets import TargetPolicy
from pushq.server.delivery import (
    AiohttpSender,
    DeliveryFailed,
    DeliveryRequest,
    HttpxSender,
    Sender,
    classify,
)
from pushq.server.guard import (
    CheckedUrls,
    GuardedBackend,
    GuardedResolver,
    TargetRefusedError,
    allowed_addresses,
    guarded_transport,
)
from pushq.server.http_sender import LeanSender
from tests.harness import Worker

PRIVATE = TargetPolicy("private")
PUBLIC = TargetPolicy("public")
NAMES = {
    "worker.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "mixed.test": ["169.254.169.254", "10.1.2.3", "127.0.0.1"],
    "twin.test": ["127.0.0.2", "127.0.0.1"],
}


class FakeResolver(AbstractResolver):
    """aiohttp's resolver seam, answering from NAMES."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in NAMES:
            raise OSError(f"no such name {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in NAMES[host]
        ]

    async def close(self) -> None:
        pass


async def fake_resolve(host: str, port: int) -> list[str]:
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return NAMES[host]


def test_allowed_addresses_keeps_the_allowed_ones_in_order() -> None:
    assert allowed_addresses(PRIVATE, "mixed.test", NAMES["mixed.test"]) == [
        "10.1.2.3",
        "127.0.0.1",
    ]
    with pytest.raises(TargetRefusedError, match=r"mixed.test \(169.254.169.254\) is a cloud"):
        allowed_addresses(PUBLIC, "mixed.test", NAMES["mixed.test"])
    with pytest.raises(TargetRefusedError, match="resolved to no address"):
        allowed_addresses(PRIVATE, "empty.test", [])


@pytest.mark.parametrize(
    ("policy", "host", "expected"),
    [
        (PRIVATE, "worker.test", ["127.0.0.1"]),
        (PRIVATE, "mixed.test", ["10.1.2.3", "127.0.0.1"]),
        (PRIVATE, "metadata.test", "cloud metadata"),
        (PRIVATE, "mapped.test", "in an IPv4-mapped address, a cloud metadata"),
        (PUBLIC, "worker.test", "loopback"),
        (PUBLIC, "mixed.test", "cloud metadata"),
    ],
)
def test_the_resolver_passes_on_only_allowed_addresses(
    policy: TargetPolicy, host: str, expected: list[str] | str
) -> None:
    async def resolve() -> list[str]:
        resolver = GuardedResolver(policy, FakeResolver())
        return [r["host"] for r in await resolver.resolve(host, 80)]

    if isinstance(expected, str):
        with pytest.raises(TargetRefusedError, match=expected):
            asyncio.run(resolve())
    else:
        assert asyncio.run(resolve()) == expected


@pytest.mark.parametrize(
    ("policy", "host", "expected"),
    [
        (PRIVATE, "worker.test", ["127.0.0.1"]),
        (PRIVATE, "mixed.test", ["10.1.2.3", "127.0.0.1"]),
        (PRIVATE, "127.0.0.1", ["127.0.0.1"]),
        (PRIVATE, "0x7f.1", ["127.0.0.1"]),  # a literal is connected to in its normal form
        (PRIVATE, "2852039166", "cloud metadata"),
        (PRIVATE, "metadata.test", "cloud metadata"),
        (PUBLIC, "::1", "loopback"),
        (PUBLIC, "worker.test", "loopback"),
        (PRIVATE, "1.2.3.999", "not a valid IPv4 address"),
    ],
)
def test_the_httpx_backend_connects_only_to_checked_addresses(
    policy: TargetPolicy, host: str, expected: list[str] | str
) -> None:
    backend = GuardedBackend(policy, resolve=fake_resolve)
    if isinstance(expected, str):
        with pytest.raises(TargetRefusedError, match=expected):
            asyncio.run(backend.addresses(host, 80))
    else:
        assert asyncio.run(backend.addresses(host, 80)) == expected


def test_a_refused_target_ends_the_job_dead_without_retry() -> None:
    outcome = classify(DeliveryFailed("refused", "target refused: x"), now=0, retry_after_cap=60)
    assert (outcome.verdict, outcome.failure_class) == ("dead", "refused")
    assert outcome.error == "target refused: x"


# -- the senders, end to end on loopback ---------------------------------------------


def _senders(policy: TargetPolicy) -> list[Sender]:
    return [
        LeanSender(targets=policy, resolve=fake_resolve),
        AiohttpSender(targets=policy, resolver=FakeResolver()),
        HttpxSender(
            targets=policy,
            transport=guarded_transport(
                policy, limits=httpx.Limits(max_connections=4), resolve=fake_resolve
            ),
        ),
    ]


async def _send_all(senders: Sequence[Sender], url: str) -> list[int | str]:
    results: list[int | str] = []
    for sender in senders:
        try:
            response = await sender.send(DeliveryRequest("POST", url, [], b"{}", 5.0))
            results.append(response.status)
        except DeliveryFailed as failure:
            results.append(f"{failure.kind}: {failure.message}")
        finally:
            await sender.aclose()
    return results


def test_a_name_is_delivered_to_the_address_that_was_checked(worker: Worker) -> None:
    results = asyncio.run(_send_all(_senders(PRIVATE), f"http://worker.test:{worker.port}/guard"))
    assert results == [200, 200, 200]
    deliveries = worker.wait_for("guard", 3)
    # connected to 127.0.0.1, yet the request still names the host it was sent to
    assert [d.headers["host"] for d in deliveries] == [f"worker.test:{worker.port}"] * 3


def test_a_name_with_a_refused_address_is_sent_only_to_the_allowed_one(worker: Worker) -> None:
    # twin.test resolves to 127.0.0.2 first, where a trap listens on the worker's port;
    # the policy denies 127.0.0.2, so every sender must skip it and reach the worker.
    policy = TargetPolicy("private", deny=("127.0.0.2",))
    with socket.socket() as trap:
        trap.bind(("127.0.0.2", worker.port))
        trap.listen()
        trap.setblocking(False)
        results = asyncio.run(_send_all(_senders(policy), f"http://twin.test:{worker.port}/twin"))
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody connected to the refused address
    assert results == [200, 200, 200]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://worker.test:{port}/x", "worker.test (127.0.0.1) is a loopback address"),
        ("http://127.0.0.1:{port}/x", "127.0.0.1 is a loopback address"),
        ("http://127.1:{port}/x", "127.1 (127.0.0.1) is a loopback address"),
        ("http://0x7f000001:{port}/x", "0x7f000001 (127.0.0.1) is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/x", "in an IPv4-mapped address, a loopback address"),
        ("http://u:p@worker.test:{port}/x", "credentials"),
    ],
)
def test_public_mode_refuses_loopback_at_connect_time(
    worker: Worker, url: str, reason: str
) -> None:
    before = len(worker.to("x"))
    results = asyncio.run(_send_all(_senders(PUBLIC), url.format(port=worker.port)))
    for result in results:
        assert isinstance(result, str) and result.startswith("refused: target refused: ")
        assert reason in result
    assert len(worker.to("x")) == before  # nothing reached the worker


def test_an_unknown_name_is_a_connection_failure_not_a_refusal() -> None:
    results = asyncio.run(_send_all(_senders(PRIVATE), "http://nowhere.test:9/"))
    assert all(isinstance(r, str) and r.startswith("connection: ") for r in results), results


# -- CheckedUrls: the senders' per-authority cache of check_url ---------------------


CACHE_CASES = (
    "http://127.0.0.1:8000/job",
    "http://127.0.0.1:8000/other?x=1",  # same authority, another path: same verdict
    "http://169.254.169.254/latest/meta-data",
    "http://[::ffff:169.254.169.254]/",
    "http://user:secret@127.0.0.1/",
    "http://127.0.0.2/job",
    "https://example.com/hook",
    "http:///no-host",
    "http://[::1/",
)


@pytest.mark.parametrize("policy", [PRIVATE, PUBLIC, TargetPolicy("private", deny=("127.0.0.2",))])
def test_checked_urls_give_check_urls_verdict_every_time(policy: TargetPolicy) -> None:
    checked = CheckedUrls(policy)
    for _ in range(2):  # the second round answers from the cache
        for url in CACHE_CASES:
            decision = policy.check_url(url)
            if decision.allowed:
                checked.check(url)
            else:
                with pytest.raises(TargetRefusedError) as refused:
                    checked.check(url)
                assert refused.value.reason == decision.reason


def test_checked_urls_stay_bounded() -> None:
    checked = CheckedUrls(PRIVATE)
    for n in range(CheckedUrls.MAX_ENTRIES + 10):
        checked.check(f"http://host{n}.example/job")
    assert len(checked._verdicts) <= CheckedUrls.MAX_ENTRIES
    with pytest.raises(TargetRefusedError):  # a refusal still refuses after a start over
        checked.check("http://169.254.169.254/")
