"""The configuration file: `pushq serve --config pushq.toml` (or $PUSHQ_CONFIG).

A flat TOML table whose keys are the flags without their dashes (`port`,
`data_dir`, `database`, `delivery_concurrency`, ...) plus the two secrets
(`api_token`, `signing_secret`). Every layer overrides the one before it:

    default  <  file  <  env var  <  flag

The file is read and checked before anything else: an unknown key, a value of
the wrong type or one its setting refuses is a ConfigError naming the file and
the key. `layered()` hands the rest of start-up the file's values as if they
were env vars, so `load_settings` applies one set of rules to all three layers.
"""

from __future__ import annotations

import difflib
import os
import stat
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError
from ..signing import secret_key
from .config import OPTIONS, SECRET_FILE, TOKEN_FILE, Option, Settings, read_options

CONFIG_ENV = "PUSHQ_CONFIG"

# Settings that are not flags: secrets, allowed in the file (warned about when others
# can read it) and in the env, never on the command line (it shows in `ps`).
SECRETS: dict[str, str] = {
    "api_token": "PUSHQ_API_TOKEN",
    "signing_secret": "PUSHQ_SIGNING_SECRET",
}
# Settings that take a list: written as a TOML array or one string.
_LIST_SEPARATOR = {"targets_allow": ",", "targets_deny": ",", "signing_secret": " "}


def file_key(option: Option) -> str:
    """The file's name for a setting: its flag without the dashes (`--data-dir` -> data_dir)."""
    return option.flag.removeprefix("--").replace("-", "_")


_BY_KEY: dict[str, Option] = {file_key(option): option for option in OPTIONS}
KEYS: tuple[str, ...] = (*_BY_KEY, *SECRETS)


@dataclass(frozen=True)
class ConfigFile:
    """A checked file: each key's value as the text its env var would hold."""

    path: Path
    values: dict[str, str]

    @property
    def holds_secrets(self) -> bool:
        return any(key in self.values for key in SECRETS)


def config_path(flag: str | None, env: Mapping[str, str]) -> Path | None:
    """--config, else $PUSHQ_CONFIG, else no file."""
    text = flag or env.get(CONFIG_ENV, "").strip()
    return Path(text) if text else None


def read_config_file(path: Path, *, warn: TextIO | None = None) -> ConfigFile:
    """Read and check a config file; ConfigError names the file and the key at fault."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(f"--config/{CONFIG_ENV} {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"--config/{CONFIG_ENV} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"--config/{CONFIG_ENV} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values = {key: _as_text(path, key, value) for key, value in data.items()}
    for key, text in values.items():
        option = _BY_KEY.get(key)
        if option is None:
            continue  # a secret: checked with the credentials, naming the file there too
        try:
            option.parse(text)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: {key} = {data[key]!r} is invalid: {exc}") from None
    _check_secrets(path, values)
    loaded = ConfigFile(path, values)
    if loaded.holds_secrets and mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"pushq: warning: {path} holds secrets and others can read it "
            f"(mode {stat.S_IMODE(mode):04o}): chmod 600 {path}",
            file=warn or sys.stderr,
        )
    return loaded


def _check_secrets(path: Path, values: Mapping[str, str]) -> None:
    for key in SECRETS:
        if key in values and not values[key].strip():
            raise ConfigError(f"{path}: {key} is empty: remove the key or give a value")
    if len(values.get("api_token", "x" * 16).strip()) < 16:
        raise ConfigError(f"{path}: api_token is too short: use at least 16 characters")
    for index, secret in enumerate(values.get("signing_secret", "").split(), start=1):
        try:
            secret_key(secret)
        except ValueError as exc:
            what = f"{path}: signing_secret (secret {index})"
            raise ConfigError(f"{what} is invalid: {exc}") from None


def _as_text(path: Path, key: str, value: Any) -> str:
    """A TOML value as the text of the env var it stands for."""
    if key not in _BY_KEY and key not in SECRETS:
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: unknown key {key!r}{hint}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and key in _LIST_SEPARATOR:
        if all(isinstance(item, str) for item in value):
            return _LIST_SEPARATOR[key].join(value)
        raise ConfigError(f"{path}: {key} must be a list of strings")
    kind = "table" if isinstance(value, dict) else type(value).__name__
    raise ConfigError(f"{path}: {key} must be a string or a number, not a {kind}")


def _env_name(key: str) -> str:
    return SECRETS[key] if key in SECRETS else _BY_KEY[key].env


def layered(
    flags: Mapping[str, Any], env: Mapping[str, str], *, warn: TextIO | None = None
) -> dict[str, str]:
    """The env to start with: the config file's values (if any) under the real env."""
    path = config_path(flags.get("config"), env)
    if path is None:
        return dict(env)
    return _under_env(read_config_file(path, warn=warn), env)


def _under_env(loaded: ConfigFile, env: Mapping[str, str]) -> dict[str, str]:
    merged = {_env_name(key): text for key, text in loaded.values.items()}
    merged.update({name: value for name, value in env.items() if value != ""})
    return merged


# -- pushq config show ------------------------------------------------------------------


@dataclass(frozen=True)
class Effective:
    """One setting as `pushq config show` prints it."""

    key: str
    value: str
    source: str  # default | file | env | flag | data dir | generated on first start


def effective_settings(flags: Mapping[str, Any], env: Mapping[str, str]) -> list[Effective]:
    """Every setting's value (secrets redacted) and where it came from; nothing is written."""
    path = config_path(flags.get("config"), env)
    loaded = read_config_file(path) if path is not None else ConfigFile(Path(), {})
    merged = _under_env(loaded, env)
    values = read_options(flags, merged)  # checks flags and env, naming the one at fault
    defaults = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}
    rows = []
    for option in OPTIONS:
        key = file_key(option)
        if flags.get(option.name) is not None:
            source = f"flag {option.flag}"
        elif env.get(option.env):
            source = f"env {option.env}"
        elif key in loaded.values:
            source = f"file {loaded.path}"
        else:
            source = "default"
        value = values.get(option.name, defaults.get(option.name))
        rows.append(Effective(key, _show(option.name, value), source))
    data_dir = values.get("data_dir", defaults["data_dir"])
    for key, var in SECRETS.items():
        stored = data_dir / (TOKEN_FILE if key == "api_token" else SECRET_FILE)
        if env.get(var, "").strip():
            source, value = f"env {var}", "(redacted)"
        elif key in loaded.values:
            source, value = f"file {loaded.path}", "(redacted)"
        elif stored.is_file():
            source, value = f"data dir {stored}", "(redacted)"
        else:
            source, value = "default", "(generated on first start)"
        rows.append(Effective(key, value, source))
    return rows


def _show(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "database_url":
        return redact_url(str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, float):
        return f"{value:.15g}"
    return str(value)


def redact_url(url: str) -> str:
    """A database URL with its password replaced (postgresql://u:***@host/db)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
