"""What an Upstash Workflow step costs on pushq, beside a plain /v2 message.

Starts a real `pushq serve` (SQLite, a temp dir) and, on loopback, a Starlette app
with two routes: a workflow served by the official `upstash-workflow` SDK
(`async_serve`: `--steps` trivial `context.run` steps) and a plain endpoint. Each
round first publishes as many plain /v2 messages as the workflow round will make
step deliveries (init + steps per run) and times them to the last delivery, then
triggers `--runs` workflow runs at once and times them to the last step. Rounds
alternate so both see the same machine; the medians and their ratio are printed
as one JSON line.

    python -m bench.workflow [--runs 20] [--steps 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from qstash import AsyncQStash, QStash
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from upstash_workflow import AsyncWorkflowContext, async_serve

from pushq.bench.harness import BENCH_SECRET, BENCH_TOKEN, free_port


class Endpoint:
    """The loopback app: counts plain deliveries and finished runs."""

    def __init__(self, pushq_url: str, steps: int) -> None:
        self.plain = 0
        self.finished: set[str] = set()
        self.lock = threading.Condition()
        self.client = AsyncQStash(BENCH_TOKEN, base_url=pushq_url)
        self.steps = steps

    def app(self) -> Starlette:
        async def route(context: AsyncWorkflowContext[dict[str, Any]]) -> None:
            for n in range(self.steps):

                async def step(n: int = n) -> int:
                    return n

                await context.run(f"step-{n}", step)

            async def done() -> None:
                with self.lock:
                    self.finished.add(context.request_payload["tag"])
                    self.lock.notify_all()

            await context.run("done", done)

        # one retry: a step that fails once on a loaded machine costs a wait, not the run
        handler = async_serve(route, qstash_client=self.client, env={}, retries=1)["handler"]

        async def workflow(request: Request) -> Response:
            answer = await handler(request)
            return Response(answer.body, status_code=answer.status, headers=answer.headers)

        async def plain(request: Request) -> Response:
            await request.body()
            with self.lock:
                self.plain += 1
                self.lock.notify_all()
            return Response(b"ok")

        return Starlette(
            routes=[
                Route("/wf", workflow, methods=["POST"]),
                Route("/plain", plain, methods=["POST"]),
            ]
        )

    def wait(self, done: Any, timeout: float = 300.0) -> None:
        with self.lock:
            if not self.lock.wait_for(done, timeout):
                raise SystemExit("the round did not finish in time")


def start_pushq(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        PUSHQ_API_TOKEN=BENCH_TOKEN,
        PUSHQ_SIGNING_SECRET=BENCH_SECRET,
        PUSHQ_PORT=str(port),
        PUSHQ_DATA_DIR=str(data),
        PUSHQ_LOG_LEVEL="WARNING",
    )
    log = open(data.parent / "pushq.log", "ab")  # noqa: SIM115 - the child owns it
    command = [sys.executable, "-m", "pushq", "serve"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("pushq did not start")


def plain_round(qstash: QStash, endpoint: Endpoint, base: str, count: int) -> float:
    start_count = endpoint.plain
    started = time.perf_counter()
    for first in range(0, count, 100):
        last = min(first + 100, count)
        qstash.message.batch_json(
            [{"url": base + "/plain", "body": {"n": n}} for n in range(first, last)]
        )
    endpoint.wait(lambda: endpoint.plain - start_count >= count)
    return count / (time.perf_counter() - started)


def workflow_round(qstash: QStash, endpoint: Endpoint, base: str, runs: int, steps: int) -> float:
    tags = [uuid.uuid4().hex for _ in range(runs)]
    started = time.perf_counter()
    for tag in tags:
        qstash.message.publish_json(url=base + "/wf", body={"tag": tag})
    endpoint.wait(lambda: endpoint.finished.issuperset(tags))
    # deliveries until "done" runs: the trigger, the init, then one per step
    return runs * (steps + 2) / (time.perf_counter() - started)


def publish_latency(pushq_url: str, count: int = 50) -> dict[str, float]:
    """pushq's own side, one request at a time: the median ms of a plain /v2 publish
    and of a workflow step publish (which reads the run's newest step first), both
    delayed an hour so that no delivery runs meanwhile."""
    client = httpx.Client(base_url=pushq_url, headers={"authorization": f"Bearer {BENCH_TOKEN}"})
    run_id = f"wfr_bench_{uuid.uuid4().hex[:8]}"
    later = {"Upstash-Delay": "1h"}
    workflow = {**later, "Upstash-Workflow-RunId": run_id}
    target = "/v2/publish/http://127.0.0.1:9/wf"
    client.post(target, content=b"{}", headers={**workflow, "Upstash-Workflow-Init": "true"})

    def median_ms(send: Any) -> float:
        times = []
        for n in range(count):
            started = time.perf_counter()
            response = send(n)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code >= 300:
                raise SystemExit(f"publish failed: {response.text}")
        return statistics.median(times)

    plain = median_ms(lambda n: client.post(target, content=b"{}", headers=later))
    step = median_ms(
        lambda n: client.post(
            target,
            content=json.dumps({"stepId": n + 1, "stepName": f"s{n}", "stepType": "Run"}),
            headers={**workflow, "Upstash-Workflow-Init": "false"},
        )
    )
    client.close()
    return {"plain_publish_ms": round(plain, 2), "step_publish_ms": round(step, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        process = start_pushq(Path(tmp) / "data", port)
        pushq_url = f"http://127.0.0.1:{port}"
        endpoint = Endpoint(pushq_url, args.steps)
        app_port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(endpoint.app(), host="127.0.0.1", port=app_port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{app_port}"
        qstash = QStash(BENCH_TOKEN, base_url=pushq_url, retry=False)
        plain: list[float] = []
        steps: list[float] = []
        try:
            for _ in range(args.rounds):
                plain.append(plain_round(qstash, endpoint, base, args.runs * (args.steps + 2)))
                steps.append(workflow_round(qstash, endpoint, base, args.runs, args.steps))
            latency = publish_latency(pushq_url)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            process.terminate()
            process.wait(timeout=30)
        plain_rate, step_rate = statistics.median(plain), statistics.median(steps)
        shown = {
            "runs": args.runs,
            "steps_per_run": args.steps,
            "plain_messages_per_s": round(plain_rate, 1),
            "workflow_steps_per_s": round(step_rate, 1),
            "step_cost_vs_message": round(plain_rate / step_rate, 2),
            "rounds": {"plain": [round(p) for p in plain], "steps": [round(s, 1) for s in steps]},
            **latency,
        }
        print(json.dumps(shown))


if __name__ == "__main__":
    main()
