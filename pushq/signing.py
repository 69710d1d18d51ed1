"""Standard Webhooks signatures: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">.

https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache

from .errors import InvalidSignature

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds, as the spec recommends


def generate_secret() -> str:
    """A new secret: whsec_ + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a whsec_ secret; ValueError if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError as exc:
        raise ValueError("a signing secret is 'whsec_' followed by base64") from exc
    if len(key) < 24:
        raise ValueError("a signing secret must hold at least 24 bytes of key")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    return base64.b64encode(hmac.digest(key, signed, "sha256")).decode()  # one-shot, in C


def sign(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: one v1 signature per key, space separated."""
    return " ".join(f"v1,{_signature(key, msg_id, timestamp, body)}" for key in keys)


def verify(
    secrets: str | Iterable[str],
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Raise InvalidSignature unless one of the secrets signed this body recently."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signature_header = lowered.get("webhook-signature")
    if not msg_id or not timestamp_text or not signature_header:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(timestamp_text)
    except ValueError as exc:
        raise InvalidSignature("webhook-timestamp is not an integer") from exc
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    if isinstance(secrets, str):
        secrets = [secrets]
    offered = [part.split(",", 1)[1] for part in signature_header.split() if part.startswith("v1,")]
    for secret in secrets:
        try:
            key = secret_key(secret)
        except ValueError as exc:
            raise InvalidSignature(str(exc)) from exc
        expected = _signature(key, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected.encode(), c.encode()) for c in offered):
            return
    raise InvalidSignature("no signature matches")


@lru_cache(maxsize=4)  # derived once per token, not per worker call
def job_token_key(api_token: str) -> bytes:
    """The key job tokens are made with, derived so that it is never the API token itself."""
    return hmac.new(api_token.encode(), b"pushq job token v1", hashlib.sha256).digest()


def make_job_token(key: bytes, job_id: str, attempt: int, lease: str) -> str:
    """A token bound to one job and one attempt (its lease): `<attempt>.<mac>`."""
    mac = hmac.digest(key, f"{job_id}.{attempt}.{lease}".encode(), "sha256")
    return f"{attempt}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def check_job_token(key: bytes, token: str, job_id: str, attempt: int, lease: str) -> bool:
    expected = make_job_token(key, job_id, attempt, lease)
    return hmac.compare_digest(token.encode(), expected.encode())
