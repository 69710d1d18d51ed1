"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against a real pushq process and a real worker.

Skips when Chromium is missing, except in CI (CI=true), where .ci/run installs it
and a missing browser must fail the run. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..harness import TEST_TOKEN, PushqProcess, Reply, Worker

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = bool(os.environ.get("CI"))
if not CHROMIUM.exists() and not IN_CI:
    pytest.skip(f"{CHROMIUM} is not installed (CI installs it)", allow_module_level=True)
try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:
    if IN_CI:
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Without the background-networking flags Chromium keeps dialling Google's hosts,
# which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE = 10_000  # ms: several 2-second refreshes of the page
expect.set_options(timeout=LIVE)
StartPushq = Callable[..., PushqProcess]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    page.set_default_timeout(LIVE)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before a delete
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def log_in(page: Page, server: PushqProcess) -> None:
    page.goto(server.base_url + "/ui")
    page.fill("#token", TEST_TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("#view h1").first).to_be_visible()


def enqueue_batch(server: PushqProcess, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = server.client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 201, response.text
    created: list[dict[str, Any]] = response.json()["jobs"]
    return created


def assert_no_placeholders(page: Page) -> None:
    """No missing value rendered as JavaScript's null/undefined/NaN."""
    text = page.locator("#view").inner_text()
    for word in ("null", "undefined", "NaN", "[object Object]"):
        assert word not in text, f"{word!r} on the page:\n{text}"


def has_route(server: PushqProcess, path: str) -> bool:
    return server.client.get(path).status_code == 200


def test_log_in_watch_a_queue_fill_and_redrive_a_dead_job(
    start_pushq: StartPushq, worker: Worker, page: Page
) -> None:
    server = start_pushq()
    page.goto(server.base_url + "/ui")
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#token", "not-the-token-at-all")
    with page.expect_response(lambda r: r.url.endswith("/ui/login")) as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    expect(page.locator(".error")).to_contain_text("not the API token")
    assert "token" not in page.url

    page.fill("#token", TEST_TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("#view h1")).to_have_text("Queues")
    assert page.url == server.base_url + "/ui"
    page.evaluate("window.notReloaded = true")

    # the queue fills while we watch: no reload, the page polls
    delayed = {"url": worker.url("e2e-ui/later"), "queue": "e2e-ui", "delay": "1h"}
    enqueue_batch(server, [delayed] * 5)
    row = page.locator('tr[data-queue="e2e-ui"]')
    expect(row.locator('td[data-state="scheduled"]')).to_have_text("5")
    enqueue_batch(server, [delayed] * 3)
    expect(row.locator('td[data-state="scheduled"]')).to_have_text("8")
    expect(page.locator('[data-total="scheduled"] .card-value')).to_have_text("8")

    # a job the worker refuses for good (pushq-retry: false) lands in the DLQ
    refused = {"pushq-retry": "false"}
    worker.script("e2e-ui/dead", Reply(404, b'{"error": "no such user"}', headers=refused))
    hostile = "<img src=x onerror=alert(1)>"
    dead = server.enqueue(url=worker.url("e2e-ui/dead"), queue="e2e-ui", body={"name": hostile})
    server.wait_state(dead["id"], "dead")
    expect(row.locator('td[data-state="dead"]')).to_have_text("1")

    page.click("nav >> text=Dead letters")
    dlq_row = page.locator(f'tr[data-job="{dead["id"]}"]')
    expect(dlq_row).to_contain_text("404")
    dlq_row.locator(f"text={dead['id']}").click()
    expect(page.locator("#job-state")).to_have_text("dead")
    attempt = page.locator("#attempts tbody tr")
    expect(attempt).to_have_count(1)
    expect(attempt.locator(".status")).to_have_text("404")
    expect(attempt).to_contain_text("no such user")
    # job data is shown as text, never parsed as HTML
    expect(page.locator("pre.json", has_text="onerror")).to_contain_text(hostile)
    assert page.locator("img").count() == 0

    worker.script("e2e-ui/dead", Reply(200, b'{"sent": true}'))
    page.click("button:text-is('Redrive')")
    expect(page.locator("#job-state")).to_have_text("succeeded")
    expect(page.locator(".fields")).to_contain_text("HTTP 200")
    assert server.job(dead["id"])["state"] == "succeeded"
    assert_no_placeholders(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-job.png", full_page=True)

    # a little more traffic, so the overview shows every kind of row
    worker.script("e2e-ui/mail", 200)
    worker.script("e2e-ui/flaky", 503)
    mail = {"url": worker.url("e2e-ui/mail"), "queue": "emails"}
    flaky = {
        "url": worker.url("e2e-ui/flaky"),
        "queue": "webhooks",
        "backoff": {"base": 3600, "jitter": False},
    }
    for job in enqueue_batch(server, [mail] * 6 + [flaky] * 2):
        server.wait_state(job["id"], "succeeded", "retrying")
    page.click("nav >> text=Overview")
    expect(row.locator('td[data-state="succeeded"]')).to_have_text("1")
    expect(row.locator('td[data-state="dead"]')).to_have_text("0")
    emails = page.locator('tr[data-queue="emails"] td[data-state="succeeded"]')
    expect(emails).to_have_text("6")
    retrying = page.locator('tr[data-queue="webhooks"] td[data-state="retrying"]')
    expect(retrying).to_have_text("2")
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#live")).to_contain_text("live")
    expect(page.locator("#toast")).to_be_hidden()
    assert_no_placeholders(page)
    page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)


def test_job_list_filters_and_cursor_pages(pushq: PushqProcess, worker: Worker, page: Page) -> None:
    job = {"url": worker.url("e2e-ui/pages"), "queue": "e2e-pages", "delay": "1h"}
    created = enqueue_batch(pushq, [job] * 55)
    log_in(page, pushq)
    page.click("nav >> text=Jobs")
    page.fill("input[name=queue]", "e2e-pages")
    page.click("button:text-is('Filter')")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(50)
    newest_first = created[-1]["id"]
    expect(rows.first).to_have_attribute("data-job", newest_first)
    page.click("button:has-text('Older')")
    expect(rows).to_have_count(5)
    expect(rows.last).to_have_attribute("data-job", created[0]["id"])
    expect(page.locator("button:has-text('Older')")).to_be_disabled()
    page.click("button:has-text('Newer')")
    expect(rows).to_have_count(50)

    page.select_option("select[name=state]", "dead")
    expect(page.locator("#view .empty")).to_have_text("No jobs match.")
    assert "queue=e2e-pages" in page.url and "state=dead" in page.url
    page.select_option("select[name=state]", "scheduled")
    expect(rows).to_have_count(50)


def test_dlq_bulk_redrive_and_delete(pushq: PushqProcess, worker: Worker, page: Page) -> None:
    worker.script("e2e-ui/bulk", 410)
    job = {"url": worker.url("e2e-ui/bulk"), "queue": "e2e-bulk"}
    ids = [j["id"] for j in enqueue_batch(pushq, [job] * 3)]
    for job_id in ids:
        pushq.wait_state(job_id, "dead")
    worker.script("e2e-ui/bulk", 200)

    log_in(page, pushq)
    page.goto(pushq.base_url + "/ui#/dlq?queue=e2e-bulk")
    rows = page.locator("#dlq tbody tr")
    expect(rows).to_have_count(3)
    for job_id in ids[:2]:
        page.check(f'input[data-id="{job_id}"]')
    page.click("#redrive-selected")
    expect(rows).to_have_count(1)
    for job_id in ids[:2]:
        pushq.wait_state(job_id, "succeeded")

    rows.first.locator("button:text-is('Delete')").click()
    expect(page.locator("#view .empty")).to_have_text("No dead job matches.")
    assert pushq.client.get(f"/v1/jobs/{ids[2]}").status_code == 404


def test_pause_and_schedules_appear_only_when_the_server_has_them(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    pushq.enqueue(url=worker.url("e2e-ui/pause"), queue="e2e-pause", delay="1h")
    has_queues = has_route(pushq, "/v1/queues")
    has_schedules = has_route(pushq, "/v1/schedules")
    log_in(page, pushq)
    row = page.locator('tr[data-queue="e2e-pause"]')
    expect(row).to_be_visible()
    expect(page.locator("#nav-schedules")).to_be_visible(visible=has_schedules)
    pause = row.locator("button:text-is('Pause')")
    if not has_queues:
        expect(pause).to_have_count(0)
    else:
        pause.click()
        expect(row.locator(".badge.paused")).to_be_visible()
        assert pushq.client.get("/v1/queues/e2e-pause").json()["paused"] is True
        row.locator("button:text-is('Resume')").click()
        expect(row.locator(".badge.running")).to_be_visible()
        assert pushq.client.get("/v1/queues/e2e-pause").json()["paused"] is False
        assert_no_placeholders(page)
    if not has_schedules:
        return
    schedule = {"cron": "0 3 * * *", "job": {"url": worker.url("e2e-ui/nightly")}}
    response = pushq.client.put("/v1/schedules/e2e-nightly", json=schedule)
    assert response.status_code in (200, 201), response.text
    page.click("#nav-schedules")
    scheduled = page.locator('tr[data-schedule="e2e-nightly"]')
    expect(scheduled).to_contain_text("0 3 * * *")
    assert_no_placeholders(page)
    scheduled.locator("button:text-is('Delete')").click()
    expect(scheduled).to_have_count(0)
    assert pushq.client.get("/v1/schedules/e2e-nightly").status_code == 404


def test_log_out_returns_to_the_login_page(pushq: PushqProcess, page: Page) -> None:
    log_in(page, pushq)
    expect(page.locator("#view h1")).to_have_text("Queues")
    page.click("text=Log out")
    expect(page.locator("#login-form")).to_be_visible()
    page.goto(pushq.base_url + "/ui#/jobs")
    expect(page.locator("#login-form")).to_be_visible()
    cookies = page.context.cookies()
    assert not [c for c in cookies if c["name"] == "pushq_session"]
