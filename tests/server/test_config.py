"""pushq.server.config: flags over env, errors that name the culprit, credentials on first start."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import pytest

from pushq.errors import ConfigError
from pushq.server.config import (
    SECRET_FILE,
    TOKEN_FILE,
    Settings,
    load_credentials,
    read_options,
)
from pushq.signing import generate_secret, secret_key

TOKEN = "pq_" + "t" * 40
SECRET_A = generate_secret()
SECRET_B = generate_secret()


# -- read_options ---------------------------------------------------------------------


def test_flags_win_over_env() -> None:
    values = read_options(
        {"port": "9000", "host": None},
        {"PUSHQ_PORT": "7000", "PUSHQ_HOST": "0.0.0.0", "PUSHQ_LOG_LEVEL": "debug"},
    )
    assert values["port"] == 9000
    assert values["host"] == "0.0.0.0"  # no flag: the env var
    assert values["log_level"] == "DEBUG"


def test_nothing_given_reads_nothing() -> None:
    assert read_options({}, {}) == {}
    assert read_options({"port": None}, {"PUSHQ_PORT": ""}) == {}


@pytest.mark.parametrize(
    ("name", "env", "text", "expected"),
    [
        ("port", "PUSHQ_PORT", "0", 0),
        ("port", "PUSHQ_PORT", "65535", 65535),
        ("data_dir", "PUSHQ_DATA_DIR", "/var/lib/pushq", Path("/var/lib/pushq")),
        ("database_url", "PUSHQ_DATABASE_URL", "sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ("public_url", "PUSHQ_PUBLIC_URL", "https://q.example/", "https://q.example"),
        ("sqlite_synchronous", "PUSHQ_SQLITE_SYNCHRONOUS", "normal", "NORMAL"),
        ("sqlite_synchronous", "PUSHQ_SQLITE_SYNCHRONOUS", "FULL", "FULL"),
        ("max_body_size", "PUSHQ_MAX_BODY_SIZE", "1MiB", 1024 * 1024),
        ("max_body_size", "PUSHQ_MAX_BODY_SIZE", "512KiB", 512 * 1024),
        ("max_body_size", "PUSHQ_MAX_BODY_SIZE", "2048", 2048),
        ("default_timeout", "PUSHQ_DEFAULT_TIMEOUT", "30s", 30.0),
        ("default_timeout", "PUSHQ_DEFAULT_TIMEOUT", "2.5", 2.5),
        ("idempotency_ttl", "PUSHQ_IDEMPOTENCY_TTL", "1d", 86400.0),
        ("retry_after_cap", "PUSHQ_RETRY_AFTER_CAP", "6h", 21600.0),
        ("shutdown_grace", "PUSHQ_SHUTDOWN_GRACE", "0", 0.0),
        ("delivery_concurrency", "PUSHQ_DELIVERY_CONCURRENCY", "8", 8),
        ("metrics_auth", "PUSHQ_METRICS_AUTH", "yes", True),
        ("metrics_auth", "PUSHQ_METRICS_AUTH", "0", False),
        ("targets", "PUSHQ_TARGETS", "public", "public"),
        ("targets", "PUSHQ_TARGETS", " Private ", "private"),
        (
            "targets_allow",
            "PUSHQ_TARGETS_ALLOW",
            "10.1.0.0/16, worker.internal",
            ("10.1.0.0/16", "worker.internal"),
        ),
        (
            "targets_deny",
            "PUSHQ_TARGETS_DENY",
            "*.evil.example,fd00::/8",
            ("*.evil.example", "fd00::/8"),
        ),
    ],
)
def test_each_option_reads_from_flag_and_env(name: str, env: str, text: str, expected: Any) -> None:
    assert read_options({name: text}, {})[name] == expected
    assert read_options({}, {env: text})[name] == expected


@pytest.mark.parametrize(
    ("name", "flag", "env", "text"),
    [
        ("port", "--port", "PUSHQ_PORT", "http"),
        ("port", "--port", "PUSHQ_PORT", "70000"),
        ("port", "--port", "PUSHQ_PORT", "-1"),
        ("sqlite_synchronous", "--sqlite-synchronous", "PUSHQ_SQLITE_SYNCHRONOUS", "sometimes"),
        ("default_timeout", "--default-timeout", "PUSHQ_DEFAULT_TIMEOUT", "abc"),
        ("default_timeout", "--default-timeout", "PUSHQ_DEFAULT_TIMEOUT", "-5"),
        ("shutdown_grace", "--shutdown-grace", "PUSHQ_SHUTDOWN_GRACE", "1w"),
        ("retry_after_cap", "--retry-after-cap", "PUSHQ_RETRY_AFTER_CAP", "nan"),
        # Zero makes no sense for these: every delivery would time out at once, and
        # the dispatcher's poll / rescuer loops would spin without pause.
        ("default_timeout", "--default-timeout", "PUSHQ_DEFAULT_TIMEOUT", "0"),
        ("poll_interval", "--poll-interval", "PUSHQ_POLL_INTERVAL", "0s"),
        ("rescue_interval", "--rescue-interval", "PUSHQ_RESCUE_INTERVAL", "0"),
        ("max_body_size", "--max-body-size", "PUSHQ_MAX_BODY_SIZE", "lots"),
        ("max_body_size", "--max-body-size", "PUSHQ_MAX_BODY_SIZE", "0"),
        ("delivery_concurrency", "--delivery-concurrency", "PUSHQ_DELIVERY_CONCURRENCY", "0"),
        ("database_url", "--database", "PUSHQ_DATABASE_URL", "mysql://db/pushq"),
        ("public_url", "--public-url", "PUSHQ_PUBLIC_URL", "q.example"),
        ("metrics_auth", "--metrics-auth", "PUSHQ_METRICS_AUTH", "maybe"),
        ("targets", "--targets", "PUSHQ_TARGETS", "internal"),
        ("targets_allow", "--targets-allow", "PUSHQ_TARGETS_ALLOW", "10.0.0.0/33"),
        ("targets_deny", "--targets-deny", "PUSHQ_TARGETS_DENY", "10.0.0.0/8,evil..example"),
    ],
)
def test_a_bad_value_names_the_flag_or_env_var(name: str, flag: str, env: str, text: str) -> None:
    with pytest.raises(ConfigError) as from_flag:
        read_options({name: text}, {})
    assert flag in str(from_flag.value)
    assert env not in str(from_flag.value)

    with pytest.raises(ConfigError) as from_env:
        read_options({}, {env: text})
    assert env in str(from_env.value)
    assert flag not in str(from_env.value)


def test_a_good_flag_hides_a_bad_env_var() -> None:
    assert read_options({"port": "9000"}, {"PUSHQ_PORT": "nope"})["port"] == 9000


# -- load_credentials ---------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_generates_credentials_once(tmp_path: Path) -> None:
    first = io.StringIO()
    token, secrets = load_credentials(tmp_path, {}, generate=True, announce=first)

    token_file, secret_file = tmp_path / TOKEN_FILE, tmp_path / SECRET_FILE
    assert _mode(token_file) == 0o600
    assert _mode(secret_file) == 0o600
    assert token_file.read_text().strip() == token
    assert secret_file.read_text().strip() == secrets[0]
    assert len(token) >= 32
    assert len(secrets) == 1
    assert len(secret_key(secrets[0])) == 32
    printed = first.getvalue()
    assert printed.count(token) == 1
    assert printed.count(secrets[0]) == 1

    second = io.StringIO()
    assert load_credentials(tmp_path, {}, generate=True, announce=second) == (token, secrets)
    assert second.getvalue() == ""


def test_without_generate_missing_credentials_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_credentials(tmp_path, {}, generate=False, announce=io.StringIO())
    assert "PUSHQ_API_TOKEN" in str(error.value)
    assert not (tmp_path / TOKEN_FILE).exists()


def test_env_credentials_win_and_nothing_is_written(tmp_path: Path) -> None:
    out = io.StringIO()
    env = {"PUSHQ_API_TOKEN": TOKEN, "PUSHQ_SIGNING_SECRET": SECRET_A}
    assert load_credentials(tmp_path, env, generate=True, announce=out) == (TOKEN, (SECRET_A,))
    assert list(tmp_path.iterdir()) == []
    assert out.getvalue() == ""


def test_two_signing_secrets_separated_by_a_space(tmp_path: Path) -> None:
    env = {"PUSHQ_API_TOKEN": TOKEN, "PUSHQ_SIGNING_SECRET": f"{SECRET_A} {SECRET_B}"}
    _, secrets = load_credentials(tmp_path, env, generate=True, announce=io.StringIO())
    assert secrets == (SECRET_A, SECRET_B)


@pytest.mark.parametrize(
    "value",
    [
        "not-a-secret",
        "whsec_short",
        "whsec_!!!!",
        f"{generate_secret()} whsec_AAAA",  # the second one is bad
    ],
)
def test_an_invalid_signing_secret_names_the_env_var(tmp_path: Path, value: str) -> None:
    env = {"PUSHQ_API_TOKEN": TOKEN, "PUSHQ_SIGNING_SECRET": value}
    with pytest.raises(ConfigError) as error:
        load_credentials(tmp_path, env, generate=True, announce=io.StringIO())
    assert "PUSHQ_SIGNING_SECRET" in str(error.value)
    assert value not in str(error.value)  # a secret is not echoed into logs


def test_a_blank_signing_secret_never_means_unsigned_deliveries(tmp_path: Path) -> None:
    env = {"PUSHQ_API_TOKEN": TOKEN, "PUSHQ_SIGNING_SECRET": "   "}
    try:
        _, secrets = load_credentials(tmp_path, env, generate=True, announce=io.StringIO())
    except ConfigError as error:
        assert "PUSHQ_SIGNING_SECRET" in str(error)
    else:
        assert len(secrets) >= 1


def test_a_short_api_token_names_the_env_var(tmp_path: Path) -> None:
    env = {"PUSHQ_API_TOKEN": "short", "PUSHQ_SIGNING_SECRET": SECRET_A}
    with pytest.raises(ConfigError, match="PUSHQ_API_TOKEN"):
        load_credentials(tmp_path, env, generate=True, announce=io.StringIO())


def test_a_blank_credentials_file_is_a_config_error_or_replaced(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).write_text("\n")
    try:
        token, _ = load_credentials(tmp_path, {}, generate=True, announce=io.StringIO())
    except ConfigError as error:
        assert TOKEN_FILE in str(error)
    else:
        assert len(token) >= 16


# -- Settings ---------------------------------------------------------------------------


def test_settings_repr_never_shows_credentials() -> None:
    settings = Settings(api_token=TOKEN, signing_secrets=(SECRET_A, SECRET_B), port=9000)
    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        assert TOKEN not in text
        assert SECRET_A not in text
        assert SECRET_B not in text
        assert SECRET_A.removeprefix("whsec_") not in text
        assert "port=9000" in text
    assert settings.signing_keys == (secret_key(SECRET_A), secret_key(SECRET_B))


def test_the_target_policy_follows_the_settings() -> None:
    from pushq.policy.targets import TargetPolicy

    assert Settings(api_token="t" * 16, signing_secrets=()).target_policy == TargetPolicy()
    values = read_options({}, {"PUSHQ_TARGETS": "public", "PUSHQ_TARGETS_ALLOW": "10.1.0.0/16"})
    policy = Settings(api_token="t" * 16, signing_secrets=(), **values).target_policy
    assert policy == TargetPolicy("public", allow=("10.1.0.0/16",))
    assert policy.check_host("10.1.2.3").allowed
    assert not policy.check_host("127.0.0.1").allowed
