"""docs/sdk.md names every public class, method, field and function of the SDK, so the
reference cannot fall behind the code; the async classes mirror the blocking ones."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import pushq
import pushq.client
import pushq.signing
import pushq.tx
import pushq.worker

PAGE = (Path(__file__).parents[2] / "docs" / "sdk.md").read_text()
NAMESPACES = {
    "DeadLetters": "AsyncDeadLetters",
    "Queues": "AsyncQueues",
    "Schedules": "AsyncSchedules",
    "FlowKeys": "AsyncFlowKeys",
    "Topics": "AsyncTopics",
    "Endpoints": "AsyncEndpoints",
}
HEADINGS = {
    "DeadLetters": "## `client.dlq`: `DeadLetters`",
    "Queues": "## `client.queues`: `Queues`",
    "Schedules": "## `client.schedules`: `Schedules`",
    "FlowKeys": "## `client.flow_keys`: `FlowKeys`",
    "Topics": "## `client.topics`: `Topics`",
    "Endpoints": "## `client.endpoints`: `Endpoints`",
}
RESULTS = (
    "Job",
    "Attempt",
    "LastError",
    "Result",
    "Queue",
    "Schedule",
    "ScheduleRun",
    "FlowKey",
    "Topic",
    "TopicEndpoint",
    "Endpoint",
    "Page",
    "RetryPolicy",
    "tx.Enqueued",
)


def section(heading: str) -> str:
    """The text under the heading line `heading` (e.g. "## Client"), up to the next
    heading of the same or a higher level."""
    match = re.search(rf"^{re.escape(heading)}$", PAGE, re.MULTILINE)
    assert match, f"docs/sdk.md has no heading {heading!r}"
    level = len(heading) - len(heading.lstrip("#"))
    rest = PAGE[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def named(text: str, name: str) -> bool:
    """`name` appears as code: in a `code span` (`name`, `name(...)`, `x.name`) or in
    a fenced code block."""
    word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
    blocks = FENCE.findall(text)
    spans = re.findall(r"`([^`]+)`", FENCE.sub("", text))  # pairs, left to right
    return any(word.search(code) for code in [*blocks, *spans])


def public_methods(cls: type) -> list[str]:
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or isinstance(value, property | classmethod))
    ]


def public_functions(module: ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    ]


@pytest.mark.parametrize("name", pushq.__all__)
def test_every_export_of_pushq_is_on_the_page(name: str) -> None:
    assert named(PAGE, name), f"docs/sdk.md does not mention {name}"


@pytest.mark.parametrize(
    "module", [pushq.client, pushq.worker, pushq.signing, pushq.tx], ids=lambda m: m.__name__
)
def test_every_public_function_and_class_of_the_sdk_modules_is_on_the_page(
    module: ModuleType,
) -> None:
    missing = [name for name in public_functions(module) if not named(PAGE, name)]
    assert missing == [], f"docs/sdk.md does not mention {module.__name__}.{missing}"


@pytest.mark.parametrize(
    ("cls", "heading"),
    [
        (pushq.Client, "## Client"),
        (pushq.AsyncClient, "## AsyncClient"),
        *[(getattr(pushq.client, name), HEADINGS[name]) for name in NAMESPACES],
        (pushq.worker.TaskRouter, "### TaskRouter"),
        (pushq.worker.Task, "### Task"),
        (pushq.worker.JobContext, "### JobContext"),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_every_public_method_is_in_its_section(cls: type, heading: str) -> None:
    text = section(heading)
    if cls is pushq.AsyncClient:  # "the same methods as Client": only the differences here
        text += section("## Client")
    missing = [name for name in public_methods(cls) if not named(text, name)]
    assert missing == [], f"section {heading!r} of docs/sdk.md does not mention {missing}"


@pytest.mark.parametrize("name", RESULTS)
def test_every_field_of_a_result_is_listed(name: str) -> None:
    cls = pushq.tx.Enqueued if name == "tx.Enqueued" else getattr(pushq, name)
    name = cls.__name__
    fields = [f.name for f in dataclasses.fields(cls)]
    text = (
        section("## Results")
        + section("### Retries")
        + section("## Transactional enqueue: `pushq.tx`")
    )
    missing = [f for f in fields if not named(text, f)]
    assert named(text, name) and missing == [], f"{name}: {missing} not in docs/sdk.md"


def test_the_async_client_and_namespaces_mirror_the_blocking_ones() -> None:
    sync = set(public_methods(pushq.Client)) - {"close"}
    assert set(public_methods(pushq.AsyncClient)) - {"aclose"} == sync
    client = pushq.Client("http://pushq.test", token="t")
    aclient = pushq.AsyncClient("http://pushq.test", token="t")
    for blocking, asynchronous in NAMESPACES.items():
        sync_cls, async_cls = getattr(pushq.client, blocking), getattr(pushq.client, asynchronous)
        assert public_methods(sync_cls) == public_methods(async_cls)
        for method in public_methods(sync_cls):
            a = inspect.signature(getattr(sync_cls, method))
            b = inspect.signature(getattr(async_cls, method))
            assert list(a.parameters) == list(b.parameters), f"{asynchronous}.{method}"
            assert inspect.iscoroutinefunction(getattr(async_cls, method))
    assert {type(v).__name__ for v in vars(client).values()} >= set(NAMESPACES)
    assert {type(v).__name__ for v in vars(aclient).values()} >= set(NAMESPACES.values())
    client.close()


def test_every_error_class_is_in_the_hierarchy() -> None:
    tree = section("## Errors")
    errors = [
        name
        for name, value in vars(pushq.errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert errors and all(re.search(rf"\b{name}\b", tree) for name in errors), errors
