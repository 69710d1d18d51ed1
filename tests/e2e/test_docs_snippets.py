"""Every ```python snippet of docs/from-celery.md, run in order in one namespace against a
real pushq server, each followed by a check of what it did.

A snippet is marked `<!-- snippet: NAME [requires=FEATURE] -->`; one that needs a
server feature this build lacks (queues, schedules, progress) is still compiled,
then skipped with the reason. Names like `orders` or `mailer` in the page stand for
the reader's code: the fakes below play them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from pushq import Client, Job
from pushq.worker import JobContext, TaskRouter

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess, Reply, Worker, free_port

PAGE = Path(__file__).parents[2] / "docs" / "from-celery.md"
SNIPPET = re.compile(
    r"<!-- snippet: (?P<name>[\w-]+)(?: requires=(?P<requires>\w+))? -->\n"
    r"```python\n(?P<code>.*?)```",
    re.DOTALL,
)
FAST = {"base": 0.05, "max": 0.2, "jitter": False}


@dataclass(frozen=True)
class Snippet:
    name: str
    requires: str | None
    code: str
    line: int


def snippets() -> list[Snippet]:
    text = PAGE.read_text()
    return [
        Snippet(m["name"], m["requires"], m["code"], text.count("\n", 0, m.start("code")) + 1)
        for m in SNIPPET.finditer(text)
    ]


# -- the reader's code, faked ----------------------------------------------------------------


@dataclass
class Order:
    id: int
    total: int
    payment_id: str | None = None


class Orders:
    def __init__(self) -> None:
        self.rows: dict[int, Order] = {}

    def get(self, order_id: int) -> Order:
        return self.rows.setdefault(order_id, Order(order_id, total=1999))

    def save(self, order: Order) -> None:
        self.rows[order.id] = order


@dataclass
class Payment:
    id: str


class Payments:
    """Like Stripe: the same idempotency key returns the same payment."""

    def __init__(self) -> None:
        self.by_key: dict[str, Payment] = {}

    def charge(self, amount: int, *, idempotency_key: str) -> Payment:
        return self.by_key.setdefault(idempotency_key, Payment(f"pay_{len(self.by_key) + 1}"))


class ExternalApi:
    class RateLimited(Exception):
        def __init__(self, retry_after: float) -> None:
            super().__init__(f"rate limited, retry after {retry_after}s")
            self.retry_after = retry_after

    class Invalid(Exception):
        pass

    def __init__(self) -> None:
        self.outcomes: list[Exception] = []  # raised by the next calls, then success
        self.synced: list[Any] = []

    def sync(self, record: Any) -> None:
        if self.outcomes:
            raise self.outcomes.pop(0)
        self.synced.append(record)


class Records:
    def get(self, record_id: int) -> dict[str, int]:
        return {"id": record_id}


class Uploads:
    def __init__(self) -> None:
        self.failing: set[int] = set()

    def process(self, upload_id: int) -> None:
        if upload_id in self.failing:
            raise OSError(f"upload {upload_id} is corrupt")


class Alerts:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, message: str) -> None:
        self.sent.append(message)


class Mailer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def send_welcome(self, user_id: int) -> None:
        time.sleep(self.seconds)


class Reports:
    def items(self, report_id: int) -> list[int]:
        return [1, 2, 3, 4]

    def process(self, item: int) -> None: ...

    def url(self, report_id: int) -> str:
        return f"/reports/{report_id}.pdf"


@dataclass
class Docs:
    """The namespace the snippets share, and how to reach what they made."""

    server: PushqProcess
    ns: dict[str, Any] = field(default_factory=dict)

    @property
    def client(self) -> Client:
        client: Client = self.ns["client"]
        return client

    def wait(self, job_id: str) -> Job:
        return self.client.wait(job_id, timeout=10)

    def lacks(self, feature: str) -> bool:
        method, path = {
            "queues": ("GET", "/v1/queues"),
            "schedules": ("GET", "/v1/schedules"),
            "progress": ("POST", "/v1/jobs/NOPE/progress"),
        }[feature]
        response = self.server.client.request(method, path, json={})
        return response.status_code in (404, 405) and response.json()["error"][
            "message"
        ].startswith(("no route", method))


@pytest.fixture(scope="module")
def docs(pushq: PushqProcess, serve_asgi: Callable[..., str]) -> Iterator[Docs]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PUSHQ_URL", pushq.base_url)
        env.setenv("PUSHQ_API_TOKEN", TEST_TOKEN)
        env.setenv("PUSHQ_SIGNING_SECRET", TEST_SECRET)
        session = Docs(pushq)
        session.ns.update(
            app=Starlette(),
            orders=Orders(),
            payments=Payments(),
            external_api=ExternalApi(),
            records=Records(),
            uploads=Uploads(),
            alerts=Alerts(),
            mailer=Mailer(),
            reports=Reports(),
        )
        session.ns["served_at"] = serve_asgi(session.ns["app"])
        yield session
        if "client" in session.ns:
            session.client.close()


# -- what each snippet must have done ----------------------------------------------------------


def check_setup(docs: Docs, out: str) -> None:
    router = docs.ns["router"]
    assert isinstance(router, TaskRouter)
    router.base_url = docs.ns["served_at"] + "/tasks"  # the page's example.com, made real
    unsigned = httpx.post(router.base_url + "/anything", json={})
    assert unsigned.status_code == 401


def check_idempotent_charge(docs: Docs, out: str) -> None:
    job = docs.wait(docs.ns["job"].id)
    assert job.state == "succeeded" and job.result is not None
    payment_id = job.result.body
    assert docs.ns["orders"].get(42).payment_id == payment_id
    # a second delivery of the same job charges nothing more
    ctx = JobContext(id=job.id, attempt=2, max_attempts=13, queue="payments", job_token=None)
    assert docs.ns["charge_customer"](ctx, 42) == payment_id
    assert len(docs.ns["payments"].by_key) == 1


def check_retry_with_backoff(docs: Docs, out: str) -> None:
    task, api = docs.ns["sync_to_external_api"], docs.ns["external_api"]
    [first] = docs.client.list(queue="default", limit=1)
    assert docs.wait(first.id).state == "succeeded" and api.synced == [{"id": 7}]

    api.outcomes = [api.RateLimited(retry_after=0), RuntimeError("connection reset")]
    job = docs.wait(task.options(backoff=FAST).enqueue(8).id)
    assert job.state == "succeeded" and job.attempts == 3
    statuses = [a.status for a in docs.client.attempts(job.id)]
    assert statuses == [503, 500, 200]

    api.outcomes = [api.Invalid("record 9 has no email")]
    dead = docs.wait(task.options(backoff=FAST).enqueue(9).id)
    assert dead.state == "dead" and dead.attempts == 1
    assert dead.last_error is not None and dead.last_error.status == 422


def check_dead_letter_task(docs: Docs, out: str) -> None:
    docs.ns["uploads"].failing.add(5)
    job = docs.wait(docs.ns["process_upload"].options(backoff=FAST).enqueue(5).id)
    assert job.state == "dead" and job.attempts == 3
    assert docs.ns["alerts"].sent == ["upload 5: last attempt"]
    docs.ns["upload_job"] = job
    docs.ns["uploads"].failing.clear()  # fixed: the review below redrives it


def check_dead_letter_review(docs: Docs, out: str) -> None:
    job = docs.ns["upload_job"]
    assert job.id in out and "OSError: upload 5 is corrupt" in out and "Traceback" in out
    assert docs.wait(job.id).state == "succeeded"


def check_unique_job(docs: Docs, out: str) -> None:
    docs.ns["mailer"].seconds = 0.5  # the first job is still running when the second comes
    enqueue_unique = docs.ns["enqueue_unique"]
    assert enqueue_unique(5) is True
    assert enqueue_unique(5) is False
    assert enqueue_unique(6) is True


def check_progress(docs: Docs, out: str) -> None:
    done = docs.wait(docs.ns["job_id"])
    assert done.state == "succeeded" and done.progress["current"] == 4
    assert "succeeded" in out


def check_countdown_eta(docs: Docs, out: str) -> None:
    scheduled = {
        job.url.rpartition("/")[2]: job
        for job in docs.client.list(queue="default", state="scheduled", limit=100)
    }
    reminder, report = scheduled["send_reminder"], scheduled["send_report"]
    assert reminder.run_at is not None and report.run_at is not None
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    assert abs(reminder.run_at - in_an_hour) < timedelta(minutes=1)
    assert report.run_at == datetime(2030, 2, 5, 9, 0, tzinfo=UTC)
    for job in (reminder, report):
        docs.client.cancel(job.id)


def check_rate_limit(docs: Docs, out: str) -> None:
    assert docs.client.queues.get("external-api").rate_limit == "10/m"


def check_concurrency(docs: Docs, out: str) -> None:
    assert docs.client.queues.get("reports").concurrency == 4
    assert "pending" in out


def check_priority_tasks(docs: Docs, out: str) -> None:
    assert [j.priority for j in docs.client.list(queue="critical")] == [10]
    assert sorted(j.priority for j in docs.client.list(queue="batch")) == [0, 100]


def check_priority_queues(docs: Docs, out: str) -> None:
    assert docs.client.queues.get("batch").concurrency == 2


def check_health(docs: Docs, out: str) -> None:
    assert docs.ns["health"].status_code == 200 and out.strip() == "200 ok"


def check_backlog(docs: Docs, out: str) -> None:
    assert docs.ns["stats"]["pending"] <= 10_000 and out == ""


def check_schedule(docs: Docs, out: str) -> None:
    schedule = docs.client.schedules.get("nightly-report")
    assert schedule.cron == "0 3 * * *" and schedule.timezone == "Europe/Paris"
    docs.client.schedules.delete("nightly-report")


CHECKS: dict[str, Callable[[Docs, str], None]] = {
    name.removeprefix("check_").replace("_", "-"): check
    for name, check in list(globals().items())
    if name.startswith("check_")
}
SNIPPETS = snippets()


def test_every_python_block_is_a_checked_snippet() -> None:
    blocks = PAGE.read_text().count("```python")
    assert blocks == len(SNIPPETS) > 10
    assert [s.name for s in SNIPPETS] == list(CHECKS)  # a check per snippet, in page order


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_snippet_compiles(snippet: Snippet) -> None:
    code = compile(snippet.code, f"{PAGE}:{snippet.line}", "exec")
    assert code.co_filename.endswith(f"from-celery.md:{snippet.line}")


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_snippet_runs(docs: Docs, snippet: Snippet, capsys: pytest.CaptureFixture[str]) -> None:
    if snippet.requires and docs.lacks(snippet.requires):
        pytest.skip(f"the server has no {snippet.requires} routes yet")
    capsys.readouterr()
    exec(compile(snippet.code, f"{PAGE}:{snippet.line}", "exec"), docs.ns)
    CHECKS[snippet.name](docs, capsys.readouterr().out)
    assert threading.active_count() < 50  # no runaway threads from the tasks


# -- README's quick start, docs/cli.md's messages, docs/sdk.md's snippets ---------------------

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
CLI_PAGE = ROOT / "docs" / "cli.md"
SDK_PAGE = ROOT / "docs" / "sdk.md"
SHELL_SNIPPET = re.compile(
    r"<!-- snippet: (?P<name>[\w-]+) -->\n```sh\n(?P<code>.*?)```", re.DOTALL
)
PYTHON_SNIPPET = re.compile(
    r"<!-- snippet: (?P<name>[\w-]+) -->\n```python\n(?P<code>.*?)```", re.DOTALL
)
DEFAULT_URL = "http://127.0.0.1:8080"


def shell_snippet(page: Path, name: str) -> str:
    [code] = [m["code"] for m in SHELL_SNIPPET.finditer(page.read_text()) if m["name"] == name]
    return code


def venv_here(directory: Path) -> None:
    """`.venv/bin/pushq` in `directory` is this test run's pushq, as in the README."""
    pushq_script = Path(sys.prefix) / "bin" / "pushq"
    if not pushq_script.exists():
        pytest.skip("pushq is not installed as a script in this environment")
    (directory / ".venv").symlink_to(sys.prefix)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
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


def test_the_quick_start_runs_in_a_posix_shell_in_a_second_terminal(
    start_pushq: Callable[..., PushqProcess], worker: Worker, tmp_path: Path
) -> None:
    quick_start = README.read_text().partition("## Quick start")[2].partition("\n## ")[0]
    assert "<(" not in quick_start  # bash-only process substitution
    assert "Terminal 1" in quick_start and "Terminal 2" in quick_start
    assert "PUSHQ_URL=http://127.0.0.1:9090" in quick_start
    here = tmp_path / "project"
    here.mkdir()
    venv_here(here)
    # terminal 1: `pushq serve` in this directory; it generates and saves the token
    server = start_pushq(here / "pushq-data", PUSHQ_API_TOKEN="", PUSHQ_SIGNING_SECRET="")
    assert (here / "pushq-data" / "api-token").is_file()

    # terminal 2: the snippet under dash, as written but for the ports of this test, the
    # server's told with PUSHQ_URL as the README says
    code = shell_snippet(README, "quickstart")
    assert DEFAULT_URL in code and "http://127.0.0.1:9000/send-email" in code
    code = code.replace(DEFAULT_URL, server.base_url)
    code = code.replace("http://127.0.0.1:9000/send-email", worker.url("readme/send-email"))
    shell = shutil.which("dash") or "/bin/sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    env["PUSHQ_URL"] = server.base_url
    done = subprocess.run(
        [shell, "-euc", code], cwd=here, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    first, _, table = done.stdout.partition("\n")
    job = json.loads(first)
    assert job["state"] == "scheduled" and job["body"] == {"to": "ada@example.com"}
    assert job["idempotency_key"] == "welcome-mail-42"
    assert job["id"] in table and table.startswith("ID")

    # "GET /v1/jobs/{id} shows how many attempts (a count); /attempts lists each"
    token = (here / "pushq-data" / "api-token").read_text().strip()
    with Client(server.base_url, token=token) as client:
        client.run_now(job["id"])
        assert client.wait(job["id"], timeout=10).state == "succeeded"
        shown = client._http.get(f"/v1/jobs/{job['id']}").json()
        assert shown["attempts"] == 1 and "attempt_log" not in shown
        listed = client._http.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
        assert [a["status"] for a in listed] == [200]


def cli_messages() -> list[tuple[str, str]]:
    """(when, message) of each row of docs/cli.md's exit code table that shows one."""
    table = CLI_PAGE.read_text().partition("## Exit codes")[2].strip().partition("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        message = re.match(r"`(pushq: .*)`", cells[2])
        if message:
            rows.append((cells[1], message[1]))
    return rows


def as_pattern(message: str, urls: dict[str, str]) -> re.Pattern[str]:
    """A documented message as a regex: `01J...` is any id, `...` anything, and the
    page's example URLs are the test's."""
    for documented, real in urls.items():
        message = message.replace(documented, real)
    pattern = re.escape(message).replace(r"01J\.\.\.", r"\S+").replace(r"\.\.\.", ".*")
    return re.compile(pattern.replace(r"\ ", " ").replace("`", "`?"))


def test_the_cli_prints_the_messages_docs_cli_md_shows(
    pushq: PushqProcess, worker: Worker, tmp_path: Path
) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    worker.script("v1/jobs", Reply(404, b"<html>\n<h1>Not Found</h1>\n</html>\n"))
    worker.script("cli-doc/gone", 410)
    api = {"PUSHQ_URL": pushq.base_url, "PUSHQ_API_TOKEN": TEST_TOKEN}
    with Client(pushq.base_url, token=TEST_TOKEN) as client:
        dead = client.enqueue(worker.url("cli-doc/gone"), max_attempts=3).id
        client.wait(dead, timeout=10)
    commands = {
        "the API answered with an error": (["jobs", "show", "NOSUCHJOB"], api),
        "the server could not be reached": (["jobs", "list"], {**api, "PUSHQ_URL": refused}),
        "something other than pushq answered": (["jobs", "list", "--url", worker.url("")], api),
        "`jobs wait`": (["jobs", "wait", dead], api),
        "bad usage": (["enqueue", "http://x.test/", "--body", "{nope"], api),
    }
    urls = {DEFAULT_URL: refused, "http://127.0.0.1:3000": worker.url("").rstrip("/")}
    rows = cli_messages()
    assert len(rows) == len(commands)
    for when, message in rows:
        [(args, env)] = [v for k, v in commands.items() if when.startswith(k)]
        result = run_cli(*args, cwd=tmp_path, env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode in (1, 2) and len(lines) == 1, (when, result.stderr)
        assert as_pattern(message, urls).fullmatch(lines[0]), (message, lines[0])

    connecting = CLI_PAGE.read_text().partition("## Connecting")[2].partition("\n## ")[0]
    [no_token] = re.findall(r"`(pushq: no API\s+token:[^`]*)`", connecting)
    result = run_cli("jobs", "list", cwd=tmp_path, env={"PUSHQ_URL": pushq.base_url})
    assert result.returncode == 2
    assert as_pattern(" ".join(no_token.split()), {}).fullmatch(result.stderr.strip())


def test_every_python_block_of_the_sdk_page_compiles() -> None:
    text = SDK_PAGE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:  # an asyncio example awaits at the top, as in a notebook
        compile(block, str(SDK_PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_sdk_page_flow_key_and_topic_snippets_run(pushq: PushqProcess) -> None:
    snippets = {m["name"]: m["code"] for m in PYTHON_SNIPPET.finditer(SDK_PAGE.read_text())}
    assert set(snippets) == {"flow-keys", "topics"}
    with Client(pushq.base_url, token=TEST_TOKEN) as client:
        ns: dict[str, Any] = {"pushq": __import__("pushq"), "client": client, "key": "k-123"}
        exec(compile(snippets["flow-keys"], str(SDK_PAGE), "exec"), ns)
        acme = client.flow_keys.get("acme")
        assert (acme.concurrency, acme.rate_limit, acme.paused) == (2, "10/s", False)

        exec(compile(snippets["topics"], str(SDK_PAGE), "exec"), ns)
        jobs = ns["jobs"]
        assert [j.topic for j in jobs] == ["order.paid", "order.paid"]
        assert jobs[1].headers.get("X-Api-Key") == "k-123" and jobs[0].tags == ("order-7",)
        assert client.topics.get("order.paid").endpoints[1].name == "crm"
        for job in jobs:  # their hosts are the page's examples: nothing to deliver to
            client.cancel(job.id)
        client.topics.delete("order.paid")
