"""The `pushq` command: serve | token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import OPTIONS, ensure_data_dir, load_credentials, load_settings, read_options
from .errors import ConfigError
from .version import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushq", description="A self-hosted HTTP push queue.")
    parser.add_argument("--version", action="version", version=f"pushq {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    serve = commands.add_parser("serve", help="run the server (API, dispatcher) in one process")
    for option in OPTIONS:
        serve.add_argument(option.flag, dest=option.name, metavar=option.env, help=option.help)

    token = commands.add_parser("token", help="print the API token and signing secret again")
    token.add_argument(
        "--data-dir",
        dest="data_dir",
        metavar="PUSHQ_DATA_DIR",
        help="directory pushq serve uses (default ./pushq-data)",
    )
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiosqlite logs every statement with its parameters (job bodies) at DEBUG.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(vars(args))
    _configure_logging(settings.log_level)
    try:
        import uvloop
    except ImportError:  # optional: a faster event loop where it is installed
        asyncio.run(_run(settings))
    else:
        uvloop.run(_run(settings))
    return EXIT_OK


async def _run(settings: object) -> None:
    from .server import serve

    await serve(settings)  # type: ignore[arg-type]


def _token(args: argparse.Namespace) -> int:
    values = read_options({"data_dir": args.data_dir}, os.environ)
    data_dir: Path = values.get("data_dir", Path("pushq-data"))
    if not data_dir.is_dir():
        raise ConfigError(f"no data dir at {data_dir}: run `pushq serve` first or pass --data-dir")
    ensure_data_dir(data_dir)
    token, secrets = load_credentials(data_dir, os.environ, generate=False)
    print(f"PUSHQ_API_TOKEN={token}")
    print(f"PUSHQ_SIGNING_SECRET={' '.join(secrets)}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        return _token(args)
    except ConfigError as exc:
        print(f"pushq: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
