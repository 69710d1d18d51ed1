"""Commands for running a deployment, on the machine that runs it (no API token).

    pushq config show [--config FILE] [serve's flags] [--json]
    pushq health [--url URL]

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
from typing import Any

from .server.config import OPTIONS

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
