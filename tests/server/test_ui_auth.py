"""The dashboard's login, session cookie and CSRF defence, its static files, and /ready,
against a real pushq process (plus the app in-process for the start-up state)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from pushq.server.app import create_app
from pushq.server.config import Settings
from pushq.server.metrics import Metrics
from pushq.server.store.base import Store
from pushq.server.ui.session import COOKIE_NAME, CSRF_HEADER, Sessions

from ..harness import TEST_SECRET, TEST_TOKEN, PushqProcess, Reply, Worker, wait_until

StartPushq = Callable[..., PushqProcess]
JOB = {"url": "http://127.0.0.1:9/never", "queue": "ui-auth", "delay": "1h"}


@pytest.fixture
def browser(pushq: PushqProcess) -> Iterator[httpx.Client]:
    """A client with no token: only what the dashboard's browser would have."""
    with httpx.Client(base_url=pushq.base_url, timeout=10) as client:
        yield client


def log_in(client: httpx.Client) -> str:
    response = client.post("/ui/login", data={"token": TEST_TOKEN})
    assert response.status_code == 303, response.text
    value = client.cookies.get(COOKIE_NAME)
    assert value
    return value


def test_without_a_session_ui_shows_only_the_login_page(browser: httpx.Client) -> None:
    for path in ("/ui", "/ui/", f"/ui?token={TEST_TOKEN}"):
        response = browser.get(path)
        assert response.status_code == 200
        assert 'action="/ui/login"' in response.text
        assert "dashboard.js" not in response.text
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert COOKIE_NAME not in response.headers.get("set-cookie", "")


def test_wrong_token_stays_on_the_login_page(browser: httpx.Client) -> None:
    response = browser.post("/ui/login", data={"token": TEST_TOKEN + "x"})
    assert response.status_code == 401
    assert 'action="/ui/login"' in response.text
    assert "not the API token" in response.text
    assert "set-cookie" not in response.headers
    assert browser.post("/ui/login", data={}).status_code == 401
    assert "dashboard.js" not in browser.get("/ui").text


def test_login_sets_a_signed_httponly_strict_cookie_not_the_token(browser: httpx.Client) -> None:
    response = browser.post("/ui/login", data={"token": TEST_TOKEN})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui"
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain http on loopback
    assert TEST_TOKEN not in cookie
    assert browser.cookies[COOKIE_NAME].startswith("v1.")
    page = browser.get("/ui")
    assert page.status_code == 200
    assert "/ui/static/dashboard.js" in page.text
    assert 'action="/ui/login"' not in page.text


def test_secure_cookie_when_the_public_url_is_https(start_pushq: StartPushq) -> None:
    server = start_pushq(PUSHQ_PUBLIC_URL="https://pushq.example.com")
    response = httpx.post(server.base_url + "/ui/login", data={"token": TEST_TOKEN})
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower().replace(" ", "").split(";")


def test_session_cookie_reads_the_api(pushq: PushqProcess, browser: httpx.Client) -> None:
    pushq.enqueue(**JOB)
    log_in(browser)
    jobs = browser.get("/v1/jobs", params={"queue": "ui-auth"})
    assert jobs.status_code == 200
    assert jobs.json()["jobs"][0]["queue"] == "ui-auth"
    overview = browser.get("/ui/api/overview").json()
    [queue] = [q for q in overview["queues"] if q["name"] == "ui-auth"]
    assert queue["counts"]["scheduled"] >= 1
    assert set(queue["counts"]) == {
        "scheduled",
        "pending",
        "active",
        "retrying",
        "succeeded",
        "dead",
        "cancelled",
    }


def test_cookie_request_that_changes_state_needs_the_csrf_header(
    pushq: PushqProcess, browser: httpx.Client
) -> None:
    log_in(browser)
    before = len(pushq.client.get("/v1/jobs", params={"queue": "ui-csrf"}).json()["jobs"])
    refused = browser.post("/v1/jobs", json=dict(JOB, queue="ui-csrf"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert browser.delete("/v1/dlq/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 403
    assert browser.post("/v1/dlq/retry", json={}).status_code == 403
    after = len(pushq.client.get("/v1/jobs", params={"queue": "ui-csrf"}).json()["jobs"])
    assert after == before

    csrf = {CSRF_HEADER: "1"}
    accepted = browser.post("/v1/jobs", json=dict(JOB, queue="ui-csrf"), headers=csrf)
    assert accepted.status_code == 201
    missing = browser.delete("/v1/dlq/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=csrf)
    assert missing.status_code == 404


def test_forged_expired_and_foreign_sessions_are_refused(browser: httpx.Client) -> None:
    real = log_in(browser)
    expires, nonce, signature = real.split(".")[1:]
    forged = {
        "garbage": "not-a-session",
        "longer life": f"v1.{int(expires) + 3600}.{nonce}.{signature}",
        "expired": Sessions(TEST_TOKEN).issue(expires=time.time() - 1),
        "other token": Sessions("another-token-0123456789").issue(),
    }
    for name, value in forged.items():
        browser.cookies.set(COOKIE_NAME, value)
        response = browser.get("/v1/jobs")
        assert response.status_code == 401, name
        assert "dashboard.js" not in browser.get("/ui").text, name
    # a bearer token is checked as such, whatever cookie comes with it
    browser.cookies.set(COOKIE_NAME, real)
    wrong_bearer = browser.get("/v1/jobs", headers={"authorization": "Bearer nope-nope-nope"})
    assert wrong_bearer.status_code == 401
    assert browser.get("/v1/jobs").status_code == 200


def test_logout_ends_the_session(pushq: PushqProcess, browser: httpx.Client) -> None:
    value = log_in(browser)
    response = browser.post("/ui/logout")
    assert response.status_code == 303
    assert "max-age=0" in response.headers["set-cookie"].lower().replace('"', "")
    assert COOKIE_NAME not in browser.cookies
    # the old value is revoked, not just forgotten by this browser
    stale = httpx.get(pushq.base_url + "/v1/jobs", cookies={COOKIE_NAME: value})
    assert stale.status_code == 401


def test_cross_site_login_and_logout_are_refused(browser: httpx.Client) -> None:
    cross = {"sec-fetch-site": "cross-site"}
    response = browser.post("/ui/login", data={"token": TEST_TOKEN}, headers=cross)
    assert response.status_code == 403
    assert COOKIE_NAME not in browser.cookies
    log_in(browser)
    assert browser.post("/ui/logout", headers=cross).status_code == 403
    assert browser.get("/v1/jobs").status_code == 200


def test_overview_needs_a_session_or_the_token(pushq: PushqProcess, browser: httpx.Client) -> None:
    assert browser.get("/ui/api/overview").status_code == 401
    assert pushq.client.get("/ui/api/overview").status_code == 200


def test_static_assets_are_served(browser: httpx.Client) -> None:
    script = browser.get("/ui/static/dashboard.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "x-pushq-csrf" in script.text
    style = browser.get("/ui/static/dashboard.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert browser.get("/ui/static/missing.js").status_code == 404
    assert browser.get("/ui/static/%2e%2e/session.py").status_code == 404
    assert browser.get("/ui/static/%2e%2e/login.html").status_code == 404


# -- /ready ----------------------------------------------------------------------


def _ready(tmp_path: Path, *, last_loop: float, stopping: bool) -> httpx.Response:
    """GET /ready of an in-process app whose dispatcher and shutdown state are given."""

    class Idle:
        def notify(self, run_at: float | None = None) -> None:
            pass

    app = create_app(
        Settings(api_token=TEST_TOKEN, signing_secrets=(TEST_SECRET,)),
        cast(Store, None),  # /ready reads no store
        dispatcher=Idle(),
        metrics=Metrics(),
        dispatcher_last_loop=lambda: last_loop,
        shutting_down=lambda: stopping,
    )

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pushq") as client:
            return await client.get("/ready")

    return asyncio.run(get())


def test_ready_states_in_process(tmp_path: Path) -> None:
    cases = [(0.0, False, 503, "starting"), (time.time(), False, 200, "ready")]
    cases.append((time.time(), True, 503, "stopping"))
    for last_loop, stopping, status, word in cases:
        response = _ready(tmp_path, last_loop=last_loop, stopping=stopping)
        assert (response.status_code, response.json()["status"]) == (status, word)


def test_ready_turns_503_when_sigterm_starts_the_drain(
    start_pushq: StartPushq, worker: Worker
) -> None:
    server = start_pushq()
    assert httpx.get(server.base_url + "/ready").json() == {"status": "ready"}
    worker.script("ready-slow", Reply(sleep=1.5))
    server.enqueue(url=worker.url("ready-slow"), queue="ready")
    worker.wait_for("ready-slow")
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    stopping = wait_until(
        lambda: (r := httpx.get(server.base_url + "/ready", timeout=2)).status_code == 503 and r
    )
    assert stopping.json() == {"status": "stopping"}
    assert server.process.wait(timeout=20) == 0
    assert "pushq stopped" in server.log()
