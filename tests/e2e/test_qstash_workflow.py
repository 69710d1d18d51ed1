"""Upstash Workflow end to end: the official `upstash-workflow` SDK's own `serve`
handler, on loopback, runs workflows through a real `pushq serve`: `run`, `sleep`,
`call` (pushq makes the third-party request and brings its answer back through the
nested callback headers), a failing step whose failure function is invoked, a
cancel, and a restart of pushq in the middle of a run.

Every delivery to a workflow endpoint is checked with the SDK's `qstash.Receiver`
(against the exact URL, which the SDK's own check leaves out) and recorded."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from qstash import AsyncQStash, QStash, Receiver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from upstash_workflow import AsyncWorkflowContext, async_serve

from ..harness import TEST_TOKEN, PushqProcess, wait_until
from ..pg import new_schema, postgres_url

PATIENCE = 30.0  # seconds a whole run may take on a loaded machine


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: str | None  # None when the signature verified, else why not


@dataclass
class Endpoints:
    """Workflow endpoints served by the SDK, a third party for context.call, and what
    each of them saw."""

    pushq_url: str
    keys: dict[str, str]
    base: str = ""
    seen: list[Seen] = field(default_factory=list)
    calls: list[Seen] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # by payload tag
    lock: threading.Condition = field(default_factory=threading.Condition)

    def record(self, tag: str, **facts: Any) -> None:
        with self.lock:
            self.results.setdefault(tag, {}).update(facts)
            self.lock.notify_all()

    def wait(self, tag: str, key: str, timeout: float = PATIENCE) -> dict[str, Any]:
        with self.lock:
            ok = self.lock.wait_for(lambda: key in self.results.get(tag, {}), timeout)
        assert ok, f"{tag}: no {key!r} within {timeout}s; saw {self.results.get(tag)}"
        return self.results[tag]

    def app(self) -> Starlette:
        client = AsyncQStash(TEST_TOKEN, base_url=self.pushq_url)
        receiver = Receiver(self.keys["current"], self.keys["next"])
        options: dict[str, Any] = {
            "qstash_client": client,
            "receiver": receiver,
            "env": {},
            "retries": 0,  # a failing step fails at once (QStash's backoff is minutes)
        }

        # The route runs (dry) on every delivery, a call's answer too, whose payload is the
        # callback's: so the initial payload is read inside steps only.
        async def order(context: AsyncWorkflowContext[dict[str, Any]]) -> None:
            async def double() -> int:
                return int(context.request_payload["n"]) * 2

            doubled = await context.run("double", double)
            await context.sleep("nap", 1)
            await context.sleep_until("alarm", time.time() + 1)
            answer = await context.call(
                "echo",
                url=self.base + "/echo",
                method="POST",
                body={"doubled": doubled},
                headers={"X-Call": "from-workflow"},
            )

            async def finish() -> None:
                self.record(
                    context.request_payload["tag"],
                    run_id=context.workflow_run_id,
                    doubled=doubled,
                    status=answer.status,
                    body=answer.body,
                    header=answer.header,
                    finished=True,
                )

            await context.run("record", finish)

        async def fails(context: AsyncWorkflowContext[dict[str, Any]]) -> None:
            async def fine() -> str:
                return "fine"

            await context.run("fine", fine)

            async def boom() -> None:
                raise ValueError("boom happened")

            await context.run("boom", boom)

        async def on_failure(
            context: AsyncWorkflowContext[dict[str, Any]],
            status: int,
            message: str,
            header: dict[str, Any],
        ) -> None:
            self.record(
                context.request_payload["tag"],
                failure=(status, message),
                failure_run_id=context.workflow_run_id,
            )

        async def long(context: AsyncWorkflowContext[dict[str, Any]]) -> None:
            async def before() -> int:
                self.record(context.request_payload["tag"], before=context.workflow_run_id)
                return int(context.request_payload["sleep"])

            pause = await context.run("before", before)
            await context.sleep("pause", pause)

            async def after() -> str:
                self.record(context.request_payload["tag"], after=True)
                return "after"

            await context.run("after", after)

        async def metadata(context: AsyncWorkflowContext[dict[str, Any]]) -> None:
            await context.call("steal", url="http://169.254.169.254/latest/meta-data/")

        handlers = {
            "/order": async_serve(order, **options)["handler"],
            "/fails": async_serve(fails, failure_function=on_failure, **options)["handler"],
            "/long": async_serve(long, **options)["handler"],
            "/metadata": async_serve(metadata, failure_function=on_failure, **options)["handler"],
        }

        async def workflow(request: Request) -> Response:
            body = await request.body()
            why = None
            try:
                receiver.verify(
                    signature=request.headers.get("upstash-signature", ""),
                    body=body.decode(),
                    url=str(request.url),
                )
            except Exception as exc:  # recorded; the tests assert on it
                why = f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.seen.append(Seen(request.url.path, dict(request.headers), body, why))
            answer = await handlers[request.url.path](request)
            return Response(answer.body, status_code=answer.status, headers=answer.headers)

        async def echo(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.calls.append(Seen("/echo", dict(request.headers), body, None))
            return JSONResponse({"echo": json.loads(body), "ok": True}, headers={"X-Echo": "yes"})

        @asynccontextmanager
        async def lifespan(app: Starlette) -> Any:
            yield
            await client.http._client.aclose()

        routes = [Route(path, workflow, methods=["POST"]) for path in handlers]
        routes.append(Route("/echo", echo, methods=["POST"]))
        return Starlette(routes=routes, lifespan=lifespan)

    def deliveries(self, run_id: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.headers.get("upstash-workflow-runid") == run_id]


def start_endpoints(pushq: PushqProcess, serve_asgi: Callable[..., str]) -> Endpoints:
    keys = pushq.client.get("/v2/keys").json()
    endpoints = Endpoints(pushq.base_url, {"current": keys["current"], "next": keys["next"]})
    endpoints.base = serve_asgi(endpoints.app())
    return endpoints


@pytest.fixture(scope="module")
def endpoints(pushq: PushqProcess, serve_asgi: Callable[..., str]) -> Endpoints:
    return start_endpoints(pushq, serve_asgi)


@pytest.fixture(scope="module")
def qstash(pushq: PushqProcess) -> Iterator[QStash]:
    client = QStash(TEST_TOKEN, base_url=pushq.base_url, retry=False)
    yield client
    client.http._client.close()


def trigger(qstash: QStash, endpoints: Endpoints, path: str, **payload: Any) -> str:
    """Start a workflow as its users do: publish its payload to the workflow URL."""
    tag = uuid.uuid4().hex[:8]
    qstash.message.publish_json(url=endpoints.base + path, body={"tag": tag, **payload})
    return tag


def run_log(pushq: PushqProcess, run_id: str) -> dict[str, Any]:
    response = pushq.client.get("/v2/workflows/logs", params={"workflowRunId": run_id})
    assert response.status_code == 200, response.text
    [run] = response.json()["runs"]
    return dict(run)


def wait_state(pushq: PushqProcess, run_id: str, state: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(run_log(pushq, run_id))
        return found["workflowState"] == state

    try:
        wait_until(reached, timeout=PATIENCE, interval=0.1)
    except AssertionError:
        raise AssertionError(f"run {run_id} is {found.get('workflowState')}, not {state}") from None
    return found


def step_names(run: dict[str, Any]) -> list[str]:
    return [group["steps"][0]["stepName"] for group in run["steps"]]


def test_run_sleep_and_call_run_to_the_end(
    qstash: QStash, endpoints: Endpoints, pushq: PushqProcess
) -> None:
    tag = trigger(qstash, endpoints, "/order", n=21)
    done = endpoints.wait(tag, "finished")
    run_id = done["run_id"]
    assert done["doubled"] == 42
    # context.call: pushq called the third party and brought its answer back
    assert done["status"] == 200
    assert done["body"] == {"echo": {"doubled": 42}, "ok": True}
    assert done["header"]["x-echo"] == ["yes"]  # header maps {name: [values]}
    [call] = [c for c in endpoints.calls if json.loads(c.body) == {"doubled": 42}]
    assert call.headers["x-call"] == "from-workflow"
    assert TEST_TOKEN not in json.dumps(call.headers)

    run = wait_state(pushq, run_id, "RUN_SUCCESS")
    assert step_names(run) == ["init", "double", "nap", "alarm", "echo", "record"]
    assert run["workflowUrl"] == endpoints.base + "/order"
    assert run["workflowRunCompletedAt"] >= run["workflowRunCreatedAt"] > 0

    # every step delivery: signed, with the run id and the steps so far as its body
    steps = [s for s in endpoints.deliveries(run_id) if s.body.startswith(b"[")]
    assert len(steps) == 6  # init, then after double, nap, alarm, echo's answer, record
    assert all(s.verified is None for s in endpoints.deliveries(run_id))
    for count, seen in enumerate(steps, start=1):
        entries = json.loads(seen.body)
        assert len(entries) == count
        assert entries[-1]["messageId"] == seen.headers["upstash-message-id"]
        assert {e["callType"] for e in entries} == {"step"}
        assert seen.headers["upstash-workflow-url"] == endpoints.base + "/order"
    initial = json.loads(base64.b64decode(json.loads(steps[0].body)[0]["body"]))
    assert initial == {"tag": tag, "n": 21}
    last = [json.loads(base64.b64decode(e["body"])) for e in json.loads(steps[-1].body)[1:]]
    assert [s["stepName"] for s in last] == ["double", "nap", "alarm", "echo", "record"]
    assert json.loads(last[3]["out"])["status"] == 200  # the call's answer, as a step
    # header hygiene: the SDK re-forwards what it got; none of the stale ones came back
    for seen in steps[1:]:
        assert seen.headers["user-agent"] == "Upstash-QStash"
        assert "upstash-forward-host" not in seen.headers
        assert seen.headers.get("upstash-workflow-sdk-version") == "1"

    # the sleep is a delayed step: its job waited a second before its delivery
    jobs = pushq.client.get("/v1/jobs", params={"tag": f"wf-steps:{run_id}"}).json()["jobs"]
    [nap] = [j for j in jobs if j["id"] == json.loads(steps[2].body)[-1]["messageId"]]
    assert at(nap["run_at"]) - at(nap["created_at"]) >= 0.99
    # sleep_until is a step with Upstash-Not-Before: its job ran at that second
    [alarm] = [j for j in jobs if j["id"] == json.loads(steps[3].body)[-1]["messageId"]]
    assert at(alarm["run_at"]) == last[2]["sleepUntil"]
    every = pushq.client.get("/v1/jobs", params={"tag": f"wf:{run_id}"}).json()["jobs"]
    assert len(every) > len(jobs)  # the call and its callback belong to the run too

    # the SDK's "run over" is idempotent, and the step list can be read back
    for _ in range(2):
        again = pushq.client.delete(f"/v2/workflows/runs/{run_id}", params={"cancel": "false"})
        assert again.status_code == 200, again.text
    listed = pushq.client.get(f"/v2/workflows/runs/{run_id}").json()
    assert listed == json.loads(steps[-1].body)


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_failing_step_calls_the_failure_function(
    qstash: QStash, endpoints: Endpoints, pushq: PushqProcess
) -> None:
    tag = trigger(qstash, endpoints, "/fails", n=1)
    failed = endpoints.wait(tag, "failure")
    status, message = failed["failure"]
    assert status == 500 and message == "boom happened"
    run_id = failed["failure_run_id"]
    run = wait_state(pushq, run_id, "RUN_FAILED")
    assert step_names(run) == ["init", "fine"]
    assert run["steps"][-1]["steps"][0]["state"] == "STEP_FAILED"
    failure = [s for s in endpoints.deliveries(run_id) if not s.body.startswith(b"[")]
    assert failure and all(s.verified is None for s in failure)
    assert json.loads(failure[0].body)["workflowRunId"] == run_id


def test_a_call_to_a_refused_address_is_never_made_and_fails_the_run(
    qstash: QStash, endpoints: Endpoints, pushq: PushqProcess
) -> None:
    """context.call goes out through pushq's SSRF guard like any delivery: a call to the
    cloud metadata address is refused when the SDK publishes it, so the step fails."""
    tag = trigger(qstash, endpoints, "/metadata")
    status, message = endpoints.wait(tag, "failure")["failure"]
    assert status == 500 and "target refused" in message and "metadata" in message
    wait_state(pushq, endpoints.results[tag]["failure_run_id"], "RUN_FAILED")


def test_cancel_stops_the_run_and_is_idempotent(
    qstash: QStash, endpoints: Endpoints, pushq: PushqProcess
) -> None:
    tag = trigger(qstash, endpoints, "/long", sleep=3600)
    run_id = endpoints.wait(tag, "before")["before"]
    wait_until(lambda: step_names(run_log(pushq, run_id)) == ["init", "before", "pause"], 20)
    cancelled = pushq.client.delete(f"/v2/workflows/runs/{run_id}", params={"cancel": "true"})
    # the sleeping step, and the step before it if its delivery is still finishing
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] >= 1
    run = wait_state(pushq, run_id, "RUN_CANCELED")
    assert run["steps"][-1]["steps"][0]["state"] == "STEP_CANCELED"
    again = pushq.client.delete(f"/v2/workflows/runs/{run_id}", params={"cancel": "true"})
    assert again.status_code == 200 and again.json()["cancelled"] == 0
    # a step for the cancelled run is refused
    late = pushq.client.post(
        f"/v2/publish/{endpoints.base}/long",
        headers={"Upstash-Workflow-RunId": run_id, "Upstash-Workflow-Init": "false"},
        content=json.dumps({"stepId": 3, "stepName": "after", "stepType": "Run", "out": "1"}),
    )
    assert late.status_code == 404 and "cancelled" in late.json()["error"]


def test_bulk_cancel_by_run_ids(qstash: QStash, endpoints: Endpoints, pushq: PushqProcess) -> None:
    tags = [trigger(qstash, endpoints, "/long", sleep=3600) for _ in range(2)]
    run_ids = [endpoints.wait(tag, "before")["before"] for tag in tags]
    for run_id in run_ids:
        wait_until(lambda r=run_id: step_names(run_log(pushq, r))[-1] == "pause", 20)
    response = pushq.client.request(
        "DELETE", "/v2/workflows/runs", json={"workflowRunIds": [*run_ids, "wfr_unknown"]}
    )
    assert response.status_code == 200 and response.json() == {"cancelled": 2}
    for run_id in run_ids:
        wait_state(pushq, run_id, "RUN_CANCELED")


def test_logs_page_through_every_run_once(
    qstash: QStash, endpoints: Endpoints, pushq: PushqProcess
) -> None:
    tags = [trigger(qstash, endpoints, "/long", sleep=3600) for _ in range(2)]
    mine = {endpoints.wait(tag, "before")["before"] for tag in tags}
    for run_id in mine:
        wait_until(lambda r=run_id: step_names(run_log(pushq, r))[-1] == "pause", 20)
    seen: list[str] = []
    params: dict[str, str] = {"count": "1"}
    while True:
        page = pushq.client.get("/v2/workflows/logs", params=params).json()
        assert len(page["runs"]) <= 1
        seen += [run["workflowRunId"] for run in page["runs"]]
        if "cursor" not in page:
            break
        params["cursor"] = page["cursor"]
    assert mine <= set(seen) and len(seen) == len(set(seen))  # each run once
    started = pushq.client.get("/v2/workflows/logs", params={"state": "RUN_STARTED"}).json()
    assert mine <= {run["workflowRunId"] for run in started["runs"]}
    assert all(run["workflowState"] == "RUN_STARTED" for run in started["runs"])
    for run_id in mine:
        pushq.client.delete(f"/v2/workflows/runs/{run_id}", params={"cancel": "true"})


def test_workflow_routes_answer_bad_input_in_qstash_shape(pushq: PushqProcess) -> None:
    for method, path, params in (
        ("DELETE", "/v2/workflows/runs/no-such-run", {}),
        ("DELETE", "/v2/workflows/runs/bad id!", {}),
        ("DELETE", "/v2/workflows/runs/x", {"cancel": "maybe"}),
        ("GET", "/v2/workflows/runs/no-such-run", {}),
        ("GET", "/v2/workflows/logs", {"count": "0"}),
        ("DELETE", "/v2/workflows/runs", {}),
    ):
        response = pushq.client.request(method, path, params=params)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert isinstance(response.json()["error"], str)
    for headers in (
        {"Upstash-Workflow-RunId": "bad id\t!", "Upstash-Workflow-Init": "true"},
        {"Upstash-Workflow-RunId": "wfr_x", "Upstash-Workflow-CallType": "sideways"},
        {"Upstash-Workflow-RunId": "wfr_never_started", "Upstash-Workflow-Init": "false"},
    ):
        response = pushq.client.post("/v2/publish/http://127.0.0.1:1/wf", headers=headers)
        assert 400 <= response.status_code < 500, (headers, response.text)
        assert isinstance(response.json()["error"], str)


def test_a_run_survives_a_restart_of_pushq(tmp_path: Path, serve_asgi: Callable[..., str]) -> None:
    server = PushqProcess(tmp_path / "pushq")
    server.start()
    try:
        endpoints = start_endpoints(server, serve_asgi)
        client = QStash(TEST_TOKEN, base_url=server.base_url, retry=False)
        try:
            tag = trigger(client, endpoints, "/long", sleep=2)
        finally:
            client.http._client.close()
        run_id = endpoints.wait(tag, "before")["before"]
        wait_until(lambda: step_names(run_log(server, run_id))[-1] == "pause", 20)
        server.kill()  # SIGKILL while the run sleeps
        assert "after" not in endpoints.results[tag]
        server.start()
        endpoints.wait(tag, "after")
        run = wait_state(server, run_id, "RUN_SUCCESS")
        assert step_names(run) == ["init", "before", "pause", "after"]
        assert all(s.verified is None for s in endpoints.deliveries(run_id))
    finally:
        server.close()


def test_workflow_routes_need_the_token(pushq: PushqProcess) -> None:
    for method, path in (
        ("DELETE", "/v2/workflows/runs/wfr_x"),
        ("GET", "/v2/workflows/runs/wfr_x"),
        ("GET", "/v2/workflows/logs"),
    ):
        response = httpx.request(method, pushq.base_url + path)
        assert response.status_code == 401 and isinstance(response.json()["error"], str)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_a_run_on_postgresql(tmp_path: Path, serve_asgi: Callable[..., str]) -> None:
    """The same run, sleep and call on the PostgreSQL store (a schema of its own)."""
    url, schema = postgres_url(), new_schema()
    asyncio.run(_admin(url, f'CREATE SCHEMA "{schema}"'))
    server = PushqProcess(tmp_path / "pg", {"PUSHQ_DATABASE_URL": f"{url}?search_path={schema}"})
    try:
        server.start()
        endpoints = start_endpoints(server, serve_asgi)
        client = QStash(TEST_TOKEN, base_url=server.base_url, retry=False)
        try:
            tag = trigger(client, endpoints, "/order", n=5)
        finally:
            client.http._client.close()
        done = endpoints.wait(tag, "finished")
        assert done["doubled"] == 10 and done["body"] == {"echo": {"doubled": 10}, "ok": True}
        run = wait_state(server, done["run_id"], "RUN_SUCCESS")
        assert step_names(run) == ["init", "double", "nap", "alarm", "echo", "record"]
    finally:
        server.close()
        asyncio.run(_admin(url, f'DROP SCHEMA "{schema}" CASCADE'))


JS_DIR = Path(__file__).parent.parent / "js"


def test_the_js_workflow_sdk_smoke(pushq: PushqProcess, tmp_path: Path) -> None:
    """@upstash/workflow (pinned by tests/js/package-lock.json) serves a workflow with
    run, sleep and call against pushq, its Receiver checking every request. Skips when
    node or npm is missing or npm cannot install here; in CI ($CI set) that fails."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    for name in ("package.json", "package-lock.json", "workflow-smoke.mjs"):
        shutil.copy(JS_DIR / name, tmp_path / name)
    try:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            timeout=240,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"npm could not install @upstash/workflow here: {exc}")
    keys = pushq.client.get("/v2/keys").json()
    run = subprocess.run(
        ["node", "workflow-smoke.mjs", pushq.base_url, TEST_TOKEN, keys["current"], keys["next"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["runId"] == seen["triggered"] and seen["doubled"] == 42
    assert seen["status"] == 200 and seen["body"] == {"echo": {"doubled": 42}}
    done = wait_state(pushq, seen["runId"], "RUN_SUCCESS")
    assert step_names(done) == ["init", "double", "nap", "echo", "record"]
    failed = seen["failed"]  # a failing step's failureFunction ran
    assert failed["failStatus"] == 500 and "boom happened" in json.dumps(failed["failResponse"])
    wait_state(pushq, failed["runId"], "RUN_FAILED")
