"""Telling systemd how start-up and shutdown go (`Type=notify` units): sd_notify(3).

systemd puts the path of a unix datagram socket in $NOTIFY_SOCKET (an
abstract one when it starts with "@"); pushq sends `READY=1` once it answers
HTTP and `STOPPING=1` when it begins to drain. Without $NOTIFY_SOCKET this
does nothing, and a failure to send is logged, never fatal.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("pushq")


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` ("READY=1", "STOPPING=1", "STATUS=...") to systemd; True if sent."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("pushq: cannot notify systemd at %s: %s", address.lstrip("\0"), exc.strerror)
        return False
    return True
