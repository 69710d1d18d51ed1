"""Helpers for worker endpoints: check that a request really came from pushq."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from . import signing


def verify(
    secret: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float = signing.DEFAULT_TOLERANCE,
) -> None:
    """Raise pushq.InvalidSignature unless one of the secrets signed this body
    within `tolerance` seconds of now. Pass several secrets while rotating."""
    signing.verify(secret, body, headers, now=time.time(), tolerance=tolerance)
