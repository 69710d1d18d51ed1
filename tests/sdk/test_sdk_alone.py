"""The SDK stands alone: `import pushq` loads no server module and no server dependency,
and it works in an interpreter where those cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SERVER_ONLY = (
    "uvicorn",
    "starlette",
    "aiosqlite",
    "aiohttp",
    "prometheus_client",
    "croniter",
    "rich",
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_importing_pushq_loads_no_server_module_or_dependency() -> None:
    done = run_python(
        f"""
        import sys, pushq
        print([m for m in sys.modules if m.split('.')[0] in {SERVER_ONLY!r} + ('httpx',)])
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_client_and_worker_helpers_load_nothing_of_the_server() -> None:
    done = run_python(
        f"""
        import sys
        from pushq import AsyncClient, Client, TaskRouter
        from pushq.worker import verify
        loaded = [m for m in sys.modules if m.split('.')[0] in {SERVER_ONLY!r}]
        loaded += [m for m in sys.modules if m.startswith('pushq.server')]
        if 'httpx._main' in sys.modules:  # httpx's own command line loads rich when present
            loaded = [m for m in loaded if m.split('.')[0] != 'rich']
        print(loaded)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_sdk_signs_verifies_and_routes_with_server_dependencies_blocked() -> None:
    done = run_python(
        f"""
        import asyncio, importlib.abc, sys, time

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {SERVER_ONLY!r}:
                    raise ImportError(f"blocked: {{name}}")

        sys.meta_path.insert(0, Block())
        import pushq
        from pushq.signing import generate_secret, secret_key, sign
        from pushq.worker import TaskRouter, verify

        secret = generate_secret()
        router = TaskRouter(secret=secret)

        @router.task
        def add(a, b):
            return a + b

        body = b'{{"args": [2, 3]}}'
        now = int(time.time())
        headers = [
            (b"webhook-id", b"job_1"),
            (b"webhook-timestamp", str(now).encode()),
            (b"webhook-signature", sign([secret_key(secret)], "job_1", now, body).encode()),
        ]
        verify(secret, body, {{k.decode(): v.decode() for k, v in headers}})
        sent = []

        async def receive():
            return {{"type": "http.request", "body": body, "more_body": False}}

        async def send(message):
            sent.append(message)

        scope = {{"type": "http", "method": "POST", "path": "/add", "headers": headers}}
        asyncio.run(router(scope, receive, send))
        print(sent[0]["status"], sent[1]["body"].decode())
        pushq.Client("http://127.0.0.1:9", token="t").close()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200 5"
