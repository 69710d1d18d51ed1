"""Every ```python snippet of docs/from-celery.md, run in order in one namespace against a
real pushq server, each followed by a check of what it did.

A snippet is marked `<!-- snippet: NAME [requires=FEATURE] -->`; one that needs a
server feature this build lacks (queues, schedules, progress) is still compiled,
then skipped with the reason. Names like `orders` or `mailer` in the page stand for
the reader's code: the fakes below play them.
"""

from __future__ import annotations

import re
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

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess

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
