"""QStash's signing keys and its `Upstash-Signature` JWT.

Two `sig_` keys, current and next, like QStash's: deliveries are signed with
the current one; receivers (qstash.Receiver, @upstash/qstash's Receiver) try
current, then next. They are generated on first start like pushq's other
secrets (data dir, mode 0600) unless PUSHQ_QSTASH_CURRENT_SIGNING_KEY and
PUSHQ_QSTASH_NEXT_SIGNING_KEY are set; `POST /v2/keys/rotate` moves next into
current and makes a new next.

The JWT is HS256, hand-rolled with hmac (a dozen lines; no dependency for the
server): the HMAC key is the UTF-8 bytes of the key string itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ...errors import BadRequest, ConfigError

if TYPE_CHECKING:  # config imports this module
    from ..config import Settings

CURRENT_FILE = "qstash-current-signing-key"
NEXT_FILE = "qstash-next-signing-key"
CURRENT_ENV = "PUSHQ_QSTASH_CURRENT_SIGNING_KEY"
NEXT_ENV = "PUSHQ_QSTASH_NEXT_SIGNING_KEY"
TOKEN_LIFETIME = 300  # seconds, as QStash
CLOCK_SKEW = 5  # nbf this far back, so a receiver at tolerance 0 with a slow clock accepts it
_JWT_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


def generate_key() -> str:
    """A new key: `sig_` and 32 random bytes in base58-like text (over 32 characters)."""
    return "sig_" + secrets.token_urlsafe(32).replace("-", "x").replace("_", "y")


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def body_hash(body: bytes) -> str:
    """base64url(SHA-256(body)) with its padding, as QStash puts it in the `body` claim."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()


def sign_jwt(key: str, *, url: str, body: bytes, now: float, jti: str | None = None) -> str:
    """The `Upstash-Signature` of one delivery of `body` to `url` at `now`."""
    issued = int(now)
    claims = {
        "iss": "Upstash",
        "sub": url,
        "iat": issued,
        "nbf": issued - CLOCK_SKEW,
        "exp": issued + TOKEN_LIFETIME,
        "jti": jti or "jwt_" + secrets.token_hex(12),
        "body": body_hash(body),
    }
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = _JWT_HEADER + b"." + payload
    signature = hmac.new(key.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64url(signature)).decode()


def _read(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{path} is empty: delete it to have pushq generate a new one")
    return value


def _write(path: Path, value: str) -> None:
    """Replace `path` with `value`, mode 0600, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.replace(tmp, path)


def load_keys(
    data_dir: Path, env: Mapping[str, str], *, generate: bool, announce: TextIO | None = None
) -> tuple[str, str, bool]:
    """(current, next, from_env): from the env, else the data dir, else newly made
    (written 0600 and printed once to `announce`)."""
    current, following = env.get(CURRENT_ENV, "").strip(), env.get(NEXT_ENV, "").strip()
    if current or following:
        if not (current and following):
            raise ConfigError(f"set both {CURRENT_ENV} and {NEXT_ENV}, or neither")
        for name, value in ((CURRENT_ENV, current), (NEXT_ENV, following)):
            if len(value) < 32:
                raise ConfigError(f"{name} is too short: use at least 32 characters")
        return current, following, True
    stored = _read(data_dir / CURRENT_FILE), _read(data_dir / NEXT_FILE)
    if stored[0] is not None and stored[1] is not None:
        return stored[0], stored[1], False
    if not generate:
        raise ConfigError(f"no QStash signing keys in {data_dir}: start `pushq serve` once")
    current, following = stored[0] or generate_key(), stored[1] or generate_key()
    _write(data_dir / CURRENT_FILE, current)
    _write(data_dir / NEXT_FILE, following)
    if announce is not None:
        print(
            f"pushq: generated QStash signing keys (saved to {data_dir}, mode 0600):\n"
            f"  QSTASH_CURRENT_SIGNING_KEY={current}\n  QSTASH_NEXT_SIGNING_KEY={following}",
            file=announce,
        )
    return current, following, False


class SigningKeys:
    """The live keys, shared by the /v2 routes (GET and rotate) and the deliveries."""

    def __init__(self, current: str, following: str, *, data_dir: Path | None = None) -> None:
        self.current = current
        self.next = following
        self._data_dir = data_dir  # None: the keys came from the env and cannot rotate here
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        """The keys `pushq serve` loaded (made up in memory when Settings has none)."""
        current = settings.qstash_current_signing_key or generate_key()
        following = settings.qstash_next_signing_key or generate_key()
        stored = settings.qstash_current_signing_key and not settings.qstash_keys_from_env
        return cls(current, following, data_dir=settings.data_dir if stored else None)

    def sign(self, *, url: str, body: bytes, now: float) -> str:
        return sign_jwt(self.current, url=url, body=body, now=now)

    def rotate(self) -> None:
        """Next becomes current and a new next is made, stored before it is used."""
        if self._data_dir is None:
            raise BadRequest(
                f"the signing keys come from {CURRENT_ENV} and {NEXT_ENV}: rotate them there"
            )
        with self._lock:
            following = generate_key()
            _write(self._data_dir / CURRENT_FILE, self.next)
            _write(self._data_dir / NEXT_FILE, following)
            self.current, self.next = self.next, following
