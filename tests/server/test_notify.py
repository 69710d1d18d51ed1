"""sd_notify: datagrams on $NOTIFY_SOCKET, abstract addresses, and never fatal."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from pushq.server.notify import notify


def test_no_notify_socket_sends_nothing() -> None:
    assert notify("READY=1", {}) is False


def test_a_datagram_on_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        assert notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": str(path)}) is True
        assert listener.recv(4096) == b"READY=1\nSTATUS=serving"


def test_an_abstract_socket_is_written_with_an_at_sign() -> None:
    name = f"pushq-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        assert notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert listener.recv(4096) == b"STOPPING=1"


def test_a_socket_nobody_listens_on_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    assert "cannot notify systemd" in caplog.text
