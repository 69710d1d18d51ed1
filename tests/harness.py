"""The real components end-to-end tests run against: a pushq server process
and a worker endpoint on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pushq.signing import generate_secret

TEST_TOKEN = "test-token-0123456789abcdef"
TEST_SECRET = generate_secret()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# -- the worker endpoint ----------------------------------------------------------


@dataclass
class Delivery:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    sleep: float = 0.0


class Worker:
    """A real HTTP endpoint that records deliveries and answers as scripted per path."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self._scripts: dict[str, list[Reply]] = {}
        self.in_flight: dict[str, int] = {}  # requests being answered, per path
        self.max_in_flight: dict[str, int] = {}
        self._changed = threading.Condition()
        app = Starlette(
            routes=[
                Route(
                    "/{path:path}", self._handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
                )
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def script(self, path: str, *replies: Reply | int) -> None:
        """Answer the next deliveries to `path` with these replies; the last one repeats."""
        self._scripts["/" + path.lstrip("/")] = [
            Reply(r) if isinstance(r, int) else r for r in replies
        ]

    async def _handle(self, request: Request) -> Response:
        import asyncio

        body = await request.body()
        path = request.url.path
        with self._changed:
            self.deliveries.append(
                Delivery(path, request.method, dict(request.headers), body, time.time())
            )
            script = self._scripts.get(path, [])
            reply = script.pop(0) if len(script) > 1 else (script[0] if script else Reply())
            self._changed.notify_all()
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), self.in_flight[path])
        try:
            if reply.sleep:
                await asyncio.sleep(reply.sleep)
            return Response(reply.body, status_code=reply.status, headers=reply.headers)
        finally:
            with self._changed:
                self.in_flight[path] -= 1

    def to(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == "/" + path.lstrip("/")]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.to(path)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.to(path))} of {count} deliveries to {path} in {timeout}s"
                    )
                self._changed.wait(left)
            return self.to(path)

    def start(self) -> None:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=10)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


# -- the pushq server ---------------------------------------------------------------


class PushqProcess:
    """A real `pushq serve` process on a free port with its own data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "pushq.log"
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {TEST_TOKEN}"},
            timeout=10,
        )

    def start(self) -> PushqProcess:
        env = dict(os.environ)
        env.update(
            {
                "PUSHQ_API_TOKEN": TEST_TOKEN,
                "PUSHQ_SIGNING_SECRET": TEST_SECRET,
                "PUSHQ_PORT": str(self.port),
                "PUSHQ_DATA_DIR": str(self.data_dir),
                "PUSHQ_POLL_INTERVAL": "0.2",
                "PUSHQ_RESCUE_INTERVAL": "0.2",
                "PUSHQ_SHUTDOWN_GRACE": "5s",
                "PUSHQ_LOG_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pushq", "serve"], env=env, stdout=log, stderr=log
        )
        log.close()
        wait_until(self._healthy, timeout=20, interval=0.05)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"pushq exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(self.base_url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 20) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        self.client.close()

    # conveniences for tests
    def enqueue(self, **job: Any) -> dict[str, Any]:
        response = self.client.post("/v1/jobs", json=job)
        assert response.status_code in (200, 201), response.text
        data: dict[str, Any] = response.json()
        return data

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def wait_state(self, job_id: str, *states: str, timeout: float = 10) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.job(job_id))
            return found["state"] in states

        try:
            wait_until(reached, timeout=timeout, interval=0.03)
        except AssertionError:
            raise AssertionError(f"job {job_id} is {found.get('state')}, not {states}") from None
        return found


FAST_RETRY = {"backoff": {"base": 0.05, "max": 0.2, "jitter": False}}
