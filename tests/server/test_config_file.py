"""The config file through the real `pushq` command: every setting, the layers
(default < file < env < flag), secrets redacted, and errors that name file and key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from pushq.server.config import OPTIONS
from pushq.server.config_file import KEYS, file_key
from pushq.signing import generate_secret

from ..harness import free_port, wait_until

TOKEN = "pq_file-token-0123456789"
SECRET = generate_secret()

# A value each setting accepts, written as TOML.
SAMPLES: dict[str, str] = {
    "host": '"127.0.0.1"',
    "port": "8181",
    "data_dir": '"data"',
    "database": '"sqlite:///tmp/pushq-sample.db"',
    "public_url": '"https://pushq.example.com"',
    "sqlite_synchronous": '"NORMAL"',
    "max_body_size": '"2MiB"',
    "max_batch_size": "1048576",
    "idempotency_ttl": '"12h"',
    "delivery_concurrency": "8",
    "max_unfinished": "1000",
    "default_timeout": "2.5",
    "default_max_attempts": "5",
    "retry_after_cap": '"1h"',
    "circuit_threshold": "5",
    "circuit_cooldown": '"5s"',
    "circuit_max_cooldown": '"5m"',
    "adaptive_concurrency": "false",
    "shutdown_grace": '"10s"',
    "lease_margin": '"20s"',
    "rescue_interval": '"2s"',
    "node_timeout": '"20s"',
    "poll_interval": "0.5",
    "sender": '"httpx"',
    "retention_succeeded": '"3d"',
    "retention_dead": '"14d"',
    "max_result_size": '"32KiB"',
    "metrics_auth": "true",
    "health_max_backlog": "500",
    "health_max_age": '"5m"',
    "targets": '"public"',
    "targets_allow": '["10.0.0.0/8", "*.internal.example"]',
    "targets_deny": '"192.168.0.0/16"',
    "log_level": '"debug"',
    "log_format": '"json"',
    "max_connections": "200",
    "header_timeout": '"5s"',
    "body_timeout": '"30s"',
    "keep_alive_timeout": "3",
    "api_token": f'"{TOKEN}"',
    "signing_secret": f'["{SECRET}"]',
}


def pushq(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    return subprocess.run(
        [sys.executable, "-m", "pushq", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def shown(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return {row["key"]: row for row in json.loads(result.stdout)}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_samples_cover_every_setting() -> None:
    assert sorted(SAMPLES) == sorted(KEYS)
    assert file_key(next(o for o in OPTIONS if o.name == "database_url")) == "database"


def test_a_file_with_every_setting_is_read_and_shown_redacted(tmp_path: Path) -> None:
    config = write(tmp_path / "pushq.toml", "".join(f"{k} = {v}\n" for k, v in SAMPLES.items()))
    rows = shown(pushq(tmp_path, "config", "show", "--config", str(config), "--json"))
    assert {row["source"] for row in rows.values()} == {f"file {config}"}
    assert rows["port"]["value"] == "8181"
    assert rows["max_body_size"]["value"] == str(2 * 1024 * 1024)
    assert rows["targets_allow"]["value"] == "10.0.0.0/8,*.internal.example"
    assert rows["log_level"]["value"] == "DEBUG"
    assert rows["api_token"]["value"] == rows["signing_secret"]["value"] == "(redacted)"


def test_flags_beat_env_beat_the_file_beat_defaults(tmp_path: Path) -> None:
    config = write(tmp_path / "pushq.toml", "port = 9001\ndelivery_concurrency = 9\nhost = '::1'\n")
    result = pushq(
        tmp_path,
        "config",
        "show",
        "--json",
        "--delivery-concurrency",
        "3",
        env={"PUSHQ_CONFIG": str(config), "PUSHQ_PORT": "7000", "PUSHQ_DELIVERY_CONCURRENCY": "5"},
    )
    rows = shown(result)
    assert rows["delivery_concurrency"] == {
        "key": "delivery_concurrency",
        "value": "3",
        "source": "flag --delivery-concurrency",
    }
    assert (rows["port"]["value"], rows["port"]["source"]) == ("7000", "env PUSHQ_PORT")
    assert (rows["host"]["value"], rows["host"]["source"]) == ("::1", f"file {config}")
    assert (rows["shutdown_grace"]["value"], rows["shutdown_grace"]["source"]) == ("30", "default")
    assert rows["api_token"]["value"] == "(generated on first start)"


def test_the_table_redacts_secrets_and_database_passwords(tmp_path: Path) -> None:
    config = write(
        tmp_path / "pushq.toml",
        f'api_token = "{TOKEN}"\ndatabase = "postgresql://pushq:hunter2-pw@db:5432/pushq"\n',
    )
    result = pushq(
        tmp_path, "config", "show", "--config", str(config), env={"PUSHQ_SIGNING_SECRET": SECRET}
    )
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout and SECRET not in result.stdout
    assert "hunter2" not in result.stdout
    assert "postgresql://pushq:***@db:5432/pushq" in result.stdout
    assert "env PUSHQ_SIGNING_SECRET" in result.stdout


def test_secrets_in_a_file_others_can_read_are_warned_about(tmp_path: Path) -> None:
    config = write(tmp_path / "pushq.toml", f'api_token = "{TOKEN}"\n', mode=0o644)
    result = pushq(tmp_path, "config", "show", "--config", str(config))
    assert result.returncode == 0
    assert f"chmod 600 {config}" in result.stderr
    config.chmod(0o600)
    assert pushq(tmp_path, "config", "show", "--config", str(config)).stderr == ""
    settings_only = write(tmp_path / "open.toml", "port = 9000\n", mode=0o644)
    assert pushq(tmp_path, "config", "show", "--config", str(settings_only)).stderr == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prot = 8080\n", "unknown key 'prot' (did you mean 'port'?)"),
        ("database_url = 'sqlite:///x.db'\n", "unknown key 'database_url'"),
        ("port = 'eighty'\n", "port = 'eighty' is invalid"),
        ("port = 70000\n", "port = 70000 is invalid: must be between 0 and 65535"),
        ("delivery_concurrency = 0\n", "delivery_concurrency = 0 is invalid"),
        ("metrics_auth = 'maybe'\n", "metrics_auth = 'maybe' is invalid"),
        ("default_timeout = '-5s'\n", "default_timeout = '-5s' is invalid"),
        ("host = ['a', 'b']\n", "host must be a string or a number, not a list"),
        ("[server]\nport = 1\n", "unknown key 'server'"),
        ("api_token = 'short'\n", "api_token is too short"),
        ("signing_secret = 'whsec_nope'\n", "signing_secret (secret 1) is invalid"),
        ("port = [\n", "not valid TOML"),
    ],
)
def test_bad_files_exit_2_naming_the_file_and_key(
    tmp_path: Path, text: str, expected: str, request: pytest.FixtureRequest
) -> None:
    config = write(tmp_path / "bad.toml", text)
    # serve and config show read the file alike: alternate them to keep the suite quick
    command = ["serve"] if request.node.callspec.indices["text"] % 2 else ["config", "show"]
    line = one_line_error(pushq(tmp_path, *command, "--config", str(config)))
    assert line.startswith(f"pushq: {config}: "), line
    assert expected in line


def test_a_missing_config_file_names_the_flag(tmp_path: Path) -> None:
    line = one_line_error(pushq(tmp_path, "serve", env={"PUSHQ_CONFIG": "nowhere.toml"}))
    assert line == "pushq: --config/PUSHQ_CONFIG nowhere.toml: no such file"


def test_serve_runs_on_the_file_and_token_reads_it(tmp_path: Path) -> None:
    port = free_port()
    config = write(
        tmp_path / "pushq.toml",
        f'port = {port}\ndata_dir = "state"\napi_token = "{TOKEN}"\n'
        f'signing_secret = "{SECRET}"\nlog_format = "json"\n',
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pushq", "serve", "--config", str(config)],
        env=clean,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def queues() -> int | None:
            assert process.poll() is None, process.communicate()[1]
            try:
                headers = {"authorization": f"Bearer {TOKEN}"}
                url = f"http://127.0.0.1:{port}/v1/queues"
                return httpx.get(url, headers=headers, timeout=1).status_code
            except httpx.TransportError:
                return None

        assert wait_until(queues, timeout=20, interval=0.1) == 200
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert json.loads(err.decode().splitlines()[0])["level"] == "INFO"  # log_format from file
    assert (tmp_path / "state" / "pushq.db").is_file()
    assert not (tmp_path / "state" / "api-token").exists()  # the file's token, none generated
    token = pushq(tmp_path, "token", "--config", str(config))
    assert token.stdout.splitlines()[:2] == [
        f"PUSHQ_API_TOKEN={TOKEN}",
        f"PUSHQ_SIGNING_SECRET={SECRET}",
    ]
