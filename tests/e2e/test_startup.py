"""Start-up that cannot succeed exits non-zero, at once, with one line; a real
`pushq serve` process in every case (issue 16, part 2)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess, Reply, Worker, free_port, wait_until

StartPushq = Callable[..., PushqProcess]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    return env | {
        "PUSHQ_API_TOKEN": TEST_TOKEN,
        "PUSHQ_SIGNING_SECRET": TEST_SECRET,
        "PUSHQ_DATA_DIR": str(data_dir),
        "PUSHQ_PORT": str(free_port()),
        **extra,
    }


def _serve(env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    # A generous timeout: the assertion is that it exits at all, instead of hanging.
    return subprocess.run(
        [sys.executable, "-m", "pushq", "serve", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pushq: ")
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_in_use_exits_1_with_one_line_and_claims_nothing(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path, busy_port: int
) -> None:
    data_dir = tmp_path / "shared"
    first = start_pushq(data_dir)
    path = f"due-{uuid.uuid4().hex[:6]}"
    jobs = [first.enqueue(url=worker.url(path), delay=1) for _ in range(5)]
    assert first.terminate() == 0
    wait_until(lambda: _due(data_dir) == len(jobs), timeout=20)  # their delay has passed

    line = _one_line(_serve(_env(data_dir, PUSHQ_PORT=str(busy_port))))
    assert f"127.0.0.1:{busy_port}" in line and "address already in use" in line
    assert "--port/PUSHQ_PORT" in line
    # the socket is bound before the dispatcher starts: no job was claimed
    with sqlite3.connect(data_dir / "pushq.db") as db:
        touched = db.execute("SELECT count(*) FROM jobs WHERE attempts > 0").fetchone()[0]
    assert touched == 0
    assert worker.to(path) == []


def _due(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "pushq.db") as db:
        query = "SELECT count(*) FROM jobs WHERE run_at <= ?"
        return int(db.execute(query, (time.time(),)).fetchone()[0])


def test_an_unbindable_address_exits_1_naming_the_host(tmp_path: Path) -> None:
    line = _one_line(_serve(_env(tmp_path / "d", PUSHQ_HOST="192.0.2.1")))
    assert "192.0.2.1" in line and "--host/PUSHQ_HOST" in line
    line = _one_line(_serve(_env(tmp_path / "d", PUSHQ_HOST="no-such-host.invalid")))
    assert "no-such-host.invalid" in line and "--host/PUSHQ_HOST" in line


def test_a_second_server_on_the_same_data_dir_is_refused(
    start_pushq: StartPushq, tmp_path: Path
) -> None:
    data_dir = tmp_path / "one"
    first = start_pushq(data_dir)
    assert first.process is not None
    line = _one_line(_serve(_env(data_dir)))
    assert "another pushq serve" in line and f"pid {first.process.pid}" in line
    assert str(data_dir / "pushq.db") in line
    # the first one is unharmed, and once it is gone the data dir is free again
    assert first.client.get("/health").status_code == 200
    assert first.terminate() == 0
    start_pushq(data_dir)


def test_a_corrupt_database_exits_1_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "corrupt"
    data_dir.mkdir()
    (data_dir / "pushq.db").write_bytes(b"this is not a database file " * 200)
    line = _one_line(_serve(_env(data_dir)))
    assert "pushq.db" in line and "not a SQLite database" in line


def test_a_data_dir_that_cannot_be_created_exits_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = _serve(_env(blocker / "data"))
    assert result.returncode != 0
    line = _one_line(result, result.returncode)
    assert "PUSHQ_DATA_DIR" in line


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory pushq cannot write: a read-only tmpfs as root, else mode 0500."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        yield path
        path.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)])
    if mounted.returncode != 0:
        pytest.skip("running as root without permission to mount a read-only tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_an_unwritable_database_exits_1_with_one_line(tmp_path: Path, read_only_dir: Path) -> None:
    database = read_only_dir / "pushq.db"
    env = _env(tmp_path / "data", PUSHQ_DATABASE_URL=f"sqlite:///{database}")
    line = _one_line(_serve(env))
    assert str(read_only_dir) in line


def test_bad_settings_exit_2_naming_the_setting(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    line = _one_line(_serve(_env(data_dir), "--log-level", "verbose"), 2)
    assert "--log-level" in line and "DEBUG, INFO, WARNING, ERROR" in line
    line = _one_line(_serve(_env(data_dir, PUSHQ_LOG_LEVEL="loud")), 2)
    assert "PUSHQ_LOG_LEVEL" in line
    line = _one_line(_serve(_env(data_dir), "--port", "abc"), 2)
    assert "--port" in line and "whole number" in line and "int()" not in line
    line = _one_line(_serve(_env(data_dir, PUSHQ_MAX_CONNECTIONS="many")), 2)
    assert "PUSHQ_MAX_CONNECTIONS" in line
    line = _one_line(_serve(_env(data_dir, PUSHQ_MAX_BODY_SIZE="infmib")), 2)
    assert "PUSHQ_MAX_BODY_SIZE" in line


def test_a_second_sigterm_exits_at_once(
    start_pushq: StartPushq, worker: Worker, tmp_path: Path
) -> None:
    server = start_pushq(tmp_path / "twice", PUSHQ_SHUTDOWN_GRACE="10m")
    hang = f"hang-{uuid.uuid4().hex[:6]}"
    worker.script(hang, Reply(200, sleep=60))
    server.enqueue(url=worker.url(hang))
    worker.wait_for(hang)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "pushq stopping" in server.log(), timeout=20)
    server.process.send_signal(signal.SIGTERM)
    # without the second signal it would wait the 10 minute grace period
    assert server.process.wait(timeout=30) == 128 + signal.SIGTERM
    assert "second SIGTERM" in server.log()


def test_file_modes(start_pushq: StartPushq, tmp_path: Path) -> None:
    data_dir = tmp_path / "modes"
    server = start_pushq(data_dir)
    server.enqueue(url="http://127.0.0.1:9/x", delay=60)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("pushq.db", "pushq.db-wal", "pushq.db-shm", "pushq.lock"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    assert server.terminate() == 0

    # files left by an older version with looser modes are tightened at start-up
    data_dir.chmod(0o755)
    (data_dir / "pushq.db").chmod(0o644)
    start_pushq(data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "pushq.db").stat().st_mode) == 0o600


def _limit_files(soft: int, hard: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


def _open_file_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc")


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs /proc")
def test_the_open_file_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 2048:
        pytest.skip("needs a finite hard limit of at least 2048")
    env = _env(tmp_path / "d")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pushq", "serve"],
            env=env,
            stdout=out,
            stderr=out,
            preexec_fn=_limit_files(256, hard),
        )
    try:
        wait_until(lambda: "pushq listening" in log.read_text(), timeout=30)
        assert _open_file_limit(process.pid) == hard
    finally:
        process.terminate()
        process.wait(timeout=30)

    # still low after raising: one clear line, and the server runs with fewer connections
    log.write_text("")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pushq", "serve"],
            env=env,
            stdout=out,
            stderr=out,
            preexec_fn=_limit_files(512, 512),
        )
    try:
        wait_until(lambda: "pushq listening" in log.read_text(), timeout=30)
        text = log.read_text()
        assert "open-file limit is 512 (hard limit 512)" in text and "LimitNOFILE" in text
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
