"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against a real pushq process and a real worker.

Skips when Chromium is missing, except in CI (CI=true), where .ci/run installs it
and a missing browser must fail the run. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..harness import TEST_TOKEN, PushqProcess, Reply, Worker, wait_until

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
STATIC = Path(__file__).resolve().parents[2] / "pushq/server/ui/static"
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


# -- issue 14 part 4 and issue 13 part 2: the pages an operator works from ----------------


def body_fits(page: Page) -> bool:
    """No horizontal scroll of the page itself (a table may scroll inside its box)."""
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            " && document.body.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def dead_jobs(server: PushqProcess, worker: Worker, path: str, count: int, **job: Any) -> list[str]:
    """`count` jobs the worker refuses (500, one attempt each), once they are dead."""
    worker.script(path, Reply(500, b'{"error": "upstream exploded"}'))
    fields = {"url": worker.url(path), "max_attempts": 1, **job}
    ids = [j["id"] for j in enqueue_batch(server, [fields] * count)]
    for job_id in ids:
        server.wait_state(job_id, "dead")
    return ids


def test_charts_show_the_last_hour_of_deliveries_failures_and_latency(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    worker.script("e2e-ui/chart-ok", Reply(200, b"{}", sleep=0.02))
    ok = enqueue_batch(pushq, [{"url": worker.url("e2e-ui/chart-ok"), "queue": "e2e-chart"}] * 5)
    for job in ok:
        pushq.wait_state(job["id"], "succeeded")
    dead_jobs(pushq, worker, "e2e-ui/chart-bad", 2, queue="e2e-chart")

    log_in(page, pushq)
    overview = page.locator("#charts [data-chart=deliveries] .chart-summary")
    expect(overview).to_contain_text("delivered")  # every queue of the server together
    hour = page.locator('tr[data-queue="e2e-chart"] td[data-hour]')
    expect(hour).to_contain_text("5 ok")
    expect(hour).to_contain_text("2 failed")

    page.locator('tr[data-queue="e2e-chart"] th a').click()
    expect(page.locator("#view h1")).to_contain_text("e2e-chart")
    counts = page.locator("#charts [data-chart=deliveries]")
    expect(counts.locator(".chart-summary")).to_have_text("5 delivered2 failed")
    assert counts.locator("g.bar").count() >= 1
    assert counts.locator("rect.bar-ok").count() >= 1
    assert counts.locator("rect.bar-failed").count() >= 1
    tip = counts.locator("g.bar title").first.text_content() or ""
    assert "delivered" in tip and "failed" in tip
    latency = page.locator("#charts [data-chart=latency]")
    expect(latency.locator(".legend.p50")).to_contain_text("ms")
    expect(latency.locator(".legend.p99")).to_contain_text("ms")
    assert latency.locator("polyline, circle").count() >= 2  # a p50 and a p99 mark
    # what the charts draw is what the API says
    stats = pushq.client.get("/v1/stats/timeseries?queue=e2e-chart").json()["queues"][0]
    assert (stats["delivered"], stats["failed"]) == (5, 2)
    assert_no_placeholders(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-queue.png", full_page=True)


def test_queue_settings_are_edited_with_errors_shown_at_their_field(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    assert pushq.client.put("/v1/queues/e2e-settings", json={"concurrency": 4}).status_code == 200
    log_in(page, pushq)
    page.goto(pushq.base_url + "/ui#/queues/e2e-settings")
    concurrency = page.locator("#setting-concurrency")
    expect(concurrency).to_have_value("4")

    concurrency.fill("0")
    page.click("text=Save settings")
    error = page.locator("#settings-error")
    expect(error).to_contain_text("concurrency")
    expect(concurrency).to_have_attribute("aria-invalid", "true")
    assert pushq.client.get("/v1/queues/e2e-settings").json()["concurrency"] == 4

    concurrency.fill("3")
    page.fill("#setting-rate_limit", "fast")
    page.click("text=Save settings")
    expect(error).to_contain_text("not a rate")
    expect(page.locator("#setting-rate_limit")).to_have_attribute("aria-invalid", "true")

    page.fill("#setting-rate_limit", "10/s")
    page.fill("#setting-backoff-base", "5s")
    page.fill("#setting-permanent_statuses", "400, 422")
    page.select_option("#setting-backoff-jitter", "false")
    page.click("text=Save settings")
    expect(page.locator("#toast")).to_contain_text("Saved e2e-settings")
    expect(error).to_be_hidden()
    saved = pushq.client.get("/v1/queues/e2e-settings").json()
    assert saved["concurrency"] == 3 and saved["rate_limit"] == "10/s"
    assert saved["backoff"]["base"] == 5 and saved["backoff"]["jitter"] is False
    assert saved["permanent_statuses"] == [400, 422]

    page.fill("#setting-concurrency", "")  # an empty field clears the setting
    page.click("text=Save settings")
    expect(page.locator("#toast")).to_contain_text("Saved")
    assert pushq.client.get("/v1/queues/e2e-settings").json()["concurrency"] is None

    page.click("#queue-status button:text-is('Pause')")
    expect(page.locator("#queue-status .badge.paused")).to_be_visible()
    assert pushq.client.get("/v1/queues/e2e-settings").json()["paused"] is True

    page.goto(pushq.base_url + "/ui#/queues/never-named")
    expect(page.locator(".not-found")).to_contain_text("Queue never-named not found")
    expect(page.locator("#live")).to_contain_text("live")


def test_endpoints_page_shows_health_circuit_and_limits(
    start_pushq: StartPushq, worker: Worker, page: Page
) -> None:
    server = start_pushq(PUSHQ_CIRCUIT_THRESHOLD="3", PUSHQ_CIRCUIT_COOLDOWN="1h")
    worker.script("e2e-ui/healthy", Reply(200, b"{}"))
    for job in enqueue_batch(server, [{"url": worker.url("e2e-ui/healthy")}] * 3):
        server.wait_state(job["id"], "succeeded")
    # the same worker under another origin, failing until its circuit opens
    worker.script("e2e-ui/down", Reply(503, b"maintenance"))
    down = f"http://localhost:{worker.port}/e2e-ui/down"
    backoff = {"base": 0.05, "max": 0.05, "jitter": False}
    failing = enqueue_batch(server, [{"url": down, "backoff": backoff, "max_attempts": 20}] * 3)

    def opened() -> bool:
        views = server.client.get("/v1/endpoints").json()["endpoints"]
        return any(
            e["origin"].startswith("http://localhost") and e["state"] == "open" for e in views
        )

    wait_until(opened, timeout=20, interval=0.1)
    log_in(page, server)
    page.click("#nav-endpoints")
    healthy = page.locator(f'tr[data-origin="http://127.0.0.1:{worker.port}"]')
    expect(healthy.locator("[data-circuit]")).to_have_text("healthy")
    expect(healthy.locator('[data-cell="success"]')).to_have_text("100%")
    expect(healthy.locator('[data-cell="in-flight"]')).to_contain_text("0 /")
    broken = page.locator(f'tr[data-origin="http://localhost:{worker.port}"]')
    expect(broken.locator("[data-circuit]")).to_have_text("open")
    expect(broken.locator('[data-cell="last-error"]')).to_contain_text("503")
    failures = int(broken.locator('[data-cell="failures"]').inner_text())
    assert failures >= 3
    expect(broken).to_contain_text("nothing sent until")
    for job in failing:  # held by the open circuit, without using their attempts
        assert server.job(job["id"])["state"] in ("retrying", "pending", "scheduled")
    assert_no_placeholders(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-endpoints.png", full_page=True)


def test_search_by_job_id_url_prefix_and_tag(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    later = {"delay": "1h", "queue": "e2e-search"}
    acme = enqueue_batch(
        pushq,
        [{"url": worker.url("e2e-ui/acme/orders"), "tags": ["cust-acme"], **later}] * 2,
    )
    other = pushq.enqueue(url=worker.url("e2e-ui/globex/orders"), tags=["cust-globex"], **later)
    log_in(page, pushq)
    box = page.locator("#search input")

    box.fill(other["id"])
    box.press("Enter")
    expect(page.locator("#job-id")).to_have_text(other["id"])

    box.fill(worker.url("e2e-ui/acme/"))
    box.press("Enter")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-job") for i in range(2)} == {j["id"] for j in acme}
    expect(page.locator("input[name=url_prefix]")).to_have_value(worker.url("e2e-ui/acme/"))

    box.fill("cust-globex")
    box.press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job", other["id"])
    expect(page.locator("#search-note")).to_contain_text("tagged “cust-globex”")

    box.fill("no-such-job-or-tag")
    box.press("Enter")
    expect(page.locator("#view .empty")).to_have_text("No jobs match.")

    # the filters of the jobs page, combined
    page.goto(pushq.base_url + "/ui#/jobs?queue=e2e-search&tag=cust-acme&since=1h")
    expect(rows).to_have_count(2)
    page.goto(pushq.base_url + "/ui#/jobs?tag=" + "x" * 65)  # refused: shown, not offline
    expect(page.locator("#view .form-error")).to_contain_text("tag")
    expect(page.locator("#live")).to_contain_text("live")


def test_dlq_filter_dry_run_rate_limited_redrive_and_delete(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    acme = dead_jobs(pushq, worker, "e2e-ui/dlq/acme", 3, queue="e2e-dlq")
    other = dead_jobs(pushq, worker, "e2e-ui/dlq/other", 2, queue="e2e-dlq")
    log_in(page, pushq)
    page.goto(pushq.base_url + "/ui#/dlq?queue=e2e-dlq")
    rows = page.locator("#dlq tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("upstream exploded")  # the endpoint's own words

    page.fill("input[name=url_prefix]", worker.url("e2e-ui/dlq/acme"))
    page.click("button:text-is('Filter')")
    expect(rows).to_have_count(3)
    page.select_option("select[name=since]", "1h")
    expect(rows).to_have_count(3)
    assert "since=1h" in page.url
    page.click("#dlq-dry-run")
    expect(page.locator("#dlq-matched")).to_contain_text("3 dead jobs match")
    assert all(pushq.job(job_id)["state"] == "dead" for job_id in acme)  # a dry run

    worker.script("e2e-ui/dlq/acme", 200)
    page.fill("#rate-limit", "2/s")
    page.click("#dlq-redrive-matching")
    expect(page.locator("#toast")).to_contain_text("Redrove 3 job(s) at 2/s")
    expect(page.locator("#view .empty")).to_have_text("No dead job matches.")
    redriven = sorted(pushq.wait_state(job_id, "succeeded")["run_at"] for job_id in acme)
    assert len(set(redriven)) == 3  # spread half a second apart, not all at once

    page.goto(pushq.base_url + "/ui#/dlq?queue=e2e-dlq&error_contains=exploded")
    expect(rows).to_have_count(2)
    page.click("#dlq-delete-matching")
    expect(page.locator("#toast")).to_contain_text("Deleted 2 job(s)")
    expect(page.locator("#view .empty")).to_have_text("No dead job matches.")
    for job_id in other:
        assert pushq.client.get(f"/v1/jobs/{job_id}").status_code == 404

    page.goto(pushq.base_url + "/ui#/dlq?status=abc")
    expect(page.locator("#view .form-error")).to_contain_text("status")


def test_a_new_user_finds_one_customers_failures_redrives_them_gently_and_sees_them_succeed(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    """Issue 14's "done when", from the dashboard alone."""
    queue = "e2e-story"
    acme = dead_jobs(pushq, worker, "e2e-ui/story/acme", 4, queue=queue, tags=["cust-acme"])
    dead_jobs(pushq, worker, "e2e-ui/story/globex", 1, queue=queue, tags=["cust-globex"])
    log_in(page, pushq)

    # find the customer's failed jobs of the last hour
    page.locator('tr[data-queue="e2e-story"] td[data-state="dead"] a').click()
    page.fill("input[name=tag]", "cust-acme")
    page.select_option("select[name=since]", "1h")
    rows = page.locator("#dlq tbody tr")
    expect(rows).to_have_count(4)
    assert {rows.nth(i).get_attribute("data-job") for i in range(4)} == set(acme)
    # see why: the endpoint's own message, up front and on the job's page
    expect(rows.first.locator(".error-text")).to_contain_text("upstream exploded")
    rows.first.locator("a.mono").click()
    expect(page.locator("#attempts")).to_contain_text("upstream exploded")
    page.go_back()
    expect(rows).to_have_count(4)

    # redrive them at a safe rate once the endpoint is fixed
    page.click("#dlq-dry-run")
    expect(page.locator("#dlq-matched")).to_contain_text("4 dead jobs match")
    worker.script("e2e-ui/story/acme", Reply(200, b"{}"))
    page.fill("#rate-limit", "4/s")
    page.click("#dlq-redrive-matching")
    expect(page.locator("#toast")).to_contain_text("Redrove 4 job(s) at 4/s")
    for job_id in acme:
        pushq.wait_state(job_id, "succeeded")

    # and watch them succeed on the chart
    page.goto(pushq.base_url + f"/ui#/queues/{queue}")
    summary = page.locator("#charts [data-chart=deliveries] .chart-summary")
    expect(summary).to_have_text("4 delivered5 failed")
    expect(page.locator('[data-total="succeeded"] .card-value')).to_have_text("4")
    expect(page.locator('[data-total="dead"] .card-value')).to_have_text("1")


def test_schedule_pause_resume_and_trigger_now(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    worker.script("e2e-ui/report", 200)
    schedule = {"cron": "@daily", "job": {"url": worker.url("e2e-ui/report"), "queue": "e2e-cron"}}
    assert pushq.client.put("/v1/schedules/e2e-report", json=schedule).status_code in (200, 201)
    log_in(page, pushq)
    page.click("#nav-schedules")
    row = page.locator('tr[data-schedule="e2e-report"]')
    expect(row.locator(".badge.running")).to_have_text("active")

    row.locator("button:text-is('Pause')").click()
    expect(row.locator(".badge.paused")).to_be_visible()
    assert pushq.client.get("/v1/schedules/e2e-report").json()["paused"] is True
    row.locator("button:text-is('Resume')").click()
    expect(row.locator(".badge.running")).to_be_visible()
    assert pushq.client.get("/v1/schedules/e2e-report").json()["paused"] is False

    row.locator("button:text-is('Trigger now')").click()
    expect(page.locator("#toast")).to_contain_text("Triggered e2e-report: job")
    made = pushq.client.get("/v1/jobs?schedule=e2e-report").json()["jobs"]
    assert len(made) == 1
    pushq.wait_state(made[0]["id"], "succeeded")
    expect(row.locator(f'a[href="#/jobs/{made[0]["id"]}"]')).to_be_visible()
    expect(row.locator(".badge.state-succeeded")).to_be_visible()
    row.locator("text=Runs").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    assert_no_placeholders(page)


def test_a_running_attempt_shows_as_running_with_its_progress(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    worker.script("e2e-ui/export", Reply(202, b"", headers={"pushq-async": "true"}))
    job = pushq.enqueue(url=worker.url("e2e-ui/export"), queue="e2e-progress", timeout="10m")
    pushq.wait_state(job["id"], "active")
    log_in(page, pushq)
    page.goto(pushq.base_url + f"/ui#/jobs/{job['id']}")
    running = page.locator("#running-attempt")
    expect(running).to_contain_text("running")
    expect(running).to_contain_text("waiting for the endpoint")

    report = {"percent": 40, "message": "exported 400 of 1000 rows"}
    answer = pushq.client.post(f"/v1/jobs/{job['id']}/progress", json=report)
    assert answer.status_code == 200, answer.text
    bar = running.locator("progress")
    expect(bar).to_have_attribute("value", "40.0")
    expect(running).to_contain_text("exported 400 of 1000 rows")
    pushq.client.post(f"/v1/jobs/{job['id']}/progress", json={"current": 3, "total": 4})
    expect(bar).to_have_attribute("value", "75.0")
    expect(running).to_contain_text("3 of 4")
    assert_no_placeholders(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-running.png", full_page=True)

    done = pushq.client.post(f"/v1/jobs/{job['id']}/complete", json={"result": {"rows": 1000}})
    assert done.status_code == 200, done.text
    expect(page.locator("#job-state")).to_have_text("succeeded")
    expect(running).to_have_count(0)


def test_full_dates_not_found_and_hostile_job_data_shown_as_text(
    pushq: PushqProcess, worker: Worker, page: Page
) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    job = pushq.enqueue(
        url=worker.url("e2e-ui/<svg/onload=alert(1)>"),
        queue="e2e-dates",
        delay="2d",
        tags=[hostile, "<script>alert(2)</script>"],
        body={"note": hostile},
        headers={"x-note": hostile},
    )
    log_in(page, pushq)
    page.goto(pushq.base_url + f"/ui#/jobs/{job['id']}")
    fields = page.locator(".fields")
    expect(fields).to_contain_text(hostile)
    expect(fields).to_contain_text("<svg/onload=alert(1)>")
    expect(fields).to_contain_text("<script>alert(2)</script>")
    assert page.locator("#view img, #view svg, #view script").count() == 0
    # run in two days: a date with the time; created today: the time alone
    run_at = fields.locator("dt:text-is('Run at') + dd time").inner_text()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", run_at), run_at
    created = fields.locator("dt:text-is('Created') + dd time").inner_text()
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", created), created

    page.goto(pushq.base_url + "/ui#/jobs?queue=e2e-dates")
    row = page.locator(f'tr[data-job="{job["id"]}"]')
    expect(row).to_contain_text(hostile)
    assert page.locator("#view img, #view script").count() == 0
    assert page.locator("#view svg").count() == 0

    page.goto(pushq.base_url + "/ui#/jobs/01NOSUCHJOB0000000000000")
    expect(page.locator(".not-found")).to_contain_text("not found")
    expect(page.locator("#live")).to_contain_text("live")
    expect(page.locator("#live")).not_to_contain_text("offline")


def test_the_script_never_parses_api_data_as_html() -> None:
    script = (
        Path(__file__).resolve().parents[2] / "pushq/server/ui/static/dashboard.js"
    ).read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, f"dashboard.js uses {sink}"


def test_every_page_fits_a_400_px_screen(
    pushq: PushqProcess, worker: Worker, chromium: Browser
) -> None:
    dead = dead_jobs(
        pushq,
        worker,
        "e2e-ui/narrow/" + "x" * 160,
        1,
        queue="e2e-narrow-queue-with-a-long-name",
        tags=["t" * 64],
    )
    schedule = {"cron": "*/5 * * * *", "job": {"url": worker.url("e2e-ui/narrow/cron")}}
    pushq.client.put("/v1/schedules/e2e-narrow", json=schedule)
    context = chromium.new_context(viewport={"width": 400, "height": 800})
    page = context.new_page()
    page.set_default_timeout(LIVE)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, pushq)
        pages = {
            "overview": ("#/", "#queues"),
            "queue": ("#/queues/e2e-narrow-queue-with-a-long-name", "#queue-settings"),
            "jobs": ("#/jobs", "#jobs"),
            "job": (f"#/jobs/{dead[0]}", "#attempts"),
            "dlq": ("#/dlq", "#dlq"),
            "schedules": ("#/schedules", "#schedules"),
            "endpoints": ("#/endpoints", "#endpoints"),
        }
        for name, (hash_, ready) in pages.items():
            page.goto(pushq.base_url + "/ui" + hash_)
            expect(page.locator(ready)).to_be_visible()
            assert body_fits(page), f"the {name} page scrolls sideways at 400 px"
        # the probe sees an overflow when there is one
        page.evaluate(
            "() => { const d = document.createElement('div'); d.id = 'wide';"
            " d.style.width = '700px'; d.style.height = '1px';"
            " document.getElementById('view').append(d); }"
        )
        assert not body_fits(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.goto(pushq.base_url + "/ui#/")
        expect(page.locator("#queues")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "dashboard-400px.png", full_page=True)
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
