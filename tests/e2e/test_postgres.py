"""End to end on PostgreSQL: real `pushq serve` processes on one database delivering
to a real worker, and a database URL that cannot be used at start-up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from ..harness import FAST_RETRY, PushqProcess, Reply, Worker, wait_until
from ..pg import new_schema, postgres_url
from .test_delivery_control import RAMP_ENV, endpoint, ramps_up_after_the_circuit_closes
from .test_startup import _env, _one_line, _serve

StartPushq = Callable[..., PushqProcess]


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh schema on the test server, as a URL pushq nodes can share."""
    url, schema = postgres_url(), new_schema()
    asyncio.run(_admin(url, f'CREATE SCHEMA "{schema}"'))
    yield f"{url}?search_path={schema}"
    asyncio.run(_admin(url, f'DROP SCHEMA "{schema}" CASCADE'))


def test_serve_on_postgresql_delivers_jobs(
    start_pushq: StartPushq, worker: Worker, database_url: str
) -> None:
    pushq = start_pushq(PUSHQ_DATABASE_URL=database_url)
    path = f"pg-{uuid.uuid4().hex[:8]}"
    job = pushq.enqueue(url=worker.url(path), body={"hello": "postgres"})
    [delivery] = worker.wait_for(path, timeout=30)
    assert delivery.headers["webhook-id"] == job["id"]
    assert pushq.wait_state(job["id"], "succeeded", timeout=30)["attempts"] == 1


def test_jobs_enqueued_on_either_of_two_nodes_are_delivered_once(
    start_pushq: StartPushq, worker: Worker, database_url: str
) -> None:
    nodes = [start_pushq(PUSHQ_DATABASE_URL=database_url) for _ in range(2)]
    path = f"pg2-{uuid.uuid4().hex[:8]}"
    jobs = [nodes[i % 2].enqueue(url=worker.url(path), body={"n": i}) for i in range(20)]
    for job in jobs:
        nodes[0].wait_state(job["id"], "succeeded", timeout=60)
    ids = [d.headers["webhook-id"] for d in worker.wait_for(path, count=20, timeout=30)]
    assert sorted(ids) == sorted(job["id"] for job in jobs)  # each once, none twice


def test_a_queues_concurrency_holds_across_three_nodes(
    start_pushq: StartPushq, worker: Worker, database_url: str
) -> None:
    nodes = [start_pushq(PUSHQ_DATABASE_URL=database_url) for _ in range(3)]
    queue, path = f"q-{uuid.uuid4().hex[:8]}", f"pg3-{uuid.uuid4().hex[:8]}"
    response = nodes[0].client.put(f"/v1/queues/{queue}", json={"concurrency": 2})
    assert response.status_code == 200, response.text
    worker.script(path, Reply(sleep=0.3))
    jobs = [
        nodes[i % 3].enqueue(url=worker.url(path), queue=queue, body={"n": i}) for i in range(9)
    ]
    for job in jobs:
        nodes[2].wait_state(job["id"], "succeeded", timeout=60)
    assert len(worker.to(path)) == 9
    assert worker.max_in_flight[f"/{path}"] <= 2  # never more at once, whichever node


def test_a_killed_nodes_attempt_is_delivered_again_after_the_node_timeout(
    start_pushq: StartPushq, worker: Worker, database_url: str
) -> None:
    path = f"pgkill-{uuid.uuid4().hex[:8]}"
    worker.script(path, Reply(sleep=60), Reply(200))
    first = start_pushq(PUSHQ_DATABASE_URL=database_url, PUSHQ_NODE_TIMEOUT="2s")
    # a lease far longer than the test: only the node timeout can bring the job back
    job = first.enqueue(url=worker.url(path), timeout=120, **FAST_RETRY)
    worker.wait_for(path, timeout=30)  # the first node is delivering it
    second = start_pushq(PUSHQ_DATABASE_URL=database_url, PUSHQ_NODE_TIMEOUT="2s")
    first.kill()

    deliveries = worker.wait_for(path, count=2, timeout=40)
    assert [d.headers["webhook-id"] for d in deliveries] == [job["id"]] * 2
    done = second.wait_state(job["id"], "succeeded", timeout=30)
    assert done["attempts"] == 2


def test_an_unreachable_database_exits_2_naming_it(tmp_path: Path) -> None:
    env = _env(tmp_path / "d", PUSHQ_DATABASE_URL="postgresql://pushq:secret@127.0.0.1:1/x")
    line = _one_line(_serve(env), 2)
    assert "PUSHQ_DATABASE_URL" in line and "127.0.0.1:1" in line
    assert "secret" not in line


def test_a_database_that_does_not_exist_exits_2_naming_it(tmp_path: Path) -> None:
    base = postgres_url().rsplit("/", 1)[0]
    env = _env(tmp_path / "d", PUSHQ_DATABASE_URL=f"{base}/pushq_missing_db")
    line = _one_line(_serve(env), 2)
    assert "PUSHQ_DATABASE_URL" in line and "pushq_missing_db" in line


def test_deliveries_ramp_up_after_a_circuit_closes_on_postgresql(
    start_pushq: StartPushq, database_url: str
) -> None:
    ramps_up_after_the_circuit_closes(start_pushq(PUSHQ_DATABASE_URL=database_url, **RAMP_ENV))


def test_one_probe_for_the_cluster_and_every_node_sees_the_circuit(
    start_pushq: StartPushq, database_url: str
) -> None:
    flaky = Worker()
    # down behind a slow proxy: transient, each answer a while in coming, so a probe
    # is still in flight when held jobs fall due on the other node
    flaky.script("hook", Reply(503, sleep=1.5))
    flaky.start()
    origin = f"http://127.0.0.1:{flaky.port}"
    try:
        # two slots a node: when held jobs fall due, both nodes claim some
        env = {"PUSHQ_DATABASE_URL": database_url, "PUSHQ_DELIVERY_CONCURRENCY": "2", **RAMP_ENV}
        nodes = [start_pushq(**env) for _ in range(2)]
        jobs = [
            nodes[i % 2].enqueue(url=flaky.url("hook"), max_attempts=50, **FAST_RETRY)["id"]
            for i in range(12)
        ]
        for node in nodes:  # opened by one node, or both: every node holds its jobs
            wait_until(lambda n=node: endpoint(n, origin)["state"] != "closed", timeout=30)
        seen = len(flaky.to("hook"))
        probes = [d.at for d in flaky.wait_for("hook", count=seen + 4, timeout=60)[seen:]]
        # one probe at a time in the cluster, each after the one before was answered
        # (1.5 s) and a cool-down: two nodes probing on their own overlap
        gaps = [later - earlier for earlier, later in zip(probes, probes[1:], strict=False)]
        assert min(gaps) >= 1.5 * 0.9, gaps
        flaky.script("hook", Reply(200))
        for job_id in jobs:
            nodes[0].wait_state(job_id, "succeeded", timeout=60)
        for node in nodes:  # the probe's node closed it; the other was told
            wait_until(lambda n=node: endpoint(n, origin)["state"] == "closed", timeout=30)
        for job_id in jobs:  # held jobs kept their attempts: only the probes spent any
            assert nodes[1].job(job_id)["attempts"] < 50
    finally:
        flaky.stop()


def _doctor(data_dir: Path, database_url: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
    env.update(PUSHQ_DATA_DIR=str(data_dir), PUSHQ_PORT=str(port), PUSHQ_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "pushq", "doctor"], env=env, capture_output=True, text=True
    )


def test_doctor_checks_the_postgresql_database_and_its_nodes(
    start_pushq: StartPushq, database_url: str, tmp_path: Path
) -> None:
    empty = _doctor(tmp_path / "none", database_url, 1)
    assert "no pushq tables in schema" in empty.stdout, empty.stdout

    node = start_pushq(PUSHQ_DATABASE_URL=database_url)
    good = _doctor(node.data_dir, database_url, node.port)
    assert "migrations current" in good.stdout, good.stdout
    assert "1 node(s) heartbeating" in good.stdout and "one leads" in good.stdout
    assert "clock within" in good.stdout

    node.kill()  # its heartbeat row stays behind, ageing
    asyncio.run(
        _admin(
            database_url.split("?")[0],
            f"UPDATE {database_url.rsplit('=', 1)[1]}.nodes SET heartbeat_at = heartbeat_at - 600",
        )
    )
    silent = _doctor(node.data_dir, database_url, node.port)
    assert "no pushq node heartbeats" in silent.stdout and "silent for" in silent.stdout

    gone = _doctor(tmp_path / "x", "postgresql://pushq:secret@127.0.0.1:1/x", 1)
    assert gone.returncode == 1 and "cannot be reached" in gone.stdout
    assert "secret" not in gone.stdout  # the password is never printed


def _delivered_here(node: PushqProcess, queue: str) -> float:
    """The jobs of `queue` this node delivered itself (its own metrics)."""
    prefix = f'pushq_jobs_delivered_total{{queue="{queue}"}} '
    for line in node.client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_a_node_started_during_load_joins_without_duplicates(
    start_pushq: StartPushq, worker: Worker, database_url: str
) -> None:
    queue, path = f"join-{uuid.uuid4().hex[:8]}", f"join-{uuid.uuid4().hex[:8]}"
    worker.script(path, Reply(sleep=0.05))
    nodes = [start_pushq(PUSHQ_DATABASE_URL=database_url) for _ in range(2)]
    enqueued: list[str] = []
    errors: list[BaseException] = []
    joined = threading.Event()

    def produce() -> None:  # a steady producer on whichever nodes are up, until the
        try:  # third node has been up for 45 more jobs
            after = None
            i = 0
            while after is None or len(enqueued) < after:
                if after is None and joined.is_set():
                    after = len(enqueued) + 45
                node = nodes[i % len(nodes)]
                job = node.enqueue(url=worker.url(path), queue=queue, body={"n": i})
                enqueued.append(job["id"])
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: len(worker.to(path)) >= 20, timeout=60)  # under load
        nodes.append(start_pushq(PUSHQ_DATABASE_URL=database_url))  # the third node joins
    finally:
        joined.set()
        producer.join(timeout=120)
    assert not errors
    total = len(enqueued)
    for job_id in enqueued:
        assert nodes[2].wait_state(job_id, "succeeded", timeout=60)["attempts"] == 1

    # the ledger: every job delivered exactly once, whichever node took it
    ids = [d.headers["webhook-id"] for d in worker.to(path)]
    assert sorted(ids) == sorted(enqueued)
    own = [_delivered_here(node, queue) for node in nodes]
    assert sum(own) == total
    assert own[2] > 0  # the new node took its share once it joined
    # queue stats are the cluster's, whichever node is asked
    for node in nodes:
        stats = node.client.get(f"/v1/queues/{queue}").json()["stats"]
        assert stats["succeeded"] == total
        assert stats["delivered_last_minute"] > max(own)


def test_flow_key_and_rate_limits_hold_across_three_nodes(
    start_pushq: StartPushq, worker: Worker, database_url: str
) -> None:
    nodes = [start_pushq(PUSHQ_DATABASE_URL=database_url) for _ in range(3)]
    tag = uuid.uuid4().hex[:8]
    keyed, rated = f"keyed-{tag}", f"rated-{tag}"
    slow, counted = f"slow-{tag}", f"counted-{tag}"
    put = nodes[0].client.put(f"/v1/queues/{keyed}", json={"key_concurrency": 1})
    assert put.status_code == 200, put.text
    put = nodes[1].client.put(f"/v1/queues/{rated}", json={"rate_limit": "3/s"})
    assert put.status_code == 200, put.text
    worker.script(slow, Reply(sleep=0.2))
    jobs = [
        nodes[i % 3].enqueue(url=worker.url(slow), queue=keyed, flow_key="acme")["id"]
        for i in range(9)
    ]
    jobs += [nodes[i % 3].enqueue(url=worker.url(counted), queue=rated)["id"] for i in range(15)]
    for job_id in jobs:
        assert nodes[2].wait_state(job_id, "succeeded", timeout=90)["attempts"] == 1
    assert worker.max_in_flight[f"/{slow}"] == 1  # one of acme's jobs at a time, cluster-wide
    # one bucket of 3 a second for the cluster: no second holds more than 2N deliveries
    arrivals = sorted(d.at for d in worker.to(counted))
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1) for start in arrivals)
    assert busiest <= 6, arrivals
