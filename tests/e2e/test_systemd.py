"""`Type=notify`: a real `pushq serve` tells the socket in $NOTIFY_SOCKET READY=1
once /health answers, and STOPPING=1 when SIGTERM starts the drain."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pushq.server.config import OPTIONS

from ..harness import PushqProcess


def messages(listener: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, without blocking."""
    found = []
    listener.setblocking(False)
    while True:
        try:
            found.append(listener.recv(4096).decode())
        except BlockingIOError:
            return found


def test_ready_once_health_answers_then_stopping_on_sigterm(
    tmp_path: Path, start_pushq: Callable[..., PushqProcess]
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        server = start_pushq(NOTIFY_SOCKET=str(path))  # returns once /health answers 200
        listener.settimeout(10)
        ready = listener.recv(4096).decode()
        pid = server.process.pid if server.process else None
        assert ready.splitlines() == ["READY=1", "STATUS=serving", f"MAINPID={pid}"]
        assert server.client.get("/health").status_code == 200
        assert server.terminate() == 0
        assert [m.splitlines()[0] for m in messages(listener)] == ["STOPPING=1"]  # READY once


# -- the unit file ----------------------------------------------------------------------

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "pushq.service"


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_is_sandboxed_and_waits_for_ready() -> None:
    unit = directives()
    for key, value in {
        "Type": "notify",
        "DynamicUser": "yes",
        "StateDirectory": "pushq",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "LimitNOFILE": "65536",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit[key] == [value], key
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    settings = {option.env for option in OPTIONS}
    for assignment in unit["Environment"]:
        assert assignment.partition("=")[0] in settings, assignment
    assert dict(a.split("=", 1) for a in unit["Environment"])["PUSHQ_DATA_DIR"] == (
        "/var/lib/" + unit["StateDirectory"][0]
    )


def test_systemd_analyze_verifies_the_unit_and_rates_it_ok(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this checkout's pushq
    unit = tmp_path / "pushq.service"
    pushq = Path(sys.executable).parent / "pushq"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/pushq", str(pushq)))
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run(
        [analyze, "--offline=true", "security", str(unit)], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for pushq.service: ([\d.]+)", security.stdout)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) <= 2.0  # systemd rates <= 2 as "OK"
