"""Screenshots of every dashboard page, for docs/dashboard.md.

    .venv/bin/python -m tests.e2e.dashboard_screenshots [OUT_DIR]   (default: docs/)

Starts a real pushq process and a real worker on loopback, makes a little of
everything happen (deliveries and failures in three queues, dead jobs of one
customer, a schedule, an async job reporting progress, an origin whose circuit
opens), then drives Debian's Chromium (/usr/bin/chromium) through each page and
saves docs/dashboard-<page>.png. Nothing is mocked: the pictures are of the
product working.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from ..harness import TEST_TOKEN, PushqProcess, Reply, Worker, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def batch(server: PushqProcess, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = server.client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert answer.status_code == 201, answer.text
    created: list[dict[str, Any]] = answer.json()["jobs"]
    return created


def make_traffic(server: PushqProcess, worker: Worker) -> dict[str, str]:
    """Jobs of every kind; returns the ids and names the pages are opened at."""
    rng = random.Random(14)
    worker.script("emails/send", Reply(200, b'{"sent": true}', sleep=0.01))
    # a 4xx is not a transient failure: it does not count toward the circuit
    worker.script("hooks/acme", Reply(422, b'{"error": "acme: account is read-only"}'))
    worker.script("hooks/globex", Reply(200, b"{}", sleep=0.08))
    worker.script("reports/export", Reply(202, b"", headers={"pushq-async": "true"}))
    server.client.put("/v1/queues/emails", json={"concurrency": 20, "rate_limit": "50/s"})
    server.client.put("/v1/queues/webhooks", json={"concurrency": 8, "max_attempts": 3})

    emails = [{"url": worker.url("emails/send"), "queue": "emails"} for _ in range(40)]
    globex = [
        {"url": worker.url("hooks/globex"), "queue": "webhooks", "tags": ["cust-globex"]}
        for _ in range(12)
    ]
    acme = [
        {
            "url": worker.url("hooks/acme"),
            "queue": "webhooks",
            "tags": ["cust-acme"],
            "max_attempts": 1,
            "body": {"event": "invoice.paid", "invoice": f"in_{rng.randrange(10**6):06d}"},
        }
        for _ in range(6)
    ]
    created = batch(server, emails + globex + acme)
    for job in created:
        server.wait_state(job["id"], "succeeded", "dead", timeout=30)
    later = {"url": worker.url("emails/send"), "queue": "emails", "delay": "2d"}
    batch(server, [later] * 3)

    # an origin that is down: its circuit opens after three failures in a row
    down = f"http://localhost:{worker.port}/hooks/down"
    worker.script("hooks/down", Reply(503, b"upstream maintenance"))
    backoff = {"base": 0.05, "max": 0.05, "jitter": False}
    batch(server, [{"url": down, "queue": "webhooks", "backoff": backoff}] * 3)

    def opened() -> bool:
        views = server.client.get("/v1/endpoints").json()["endpoints"]
        return any(v["state"] == "open" for v in views)

    wait_until(opened, timeout=30, interval=0.1)

    schedule = {
        "cron": "@daily",
        "timezone": "Europe/Berlin",
        "job": {"url": worker.url("reports/export"), "queue": "reports"},
    }
    server.client.put("/v1/schedules/nightly-export", json=schedule)
    server.client.put(
        "/v1/schedules/digest",
        json={"cron": "0 8 * * mon-fri", "job": {"url": worker.url("emails/send")}},
    )
    server.client.post("/v1/schedules/digest/pause")
    running = server.client.post("/v1/schedules/nightly-export/trigger").json()
    server.wait_state(running["id"], "active")
    progress = {"percent": 62.5, "message": "exported 6,250 of 10,000 rows"}
    server.client.post(f"/v1/jobs/{running['id']}/progress", json=progress)
    return {"running": running["id"], "dead": created[-1]["id"]}


def shoot(page: Page, base: str, out: Path, name: str, hash_: str, ready: str) -> None:
    page.goto(f"{base}/ui{hash_}")
    expect(page.locator(ready).first).to_be_visible(timeout=15_000)
    page.wait_for_timeout(300)  # let the first refresh settle
    page.screenshot(path=out / f"dashboard-{name}.png", full_page=True)
    print(f"wrote {out / f'dashboard-{name}.png'}")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    worker = Worker()
    worker.start()
    with tempfile.TemporaryDirectory() as data:
        env = {"PUSHQ_CIRCUIT_THRESHOLD": "3", "PUSHQ_CIRCUIT_COOLDOWN": "1h"}
        server = PushqProcess(Path(data), env).start()
        try:
            ids = make_traffic(server, worker)
            base = server.base_url
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=ARGS
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(base + "/ui")
                page.fill("#token", TEST_TOKEN)
                page.click("button[type=submit]")
                expect(page.locator("#queues")).to_be_visible()
                shoot(page, base, out, "overview", "#/", "#charts .chart")
                shoot(page, base, out, "queue", "#/queues/webhooks", "#queue-settings")
                shoot(page, base, out, "jobs", "#/jobs?tag=cust-acme", "#jobs")
                shoot(page, base, out, "job", f"#/jobs/{ids['running']}", "#running-attempt")
                page.goto(f"{base}/ui#/dlq?tag=cust-acme&since=1h")
                expect(page.locator("#dlq")).to_be_visible()
                page.click("#dlq-dry-run")
                expect(page.locator("#dlq-matched")).to_contain_text("match")
                page.fill("#rate-limit", "5/s")
                page.screenshot(path=out / "dashboard-dlq.png", full_page=True)
                print(f"wrote {out / 'dashboard-dlq.png'}")
                shoot(page, base, out, "schedules", "#/schedules", "#schedules")
                shoot(page, base, out, "endpoints", "#/endpoints", "#endpoints")
                phone = browser.new_page(viewport={"width": 400, "height": 860})
                phone.goto(base + "/ui")
                phone.fill("#token", TEST_TOKEN)
                phone.click("button[type=submit]")
                shoot(phone, base, out, "phone", "#/", "#charts .chart")
                browser.close()
        finally:
            server.close()
            worker.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs")
