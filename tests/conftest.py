"""Fixtures: one factory per real component (pushq process, worker endpoint)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import netns
from .harness import PushqProcess, Worker
from .stores import BACKENDS, WithStore, runner


@pytest.fixture(params=list(BACKENDS))
def with_store(request: pytest.FixtureRequest, tmp_path: Path) -> WithStore:
    """Run an async scenario against a freshly opened store, once per backend."""
    return runner(request.param, tmp_path)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "netns: runs only inside a loopback-only network namespace (tests/netns.py)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is None:
        return
    if os.environ.get(netns.ENV) and not netns.only_loopback():
        pytest.fail(f"{netns.ENV} is set but this network namespace has more than loopback")
    if not netns.inside():
        pytest.skip("runs inside a loopback-only network namespace, started by test_targets.py")


@pytest.fixture(scope="session")
def worker() -> Iterator[Worker]:
    endpoint = Worker()
    endpoint.start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def start_pushq(tmp_path: Path) -> Iterator[Callable[..., PushqProcess]]:
    """Start pushq processes (each a fresh server on tmp_path unless data_dir is given)."""
    started: list[PushqProcess] = []

    def start(data_dir: Path | None = None, **env: str) -> PushqProcess:
        server = PushqProcess(data_dir or tmp_path / f"data{len(started)}", env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="module")
def pushq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushqProcess]:
    """One pushq shared by a module's tests (tests use distinct queues and paths)."""
    server = PushqProcess(tmp_path_factory.mktemp("pushq"))
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def serve_asgi() -> Iterator[Callable[..., str]]:
    """Serve ASGI apps (a TaskRouter, a Starlette app) on uvicorn in threads for a
    module's tests; each call returns the app's base URL."""
    import threading

    import uvicorn

    from .harness import free_port, wait_until

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(app: object) -> str:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, timeout=10)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
