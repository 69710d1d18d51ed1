"""Dashboard sessions: signed, expiring cookie values that are never the API token.

A session value is ``v1.<expires>.<nonce>.<signature>``: the signature is an
HMAC-SHA256 over the rest, keyed by a key derived from the API token. So a
session proves its holder presented the token, rotating the token ends every
session, and the cookie never carries the token itself. Logout revokes the
session in this process (kept until it would have expired anyway).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

COOKIE_NAME = "pushq_session"
CSRF_HEADER = "x-pushq-csrf"
SESSION_TTL = 12 * 3600.0
_VERSION = "v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Sessions:
    """Issues and checks the dashboard's session values for one API token."""

    def __init__(
        self, api_token: str, *, ttl: float = SESSION_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hmac.new(
            api_token.encode(), b"pushq dashboard session", hashlib.sha256
        ).digest()
        self.ttl = ttl
        self._clock = clock
        self._revoked: dict[str, float] = {}  # nonce -> expiry

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, *, expires: float | None = None) -> str:
        """A new session value, valid for `ttl` seconds (or until `expires`)."""
        until = int(self._clock() + self.ttl if expires is None else expires)
        payload = f"{_VERSION}.{until}.{_b64(secrets.token_bytes(16))}"
        return f"{payload}.{self._sign(payload)}"

    def _parse(self, value: str) -> tuple[int, str] | None:
        """(expires, nonce) of a value whose signature checks out, else None."""
        payload, _, signature = value.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit():
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        return int(parts[1]), parts[2]

    def valid(self, value: str) -> bool:
        """True for an authentic, unexpired, unrevoked session value."""
        parsed = self._parse(value)
        if parsed is None:
            return False
        expires, nonce = parsed
        return expires > self._clock() and nonce not in self._revoked

    def revoke(self, value: str) -> None:
        """End a session before its expiry (logout)."""
        parsed = self._parse(value)
        if parsed is None:
            return
        now = self._clock()
        self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        expires, nonce = parsed
        if expires > now:
            self._revoked[nonce] = expires
