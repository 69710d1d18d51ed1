"""Commands for running a deployment, on the machine that runs it (no API token).

    pushq config show [--config FILE] [serve's flags] [--json]
    pushq health [--url URL]
    pushq backup PATH | restore BACKUP  [--config FILE] [--data-dir DIR] [--database URL]
    pushq doctor [--config FILE] [serve's flags]

They read the same settings `pushq serve` does (flags, env, config file) and
exit 0 when all is well, 1 when something is wrong, 2 on bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .server.config import OPTIONS, TOKEN_FILE, Settings, read_options
from .server.config_file import layered

EXIT_OK, EXIT_ERROR = 0, 1


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with any setting (default $PUSHQ_CONFIG); env vars and flags win",
    )


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    for option in OPTIONS:
        parser.add_argument(option.flag, dest=option.name, metavar=option.env, help=option.help)


def add_local_commands(commands: Any) -> None:
    """Register this module's commands on the `pushq` parser."""
    config = commands.add_parser("config", help="the settings pushq serve would use")
    actions = config.add_subparsers(dest="action", required=True, metavar="action")
    show = actions.add_parser(
        "show", help="each setting's value (secrets redacted) and where it came from"
    )
    _serve_flags(show)
    show.add_argument("--json", action="store_true", help="a JSON list, for scripts")
    show.set_defaults(run_local=_config_show)

    health = commands.add_parser(
        "health", help="exit 0 if the server's /health answers 200 (a container health check)"
    )
    health.add_argument(
        "--url", help="pushq's base URL (default $PUSHQ_URL, else from PUSHQ_HOST/PUSHQ_PORT)"
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    health.set_defaults(run_local=_health)

    backup = commands.add_parser(
        "backup", help="copy the SQLite database while pushq serves, checked (mode 0600)"
    )
    backup.add_argument("path", help="the backup file to write (must not exist)")
    _database_flags(backup)
    backup.set_defaults(run_local=_backup)
    restore = commands.add_parser(
        "restore", help="install a backup as the database of a data dir that has none"
    )
    restore.add_argument("backup", help="a file `pushq backup` wrote")
    _database_flags(restore)
    restore.set_defaults(run_local=_restore)

    doctor = commands.add_parser(
        "doctor", help="check a deployment (data dir, database, disk, clock, public URL)"
    )
    _serve_flags(doctor)
    doctor.set_defaults(run_local=_doctor)


def _database_flags(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    for option in OPTIONS:
        if option.name in {"data_dir", "database_url"}:
            parser.add_argument(option.flag, dest=option.name, metavar=option.env, help=option.help)


def _sqlite_path(args: argparse.Namespace) -> Path:
    """The database `pushq serve` would use with these flags, env and config file."""
    values = read_options(vars(args), layered(vars(args), os.environ))
    url = values.get("database_url")
    if url is not None and not url.startswith("sqlite:///"):
        raise ConfigError("--database/PUSHQ_DATABASE_URL is PostgreSQL: back it up with pg_dump")
    settings = Settings(api_token="", signing_secrets=(), **values)
    return settings.sqlite_path


def _backup(args: argparse.Namespace) -> int:
    from .server.backup import backup

    report = backup(_sqlite_path(args), Path(args.path))
    print(
        f"backed up {report.jobs} jobs (schema {report.schema_version}, "
        f"{report.size / 1e6:.1f} MB) to {report.path}: integrity ok"
    )
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    from .server.backup import restore

    database = _sqlite_path(args)
    report = restore(Path(args.backup), database)
    print(f"restored {report.jobs} jobs (schema {report.schema_version}) to {database}")
    data_dir = database.parent
    if not (data_dir / TOKEN_FILE).exists() and not os.environ.get("PUSHQ_API_TOKEN"):
        print(
            f"pushq: note: {data_dir} has no credentials: copy api-token and signing-secret "
            "from the old data dir (or set PUSHQ_API_TOKEN and PUSHQ_SIGNING_SECRET), "
            "else workers will not verify the new signing secret",
            file=sys.stderr,
        )
    return EXIT_OK


def _config_show(args: argparse.Namespace) -> int:
    from .server.config_file import effective_settings

    rows = effective_settings(vars(args), os.environ)
    if args.json:
        print(json.dumps([vars(row) for row in rows], indent=2))
        return EXIT_OK
    width = max(len(row.key) for row in rows)
    value_width = min(40, max(len(row.value) for row in rows))
    print(f"{'KEY':<{width}}  {'VALUE':<{value_width}}  SOURCE")
    for row in rows:
        print(f"{row.key:<{width}}  {row.value:<{value_width}}  {row.source}")
    return EXIT_OK


def _local_url() -> str:
    """The base URL of the `pushq serve` on this machine, from the env it runs with."""
    host = os.environ.get("PUSHQ_HOST", "").strip() or "127.0.0.1"
    if host in {"0.0.0.0", "::", ""}:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    port = os.environ.get("PUSHQ_PORT", "").strip() or "8080"
    return f"http://{host}:{port}"


def _health(args: argparse.Namespace) -> int:
    url = (args.url or os.environ.get("PUSHQ_URL", "").strip() or _local_url()).rstrip("/")
    try:
        with urllib.request.urlopen(url + "/health", timeout=args.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"pushq: {url}/health: {reason}", file=sys.stderr)
        return EXIT_ERROR
    if status != 200:
        print(f"pushq: {url}/health answered {status}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{url}/health: ok")
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from .server.doctor import OK, check_all

    values = read_options(vars(args), layered(vars(args), os.environ))
    findings = check_all(Settings(api_token="", signing_secrets=(), **values))
    for finding in findings:
        print(f"{finding.level:<4}  {finding.what}")
        if finding.fix:
            print(f"      fix: {finding.fix}")
    failed = sum(f.level == "FAIL" for f in findings)
    warned = sum(f.level not in (OK, "FAIL") for f in findings)
    print(f"{failed} to fix, {warned} to look at" if failed or warned else "all good")
    return EXIT_ERROR if failed else EXIT_OK
