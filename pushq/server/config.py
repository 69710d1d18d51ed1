"""Settings, read once at start-up from flags and env vars, validated with messages
that name the offending flag or variable."""

from __future__ import annotations

import os
import re
import secrets as _secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..policy.backoff import DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_AFTER_CAP, BackoffPolicy
from ..policy.durations import parse_duration
from ..policy.targets import MODES, Mode, TargetPolicy, parse_rules
from ..signing import generate_secret, secret_key
from .models import JobDefaults
from .qstash.keys import load_keys as load_qstash_keys

TOKEN_FILE = "api-token"
SECRET_FILE = "signing-secret"


def _whole_number(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional KiB/MiB suffix ("1MiB", "512KiB", "1048576")."""
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "b": 1}
    lowered = text.strip().lower()
    try:
        for suffix, factor in units.items():
            if lowered.endswith(suffix):
                value = int(float(lowered[: -len(suffix)]) * factor)
                break
        else:
            value = int(lowered)
    except (ValueError, OverflowError):
        raise ValueError("must be a size in bytes, like 1048576, 512KiB or 1MiB") from None
    if value < 1:
        raise ValueError("must be at least 1 byte")
    return value


def _synchronous(text: str) -> str:
    value = text.strip().upper()
    if value not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
    return value


def _sender(text: str) -> str:
    value = text.strip().lower()
    if value not in {"lean", "aiohttp", "httpx"}:
        raise ValueError("must be lean (default), aiohttp or httpx")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _public_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return text.rstrip("/")


def _targets(text: str) -> str:
    value = text.strip().lower()
    if value not in MODES:
        raise ValueError("must be private (default) or public")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> str:
    value = text.strip().upper()
    if value not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
    return value


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in {"text", "json"}:
        raise ValueError("must be text (default) or json")
    return value


def redact_url(url: str) -> str:
    """A database URL without its password, fit for a log line or an error."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _database_url(text: str) -> str:
    if not (text.startswith("sqlite:///") or text.startswith(("postgresql://", "postgres://"))):
        raise ValueError("must be sqlite:///path/to/file.db or postgresql://...")
    return text


def _duration(text: str) -> float:
    try:
        return parse_duration(float(text))
    except ValueError:
        return parse_duration(text)


def _positive_duration(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


@dataclass(frozen=True)
class Option:
    """One setting: its flag, its env var and how to read it."""

    name: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str


# Every setting pushq reads. The CLI builds its flags from this list.
OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "PUSHQ_HOST", str, "interface to listen on"),
    Option("port", "--port", "PUSHQ_PORT", _port, "port to listen on"),
    Option(
        "data_dir", "--data-dir", "PUSHQ_DATA_DIR", Path, "directory for the database and secrets"
    ),
    Option(
        "database_url",
        "--database",
        "PUSHQ_DATABASE_URL",
        _database_url,
        "sqlite:///path/file.db (default: <data-dir>/pushq.db) or postgresql://...",
    ),
    Option(
        "public_url",
        "--public-url",
        "PUSHQ_PUBLIC_URL",
        _public_url,
        "base URL workers use to call pushq back",
    ),
    Option(
        "sqlite_synchronous",
        "--sqlite-synchronous",
        "PUSHQ_SQLITE_SYNCHRONOUS",
        _synchronous,
        "SQLite synchronous pragma: FULL (default, durable) or NORMAL",
    ),
    Option(
        "max_body_size",
        "--max-body-size",
        "PUSHQ_MAX_BODY_SIZE",
        _size,
        "largest job body (default 1MiB)",
    ),
    Option(
        "max_batch_size",
        "--max-batch-size",
        "PUSHQ_MAX_BATCH_SIZE",
        _size,
        "largest batch request (default 16MiB)",
    ),
    Option(
        "idempotency_ttl",
        "--idempotency-ttl",
        "PUSHQ_IDEMPOTENCY_TTL",
        _duration,
        "how long an idempotency key returns the same job (default 24h)",
    ),
    Option(
        "delivery_concurrency",
        "--delivery-concurrency",
        "PUSHQ_DELIVERY_CONCURRENCY",
        _positive_int,
        "deliveries in flight at once (default 64)",
    ),
    Option(
        "max_unfinished",
        "--max-unfinished",
        "PUSHQ_MAX_UNFINISHED",
        _positive_int,
        "unfinished jobs across all queues before enqueue answers 429 (default: no limit)",
    ),
    Option(
        "default_timeout",
        "--default-timeout",
        "PUSHQ_DEFAULT_TIMEOUT",
        _positive_duration,
        "per-attempt deadline of jobs that set none (default 30s)",
    ),
    Option(
        "default_max_attempts",
        "--default-max-attempts",
        "PUSHQ_DEFAULT_MAX_ATTEMPTS",
        _positive_int,
        f"attempts of jobs that set none (default {DEFAULT_MAX_ATTEMPTS})",
    ),
    Option(
        "retry_after_cap",
        "--retry-after-cap",
        "PUSHQ_RETRY_AFTER_CAP",
        _duration,
        "longest wait a Retry-After header may ask for (default 1d)",
    ),
    Option(
        "circuit_threshold",
        "--circuit-threshold",
        "PUSHQ_CIRCUIT_THRESHOLD",
        _positive_int,
        "transient failures in a row from one origin that open its circuit (default 10)",
    ),
    Option(
        "circuit_cooldown",
        "--circuit-cooldown",
        "PUSHQ_CIRCUIT_COOLDOWN",
        _positive_duration,
        "first cool-down of an open circuit, doubling while failures go on (default 10s)",
    ),
    Option(
        "circuit_max_cooldown",
        "--circuit-max-cooldown",
        "PUSHQ_CIRCUIT_MAX_COOLDOWN",
        _positive_duration,
        "longest cool-down of an open circuit (default 10m)",
    ),
    Option(
        "adaptive_concurrency",
        "--adaptive-concurrency",
        "PUSHQ_ADAPTIVE_CONCURRENCY",
        _bool,
        "halve an origin's in-flight limit on 429/503/timeouts, regrow it on success "
        "(default true)",
    ),
    Option(
        "shutdown_grace",
        "--shutdown-grace",
        "PUSHQ_SHUTDOWN_GRACE",
        _duration,
        "how long SIGTERM waits for in-flight deliveries (default 30s)",
    ),
    Option(
        "lease_margin",
        "--lease-margin",
        "PUSHQ_LEASE_MARGIN",
        _duration,
        "lease beyond an attempt's timeout before the rescuer retries it (default 30s)",
    ),
    Option(
        "rescue_interval",
        "--rescue-interval",
        "PUSHQ_RESCUE_INTERVAL",
        _positive_duration,
        "how often expired leases are looked for (default 5s)",
    ),
    Option(
        "node_timeout",
        "--node-timeout",
        "PUSHQ_NODE_TIMEOUT",
        _positive_duration,
        "PostgreSQL: a node silent this long is dead and its attempts are rescued (default 15s)",
    ),
    Option(
        "poll_interval",
        "--poll-interval",
        "PUSHQ_POLL_INTERVAL",
        _positive_duration,
        "fallback poll for due jobs (default 1s, jittered)",
    ),
    Option(
        "sender",
        "--sender",
        "PUSHQ_SENDER",
        _sender,
        "HTTP client for deliveries: lean (default, fastest; keep-alive HTTP/1.1 on"
        " asyncio + httptools), aiohttp or httpx",
    ),
    Option(
        "retention_succeeded",
        "--retention-succeeded",
        "PUSHQ_RETENTION_SUCCEEDED",
        _positive_duration,
        "how long succeeded and cancelled jobs are kept (default 7d)",
    ),
    Option(
        "retention_dead",
        "--retention-dead",
        "PUSHQ_RETENTION_DEAD",
        _positive_duration,
        "how long dead jobs are kept (default 30d)",
    ),
    Option(
        "max_result_size",
        "--max-result-size",
        "PUSHQ_MAX_RESULT_SIZE",
        _size,
        "largest result a worker may send to /complete (default 64KiB)",
    ),
    Option(
        "metrics_auth",
        "--metrics-auth",
        "PUSHQ_METRICS_AUTH",
        _bool,
        "require the API token on /metrics (default false)",
    ),
    Option(
        "health_max_backlog",
        "--health-max-backlog",
        "PUSHQ_HEALTH_MAX_BACKLOG",
        _positive_int,
        "/health answers 503 when a queue holds more ready jobs (default: no limit)",
    ),
    Option(
        "health_max_age",
        "--health-max-age",
        "PUSHQ_HEALTH_MAX_AGE",
        _positive_duration,
        "/health answers 503 when a queue's oldest ready job waited longer (default: no limit)",
    ),
    Option(
        "targets",
        "--targets",
        "PUSHQ_TARGETS",
        _targets,
        "where deliveries may go: private (default: not link-local or metadata) or public",
    ),
    Option(
        "targets_allow",
        "--targets-allow",
        "PUSHQ_TARGETS_ALLOW",
        parse_rules,
        "comma-separated CIDRs or host names (*.example.com) allowed whatever the mode",
    ),
    Option(
        "targets_deny",
        "--targets-deny",
        "PUSHQ_TARGETS_DENY",
        parse_rules,
        "comma-separated CIDRs or host names never delivered to",
    ),
    Option(
        "max_connections",
        "--max-connections",
        "PUSHQ_MAX_CONNECTIONS",
        _positive_int,
        "open client connections at once; more are refused with 503 (default 1000)",
    ),
    Option(
        "header_timeout",
        "--header-timeout",
        "PUSHQ_HEADER_TIMEOUT",
        _positive_duration,
        "time a client has to send a request's headers (default 10s)",
    ),
    Option(
        "body_timeout",
        "--body-timeout",
        "PUSHQ_BODY_TIMEOUT",
        _positive_duration,
        "time a client has to send a request's body once its headers came (default 60s)",
    ),
    Option(
        "keep_alive_timeout",
        "--keep-alive-timeout",
        "PUSHQ_KEEP_ALIVE_TIMEOUT",
        _positive_duration,
        "idle time after which a keep-alive connection is closed (default 5s)",
    ),
    Option(
        "log_level",
        "--log-level",
        "PUSHQ_LOG_LEVEL",
        _log_level,
        "DEBUG, INFO (default), WARNING or ERROR",
    ),
    Option(
        "log_format",
        "--log-format",
        "PUSHQ_LOG_FORMAT",
        _log_format,
        "text (default) or json: one JSON object per line",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Everything pushq needs to run, validated."""

    api_token: str
    signing_secrets: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("pushq-data")
    database_url: str | None = None
    public_url: str | None = None
    sqlite_synchronous: str = "FULL"
    max_body_size: int = 1024 * 1024
    max_batch_size: int = 16 * 1024 * 1024
    idempotency_ttl: float = 86400.0
    delivery_concurrency: int = 64
    max_unfinished: int | None = None
    default_timeout: float = 30.0
    default_max_attempts: int = DEFAULT_MAX_ATTEMPTS
    default_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    circuit_threshold: int = 10
    circuit_cooldown: float = 10.0
    circuit_max_cooldown: float = 600.0
    adaptive_concurrency: bool = True
    shutdown_grace: float = 30.0
    lease_margin: float = 30.0
    rescue_interval: float = 5.0
    node_timeout: float = 15.0
    poll_interval: float = 1.0
    sender: str = "lean"
    retention_succeeded: float = 7 * 86400.0
    retention_dead: float = 30 * 86400.0
    max_result_size: int = 64 * 1024
    metrics_auth: bool = False
    health_max_backlog: int | None = None
    health_max_age: float | None = None
    targets: Mode = "private"
    targets_allow: tuple[str, ...] = ()
    targets_deny: tuple[str, ...] = ()
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keep_alive_timeout: float = 5.0
    log_level: str = "INFO"
    log_format: str = "text"
    # QStash's /v2 signing keys (pushq.server.qstash.keys); empty: made up in memory
    qstash_current_signing_key: str = ""
    qstash_next_signing_key: str = ""
    qstash_keys_from_env: bool = False

    @cached_property
    def target_policy(self) -> TargetPolicy:
        """Which addresses deliveries may go to (PUSHQ_TARGETS, _ALLOW, _DENY)."""
        return TargetPolicy(self.targets, self.targets_allow, self.targets_deny)

    @cached_property
    def job_defaults(self) -> JobDefaults:
        """What a job gets when neither it nor its queue sets a value."""
        return JobDefaults(
            max_attempts=self.default_max_attempts,
            timeout=self.default_timeout,
            backoff=self.default_backoff,
            max_unfinished=self.max_unfinished,
        )

    @property
    def signing_keys(self) -> tuple[bytes, ...]:
        return tuple(secret_key(s) for s in self.signing_secrets)

    @property
    def database_label(self) -> str:
        """The database as a log line names it: the SQLite file, or the URL without its
        password."""
        return str(self.sqlite_path) if self.uses_sqlite else redact_url(self.database_url or "")

    @property
    def uses_sqlite(self) -> bool:
        """True unless the database URL names PostgreSQL."""
        return not (self.database_url or "").startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        if self.database_url is None:
            return self.data_dir / "pushq.db"
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::"} else self.host
        return self.public_url or f"http://{host}:{self.port}"

    def __repr__(self) -> str:  # never print secrets by accident
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_token"] = "***"
        shown["signing_secrets"] = f"<{len(self.signing_secrets)} secret(s)>"
        shown["qstash_current_signing_key"] = shown["qstash_next_signing_key"] = "***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def read_options(flags: Mapping[str, str | None], env: Mapping[str, str]) -> dict[str, Any]:
    """Parse flag values (preferred) or env vars; ConfigError names the one at fault."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, source = flags.get(option.name), option.flag
        if raw is None:
            raw, source = env.get(option.env), option.env
        if raw is None or raw == "":
            continue
        try:
            values[option.name] = option.parse(raw)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConfigError(f"{source}={raw!r} is invalid: {exc}") from None
    return values


def _read_secret_file(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{path} is empty: delete it to have pushq generate a new one")
    return value


def _write_secret_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def ensure_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--data-dir/PUSHQ_DATA_DIR {data_dir}: {exc.strerror}") from None


def load_credentials(
    data_dir: Path, env: Mapping[str, str], *, generate: bool, announce: TextIO | None = None
) -> tuple[str, tuple[str, ...]]:
    """The API token and signing secrets: from env, else the data dir, else newly made.

    New credentials are written 0600 to the data dir and printed once to `announce`.
    """
    token = env.get("PUSHQ_API_TOKEN", "").strip() or _read_secret_file(data_dir / TOKEN_FILE)
    secret_text = env.get("PUSHQ_SIGNING_SECRET", "").strip() or _read_secret_file(
        data_dir / SECRET_FILE
    )
    created = []
    if token is None and generate:
        token = "pq_" + _secrets.token_urlsafe(32)
        _write_secret_file(data_dir / TOKEN_FILE, token)
        created.append(("API token", token, data_dir / TOKEN_FILE))
    if secret_text is None and generate:
        secret_text = generate_secret()
        _write_secret_file(data_dir / SECRET_FILE, secret_text)
        created.append(("signing secret", secret_text, data_dir / SECRET_FILE))
    if token is None or secret_text is None:
        raise ConfigError(
            f"no credentials in {data_dir}: start `pushq serve` once, or set "
            "PUSHQ_API_TOKEN and PUSHQ_SIGNING_SECRET"
        )
    if len(token) < 16:
        raise ConfigError("PUSHQ_API_TOKEN is too short: use at least 16 characters")
    signing_secrets = tuple(secret_text.split())
    for index, secret in enumerate(signing_secrets, start=1):
        try:
            secret_key(secret)
        except ValueError as exc:
            raise ConfigError(f"PUSHQ_SIGNING_SECRET (secret {index}) is invalid: {exc}") from None
    out = announce or sys.stderr
    for label, value, path in created:
        print(f"pushq: generated {label} (saved to {path}, mode 0600):\n  {value}", file=out)
    if created:
        print("pushq: it is shown only this once; `pushq token` prints it again.", file=out)
    return token, signing_secrets


def load_settings(
    flags: Mapping[str, str | None], env: Mapping[str, str] | None = None
) -> Settings:
    """Settings for `pushq serve`: validates everything, creating credentials on first start."""
    env = os.environ if env is None else env
    values = read_options(flags, env)
    data_dir = values.get("data_dir", Path("pushq-data"))
    ensure_data_dir(data_dir)
    token, signing_secrets = load_credentials(data_dir, env, generate=True)
    # Not announced at start (a failed start prints one line, JSON logs hold JSON only):
    # `pushq token` and GET /v2/keys show them.
    current, following, from_env = load_qstash_keys(data_dir, env, generate=True)
    settings = Settings(
        api_token=token,
        signing_secrets=signing_secrets,
        qstash_current_signing_key=current,
        qstash_next_signing_key=following,
        qstash_keys_from_env=from_env,
        **values,
    )
    return settings
