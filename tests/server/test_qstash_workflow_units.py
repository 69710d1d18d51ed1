"""The pure parts of the workflow server side: the headers the SDK's own header
builder makes, read by pushq's parser, and a run's state from its jobs."""

from __future__ import annotations

from typing import Any

import pytest
from upstash_workflow.types import Step
from upstash_workflow.workflow_requests import _get_headers

from pushq.errors import BadRequest
from pushq.policy.backoff import BackoffPolicy
from pushq.server.models import JobRecord, id_floor, new_job_id
from pushq.server.qstash.headers import parse_publish
from pushq.server.qstash.workflow import Run, check, id_millis, inherit, is_step, run_ids

TOKEN = "api-token-0123456789abcdef"
URL = "https://app.example/wf"


def sdk_headers(step: Any = None, failure_url: str | None = URL) -> list[tuple[str, str]]:
    made = _get_headers(
        "false",
        "wfr_abc",
        URL,
        {"Content-Type": "application/json", "X-User": "u1"},
        step,
        3,
        0,
        None,
        failure_url,
    ).headers
    return list(made.items())


def test_a_step_as_the_sdk_sends_it_is_a_step_of_its_run() -> None:
    publish = parse_publish(sdk_headers(), token=TOKEN)
    check(publish)
    assert is_step(publish) and publish.workflow["runid"] == "wfr_abc"
    assert publish.headers == {
        "Content-Type": "application/json",
        "X-User": "u1",
        "Upstash-Workflow-Sdk-Version": "1",
    }  # the control headers are not forwarded
    assert publish.failure_callback == URL
    assert run_ids(publish) == ["wfr_abc", "wfr_abc"]  # its own and its failure call's


def test_a_call_as_the_sdk_sends_it_is_a_plain_message_with_a_workflow_callback() -> None:
    call = Step(
        step_id=2,
        step_name="fetch",
        step_type="Call",
        concurrent=1,
        call_url="https://api.example/x",
        call_method="POST",
        call_body={},
        call_headers={"X-Api": "k"},
    )
    publish = parse_publish(sdk_headers(call), token=TOKEN)
    check(publish)
    assert not is_step(publish) and publish.workflow["calltype"] == "toCallback"
    assert publish.callback == URL and publish.retries == 0
    nested = dict(publish.callback_headers)
    assert nested["Upstash-Workflow-CallType"] == "fromCallback"
    assert nested["Upstash-Forward-Upstash-Workflow-StepId"] == "2"
    assert publish.headers["X-Api"] == "k"


@pytest.mark.parametrize(
    "headers",
    [
        [("Upstash-Workflow-RunId", "has space")],
        [("Upstash-Workflow-RunId", "x" * 61)],
        [("Upstash-Workflow-RunId", "wfr_1"), ("Upstash-Workflow-CallType", "sideways")],
        [("Upstash-Callback-Workflow-RunId", "bad\tid")],
        [("Upstash-Failure-Callback-Workflow-RunId", "")],
    ],
)
def test_bad_workflow_headers(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest, match="Upstash-Workflow-"):
        check(parse_publish(headers, token=TOKEN))


@pytest.mark.parametrize("at", [0.0, 1.5, 1_767_225_600.123, 4_102_444_800.999])
def test_a_job_id_carries_its_creation_millisecond(at: float) -> None:
    # id_floor: the id of that millisecond with no random bits (new_job_id would
    # give last + 1 after another test's later clock: ids are monotonic per process)
    assert id_millis(id_floor(at)) == int(at * 1000)
    assert id_millis(id_floor(at)[:10] + "ZZZZZZZZZZZZZZZZ") == int(at * 1000)


def job(state: str) -> JobRecord:
    return JobRecord(
        id=new_job_id(1.0),
        queue="qstash-workflow",
        url=URL,
        method="POST",
        headers={},
        body=b"[]",
        state=state,  # type: ignore[arg-type]
        priority=0,
        attempts=1,
        max_attempts=1,
        backoff=BackoffPolicy(),
        timeout=30.0,
        created_at=1.0,
        run_at=1.0,
    )


@pytest.mark.parametrize(
    ("newest", "busy", "state"),
    [
        ("pending", True, "RUN_STARTED"),
        ("scheduled", True, "RUN_STARTED"),  # asleep
        ("succeeded", True, "RUN_STARTED"),  # a call or its answer is under way
        ("succeeded", False, "RUN_SUCCESS"),
        ("dead", False, "RUN_FAILED"),
        ("cancelled", False, "RUN_CANCELED"),
    ],
)
def test_a_runs_state_is_read_off_its_jobs(newest: str, busy: bool, state: str) -> None:
    assert Run("wfr_x", job(newest), busy).state == state


def test_a_step_inherits_the_runs_settings_it_leaves_unset() -> None:
    previous = {
        "retries": 0,
        "retryDelay": "1000",
        "failureCallback": URL,
        "failureCallbackHeaders": [["Upstash-Workflow-Runid", "wfr_abc"]],
    }
    bare = parse_publish([("Upstash-Workflow-RunId", "wfr_abc")], token=TOKEN)
    inherit(bare, previous)  # @upstash/workflow 1.x: the trigger's settings go on
    assert (bare.retries, bare.retry_delay, bare.failure_callback) == (0, "1000", URL)
    assert bare.failure_callback_headers == [("Upstash-Workflow-Runid", "wfr_abc")]
    own = parse_publish(sdk_headers(failure_url=None), token=TOKEN)
    own.retries = 5
    inherit(own, {"retries": 0})  # a step's own settings win
    assert own.retries == 5
