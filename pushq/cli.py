"""The `pushq` command.

    pushq serve | token | config show | health | backup | restore | doctor
    pushq enqueue URL [options] | enqueue --jsonl FILE
    pushq jobs list | show | attempts | cancel | retry | replay | rm | wait
    pushq dlq list | show | retry | rm
    pushq queues list | show | set | pause | resume | purge | rm
    pushq schedules list | show | set | rm | pause | resume | trigger
    pushq flow-keys list | show | set | pause | resume
    pushq topics list | show | set | rm | publish
    pushq endpoints list | show

API commands read the server from --url / $PUSHQ_URL and the token from
--token / $PUSHQ_API_TOKEN (else the data dir of a local `pushq serve`, the lookup
the SDK's `Client()` makes: `pushq.client.find_token`); they
print tables, or the API's JSON with --json (before or after the command).
Exit codes: 0 ok; 1 an API error, an unreachable server, or (jobs wait) a job
that did not succeed; 2 bad usage or configuration. Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .admin import add_config_flag, add_local_commands
from .client import (
    UNSET,
    Attempt,
    Client,
    Endpoint,
    FlowKey,
    Job,
    Page,
    Queue,
    Schedule,
    Topic,
    find_token,
)
from .errors import (
    ApiError,
    ConfigError,
    PushqConnectionError,
    StartupError,
    TokenNotFound,
)
from .server.config import (
    OPTIONS,
    ensure_data_dir,
    load_credentials,
    load_settings,
    read_options,
)
from .server.config_file import layered
from .server.qstash.keys import load_keys as load_qstash_keys
from .version import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
BATCH_SIZE = 500  # jobs per batch request when enqueueing a JSONL file

Handler = Callable[[Client, argparse.Namespace, "Output"], int]


# -- the parser -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushq", description="A self-hosted HTTP push queue.")
    parser.add_argument("--version", action="version", version=f"pushq {__version__}")
    _server_options(parser)  # also before the command: pushq --json jobs list
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    serve = commands.add_parser("serve", help="run the server (API, dispatcher) in one process")
    add_config_flag(serve)
    for option in OPTIONS:
        serve.add_argument(option.flag, dest=option.name, metavar=option.env, help=option.help)

    token = commands.add_parser("token", help="print the API token and signing secret again")
    add_config_flag(token)
    token.add_argument(
        "--data-dir",
        dest="data_dir",
        metavar="PUSHQ_DATA_DIR",
        help="directory pushq serve uses (default ./pushq-data)",
    )

    add_local_commands(commands)
    # Listed here for --help; main() hands its arguments to the harness as they are.
    commands.add_parser(
        "bench",
        add_help=False,
        help="benchmark pushq beside the raw push ceiling and the peers (pushq bench --help)",
    )

    api = argparse.ArgumentParser(add_help=False)
    _server_options(api)

    enqueue = commands.add_parser("enqueue", parents=[api], help="enqueue a job (or a JSONL file)")
    enqueue.add_argument("target_url", nargs="?", metavar="URL", help="where pushq delivers it")
    _job_options(enqueue, template=False)
    enqueue.add_argument(
        "--jsonl",
        metavar="FILE",
        help="enqueue one job per line ('-': stdin): a body for URL, or a job object with a url",
    )
    enqueue.set_defaults(run=_enqueue)

    jobs = _group(commands, "jobs", "find, inspect, run, replay, cancel and remove jobs")
    listing = _leaf(jobs, api, "list", "jobs, newest first", _jobs_list)
    listing.add_argument("--queue")
    listing.add_argument("--state")
    listing.add_argument("--url-prefix", help="jobs whose URL starts with this")
    listing.add_argument("--tag")
    listing.add_argument("--flow-key")
    listing.add_argument("--schedule", help="jobs this schedule made")
    listing.add_argument("--topic")
    listing.add_argument("--since", help="created at or after: RFC 3339, or ago: 1h, 30m")
    listing.add_argument("--until", help="created before: RFC 3339, or ago: 1h, 30m")
    _paging(listing)
    _leaf(jobs, api, "show", "one job, with its last response", _jobs_show).add_argument("id")
    _leaf(jobs, api, "attempts", "every delivery attempt of a job", _jobs_attempts).add_argument(
        "id"
    )
    cancel = _leaf(
        jobs,
        api,
        "cancel",
        "cancel unfinished jobs: by id, or every one a filter matches",
        _jobs_cancel,
    )
    cancel.add_argument("ids", nargs="*", metavar="ID")
    cancel.add_argument("--queue")
    cancel.add_argument("--state", help="scheduled, pending, active or retrying")
    cancel.add_argument("--url-prefix")
    cancel.add_argument("--tag")
    cancel.add_argument("--flow-key")
    _leaf(
        jobs, api, "retry", "run jobs now (no attempt added); redrive dead ones", _jobs_retry
    ).add_argument("ids", nargs="+", metavar="ID")
    _leaf(
        jobs, api, "replay", "enqueue a new job with the same request", _jobs_replay
    ).add_argument("ids", nargs="+", metavar="ID")
    _leaf(jobs, api, "rm", "remove finished jobs and their attempts", _jobs_rm).add_argument(
        "ids", nargs="+", metavar="ID"
    )
    wait = _leaf(jobs, api, "wait", "wait until a job finishes; exit 1 unless it succeeded", _wait)
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")

    dlq = _group(commands, "dlq", "the dead-letter queue")
    listing = _leaf(dlq, api, "list", "dead jobs, newest failure first", _dlq_list)
    listing.add_argument("--queue")
    _dead_filters(listing.add_argument_group("filters"))
    _paging(listing)
    _leaf(dlq, api, "show", "a dead job with its attempt log", _dlq_show).add_argument("id")
    retry = _leaf(
        dlq,
        api,
        "retry",
        "redrive dead jobs: by id, --all, or every one a filter matches",
        _dlq_retry,
    )
    retry.add_argument("ids", nargs="*", metavar="ID")
    retry.add_argument("--all", action="store_true", help="every dead job (that the filters match)")
    bulk = retry.add_argument_group("filters (bulk redrive)")
    bulk.add_argument("--queue")
    _dead_filters(bulk)
    bulk.add_argument("--dry-run", action="store_true", help="count the matches, change nothing")
    bulk.add_argument("--rate", help='spread the redriven jobs: "50/s", "100/m"')
    remove = _leaf(
        dlq,
        api,
        "rm",
        "drop dead jobs for good: by id, --all, or every one a filter matches",
        _dlq_rm,
    )
    remove.add_argument("ids", nargs="*", metavar="ID")
    remove.add_argument(
        "--all", action="store_true", help="every dead job (that the filters match)"
    )
    bulk = remove.add_argument_group("filters (bulk delete)")
    bulk.add_argument("--queue")
    _dead_filters(bulk)
    bulk.add_argument("--dry-run", action="store_true", help="count the matches, change nothing")

    queues = _group(commands, "queues", "queue settings and live stats")
    _leaf(queues, api, "list", "every queue", _queues_list)
    _leaf(queues, api, "show", "a queue's settings and stats", _queues_show).add_argument("name")
    settings = _leaf(queues, api, "set", "change a queue's settings", _queues_set)
    settings.add_argument("name")
    settings.add_argument("--concurrency", type=int, help="max jobs of the queue in flight")
    settings.add_argument("--rate-limit", help='deliveries per period: "10/m", "5/s", "1000/h"')
    settings.add_argument("--max-attempts", type=int)
    settings.add_argument("--timeout", help="per attempt: seconds or 30s, 5m, ...")
    settings.add_argument("--max-size", type=int, help="unfinished jobs before enqueue gets 429")
    settings.add_argument("--priority", type=int, help="higher queues are served first")
    settings.add_argument("--backoff-base", help="first retry delay")
    settings.add_argument("--backoff-max", help="longest retry delay")
    settings.add_argument(
        "--key-concurrency", type=int, help="default max in flight per flow key of its jobs"
    )
    settings.add_argument("--key-rate-limit", help='default rate per flow key: "5/s", "100/m"')
    statuses = settings.add_mutually_exclusive_group()
    statuses.add_argument(
        "--permanent-status",
        type=_status_list,
        action="extend",
        metavar="CODE[,CODE]",
        help="HTTP status that ends the queue's jobs at once instead of a retry (repeatable)",
    )
    statuses.add_argument(
        "--no-permanent-statuses",
        action="store_true",
        help="clear the list: every failure but 410 and pushq-retry: false is retried",
    )
    _leaf(queues, api, "pause", "stop deliveries (enqueue still accepted)", _queues_pause)
    _leaf(queues, api, "resume", "restart deliveries", _queues_resume)
    purge = _leaf(queues, api, "purge", "cancel the queue's unfinished jobs", _queues_purge)
    purge.add_argument(
        "--state", action="append", help="only jobs in this state (repeatable; default all)"
    )
    rm = _leaf(queues, api, "rm", "forget a queue with no unfinished jobs", _queues_rm)
    rm.add_argument("--force", action="store_true", help="cancel its unfinished jobs first")
    for name in ("pause", "resume", "purge", "rm"):
        queues.choices[name].add_argument("name")

    schedules = _group(commands, "schedules", "cron schedules that enqueue a job")
    _leaf(schedules, api, "list", "every schedule", _schedules_list)
    _leaf(schedules, api, "show", "a schedule", _schedules_show).add_argument("name")
    schedule = _leaf(schedules, api, "set", "create or replace a schedule", _schedules_set)
    schedule.add_argument("name")
    schedule.add_argument("cron", help='5 fields, e.g. "0 3 * * *", or @hourly ... @yearly')
    schedule.add_argument("target_url", metavar="URL", help="where each job is delivered")
    schedule.add_argument("--timezone", help="of the cron fields (default UTC)")
    _job_options(schedule, template=True)
    _leaf(schedules, api, "rm", "remove a schedule", _schedules_rm).add_argument("name")
    _leaf(schedules, api, "pause", "stop a schedule's firings", _schedules_pause)
    _leaf(schedules, api, "resume", "restart its firings (from the next time)", _schedules_resume)
    _leaf(schedules, api, "trigger", "enqueue one job from it now", _schedules_trigger)
    for name in ("pause", "resume", "trigger"):
        schedules.choices[name].add_argument("name")

    keys = _group(commands, "flow-keys", "per-key limits (a customer, an account) and live counts")
    _leaf(keys, api, "list", "keys with limits of their own, or paused", _flow_keys_list)
    _leaf(keys, api, "show", "a key's limits and live counts", _flow_keys_show)
    limits = _leaf(keys, api, "set", "set a key's own limits", _flow_keys_set)
    concurrency = limits.add_mutually_exclusive_group()
    concurrency.add_argument("--concurrency", type=int, help="max jobs of the key in flight")
    concurrency.add_argument(
        "--no-concurrency",
        action="store_true",
        help="remove it: the queue's key_concurrency applies",
    )
    rate = limits.add_mutually_exclusive_group()
    rate.add_argument("--rate-limit", help='deliveries per period: "10/s", "100/m", "1000/h"')
    rate.add_argument(
        "--no-rate-limit", action="store_true", help="remove it: the queue's key_rate_limit applies"
    )
    _leaf(keys, api, "pause", "hold the key's jobs (other keys go on)", _flow_keys_pause)
    _leaf(keys, api, "resume", "release a paused key's jobs", _flow_keys_resume)
    for name in ("show", "set", "pause", "resume"):
        keys.choices[name].add_argument("key")

    topics = _group(commands, "topics", "fan-out: one job per endpoint of a topic")
    _leaf(topics, api, "list", "every topic", _topics_list)
    _leaf(topics, api, "show", "a topic and its endpoints", _topics_show).add_argument("name")
    topic = _leaf(topics, api, "set", "create a topic or replace its endpoints", _topics_set)
    topic.add_argument("name")
    topic.add_argument("urls", nargs="*", metavar="URL", help="an endpoint (repeat for more)")
    topic.add_argument(
        "--endpoints",
        metavar="JSON",
        help='endpoints with names or headers: [{"url", "name", "headers"}], @file or @-',
    )
    _leaf(topics, api, "rm", "forget a topic (its jobs stay)", _topics_rm).add_argument("name")
    publish = _leaf(topics, api, "publish", "enqueue one job per endpoint, at once", _publish)
    publish.add_argument("name")
    _job_options(publish, template=False)

    endpoints = _group(commands, "endpoints", "delivery health per destination origin")
    _leaf(endpoints, api, "list", "every origin delivered to since start", _endpoints_list)
    _leaf(endpoints, api, "show", "one origin's health", _endpoints_show).add_argument(
        "origin", help="scheme://host:port, or any URL there"
    )
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    """--url, --token and --json; SUPPRESS keeps one given before the command."""
    group = parser.add_argument_group("server")
    group.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="pushq's base URL (default $PUSHQ_URL or http://127.0.0.1:8080)",
    )
    group.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="API token (default $PUSHQ_API_TOKEN, else ./pushq-data/api-token or "
        "$PUSHQ_DATA_DIR's)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the API's JSON, for scripts",
    )


def _group(commands: Any, name: str, help_text: str) -> Any:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(group=parser)  # without an action, main() prints this help
    return parser.add_subparsers(dest="action", metavar="action")


def _leaf(
    group: Any, api: argparse.ArgumentParser, name: str, help_text: str, run: Handler
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, parents=[api], help=help_text)
    parser.set_defaults(run=run)
    return parser


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="jobs per page (default 50)")
    parser.add_argument("--cursor", help="next_cursor of the previous page")


def _job_options(parser: argparse.ArgumentParser, *, template: bool) -> None:
    job = parser.add_argument_group("job")
    job.add_argument("--body", help="JSON, @file, or @- for stdin")
    job.add_argument("--queue")
    job.add_argument("--method", help="HTTP method (default POST)")
    job.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="extra header (repeatable)"
    )
    job.add_argument("--priority", type=int, help="higher first")
    job.add_argument("--max-attempts", type=int)
    job.add_argument("--timeout", help="per attempt: seconds or 30s, 5m, ...")
    job.add_argument("--unique-key", help="one unfinished job per key and queue")
    job.add_argument("--ordering-key", help="jobs sharing it run one at a time, in order")
    job.add_argument("--callback-url", help="gets the finished job")
    job.add_argument("--failure-callback-url", help="gets the dead job")
    job.add_argument(
        "--tag", action="append", dest="tags", metavar="TAG", help="for filtering (repeatable)"
    )
    job.add_argument("--flow-key", help="per-key flow control, e.g. a customer id")
    job.add_argument(
        "--permanent-status",
        type=_status_list,
        action="extend",
        metavar="CODE[,CODE]",
        help="HTTP status that ends the job at once instead of a retry (repeatable; "
        "overrides the queue's list)",
    )
    if not template:
        job.add_argument("--delay", help="seconds or 10s, 5m, 2h, 1d")
        job.add_argument("--run-at", help="RFC 3339 time of the first attempt")
        job.add_argument("--idempotency-key", help="the same key returns the same job for 24 h")


# -- main ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from .bench.harness import main as bench

        return bench(argv[1:])
    args = _parser().parse_args(argv)
    for name, default in (("url", None), ("token", None), ("json", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if getattr(args, "group", None) is not None and getattr(args, "run", None) is None:
        group: argparse.ArgumentParser = args.group
        print(group.format_help(), end="", file=sys.stderr)
        print(f"\n{group.prog}: give an action (see the list above)", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "token":
            return _token(args)
        if hasattr(args, "run_local"):  # config, health, backup, ...: no API client
            code: int = args.run_local(args)
            return code
        return _api(args)
    except ConfigError as exc:
        print(f"pushq: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        print(f"pushq: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK if args.command == "serve" else EXIT_INTERRUPTED
    except BrokenPipeError:  # `pushq jobs list | head`: the reader left; nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


def _configure_logging(level: str, fmt: str = "text") -> None:
    from .server.logs import configure

    configure(level, fmt)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(vars(args), layered(vars(args), os.environ))
    _configure_logging(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:  # optional: a faster event loop where it is installed
        asyncio.run(_run(settings))
    else:
        uvloop.run(_run(settings))
    return EXIT_OK


async def _run(settings: object) -> None:
    from .server.serve import serve

    await serve(settings)  # type: ignore[arg-type]


def _data_dir(arg: str | None, env: Mapping[str, str] | None = None) -> Path:
    values = read_options({"data_dir": arg}, layered({}, os.environ) if env is None else env)
    data_dir: Path = values.get("data_dir", Path("pushq-data"))
    return data_dir


def _token(args: argparse.Namespace) -> int:
    env = layered({"config": args.config}, os.environ)  # the config file's data dir and secrets
    data_dir = _data_dir(args.data_dir, env)
    if not data_dir.is_dir():
        raise ConfigError(f"no data dir at {data_dir}: run `pushq serve` first or pass --data-dir")
    ensure_data_dir(data_dir)
    token, secrets = load_credentials(data_dir, env, generate=False)
    print(f"PUSHQ_API_TOKEN={token}")
    print(f"PUSHQ_SIGNING_SECRET={' '.join(secrets)}")
    try:  # a data dir from before /v2 has none until the next `pushq serve`
        current, following, _ = load_qstash_keys(data_dir, os.environ, generate=False)
    except ConfigError:
        return EXIT_OK
    print(f"PUSHQ_QSTASH_CURRENT_SIGNING_KEY={current}")
    print(f"PUSHQ_QSTASH_NEXT_SIGNING_KEY={following}")
    return EXIT_OK


def _api_token(flag: str | None) -> str:
    """--token, else what the SDK's Client() finds: $PUSHQ_API_TOKEN, else the token a
    local `pushq serve` saved in its data dir (the config file's data_dir counts)."""
    if flag:
        return flag
    try:
        return find_token(_data_dir(None))
    except TokenNotFound as exc:
        raise ConfigError(
            f"no API token: pass --token or set PUSHQ_API_TOKEN ({exc.path} does not exist; "
            "set PUSHQ_DATA_DIR to the data dir of `pushq serve`, or run `pushq token` there)"
        ) from None


def _api(args: argparse.Namespace) -> int:
    """Run an API command: errors become one line and an exit code."""
    try:
        client = Client(args.url, _api_token(args.token))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("base_url/PUSHQ_URL", "--url/PUSHQ_URL")) from None
    out = Output(as_json=args.json)
    try:
        with client:
            code: int = args.run(client, args, out)
            return code
    except ApiError as exc:
        if exc.code == "bad_response" or exc.code.startswith("http_"):
            # not pushq's error format: something else listens at this URL
            return _fail(
                f"no pushq at {client.base_url} ({exc.status} {exc.code}: {exc.message}); "
                "a wrong port? check --url / PUSHQ_URL"
            )
        return _fail(f"{exc.status} {exc.code}: {exc.message}")
    except PushqConnectionError as exc:
        return _fail(
            f"cannot reach {exc.url}: {exc.reason} "
            "(is `pushq serve` running there? check --url / PUSHQ_URL)"
        )
    except TimeoutError as exc:
        return _fail(str(exc))
    except ConfigError as exc:  # usage: main() prints it and exits 2
        raise ConfigError(str(exc).replace("base_url/PUSHQ_URL", "--url/PUSHQ_URL")) from None
    except BrokenPipeError:
        raise  # main() ends quietly
    except Exception as exc:  # a bug: still one line, unless PUSHQ_DEBUG asks for the traceback
        if os.environ.get("PUSHQ_DEBUG"):
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (PUSHQ_DEBUG=1 shows more)")


def _fail(message: str) -> int:
    print(f"pushq: {message}", file=sys.stderr)
    return EXIT_ERROR


# -- output -------------------------------------------------------------------------------


class Output:
    """Tables on stdout for people, the API's JSON for scripts; progress on stderr."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.interactive = sys.stderr.isatty()

    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, ensure_ascii=False))

    def show(self, data: Any, human: Callable[[], None]) -> None:
        """The API's JSON with --json, else what `human` prints."""
        if self.as_json:
            self.json(data)
        else:
            human()

    def line(self, text: str) -> None:
        print(text)

    def note(self, text: str) -> None:
        print(text, file=sys.stderr)

    def table(self, *columns: str) -> Table:
        return Table(columns)

    def print_table(self, table: Table) -> None:
        for line in table.lines():
            print(line)

    def fields(self, rows: Iterable[tuple[str, Any]]) -> None:
        table = Table(None)
        for name, value in rows:
            table.add_row(name, _text(value))
        self.print_table(table)

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A counter on stderr when it is a terminal; silent otherwise."""
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if self.interactive:
                shown = f"{done}/{total}" if total is not None else str(done)
                print(f"\r{label} {shown}", end="", file=sys.stderr, flush=True)

        try:
            if self.interactive:
                print(f"{label}...", end="", file=sys.stderr, flush=True)
            yield advance
        finally:
            if self.interactive:
                print("\r\033[K", end="", file=sys.stderr, flush=True)  # erase the line


class Table:
    """Rows in columns two spaces apart, the header first; cells never wrap, so a
    pipe gets whole lines and ids stay whole for copy and paste."""

    def __init__(self, columns: Sequence[str] | None) -> None:
        self.header = list(columns) if columns is not None else None
        self.rows: list[list[str]] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append([" ".join(cell.split()) for cell in cells])  # one line per row

    def lines(self) -> list[str]:
        rows = ([self.header] if self.header else []) + self.rows
        if not rows:
            return []
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]


def _time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _time(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _error_text(job: Job, *, endpoint_first: bool = False) -> str:
    """The last error; `endpoint_first` leads with the endpoint's own message (lists)."""
    error = job.last_error
    if error is None:
        return ""
    status = f"{error.status} " if error.status is not None else ""
    if endpoint_first and error.response:
        return f"{status}{error.response}".strip()
    return f"{status}{error.message or ''}".strip()


EXCERPT_CHARS = 300  # of a response body, in `show`


def _excerpt(attempts: Sequence[Attempt]) -> str | None:
    """The last attempt's status and response body, cut short, on one line."""
    if not attempts:
        return None
    last = attempts[-1]
    body = " ".join((last.response_body or "").split())
    if len(body) > EXCERPT_CHARS:
        body = body[:EXCERPT_CHARS] + "..."
    status = "no response" if last.status is None else str(last.status)
    return f"{status} {body}".strip() if body else status


def _page_json(page: Page[Job]) -> dict[str, Any]:
    return {"jobs": [job.raw for job in page], "next_cursor": page.next_cursor}


def _print_job(out: Output, job: Job, attempts: Sequence[Attempt] = ()) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("state", job.state),
        ("queue", job.queue),
        ("url", f"{job.method} {job.url}"),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("priority", job.priority),
        ("created", job.created_at),
        ("run at", job.run_at),
        ("finished", job.finished_at),
        ("last error", _error_text(job) or None),
        ("endpoint said", None if job.last_error is None else job.last_error.response),
        ("response", _excerpt(attempts) if job.state != "succeeded" else None),
        ("result", None if job.result is None else f"{job.result.status} {_text(job.result.body)}"),
        ("progress", job.progress),
        ("idempotency key", job.idempotency_key),
        ("unique key", job.unique_key),
        ("ordering key", job.ordering_key),
        ("tags", ", ".join(job.tags) or None),
        ("flow key", job.flow_key),
        ("schedule", job.schedule),
        ("topic", job.topic),
        ("replay of", job.replay_of),
        (
            "permanent statuses",
            None if job.permanent_statuses is None else ", ".join(map(str, job.permanent_statuses)),
        ),
    ]
    out.fields((name, value) for name, value in rows if value not in (None, ""))


def _print_jobs(out: Output, page: Page[Job], *, dead: bool = False) -> None:
    when = "FAILED" if dead else "RUN AT"
    columns = ["ID", "QUEUE", "STATE", "ATTEMPTS", when, "URL"]
    table = out.table(*columns, "ERROR") if dead else out.table(*columns)
    for job in page:
        cells = [
            job.id,
            job.queue,
            job.state,
            f"{job.attempts}/{job.max_attempts}",
            _time(job.failed_at or job.finished_at if dead else job.run_at),
            job.url,
        ]
        if dead:
            cells.append(_error_text(job, endpoint_first=True))
        table.add_row(*cells)
    out.print_table(table)
    if page.next_cursor:
        out.note(f"more: --cursor {page.next_cursor}")


def _print_attempts(out: Output, attempts: Iterable[Attempt]) -> None:
    """The attempt log; numbers restart after a redrive, so each row names its run."""
    table = out.table("RUN", "#", "STARTED", "MS", "STATUS", "ERROR")
    for a in attempts:
        ms = "" if a.duration_ms is None else f"{a.duration_ms:.0f}"
        status = "" if a.status is None else str(a.status)
        run = "first" if a.redrive == 0 else f"redrive {a.redrive}"
        table.add_row(run, str(a.number), _time(a.started_at), ms, status, a.error or "")
    out.print_table(table)


# -- reading flags ------------------------------------------------------------------------


def _read_json(value: str, what: str) -> Any:
    """A flag's JSON: given inline, or @file, or @- for stdin."""
    text = value
    if value.startswith("@"):
        source = value[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None


def _headers(pairs: list[str]) -> dict[str, str] | None:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header {pair!r}: write it as Name:value")
        headers[name.strip()] = value.strip()
    return headers or None


def _status_list(text: str) -> list[int]:
    """--permanent-status 404 or 404,422: HTTP status codes."""
    try:
        codes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of HTTP status codes") from None
    if not codes:
        raise argparse.ArgumentTypeError("give at least one HTTP status code")
    return codes


def _job_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The job fields the flags set (None: not given)."""
    fields = {
        "queue": args.queue,
        "method": args.method,
        "headers": _headers(args.header),
        "priority": args.priority,
        "max_attempts": args.max_attempts,
        "timeout": args.timeout,
        "unique_key": args.unique_key,
        "ordering_key": args.ordering_key,
        "callback_url": args.callback_url,
        "failure_callback_url": args.failure_callback_url,
        "tags": args.tags,
        "flow_key": args.flow_key,
        "permanent_statuses": args.permanent_status,
    }
    for name in ("delay", "run_at", "idempotency_key"):
        fields[name] = getattr(args, name, None)
    if args.body is not None:
        fields["body"] = _read_json(args.body, "--body")
    return {name: value for name, value in fields.items() if value is not None}


# -- commands -------------------------------------------------------------------------------


def _enqueue(client: Client, args: argparse.Namespace, out: Output) -> int:
    fields = _job_fields(args)
    if args.jsonl is not None:
        return _enqueue_jsonl(client, args, out, fields)
    if args.target_url is None:
        raise ConfigError("give the job's URL, or --jsonl FILE")
    body = fields.pop("body", None)
    job = client.enqueue(args.target_url, body, **fields)
    if out.as_json:
        out.json(job.raw)
    else:
        verb = "already enqueued" if job.deduplicated else "enqueued"
        out.line(f"{verb} {job.id} ({job.state}, queue {job.queue}, run at {_time(job.run_at)})")
    return EXIT_OK


def _jsonl_jobs(args: argparse.Namespace, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """Every job of the file, checked before any is sent."""
    if "body" in fields:
        raise ConfigError("--body and --jsonl do not mix: each line is a body or a job")
    name = "stdin" if args.jsonl == "-" else args.jsonl
    try:
        text = sys.stdin.read() if args.jsonl == "-" else Path(args.jsonl).read_text()
    except OSError as exc:
        raise ConfigError(f"--jsonl: cannot read {name}: {exc.strerror}") from None
    jobs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{name}:{number}: not JSON: {exc}") from None
        if args.target_url is not None:
            jobs.append({**fields, "url": args.target_url, "body": value})
        elif isinstance(value, dict) and isinstance(value.get("url"), str):
            jobs.append({**fields, **value})
        else:
            raise ConfigError(f"{name}:{number}: a job object with a url (or give URL)")
    return jobs


def _enqueue_jsonl(
    client: Client, args: argparse.Namespace, out: Output, fields: dict[str, Any]
) -> int:
    jobs = _jsonl_jobs(args, fields)
    done: list[Job] = []
    with out.progress("enqueueing", total=len(jobs)) as advance:
        for start in range(0, len(jobs), BATCH_SIZE):
            batch = client.enqueue_many(jobs[start : start + BATCH_SIZE])
            done += batch
            advance(len(batch))
    if out.as_json:
        out.json({"jobs": [job.raw for job in done]})
    else:
        repeated = sum(job.deduplicated for job in done)
        out.line(f"enqueued {len(done) - repeated} jobs ({repeated} already enqueued)")
    return EXIT_OK


def _jobs_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = client.list(
        queue=args.queue,
        state=args.state,
        limit=args.limit,
        cursor=args.cursor,
        url_prefix=args.url_prefix,
        tag=args.tag,
        flow_key=args.flow_key,
        schedule=args.schedule,
        topic=args.topic,
        since=args.since,
        until=args.until,
    )
    out.show(_page_json(page), lambda: _print_jobs(out, page))
    return EXIT_OK


def _jobs_show(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.get(args.id)
    if out.as_json:
        out.json(job.raw)
        return EXIT_OK
    _print_job(out, job, client.attempts(job.id) if job.attempts or job.last_error else ())
    return EXIT_OK


def _jobs_attempts(client: Client, args: argparse.Namespace, out: Output) -> int:
    attempts = client.attempts(args.id)
    if out.as_json:
        out.json({"attempts": [a.raw for a in attempts]})
    else:
        _print_attempts(out, attempts)
    return EXIT_OK


def _jobs_cancel(client: Client, args: argparse.Namespace, out: Output) -> int:
    filters = {
        "queue": args.queue,
        "state": args.state,
        "url_prefix": args.url_prefix,
        "tag": args.tag,
        "flow_key": args.flow_key,
    }
    given = {name: value for name, value in filters.items() if value is not None}
    if bool(args.ids) == bool(given):
        raise ConfigError(
            "jobs cancel: give job ids, or filters (--queue, --state, --url-prefix, --tag, "
            "--flow-key)"
        )
    if given:
        count = client.cancel_many(**given)
        out.show({"cancelled": count}, lambda: out.line(f"cancelled {count} jobs"))
        return EXIT_OK
    jobs = [client.cancel(job_id) for job_id in args.ids]
    if out.as_json:
        out.json(jobs[0].raw if len(jobs) == 1 else {"jobs": [job.raw for job in jobs]})
    else:
        for job in jobs:
            out.line(f"cancelled {job.id}")
    return EXIT_OK


def _each(out: Output, ids: list[str], act: Callable[[str], Job], verb: str, label: str) -> int:
    jobs = []
    with out.progress(label, total=len(ids)) as advance:
        for job_id in ids:
            jobs.append(act(job_id))
            advance(1)
    if out.as_json:
        out.json({"jobs": [job.raw for job in jobs]})
    else:
        for job_id, job in zip(ids, jobs, strict=True):
            out.line(verb.format(id=job_id, job=job))
    return EXIT_OK


def _jobs_retry(client: Client, args: argparse.Namespace, out: Output) -> int:
    return _each(out, args.ids, client.run_now, "{id} runs now ({job.state})", "retrying")


def _jobs_replay(client: Client, args: argparse.Namespace, out: Output) -> int:
    return _each(out, args.ids, client.replay, "replayed {id} as {job.id}", "replaying")


def _jobs_rm(client: Client, args: argparse.Namespace, out: Output) -> int:
    with out.progress("removing", total=len(args.ids)) as advance:
        for job_id in args.ids:
            client.delete(job_id)
            advance(1)
    count = len(args.ids)
    out.show({"deleted": args.ids}, lambda: out.line(f"removed {count} job{'s' * (count != 1)}"))
    return EXIT_OK


def _wait(client: Client, args: argparse.Namespace, out: Output) -> int:
    with out.progress(f"waiting for {args.id}", total=None):
        job = client.wait(args.id, timeout=args.timeout)
    out.show(job.raw, lambda: _print_job(out, job))
    if job.state == "succeeded":
        return EXIT_OK
    why = f": {_error_text(job)}" if job.last_error is not None else ""
    return _fail(f"job {job.id} is {job.state}{why}")


def _dead_filters(group: Any) -> None:
    """The filters every DLQ listing and bulk action takes (--queue is each one's own)."""
    group.add_argument("--url-prefix")
    group.add_argument("--status", type=int, help="the last attempt's HTTP status")
    group.add_argument("--error-contains", help="part of the last error")
    group.add_argument("--since", help="failed at or after: RFC 3339, or ago: 1h")
    group.add_argument("--until", help="failed before: RFC 3339, or ago: 1h")
    group.add_argument("--tag", help="one of the job's tags")


def _given_dead_filters(args: argparse.Namespace) -> dict[str, Any]:
    filters = {
        "queue": args.queue,
        "url_prefix": args.url_prefix,
        "status": args.status,
        "error_contains": args.error_contains,
        "since": args.since,
        "until": args.until,
        "tag": args.tag,
    }
    return {name: value for name, value in filters.items() if value is not None}


_DEAD_FILTER_FLAGS = "--queue, --url-prefix, --status, --error-contains, --since, --until, --tag"


def _dlq_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    filters = _given_dead_filters(args)
    page = client.dlq.list(limit=args.limit, cursor=args.cursor, **filters)
    out.show(_page_json(page), lambda: _print_jobs(out, page, dead=True))
    return EXIT_OK


def _dlq_show(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.dlq.get(args.id)
    if out.as_json:
        out.json(job.raw)
        return EXIT_OK
    _print_job(out, job, job.attempt_log or ())
    out.line("")
    _print_attempts(out, job.attempt_log or ())
    return EXIT_OK


def _dlq_retry(client: Client, args: argparse.Namespace, out: Output) -> int:
    given = _given_dead_filters(args)
    bulk = args.all or bool(given)
    if bulk == bool(args.ids):
        raise ConfigError(
            f"dlq retry: give dead job ids, or --all, or filters ({_DEAD_FILTER_FLAGS})"
        )
    if not bulk and (args.dry_run or args.rate):
        raise ConfigError("dlq retry: --dry-run and --rate go with --all or filters")
    if bulk:
        if args.dry_run:
            count = client.dlq.retry_many(**given, dry_run=True)
            out.show({"matched": count}, lambda: out.line(f"{count} dead jobs match"))
            return EXIT_OK
        with out.progress("redriving", total=None):
            count = client.dlq.retry_many(**given, rate_limit=args.rate)
        spread = f", spread at {args.rate}" if args.rate else ""
        out.show({"retried": count}, lambda: out.line(f"redrove {count} dead jobs{spread}"))
        return EXIT_OK
    jobs = []
    with out.progress("redriving", total=len(args.ids)) as advance:
        for job_id in args.ids:
            jobs.append(client.dlq.retry(job_id))
            advance(1)
    if out.as_json:
        out.json({"jobs": [job.raw for job in jobs]})
    else:
        for job in jobs:
            out.line(f"redrove {job.id} ({job.state})")
    return EXIT_OK


def _dlq_rm(client: Client, args: argparse.Namespace, out: Output) -> int:
    given = _given_dead_filters(args)
    bulk = args.all or bool(given)
    if bulk == bool(args.ids):
        raise ConfigError(f"dlq rm: give dead job ids, or --all, or filters ({_DEAD_FILTER_FLAGS})")
    if not bulk and args.dry_run:
        raise ConfigError("dlq rm: --dry-run goes with --all or filters")
    if bulk:
        if args.dry_run:
            count = client.dlq.delete_many(**given, dry_run=True)
            out.show({"matched": count}, lambda: out.line(f"{count} dead jobs match"))
            return EXIT_OK
        count = client.dlq.delete_many(**given)
        out.show({"deleted": count}, lambda: out.line(f"deleted {count} dead jobs"))
        return EXIT_OK
    with out.progress("deleting", total=len(args.ids)) as advance:
        for job_id in args.ids:
            client.dlq.delete(job_id)
            advance(1)
    if out.as_json:
        out.json({"deleted": args.ids})
    else:
        out.line(f"deleted {len(args.ids)} dead job{'s' if len(args.ids) != 1 else ''}")
    return EXIT_OK


def _print_queue(out: Output, queue: Queue) -> None:
    if out.as_json:
        out.json(queue.raw)
        return
    unset = "- (server default)"
    settings = [
        ("name", queue.name),
        ("paused", "yes" if queue.paused else "no"),
        ("concurrency", queue.concurrency or "-"),
        ("rate limit", queue.rate_limit or "-"),
        ("max attempts", queue.max_attempts or unset),
        ("backoff", queue.backoff or unset),
        ("timeout", queue.timeout or unset),
        ("max size", queue.max_size or "-"),
        ("priority", queue.priority),
        ("permanent statuses", ", ".join(map(str, queue.permanent_statuses or ())) or "-"),
        ("key concurrency", queue.key_concurrency or "-"),
        ("key rate limit", queue.key_rate_limit or "-"),
    ]
    stats = [(f"  {name}", value) for name, value in queue.stats.items()]
    out.fields([*settings, *([("stats", "")] + stats if stats else [])])


def _queues_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = client.queues.list()
    if out.as_json:
        out.json({"queues": [q.raw for q in page]})
        return EXIT_OK
    states = ("pending", "active", "retrying", "dead")
    table = out.table("NAME", "PAUSED", "CONCURRENCY", "RATE", *(s.upper() for s in states))
    for q in page:
        counts = [_text(q.stats.get(state)) for state in states]
        concurrency = _text(q.concurrency) or "-"
        table.add_row(q.name, "yes" if q.paused else "", concurrency, q.rate_limit or "-", *counts)
    out.print_table(table)
    return EXIT_OK


def _queues_show(client: Client, args: argparse.Namespace, out: Output) -> int:
    _print_queue(out, client.queues.get(args.name))
    return EXIT_OK


def _queues_set(client: Client, args: argparse.Namespace, out: Output) -> int:
    backoff = {
        name: value
        for name, value in (("base", args.backoff_base), ("max", args.backoff_max))
        if value is not None
    }
    queue = client.queues.update(
        args.name,
        concurrency=args.concurrency,
        rate_limit=args.rate_limit,
        max_attempts=args.max_attempts,
        backoff=backoff or None,
        timeout=args.timeout,
        max_size=args.max_size,
        priority=args.priority,
        permanent_statuses=[] if args.no_permanent_statuses else args.permanent_status,
        key_concurrency=args.key_concurrency,
        key_rate_limit=args.key_rate_limit,
    )
    _print_queue(out, queue)
    return EXIT_OK


def _queues_pause(client: Client, args: argparse.Namespace, out: Output) -> int:
    queue = client.queues.pause(args.name)
    out.show(queue.raw, lambda: out.line(f"paused {args.name}"))
    return EXIT_OK


def _queues_resume(client: Client, args: argparse.Namespace, out: Output) -> int:
    queue = client.queues.resume(args.name)
    out.show(queue.raw, lambda: out.line(f"resumed {args.name}"))
    return EXIT_OK


def _print_schedule(out: Output, schedule: Schedule) -> None:
    if out.as_json:
        out.json(schedule.raw)
        return
    out.fields(
        [
            ("name", schedule.name),
            ("cron", schedule.cron),
            ("timezone", schedule.timezone),
            ("paused", "yes" if schedule.paused else "no"),
            ("next run", schedule.next_run_at),
            ("last run", schedule.last_run_at),
            ("job", schedule.job),
        ]
    )
    if schedule.recent_runs:
        out.line("")
        table = out.table("RECENT RUN", "STATE", "ATTEMPTS", "CREATED", "ERROR")
        for run in schedule.recent_runs:
            error = run.last_error
            why = "" if error is None else f"{error.status or ''} {error.response or error.message}"
            table.add_row(run.id, run.state, str(run.attempts), _time(run.created_at), why.strip())
        out.print_table(table)


def _schedules_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = client.schedules.list()
    if out.as_json:
        out.json({"schedules": [s.raw for s in page]})
        return EXIT_OK
    table = out.table("NAME", "CRON", "TIMEZONE", "PAUSED", "NEXT RUN", "LAST RUN", "URL")
    for s in page:
        table.add_row(
            s.name,
            s.cron,
            s.timezone,
            "yes" if s.paused else "",
            _time(s.next_run_at),
            _time(s.last_run_at),
            str(s.job.get("url", "")),
        )
    out.print_table(table)
    return EXIT_OK


def _schedules_show(client: Client, args: argparse.Namespace, out: Output) -> int:
    _print_schedule(out, client.schedules.get(args.name))
    return EXIT_OK


def _schedules_set(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = {"url": args.target_url, **_job_fields(args)}
    _print_schedule(out, client.schedules.set(args.name, args.cron, job, timezone=args.timezone))
    return EXIT_OK


def _schedules_rm(client: Client, args: argparse.Namespace, out: Output) -> int:
    client.schedules.delete(args.name)
    out.show({"deleted": args.name}, lambda: out.line(f"removed {args.name}"))
    return EXIT_OK


def _schedules_pause(client: Client, args: argparse.Namespace, out: Output) -> int:
    schedule = client.schedules.pause(args.name)
    out.show(schedule.raw, lambda: out.line(f"paused schedule {args.name}"))
    return EXIT_OK


def _schedules_resume(client: Client, args: argparse.Namespace, out: Output) -> int:
    schedule = client.schedules.resume(args.name)
    next_run = _time(schedule.next_run_at)
    out.show(schedule.raw, lambda: out.line(f"resumed schedule {args.name} (next run {next_run})"))
    return EXIT_OK


def _schedules_trigger(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.schedules.trigger(args.name)
    out.show(job.raw, lambda: out.line(f"triggered {args.name}: enqueued {job.id}"))
    return EXIT_OK


def _queues_purge(client: Client, args: argparse.Namespace, out: Output) -> int:
    count = client.queues.purge(args.name, states=args.state)
    out.show({"cancelled": count}, lambda: out.line(f"cancelled {count} jobs of {args.name}"))
    return EXIT_OK


def _queues_rm(client: Client, args: argparse.Namespace, out: Output) -> int:
    client.queues.delete(args.name, force=args.force)
    out.show({"deleted": args.name}, lambda: out.line(f"removed queue {args.name}"))
    return EXIT_OK


# -- flow keys, topics, endpoints -------------------------------------------------------------


def _yes(value: bool) -> str:
    return "yes" if value else ""


def _print_flow_key(out: Output, key: FlowKey) -> None:
    if out.as_json:
        out.json(key.raw)
        return
    out.fields(
        [
            ("key", key.key),
            ("paused", "yes" if key.paused else "no"),
            ("concurrency", key.concurrency or "- (the queue's key_concurrency)"),
            ("rate limit", key.rate_limit or "- (the queue's key_rate_limit)"),
            ("in flight", str(key.in_flight)),
            ("waiting", str(key.waiting)),
        ]
    )


def _flow_keys_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = client.flow_keys.list()
    if out.as_json:
        out.json({"flow_keys": [k.raw for k in page]})
        return EXIT_OK
    table = out.table("KEY", "PAUSED", "CONCURRENCY", "RATE", "IN FLIGHT", "WAITING")
    for k in page:
        table.add_row(
            k.key,
            _yes(k.paused),
            _text(k.concurrency) or "-",
            k.rate_limit or "-",
            str(k.in_flight),
            str(k.waiting),
        )
    out.print_table(table)
    return EXIT_OK


def _flow_keys_show(client: Client, args: argparse.Namespace, out: Output) -> int:
    _print_flow_key(out, client.flow_keys.get(args.key))
    return EXIT_OK


def _flow_keys_set(client: Client, args: argparse.Namespace, out: Output) -> int:
    concurrency = None if args.no_concurrency else args.concurrency
    rate_limit = None if args.no_rate_limit else args.rate_limit
    if concurrency is None and not args.no_concurrency:
        concurrency = UNSET
    if rate_limit is None and not args.no_rate_limit:
        rate_limit = UNSET
    if concurrency is UNSET and rate_limit is UNSET:
        raise ConfigError(
            "flow-keys set: give --concurrency, --rate-limit, --no-concurrency or --no-rate-limit"
        )
    key = client.flow_keys.update(args.key, concurrency=concurrency, rate_limit=rate_limit)
    _print_flow_key(out, key)
    return EXIT_OK


def _flow_keys_pause(client: Client, args: argparse.Namespace, out: Output) -> int:
    key = client.flow_keys.pause(args.key)
    out.show(key.raw, lambda: out.line(f"paused flow key {key.key} ({key.waiting} waiting)"))
    return EXIT_OK


def _flow_keys_resume(client: Client, args: argparse.Namespace, out: Output) -> int:
    key = client.flow_keys.resume(args.key)
    out.show(key.raw, lambda: out.line(f"resumed flow key {key.key} ({key.waiting} waiting)"))
    return EXIT_OK


def _print_topic(out: Output, topic: Topic) -> None:
    if out.as_json:
        out.json(topic.raw)
        return
    out.fields([("name", topic.name), ("created", topic.created_at), ("updated", topic.updated_at)])
    out.line("")
    table = out.table("ENDPOINT", "URL", "HEADERS")
    for endpoint in topic.endpoints:
        headers = ", ".join(f"{k}: {v}" for k, v in endpoint.headers.items())
        table.add_row(endpoint.name or "-", endpoint.url, headers)
    out.print_table(table)


def _topics_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = client.topics.list()
    if out.as_json:
        out.json({"topics": [t.raw for t in page]})
        return EXIT_OK
    table = out.table("NAME", "ENDPOINTS", "UPDATED", "URLS")
    for t in page:
        urls = ", ".join(e.url for e in t.endpoints)
        table.add_row(t.name, str(len(t.endpoints)), _time(t.updated_at), urls)
    out.print_table(table)
    return EXIT_OK


def _topics_show(client: Client, args: argparse.Namespace, out: Output) -> int:
    _print_topic(out, client.topics.get(args.name))
    return EXIT_OK


def _topics_set(client: Client, args: argparse.Namespace, out: Output) -> int:
    endpoints: list[Any] = list(args.urls)
    if args.endpoints is not None:
        given = _read_json(args.endpoints, "--endpoints")
        if not isinstance(given, list):
            raise ConfigError('--endpoints: a JSON list, e.g. [{"url": "https://..."}]')
        endpoints += given
    if not endpoints:
        raise ConfigError("topics set: give the endpoints' URLs, or --endpoints JSON")
    try:
        topic = client.topics.set(args.name, endpoints)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--endpoints: {exc}") from None
    _print_topic(out, topic)
    return EXIT_OK


def _topics_rm(client: Client, args: argparse.Namespace, out: Output) -> int:
    client.topics.delete(args.name)
    out.show({"deleted": args.name}, lambda: out.line(f"removed topic {args.name}"))
    return EXIT_OK


def _publish(client: Client, args: argparse.Namespace, out: Output) -> int:
    fields = _job_fields(args)
    body = fields.pop("body", None)
    jobs = client.topics.publish(args.name, body, **fields)
    if out.as_json:
        out.json({"jobs": [job.raw for job in jobs]})
        return EXIT_OK
    repeated = sum(job.deduplicated for job in jobs)
    again = f" ({repeated} already enqueued)" if repeated else ""
    out.line(f"published to {args.name}: {len(jobs)} jobs{again}")
    table = out.table("ID", "STATE", "QUEUE", "RUN AT", "URL")
    for job in jobs:
        table.add_row(job.id, job.state, job.queue, _time(job.run_at), job.url)
    out.print_table(table)
    return EXIT_OK


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _endpoint_error(endpoint: Endpoint) -> str:
    error = endpoint.last_error
    if error is None:
        return ""
    status = f"{error.status} " if error.status is not None else ""
    return f"{status}{error.response or error.message or ''}".strip()


def _endpoints_list(client: Client, args: argparse.Namespace, out: Output) -> int:
    page = client.endpoints.list()
    if out.as_json:
        out.json({"endpoints": [e.raw for e in page]})
        return EXIT_OK
    table = out.table(
        "ORIGIN",
        "STATE",
        "IN FLIGHT",
        "LIMIT",
        "SUCCESS",
        "P50 MS",
        "P99 MS",
        "FAILS",
        "HELD UNTIL",
    )
    for e in page:
        table.add_row(
            e.origin,
            e.state,
            str(e.in_flight),
            _text(e.concurrency_limit) or "-",
            _rate(e.success_rate),
            _ms(e.latency_p50_ms),
            _ms(e.latency_p99_ms),
            str(e.consecutive_failures),
            _time(e.open_until),
        )
    out.print_table(table)
    return EXIT_OK


def _endpoints_show(client: Client, args: argparse.Namespace, out: Output) -> int:
    e = client.endpoints.get(args.origin)
    if out.as_json:
        out.json(e.raw)
        return EXIT_OK
    rows: list[tuple[str, Any]] = [
        ("origin", e.origin),
        ("state", e.state),
        ("in flight", f"{e.in_flight} of {_text(e.concurrency_limit) or 'no limit'}"),
        ("success rate", _rate(e.success_rate) or "- (no attempts yet)"),
        ("latency p50", f"{_ms(e.latency_p50_ms)} ms" if e.latency_p50_ms is not None else None),
        ("latency p99", f"{_ms(e.latency_p99_ms)} ms" if e.latency_p99_ms is not None else None),
        ("failures in a row", str(e.consecutive_failures)),
        ("held until", e.open_until),
        ("retry-after until", e.held_until),
        ("last error", _endpoint_error(e) or None),
        ("last error at", None if e.last_error is None else e.last_error.at),
    ]
    out.fields((name, value) for name, value in rows if value not in (None, ""))
    return EXIT_OK
