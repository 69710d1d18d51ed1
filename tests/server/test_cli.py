"""The real `pushq` command against a real server: output, --json, and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pushq.signing import generate_secret

from ..harness import TEST_TOKEN, PushqProcess, Reply, Worker, free_port, wait_until

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def pushq_cli(pushq: PushqProcess, tmp_path: Path) -> Run:
    """Run `python -m pushq ARGS` against the test server, from an empty directory."""

    def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHQ_")}
        full_env.update(PUSHQ_URL=pushq.base_url, PUSHQ_API_TOKEN=TEST_TOKEN, COLUMNS="200")
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "pushq", *args],
            env={k: v for k, v in full_env.items() if v},
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The command failed with `code` and said why in one line, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- enqueue ----------------------------------------------------------------------------------


def test_enqueue_with_every_flag_then_show_and_list(pushq_cli: Run, tmp_path: Path) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_text('{"to": "ada@example.com"}')
    job = as_json(
        pushq_cli(
            "enqueue",
            "http://127.0.0.1:9/never",
            "--body",
            f"@{body_file}",
            "--delay",
            "1h",
            "--queue",
            "cli-enqueue",
            "--header",
            "X-Tenant: acme",
            "--priority",
            "3",
            "--max-attempts",
            "2",
            "--timeout",
            "5s",
            "--method",
            "put",
            "--idempotency-key",
            "cli-key-1",
            "--unique-key",
            "cli-unique-1",
            "--permanent-status",
            "422,404",
            "--permanent-status",
            "409",
            "--json",
        )
    )
    assert job["permanent_statuses"] == [404, 409, 422]
    assert job["state"] == "scheduled" and job["queue"] == "cli-enqueue"
    assert job["body"] == {"to": "ada@example.com"} and job["headers"] == {"X-Tenant": "acme"}
    assert (job["priority"], job["max_attempts"], job["timeout"]) == (3, 2, 5.0)
    assert (job["method"], job["idempotency_key"], job["unique_key"]) == (
        "PUT",
        "cli-key-1",
        "cli-unique-1",
    )

    shown = as_json(pushq_cli("jobs", "show", job["id"], "--json"))
    assert shown["id"] == job["id"]
    listed = as_json(pushq_cli("jobs", "list", "--queue", "cli-enqueue", "--json"))
    assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["next_cursor"] is None

    table = ok(pushq_cli("jobs", "list", "--queue", "cli-enqueue"))
    assert "STATE" in table and job["id"] in table and "scheduled" in table
    details = ok(pushq_cli("jobs", "show", job["id"]))
    assert "PUT http://127.0.0.1:9/never" in details and "cli-key-1" in details
    assert "404, 409, 422" in details

    again = ok(pushq_cli("enqueue", "http://127.0.0.1:9/never", "--idempotency-key", "cli-key-1"))
    assert again.startswith(f"already enqueued {job['id']}")
    cancelled = ok(pushq_cli("jobs", "cancel", job["id"]))
    assert cancelled.strip() == f"cancelled {job['id']}"


def test_enqueue_a_jsonl_file(pushq_cli: Run, tmp_path: Path) -> None:
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text('{"n": 1}\n\n{"n": 2}\n[3]\n')
    out = ok(
        pushq_cli(
            "enqueue", "http://127.0.0.1:9/never", "--jsonl", str(bodies), "--queue", "cli-jsonl"
        )
    )
    assert out.strip() == "enqueued 3 jobs (0 already enqueued)"

    jobs = "\n".join(
        json.dumps({"url": "http://127.0.0.1:9/never", "body": i, "queue": "cli-jsonl"})
        for i in range(4)
    )
    result = as_json(pushq_cli("enqueue", "--jsonl", "-", "--delay", "1h", "--json", stdin=jobs))
    assert [j["body"] for j in result["jobs"]] == [0, 1, 2, 3]
    assert {j["state"] for j in result["jobs"]} == {"scheduled"}
    listed = as_json(pushq_cli("jobs", "list", "--queue", "cli-jsonl", "--limit", "1000", "--json"))
    assert len(listed["jobs"]) == 7


def test_a_bad_jsonl_line_sends_nothing(pushq_cli: Run, tmp_path: Path) -> None:
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"n": 1}\n{oops\n')
    result = pushq_cli(
        "enqueue", "http://127.0.0.1:9/never", "--jsonl", str(lines), "--queue", "cli-bad"
    )
    assert one_line_error(result, 2).startswith(f"pushq: {lines}:2: not JSON")
    listed = as_json(pushq_cli("jobs", "list", "--queue", "cli-bad", "--json"))
    assert listed["jobs"] == []


# -- jobs wait, attempts, and the dlq ------------------------------------------------------------


def test_wait_and_attempts(pushq_cli: Run, worker: Worker) -> None:
    worker.script("cli/ok", 200)
    job = as_json(pushq_cli("enqueue", worker.url("cli/ok"), "--body", "{}", "--json"))
    done = as_json(pushq_cli("jobs", "wait", job["id"], "--timeout", "10", "--json"))
    assert done["state"] == "succeeded"
    attempts = as_json(pushq_cli("jobs", "attempts", job["id"], "--json"))["attempts"]
    assert [a["status"] for a in attempts] == [200]
    assert "200" in ok(pushq_cli("jobs", "attempts", job["id"]))


def test_wait_exits_1_when_the_job_did_not_succeed(pushq_cli: Run, worker: Worker) -> None:
    worker.script("cli/gone", 410)
    job = as_json(pushq_cli("enqueue", worker.url("cli/gone"), "--json"))
    result = pushq_cli("jobs", "wait", job["id"], "--timeout", "10")
    assert one_line_error(result, 1) == f"pushq: job {job['id']} is dead: 410 HTTP 410 (permanent)"
    assert "dead" in result.stdout  # the job is still shown

    later = as_json(pushq_cli("enqueue", worker.url("cli/ok"), "--delay", "1h", "--json"))
    timed_out = pushq_cli("jobs", "wait", later["id"], "--timeout", "0.3")
    assert "is still scheduled after 0.3s" in one_line_error(timed_out, 1)


def test_dlq_show_retry_and_rm(pushq_cli: Run, pushq: PushqProcess, worker: Worker) -> None:
    worker.script("cli/reject", 422)
    target = worker.url("cli/reject")
    strict = ok(pushq_cli("queues", "set", "cli-dlq", "--permanent-status", "400,422"))
    assert "permanent statuses" in strict and "400, 422" in strict
    enqueued = pushq_cli(
        "enqueue", target, "--jsonl", "-", "--queue", "cli-dlq", "--json", stdin="1\n2\n3\n"
    )
    ids = [job["id"] for job in as_json(enqueued)["jobs"]]
    for job_id in ids:
        pushq.wait_state(job_id, "dead")
    dead = as_json(pushq_cli("dlq", "list", "--queue", "cli-dlq", "--json"))
    assert {j["id"] for j in dead["jobs"]} == set(ids)
    assert all(j["last_error"]["status"] == 422 for j in dead["jobs"])
    assert ids[0] in ok(pushq_cli("dlq", "list", "--queue", "cli-dlq"))
    shown = ok(pushq_cli("dlq", "show", ids[0]))
    assert "422" in shown and "STATUS" in shown  # the job, then its attempt log

    assert ok(pushq_cli("dlq", "retry", ids[0])).strip().startswith(f"redrove {ids[0]}")
    pushq.wait_state(ids[0], "dead")
    cleared = as_json(pushq_cli("queues", "set", "cli-dlq", "--no-permanent-statuses", "--json"))
    assert cleared["permanent_statuses"] == []
    bad = pushq_cli("enqueue", target, "--permanent-status", "teapot")
    assert bad.returncode == 2 and "not a list of HTTP status codes" in bad.stderr
    assert ok(pushq_cli("dlq", "rm", ids[1])).strip() == "deleted 1 dead job"
    gone = pushq_cli("dlq", "show", ids[1])
    assert one_line_error(gone, 1) == f"pushq: 404 not_found: no dead job {ids[1]}"

    redriven = as_json(pushq_cli("dlq", "retry", "--all", "--queue", "cli-dlq", "--json"))
    assert redriven == {"retried": 2}


# -- exit codes ------------------------------------------------------------------------------------


def test_api_errors_exit_1_with_one_line(pushq_cli: Run) -> None:
    missing = pushq_cli("jobs", "show", "NOSUCHJOB")
    assert one_line_error(missing, 1) == "pushq: 404 not_found: no job NOSUCHJOB"
    bad_token = pushq_cli("jobs", "list", "--token", "not-the-token-1234")
    assert one_line_error(bad_token, 1).startswith("pushq: 401 unauthorized: ")
    bad_url = pushq_cli("enqueue", "ftp://example.com/x")
    assert one_line_error(bad_url, 1).startswith("pushq: 400 ")


def test_an_unreachable_server_exits_1(pushq_cli: Run) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = pushq_cli("jobs", "list", "--url", url)
    assert one_line_error(result, 1) == (
        f"pushq: cannot reach {url}: connection refused "
        "(is `pushq serve` running there? check --url / PUSHQ_URL)"
    )


def test_a_url_that_is_not_pushq_exits_1(pushq_cli: Run, worker: Worker) -> None:
    result = pushq_cli("jobs", "show", "X", "--url", worker.url("/"))  # answers 200 "ok"
    line = one_line_error(result, 1)
    assert line.startswith(f"pushq: no pushq at {worker.url('')[:-1]} (200 bad_response: ")
    assert line.endswith("check --url / PUSHQ_URL")
    worker.script("v1/jobs", 404)  # another web server, its own 404
    line = one_line_error(pushq_cli("jobs", "list", "--url", worker.url("/")), 1)
    assert line.startswith("pushq: no pushq at ") and "404 http_404" in line


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["enqueue", "http://x.test/", "--body", "{nope"], {}, "pushq: --body is not valid JSON"),
        (["enqueue", "http://x.test/", "--body", "@missing.json"], {}, "pushq: --body: cannot"),
        (["enqueue", "http://x.test/", "--header", "no-colon"], {}, "pushq: --header 'no-colon'"),
        (["enqueue"], {}, "pushq: give the job's URL, or --jsonl FILE"),
        (["dlq", "retry"], {}, "pushq: dlq retry: give dead job ids, or --all"),
        (["dlq", "retry", "X", "--rate", "5/s"], {}, "pushq: dlq retry: --dry-run and --rate go"),
        (["dlq", "rm"], {}, "pushq: dlq rm: give dead job ids, or --all"),
        (
            ["dlq", "rm", "X", "--dry-run"],
            {},
            "pushq: dlq rm: --dry-run goes with --all or filters",
        ),
        (["jobs", "cancel"], {}, "pushq: jobs cancel: give job ids, or filters"),
        (["jobs", "cancel", "X", "--tag", "t"], {}, "pushq: jobs cancel: give job ids, or filters"),
        (["jobs", "list"], {"PUSHQ_API_TOKEN": ""}, "pushq: no API token"),
        (["jobs", "list", "--url", "nonsense://x"], {}, "pushq: --url/PUSHQ_URL"),
        (["serve", "--targets", "internal"], {}, "pushq: --targets='internal' is invalid"),
        (["serve"], {"PUSHQ_TARGETS_DENY": "a..b"}, "pushq: PUSHQ_TARGETS_DENY='a..b' is invalid"),
        (["jobs"], {}, "usage: pushq jobs"),  # argparse's own usage errors
        (["jobs", "show"], {}, "usage: pushq jobs show"),
    ],
)
def test_usage_and_configuration_errors_exit_2(
    pushq_cli: Run, args: list[str], env: dict[str, str], message: str
) -> None:
    result = pushq_cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    if message.startswith("usage"):
        assert result.stderr.startswith(message)
    else:
        assert one_line_error(result, 2).startswith(message)


def test_the_token_comes_from_a_local_data_dir(
    pushq_cli: Run, pushq: PushqProcess, tmp_path: Path
) -> None:
    data_dir = tmp_path / "pushq-data"
    data_dir.mkdir(mode=0o700)
    for name, value in (("api-token", TEST_TOKEN), ("signing-secret", generate_secret())):
        path = data_dir / name
        path.write_text(value)
        path.chmod(0o600)
    listed = pushq_cli("jobs", "list", "--limit", "1", "--json", env={"PUSHQ_API_TOKEN": ""})
    assert "jobs" in as_json(listed)


# -- queues and schedules ------------------------------------------------------------------


def test_queues_and_schedules(pushq_cli: Run, pushq: PushqProcess) -> None:
    probe = pushq.client.get("/v1/queues")
    if probe.status_code == 404:
        pytest.skip("the server has no /v1/queues yet (issue 4)")
    queue = as_json(
        pushq_cli(
            "queues", "set", "cli-flow", "--concurrency", "2", "--rate-limit", "5/s", "--json"
        )
    )
    assert queue["concurrency"] == 2 and queue["rate_limit"] == "5/s"
    assert ok(pushq_cli("queues", "pause", "cli-flow")).strip() == "paused cli-flow"
    assert as_json(pushq_cli("queues", "show", "cli-flow", "--json"))["paused"] is True
    assert ok(pushq_cli("queues", "resume", "cli-flow")).strip() == "resumed cli-flow"
    assert "cli-flow" in ok(pushq_cli("queues", "list"))

    if pushq.client.get("/v1/schedules").status_code == 404:
        pytest.skip("the server has no /v1/schedules yet (issue 4)")
    schedule = as_json(
        pushq_cli("schedules", "set", "cli-nightly", "0 3 * * *", "http://x.test/r", "--json")
    )
    assert schedule["cron"] == "0 3 * * *"
    assert "cli-nightly" in ok(pushq_cli("schedules", "list"))
    assert ok(pushq_cli("schedules", "rm", "cli-nightly")).strip() == "removed cli-nightly"
    one_line_error(pushq_cli("schedules", "show", "cli-nightly"), 1)


# -- operators' actions (issue 14) ---------------------------------------------------------


def test_a_missing_action_prints_the_groups_help(pushq_cli: Run) -> None:
    for group, action in (("jobs", "replay"), ("queues", "purge"), ("schedules", "trigger")):
        result = pushq_cli(group)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"usage: pushq {group}")
        assert action in result.stderr  # the actions are listed, with what they do
        assert result.stderr.strip().endswith(f"pushq {group}: give an action (see the list above)")


def test_json_goes_before_or_after_the_command(pushq_cli: Run) -> None:
    before = as_json(pushq_cli("--json", "jobs", "list", "--limit", "1"))
    after = as_json(pushq_cli("jobs", "list", "--limit", "1", "--json"))
    assert "jobs" in before and "jobs" in after


def test_jobs_retry_replay_rm_and_cancel_by_filter(
    pushq_cli: Run, pushq: PushqProcess, worker: Worker
) -> None:
    tag = f"cli-{uuid.uuid4().hex[:6]}"
    later = as_json(
        pushq_cli("enqueue", worker.url("cli/ok"), "--delay", "1h", "--tag", tag, "--json")
    )
    assert later["tags"] == [tag]
    assert ok(pushq_cli("jobs", "retry", later["id"])).startswith(f"{later['id']} runs now")
    pushq.wait_state(later["id"], "succeeded")
    replayed = ok(pushq_cli("jobs", "replay", later["id"])).split()
    assert replayed[:2] == ["replayed", later["id"]]
    copy = pushq.wait_state(replayed[-1], "succeeded")
    assert copy["replay_of"] == later["id"]
    assert ok(pushq_cli("jobs", "rm", later["id"])).strip() == "removed 1 job"
    assert one_line_error(pushq_cli("jobs", "show", later["id"]), 1).endswith(
        "no job " + later["id"]
    )
    conflict = pushq_cli("jobs", "retry", copy["id"])
    assert "409" in one_line_error(conflict, 1) and "succeeded" in conflict.stderr

    waiting = [
        as_json(pushq_cli("enqueue", worker.url("cli/ok"), "--delay", "1h", "--tag", tag, "--json"))
        for _ in range(2)
    ]
    listed = as_json(pushq_cli("jobs", "list", "--tag", tag, "--state", "scheduled", "--json"))
    assert [job["id"] for job in listed["jobs"]] == [w["id"] for w in reversed(waiting)]
    assert waiting[0]["id"] in ok(pushq_cli("jobs", "list", "--tag", tag, "--since", "1h"))
    assert ok(pushq_cli("jobs", "cancel", "--tag", tag)).strip() == "cancelled 2 jobs"
    assert as_json(pushq_cli("jobs", "cancel", "--tag", tag, "--json")) == {"cancelled": 0}


def test_show_prints_the_endpoints_response(
    pushq_cli: Run, pushq: PushqProcess, worker: Worker
) -> None:
    path = f"cli/declined-{uuid.uuid4().hex[:6]}"
    worker.script(path, Reply(402, b'{"error": "card declined", "code": "card_declined"}'))
    job = as_json(pushq_cli("enqueue", worker.url(path), "--max-attempts", "1", "--json"))
    pushq.wait_state(job["id"], "dead")
    for command in (("jobs", "show"), ("dlq", "show")):
        shown = ok(pushq_cli(*command, job["id"]))
        said = next(line for line in shown.splitlines() if line.startswith("endpoint said"))
        assert said.split(None, 2)[2] == "card declined"
        assert '402 {"error": "card declined", "code": "card_declined"}' in shown
    listing = ok(pushq_cli("dlq", "list", "--limit", "50"))
    line = next(line for line in listing.splitlines() if line.startswith(job["id"]))
    assert worker.url(path) in line and line.endswith("402 card declined")
    attempts = ok(pushq_cli("jobs", "attempts", job["id"]))
    assert attempts.splitlines()[0].split()[:2] == ["RUN", "#"] and "first" in attempts


def test_dlq_retry_by_filter_with_dry_run_and_rate(
    pushq_cli: Run, pushq: PushqProcess, worker: Worker
) -> None:
    queue, path = f"cli-redrive-{uuid.uuid4().hex[:6]}", "cli/unavailable"
    worker.script(path, 503)
    ids = [
        as_json(
            pushq_cli(
                "enqueue", worker.url(path), "--queue", queue, "--max-attempts", "1", "--json"
            )
        )["id"]
        for _ in range(3)
    ]
    for job_id in ids:
        pushq.wait_state(job_id, "dead")
    filters = ("--queue", queue, "--status", "503", "--url-prefix", worker.url("cli/"))
    assert ok(pushq_cli("dlq", "retry", *filters, "--dry-run")).strip() == "3 dead jobs match"
    assert as_json(pushq_cli("dlq", "retry", "--queue", queue, "--dry-run", "--json")) == {
        "matched": 3
    }
    ok(pushq_cli("queues", "pause", queue))
    redrove = ok(pushq_cli("dlq", "retry", *filters, "--since", "1h", "--rate", "10/s"))
    assert redrove.strip() == "redrove 3 dead jobs, spread at 10/s"
    bad = pushq_cli("dlq", "retry", "--all", "--rate", "often")
    assert "400" in one_line_error(bad, 1) and "rate_limit" in bad.stderr


def test_dlq_list_and_rm_by_filter(pushq_cli: Run, pushq: PushqProcess, worker: Worker) -> None:
    queue, tag, path = (
        f"cli-rm-{uuid.uuid4().hex[:6]}",
        f"customer-{uuid.uuid4().hex[:6]}",
        "cli/gone",
    )
    worker.script(path, 500)
    tagged = [
        as_json(
            pushq_cli(
                "enqueue",
                worker.url(path),
                "--queue",
                queue,
                "--max-attempts",
                "1",
                "--tag",
                tag,
                "--json",
            )
        )["id"]
        for _ in range(2)
    ]
    other = as_json(
        pushq_cli("enqueue", worker.url(path), "--queue", queue, "--max-attempts", "1", "--json")
    )["id"]
    for job_id in [*tagged, other]:
        pushq.wait_state(job_id, "dead")
    listed = as_json(pushq_cli("dlq", "list", "--queue", queue, "--tag", tag, "--json"))
    assert sorted(job["id"] for job in listed["jobs"]) == sorted(tagged)
    assert ok(pushq_cli("dlq", "rm", "--tag", tag, "--dry-run")).strip() == "2 dead jobs match"
    assert (
        ok(pushq_cli("dlq", "rm", "--queue", queue, "--tag", tag)).strip() == "deleted 2 dead jobs"
    )
    left = as_json(pushq_cli("dlq", "list", "--queue", queue, "--json"))
    assert [job["id"] for job in left["jobs"]] == [other]
    assert as_json(pushq_cli("dlq", "rm", "--queue", queue, "--json")) == {"deleted": 1}


def test_queues_purge_and_rm(pushq_cli: Run, worker: Worker) -> None:
    queue = f"cli-purge-{uuid.uuid4().hex[:6]}"
    for _ in range(2):
        ok(pushq_cli("enqueue", worker.url("cli/ok"), "--queue", queue, "--delay", "1h"))
    refused = pushq_cli("queues", "rm", queue)
    assert "409" in one_line_error(refused, 1) and "2 unfinished" in refused.stderr
    assert ok(pushq_cli("queues", "purge", queue, "--state", "pending")).strip() == (
        f"cancelled 0 jobs of {queue}"
    )
    assert as_json(pushq_cli("queues", "purge", queue, "--json")) == {"cancelled": 2}
    assert ok(pushq_cli("queues", "rm", queue)).strip() == f"removed queue {queue}"
    ok(pushq_cli("enqueue", worker.url("cli/ok"), "--queue", queue, "--delay", "1h"))
    assert ok(pushq_cli("queues", "rm", queue, "--force")).strip() == f"removed queue {queue}"


def test_schedules_pause_resume_trigger(
    pushq_cli: Run, pushq: PushqProcess, worker: Worker
) -> None:
    name = f"cli-sched-{uuid.uuid4().hex[:6]}"
    ok(pushq_cli("schedules", "set", name, "@hourly", worker.url("cli/ok")))
    assert ok(pushq_cli("schedules", "pause", name)).strip() == f"paused schedule {name}"
    assert "yes" in ok(pushq_cli("schedules", "list"))
    triggered = ok(pushq_cli("schedules", "trigger", name)).split()
    assert triggered[:2] == ["triggered", f"{name}:"]
    pushq.wait_state(triggered[-1], "succeeded")
    shown = ok(pushq_cli("schedules", "show", name))
    assert "paused" in shown and "RECENT RUN" in shown and triggered[-1] in shown
    assert ok(pushq_cli("schedules", "resume", name)).startswith(f"resumed schedule {name}")
    bad = pushq_cli("schedules", "set", name, "0 0 * * 9", worker.url("cli/ok"))
    assert one_line_error(bad, 1).endswith("cron: day-of-week: 9 is out of range 0-6")
    ok(pushq_cli("schedules", "rm", name))


# -- flow keys, topics, endpoints (issue 13 part 8) ------------------------------------------


def rows(output: str) -> list[list[str]]:
    """A table's rows below its header, split on the two-space column gaps."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()[1:]]


def test_flow_keys_set_pause_show_and_resume(
    pushq_cli: Run, pushq: PushqProcess, worker: Worker
) -> None:
    key = f"cli-key-{uuid.uuid4().hex[:6]}"
    shown = as_json(pushq_cli("flow-keys", "set", key, "--concurrency", "3", "--json"))
    assert (shown["key"], shown["concurrency"], shown["rate_limit"]) == (key, 3, None)
    table = ok(pushq_cli("flow-keys", "set", key, "--rate-limit", "20/s"))
    assert "concurrency  3" in table and "rate limit   20/s" in table
    assert ok(pushq_cli("flow-keys", "pause", key)).strip() == f"paused flow key {key} (0 waiting)"
    held = as_json(pushq_cli("enqueue", worker.url("cli/ok"), "--flow-key", key, "--json"))
    wait_until(lambda: as_json(pushq_cli("--json", "flow-keys", "show", key))["waiting"] == 1)
    listed = ok(pushq_cli("flow-keys", "list"))
    assert listed.splitlines()[0].split() == [
        "KEY", "PAUSED", "CONCURRENCY", "RATE", "IN", "FLIGHT", "WAITING"
    ]  # fmt: skip
    assert [key, "yes", "3", "20/s", "0", "1"] in rows(listed)
    cleared = as_json(pushq_cli("flow-keys", "set", key, "--no-concurrency", "--json"))
    assert cleared["concurrency"] is None and cleared["rate_limit"] == "20/s"
    assert ok(pushq_cli("flow-keys", "resume", key)).startswith(f"resumed flow key {key}")
    pushq.wait_state(held["id"], "succeeded")
    bad = pushq_cli("flow-keys", "set", key, "--rate-limit", "often")
    assert "400" in one_line_error(bad, 1) and "rate_limit" in bad.stderr
    nothing = pushq_cli("flow-keys", "set", key)
    assert one_line_error(nothing, 2).startswith("pushq: flow-keys set: give --concurrency")


def test_topics_set_publish_show_and_rm(
    pushq_cli: Run, pushq: PushqProcess, worker: Worker, tmp_path: Path
) -> None:
    topic, tag = f"cli-topic-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    extra = tmp_path / "endpoints.json"
    extra.write_text(
        json.dumps([{"url": worker.url(f"cli/{tag}/crm"), "name": "crm", "headers": {"X-T": "c"}}])
    )
    shown = ok(
        pushq_cli("topics", "set", topic, worker.url(f"cli/{tag}/a"), "--endpoints", f"@{extra}")
    )
    assert f"name     {topic}" in shown
    assert ["crm", worker.url(f"cli/{tag}/crm"), "X-T: c"] in rows(shown.split("\n\n")[1])
    assert [topic, "2"] in [row[:2] for row in rows(ok(pushq_cli("topics", "list")))]

    published = ok(pushq_cli("topics", "publish", topic, "--body", '{"n": 1}', "--tag", tag))
    lines = published.splitlines()
    assert lines[0] == f"published to {topic}: 2 jobs"
    ids = [row[0] for row in rows("\n".join(lines[1:]))]
    assert len(ids) == 2
    for job_id in ids:
        assert pushq.wait_state(job_id, "succeeded")["topic"] == topic
    assert worker.wait_for(f"cli/{tag}/crm")[0].headers["x-t"] == "c"
    again = as_json(
        pushq_cli("--json", "topics", "publish", topic, "--idempotency-key", tag, "--delay", "1h")
    )
    repeat = as_json(
        pushq_cli("topics", "publish", topic, "--idempotency-key", tag, "--delay", "1h", "--json")
    )
    assert [j["id"] for j in repeat["jobs"]] == [j["id"] for j in again["jobs"]]
    assert all(j["deduplicated"] for j in repeat["jobs"])

    assert ok(pushq_cli("topics", "rm", topic)).strip() == f"removed topic {topic}"
    missing = pushq_cli("topics", "show", topic)
    assert one_line_error(missing, 1) == f"pushq: 404 not_found: no topic {topic}"
    empty = pushq_cli("topics", "set", topic)
    assert one_line_error(empty, 2).startswith("pushq: topics set: give the endpoints")
    not_a_list = pushq_cli("topics", "set", topic, "--endpoints", '{"url": "x"}')
    assert one_line_error(not_a_list, 2).startswith("pushq: --endpoints: a JSON list")


def test_endpoints_list_and_show(pushq_cli: Run, pushq: PushqProcess, worker: Worker) -> None:
    done = as_json(pushq_cli("enqueue", worker.url("cli/ok"), "--json"))
    pushq.wait_state(done["id"], "succeeded")
    origin = f"http://127.0.0.1:{worker.port}"
    listed = ok(pushq_cli("endpoints", "list"))
    assert listed.splitlines()[0].startswith("ORIGIN")
    [row] = [row for row in rows(listed) if row[0] == origin]
    assert row[1] == "closed"
    shown = ok(pushq_cli("endpoints", "show", worker.url("cli/ok")))
    assert f"origin             {origin}" in shown and "state              closed" in shown
    assert "failures in a row  0" in shown
    as_data = as_json(pushq_cli("--json", "endpoints", "show", origin))
    assert as_data["origin"] == origin and as_data["state"] == "closed"
    assert origin in [
        e["origin"] for e in as_json(pushq_cli("endpoints", "list", "--json"))["endpoints"]
    ]
    unseen = f"http://127.0.0.1:{free_port()}"
    assert one_line_error(pushq_cli("endpoints", "show", unseen), 1).startswith(
        f"pushq: 404 not_found: no deliveries to {unseen}"
    )


@pytest.mark.parametrize("group", ["flow-keys", "topics", "endpoints"])
def test_a_group_without_an_action_lists_its_actions(pushq_cli: Run, group: str) -> None:
    result = pushq_cli(group)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"usage: pushq {group}")
    assert "list" in result.stderr and result.stderr.rstrip().endswith(
        f"pushq {group}: give an action (see the list above)"
    )


def test_a_wrong_port_is_one_line_even_when_it_serves_html(pushq_cli: Run, worker: Worker) -> None:
    page = b"<!DOCTYPE html>\n<html>\n<head><title>Not Found</title></head>\n<body></body>\n</html>"
    worker.script("v1/flow-keys", Reply(404, page, {"content-type": "text/html"}))
    line = one_line_error(pushq_cli("flow-keys", "list", "--url", worker.url("/")), 1)
    assert line.startswith(f"pushq: no pushq at {worker.url('')[:-1]} (404 http_404: HTTP 404: ")
    assert line.endswith("a wrong port? check --url / PUSHQ_URL")


def test_without_a_token_the_cli_names_both_places(pushq_cli: Run, tmp_path: Path) -> None:
    result = pushq_cli("topics", "list", env={"PUSHQ_API_TOKEN": ""})
    line = one_line_error(result, 2)
    assert line.startswith("pushq: no API token: pass --token or set PUSHQ_API_TOKEN")
    assert "pushq-data/api-token does not exist" in line
