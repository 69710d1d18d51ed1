"""The single binary (deploy/build-binary.sh): the stub that unpacks it, and a real
build run with an empty environment: --version, serve answering /health, a job
delivered and signed, the dashboard's files and the SQL inside."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from pushq.version import __version__

from ..harness import TEST_SECRET, TEST_TOKEN, Worker, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "build-binary.sh"


def pack(tmp_path: Path, script: str) -> Path:
    """A binary whose payload is a one-dir 'build' holding this shell script."""
    onedir = tmp_path / "onedir"
    (onedir / "pushq").mkdir(parents=True)
    program = onedir / "pushq" / "pushq"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    out = tmp_path / "bin" / "pushq"
    subprocess.run(["bash", str(BUILD), "--pack", str(onedir), "test", str(out)], check=True)
    return out


def test_the_stub_unpacks_once_then_execs_with_args_and_exit_code(tmp_path: Path) -> None:
    binary = pack(tmp_path, 'echo "args: $*"; echo "at: $0"; exit 3\n')
    cache = tmp_path / "cache"
    env = {"PUSHQ_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    first = subprocess.run([str(binary), "a b", "c"], env=env, capture_output=True, text=True)
    assert first.returncode == 3, first.stderr
    assert first.stdout.splitlines()[0] == "args: a b c"
    [unpacked] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert unpacked.name.startswith("test-")
    assert first.stdout.splitlines()[1] == f"at: {unpacked}/pushq/pushq"
    assert (cache.stat().st_mode & 0o077) == 0
    marker = unpacked / "pushq" / "marker"
    marker.write_text("kept")
    again = subprocess.run([str(binary)], env=env, capture_output=True, text=True)
    assert again.returncode == 3 and marker.exists()  # not unpacked again
    assert [p.name for p in cache.iterdir()] == [unpacked.name]  # no unpack dirs left


def test_the_stub_finds_a_cache_dir_without_any_environment(tmp_path: Path) -> None:
    binary = pack(tmp_path, 'echo "$0"\n')
    result = subprocess.run(
        ["env", "-i", f"CACHE_DIRECTORY={tmp_path / 'systemd-cache'}", str(binary)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith(str(tmp_path / "systemd-cache") + "/test-")


@pytest.mark.heavy
@pytest.mark.timeout(1800)
def test_the_built_binary_runs_pushq_with_an_empty_environment(
    tmp_path: Path, worker: Worker
) -> None:
    binary = tmp_path / "pushq"
    build = subprocess.run(
        ["bash", str(BUILD)],
        cwd=ROOT,
        env={**os.environ, "OUT": str(binary)},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert build.returncode == 0, build.stdout + build.stderr

    version = subprocess.run(
        ["env", "-i", str(binary), "--version"], capture_output=True, text=True
    )
    assert version.stdout.strip() == f"pushq {__version__}", version.stderr

    port = free_port()
    settings = {
        "PUSHQ_PORT": str(port),
        "PUSHQ_DATA_DIR": str(tmp_path / "data"),
        "PUSHQ_API_TOKEN": TEST_TOKEN,
        "PUSHQ_SIGNING_SECRET": TEST_SECRET,
        "PUSHQ_CACHE_DIR": str(tmp_path / "cache"),
    }
    env_i = ["env", "-i", *(f"{k}={v}" for k, v in settings.items())]
    server = subprocess.Popen([*env_i, str(binary), "serve"], stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert server.poll() is None, server.communicate()[1]
            try:
                return httpx.get(base + "/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=60, interval=0.1)
        api = httpx.Client(base_url=base, headers={"authorization": f"Bearer {TEST_TOKEN}"})
        with api:
            job = api.post("/v1/jobs", json={"url": worker.url("binary"), "body": {"n": 1}})
            assert job.status_code == 201, job.text
            [delivery] = worker.wait_for("binary", timeout=30)
            Webhook(TEST_SECRET).verify(delivery.body, delivery.headers)
            assert delivery.headers["webhook-id"] == job.json()["id"]
            assert api.get("/ui/static/dashboard.js").status_code == 200  # package data
        # the API commands from the same file, with nothing but their settings
        listing = subprocess.run(
            [*env_i, f"PUSHQ_URL={base}", str(binary), "jobs", "list", "--json"],
            capture_output=True,
            text=True,
        )
        assert job.json()["id"] in listing.stdout, listing.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
