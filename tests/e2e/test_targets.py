"""Delivery targets end to end: a real pushq refuses internal targets at enqueue
(400 target_refused, nothing stored) and at connect time (the job ends dead).

Tests whose targets are not on loopback are marked `netns`: they run only inside
a network namespace that has nothing but loopback (tests/netns.py), which
`test_refused_targets_in_a_loopback_only_namespace` creates and runs them in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pushq
from tests import netns
from tests.harness import TEST_TOKEN, PushqProcess, Worker, wait_until

ROOT = Path(__file__).resolve().parents[2]
StartPushq = Callable[..., PushqProcess]

# The probe's internal targets, and more: refused whatever the mode.
REFUSED_ALWAYS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://169.254.43518/",
    "http://169.254.169.254./",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://169.254.0.1:8080/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://0.0.0.0:8080/",
    "http://0:8080/",
    "http://[::]:8080/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
]
# Refused under PUSHQ_TARGETS=public only.
REFUSED_PUBLIC = [
    "http://127.0.0.1:8080/",
    "http://127.1:8080/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://0xc0a80101/",
    "http://100.64.0.1/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::10.0.0.1]/",
    "http://[2002:c0a8:101::1]/",
]


def no_jobs(server: PushqProcess) -> bool:
    response = server.client.get("/v1/jobs", params={"limit": 1000})
    assert response.status_code == 200
    return response.json()["jobs"] == []


def refused(response: Any, field: str = "url") -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "target_refused", error
    assert error["message"].startswith(f"{field}: target refused: "), error
    message: str = error["message"]
    return message


# -- on loopback: these run everywhere ------------------------------------------------


def test_private_mode_delivers_to_loopback(pushq: PushqProcess, worker: Worker) -> None:
    job = pushq.enqueue(url=worker.url("targets-private"))
    assert pushq.wait_state(job["id"], "succeeded")["state"] == "succeeded"


def test_public_mode_refuses_a_loopback_literal_at_enqueue(
    start_pushq: StartPushq, worker: Worker
) -> None:
    server = start_pushq(PUSHQ_TARGETS="public")
    message = refused(server.client.post("/v1/jobs", json={"url": worker.url("x")}))
    assert message.endswith("127.0.0.1 is a loopback address, refused under PUSHQ_TARGETS=public")
    with pushq.Client(server.base_url, token=TEST_TOKEN) as client:
        with pytest.raises(pushq.TargetRefused) as caught:
            client.enqueue(worker.url("x"))
    assert caught.value.code == "target_refused" and caught.value.status == 400
    assert no_jobs(server)


@pytest.mark.parametrize("sender", ["lean", "aiohttp", "httpx"])
def test_public_mode_refuses_a_name_resolving_to_loopback_at_delivery(
    start_pushq: StartPushq, worker: Worker, sender: str
) -> None:
    server = start_pushq(PUSHQ_TARGETS="public", PUSHQ_SENDER=sender)
    path = f"targets-localhost-{sender}"
    job = server.enqueue(url=f"http://localhost:{worker.port}/{path}", max_attempts=5)
    dead = server.wait_state(job["id"], "dead")
    assert dead["attempts"] == 1  # not retried
    assert dead["last_error"]["message"].startswith("target refused: localhost (")
    assert (
        "is a loopback address, refused under PUSHQ_TARGETS=public"
        in (dead["last_error"]["message"])
    )
    assert worker.to(path) == []


def test_allow_opens_loopback_in_public_mode(start_pushq: StartPushq, worker: Worker) -> None:
    server = start_pushq(PUSHQ_TARGETS="public", PUSHQ_TARGETS_ALLOW="127.0.0.1/32")
    job = server.enqueue(url=worker.url("targets-allowed"))
    assert server.wait_state(job["id"], "succeeded")["state"] == "succeeded"


def test_deny_refuses_names_at_enqueue(start_pushq: StartPushq, worker: Worker) -> None:
    server = start_pushq(PUSHQ_TARGETS_DENY="localhost,*.internal.example")
    for url in (f"http://localhost:{worker.port}/", "https://api.internal.example/hook"):
        assert "PUSHQ_TARGETS_DENY" in refused(server.client.post("/v1/jobs", json={"url": url}))
    assert no_jobs(server)


@pytest.mark.parametrize("field", ["url", "callback_url", "failure_callback_url"])
def test_credentials_in_urls_are_refused(pushq: PushqProcess, worker: Worker, field: str) -> None:
    job = {"url": worker.url("creds"), field: f"http://user:secret@127.0.0.1:{worker.port}/"}
    response = pushq.client.post("/v1/jobs", json=job)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert f"{field}:" in error["message"] and "credentials" in error["message"]
    assert "secret" not in response.text


# -- outside loopback: only inside the namespace ------------------------------------------


@pytest.mark.timeout(600)
def test_refused_targets_in_a_loopback_only_namespace(tmp_path: Path) -> None:
    """Runs this module's `netns` tests with pytest inside a new namespace."""
    if os.environ.get(netns.ENV):
        pytest.skip("already inside the namespace")
    reason = netns.unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the refused-target tests in a namespace: {reason}")
        pytest.skip(reason)
    with netns.loopback_namespace() as name:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
        env[netns.ENV] = name
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "netns"]
        command += ["--basetemp", str(tmp_path / "inner"), str(Path(__file__))]
        result = subprocess.run(
            ["ip", "netns", "exec", name, *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " passed" in output and "skipped" not in output, output


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushqProcess]:
    server = PushqProcess(tmp_path_factory.mktemp("private"))
    yield server.start()
    server.close()


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushqProcess]:
    server = PushqProcess(tmp_path_factory.mktemp("public"), {"PUSHQ_TARGETS": "public"})
    yield server.start()
    server.close()


@pytest.mark.netns
def test_inside_the_namespace_only_loopback_exists() -> None:
    assert netns.only_loopback()


@pytest.mark.netns
@pytest.mark.parametrize("url", REFUSED_ALWAYS)
def test_refused_in_private_mode_at_enqueue(private_server: PushqProcess, url: str) -> None:
    refused(private_server.client.post("/v1/jobs", json={"url": url}))
    assert no_jobs(private_server)


@pytest.mark.netns
@pytest.mark.parametrize("url", REFUSED_ALWAYS + REFUSED_PUBLIC)
def test_refused_in_public_mode_at_enqueue(public_server: PushqProcess, url: str) -> None:
    refused(public_server.client.post("/v1/jobs", json={"url": url}))
    assert no_jobs(public_server)


@pytest.mark.netns
@pytest.mark.parametrize("field", ["callback_url", "failure_callback_url"])
def test_callback_urls_are_checked_at_enqueue(private_server: PushqProcess, field: str) -> None:
    job = {"url": "http://worker.test/", field: "http://0xa9fea9fe/"}
    message = refused(private_server.client.post("/v1/jobs", json=job), field)
    assert "0xa9fea9fe (169.254.169.254) is a cloud metadata address" in message
    assert no_jobs(private_server)


@pytest.mark.netns
def test_one_refused_target_refuses_the_whole_batch(private_server: PushqProcess) -> None:
    jobs = [{"url": "http://worker.test/a"}, {"url": "http://[::ffff:169.254.169.254]/"}]
    refused(private_server.client.post("/v1/jobs/batch", json={"jobs": jobs}), "jobs[1].url")
    assert no_jobs(private_server)


@pytest.mark.netns
def test_schedule_templates_are_checked(private_server: PushqProcess) -> None:
    schedule = {"cron": "* * * * *", "job": {"url": "http://169.254.169.254/"}}
    refused(private_server.client.put("/v1/schedules/ssrf", json=schedule), "job.url")
    schedule["job"] = {"url": "http://worker.test/", "failure_callback_url": "http://[fe80::1]/"}
    refused(
        private_server.client.put("/v1/schedules/ssrf", json=schedule), "job.failure_callback_url"
    )
    assert private_server.client.get("/v1/schedules/ssrf").status_code == 404


@pytest.mark.netns
@pytest.mark.parametrize("sender", ["lean", "aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("mode", "host", "reason"),
    [
        ("private", "metadata.test", "metadata.test (169.254.169.254) is a cloud metadata address"),
        ("private", "mapped.test", "is 169.254.169.254 in an IPv4-mapped address"),
        ("public", "intranet.test", "intranet.test (10.1.2.3) is a private address (RFC 1918)"),
        ("public", "mixed.test", "refused under PUSHQ_TARGETS=public"),  # none is left
    ],
)
def test_a_name_resolving_to_a_refused_address_ends_dead_at_delivery(
    start_pushq: StartPushq, sender: str, mode: str, host: str, reason: str
) -> None:
    server = start_pushq(PUSHQ_TARGETS=mode, PUSHQ_SENDER=sender)
    job = server.enqueue(url=f"http://{host}/hook", max_attempts=5)
    dead = server.wait_state(job["id"], "dead")
    assert dead["attempts"] == 1
    assert dead["last_error"]["message"].startswith("target refused: ")
    assert reason in dead["last_error"]["message"]


@pytest.mark.netns
@pytest.mark.parametrize("sender", ["lean", "aiohttp", "httpx"])
def test_a_name_is_delivered_only_to_its_allowed_addresses(
    start_pushq: StartPushq, worker: Worker, sender: str
) -> None:
    # mixed.test: 169.254.169.254 (refused), 10.1.2.3 (unreachable here), 127.0.0.1
    server = start_pushq(PUSHQ_SENDER=sender)
    job = server.enqueue(url=f"http://mixed.test:{worker.port}/mixed-{sender}")
    assert server.wait_state(job["id"], "succeeded")["state"] == "succeeded"
    [delivery] = worker.to(f"mixed-{sender}")
    assert delivery.headers["host"] == f"mixed.test:{worker.port}"


@pytest.mark.netns
def test_a_callback_to_a_refused_address_ends_dead(start_pushq: StartPushq, worker: Worker) -> None:
    server = start_pushq()
    job = server.enqueue(url=worker.url("with-callback"), callback_url="http://metadata.test/cb")
    server.wait_state(job["id"], "succeeded")

    def dead_callback() -> dict[str, Any] | None:
        page = server.client.get("/v1/jobs", params={"queue": "pushq.callbacks"}).json()
        return next((j for j in page["jobs"] if j["state"] == "dead"), None)

    callback = wait_until(dead_callback)
    assert callback["url"] == "http://metadata.test/cb"
    assert "cloud metadata address" in callback["last_error"]["message"]
