"""Responses that try to use up memory or disk (issue 16, part 5): a gzip bomb is
decoded no further than the cap by either sender, and binary bodies are stored
compactly, once per attempt."""

from __future__ import annotations

import asyncio
import gzip
import resource
import sqlite3
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pushq.server.delivery import (
    RESPONSE_CAP,
    AiohttpSender,
    BoundedBody,
    DeliveryRequest,
    HttpxSender,
    response_excerpt,
    result_body,
)
from pushq.server.http_sender import LeanSender

from ..harness import PushqProcess, Reply, Worker, free_port, wait_until

BOMB_SIZE = 1024**3  # decoded: 1 GiB of zeros


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    return b"".join(packer.compress(zeros) for _ in range(BOMB_SIZE // len(zeros))) + (
        packer.flush()
    )


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    """A loopback endpoint that answers with a gzip bomb (and a deflate one)."""
    bomb = _bomb()
    deflated = zlib.compress(bytes(64 * 1024 * 1024), 9)

    async def gzip_bomb(request: Request) -> Response:
        return Response(bomb, headers={"content-encoding": "gzip"})

    async def deflate_bomb(request: Request) -> Response:
        return Response(deflated, headers={"content-encoding": "deflate"})

    async def small_gzip(request: Request) -> Response:
        return Response(gzip.compress(b"hello, compressed"), headers={"content-encoding": "gzip"})

    app = Starlette(
        routes=[
            Route("/gzip", gzip_bomb, methods=["POST"]),
            Route("/deflate", deflate_bomb, methods=["POST"]),
            Route("/small", small_gzip, methods=["POST"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(params=[LeanSender, AiohttpSender, HttpxSender], ids=["lean", "aiohttp", "httpx"])
def sender_class(request: pytest.FixtureRequest) -> type[LeanSender | AiohttpSender | HttpxSender]:
    return request.param  # type: ignore[no-any-return]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_gzip_bombs_in_flight_stay_within_the_cap(
    hostile_url: str, sender_class: type[LeanSender | AiohttpSender | HttpxSender]
) -> None:
    """Before: httpx inflated each 64 KiB chunk to 64 MiB; 100 bombs reached 16.5 GB."""

    async def main() -> list[bytes]:
        sender = sender_class(max_connections=50)
        try:
            requests = [
                DeliveryRequest("POST", f"{hostile_url}/{kind}", [], b"{}", 60.0)
                for kind in ("gzip", "deflate") * 25
            ]
            responses = await asyncio.gather(*(sender.send(r) for r in requests))
            return [r.body for r in responses]
        finally:
            await sender.aclose()

    before = _peak_rss_mib()
    bodies = asyncio.run(main())
    assert all(body == bytes(RESPONSE_CAP) for body in bodies)
    # 50 bombs of 1 GiB (gzip) and 64 MiB (deflate) each: without a bound on decoding
    # the peak would be gigabytes; with it, each holds at most a chunk and the cap.
    assert _peak_rss_mib() - before < 300


def test_a_small_compressed_response_is_decoded(
    hostile_url: str, sender_class: type[LeanSender | AiohttpSender | HttpxSender]
) -> None:
    async def main() -> bytes:
        sender = sender_class()
        try:
            request = DeliveryRequest("POST", f"{hostile_url}/small", [], b"{}", 10.0)
            return (await sender.send(request)).body
        finally:
            await sender.aclose()

    assert asyncio.run(main()) == b"hello, compressed"


def test_bounded_body_cases() -> None:
    body = BoundedBody("deflate", 100)
    raw_deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = raw_deflate.compress(b"x" * 50) + raw_deflate.flush()
    assert not body.feed(data)  # deflate without its zlib header, as some servers send
    assert bytes(body.body) == b"x" * 50

    broken = BoundedBody("gzip", 100)
    broken.feed(b"not gzip at all")
    assert bytes(broken.body) == b""

    unknown = BoundedBody("br", 10)
    assert unknown.feed(b"0123456789abc")
    assert bytes(unknown.body) == b"0123456789"

    # empty deflate blocks decode to nothing: raw bytes are bounded too
    empty = BoundedBody("identity", 10)
    assert empty.feed(b"0123456789")


def test_binary_bodies_are_stored_as_a_short_note() -> None:
    assert response_excerpt(bytes(65536)) == "[65536 bytes of binary data, not shown]"
    assert result_body(bytes(65536)) == "[65536 bytes of binary data, not shown]"
    assert response_excerpt(b"line one\nline two\ttabbed\r\n") == "line one\nline two\ttabbed\r\n"
    assert response_excerpt("café".encode()) == "café"


StartPushq = Callable[..., PushqProcess]


def _stored_bytes(data_dir: Path, job_id: str) -> int:
    with sqlite3.connect(data_dir / "pushq.db") as db:
        job = db.execute(
            "SELECT coalesce(length(CAST(result AS BLOB)), 0) + "
            "coalesce(length(CAST(last_error AS BLOB)), 0) FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()[0]
        attempts = db.execute(
            "SELECT coalesce(sum(length(CAST(response_body AS BLOB))), 0) FROM attempts "
            "WHERE job_id = ?",
            (job_id,),
        ).fetchone()[0]
    return int(job) + int(attempts)


def test_a_64_kib_nul_response_is_stored_compactly_once(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path
) -> None:
    """Before: ~450 KB per job (the body as text in the attempt, then again as JSON in
    the result with every NUL escaped as \\u0000)."""
    data_dir = tmp_path / "nul"
    server = start_pushq(data_dir)
    nul, text = f"nul-{uuid.uuid4().hex[:6]}", f"text-{uuid.uuid4().hex[:6]}"
    worker.script(nul, Reply(200, body=bytes(65536)))
    worker.script(text, Reply(200, body=b"t" * 65536))
    job = server.enqueue(url=worker.url(nul))
    server.wait_state(job["id"], "succeeded")
    assert _stored_bytes(data_dir, job["id"]) < 1000
    assert server.job(job["id"])["result"]["body"] == "[65536 bytes of binary data, not shown]"

    # a text body of 64 KiB: stored once (as the result), still shown with the attempt
    job = server.enqueue(url=worker.url(text))
    server.wait_state(job["id"], "succeeded")
    assert _stored_bytes(data_dir, job["id"]) < 65536 + 1000
    attempts = server.client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
    assert attempts[0]["response_body"] == "t" * 65536

    # a failing NUL response: the attempt keeps only the note
    failing = f"fail-{uuid.uuid4().hex[:6]}"
    worker.script(failing, Reply(500, body=bytes(65536)))
    job = server.enqueue(url=worker.url(failing), max_attempts=1)
    server.wait_state(job["id"], "dead")
    assert _stored_bytes(data_dir, job["id"]) < 1000
