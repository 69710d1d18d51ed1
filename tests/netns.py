"""A network namespace that has only loopback, for tests of refused targets.

Tests marked `netns` run only inside one: tests/e2e/test_targets.py's
`test_refused_targets_in_a_loopback_only_namespace` creates it (`ip netns add`,
as root), with an /etc/hosts of its own (NAMES), and runs those tests there with
pytest. A check that failed to refuse could then reach nothing but loopback:
no packet can leave the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV = "PUSHQ_TEST_NETNS"  # set to the namespace's name for the tests run inside it

# The namespace's /etc/hosts (`ip netns exec` mounts /etc/netns/<name>/hosts there).
NAMES = {
    "localhost": ["127.0.0.1", "::1"],
    "worker.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "intranet.test": ["10.1.2.3"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "mixed.test": ["169.254.169.254", "10.1.2.3", "127.0.0.1"],
}


def only_loopback() -> bool:
    """True when this process sees no network interface but `lo`."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def inside() -> bool:
    return bool(os.environ.get(ENV)) and only_loopback()


def unavailable() -> str | None:
    """Why a namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "creating a network namespace needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"ip netns does not work here: {probe.stderr.strip()}"
    return None


@contextmanager
def loopback_namespace() -> Iterator[str]:
    """A new namespace with `lo` up and NAMES as its /etc/hosts; removed on exit."""
    name = f"pushq-test-{os.getpid()}-{secrets.token_hex(3)}"
    etc = Path("/etc/netns") / name
    etc.mkdir(parents=True)
    lines = [f"{address} {host}" for host, addresses in NAMES.items() for address in addresses]
    (etc / "hosts").write_text("\n".join(lines) + "\n")
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        try:
            subprocess.run(
                ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                check=True,
                capture_output=True,
                timeout=10,
            )
            yield name
        finally:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    finally:
        shutil.rmtree(etc, ignore_errors=True)
