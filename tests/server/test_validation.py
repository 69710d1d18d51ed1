"""Job requests as the API validates them: JobRequest through validate(), and durations."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from pushq.errors import BadRequest
from pushq.policy.durations import parse_duration
from pushq.policy.ratelimit import RATE_PATTERN
from pushq.server.api.common import validate
from pushq.server.api.schemas import RUN_AT_PATTERN, JobRequest, RedriveRequest

URL = "https://worker.example/hook"


def job(**fields: Any) -> dict[str, Any]:
    return {"url": URL, **fields}


# -- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (1.5, 1.5),
        ("30", 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5m", 90.0),
        ("250ms", 0.25),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "",
        "5 minutes",
        "1w",
        "-5s",
        "1.5.5s",
        "s",
        -1,
        -0.5,
        True,
        False,
        None,
        [],
        {"seconds": 1},
        math.nan,
        math.inf,
    ],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# -- valid requests -------------------------------------------------------------------


def test_minimal_job_gets_the_defaults() -> None:
    request = validate(JobRequest, {"url": URL})
    assert request.url == URL
    assert request.method == "POST"
    assert request.queue == "default"
    assert request.headers == {}
    assert request.body is None
    assert request.priority == 0
    assert request.delay is None
    assert request.run_at is None
    assert request.max_attempts is None
    assert request.backoff is None
    assert request.timeout is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), (1.5, 1.5), (10, 10.0)],
)
def test_durations_become_seconds(value: object, seconds: float) -> None:
    request = validate(JobRequest, job(delay=value, backoff={"base": value, "max": value}))
    assert request.delay == seconds
    assert request.backoff is not None
    assert request.backoff.base == seconds
    assert request.backoff.max == seconds


@pytest.mark.parametrize(("value", "seconds"), [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0)])
def test_timeout_durations_become_seconds(value: object, seconds: float) -> None:
    assert validate(JobRequest, job(timeout=value)).timeout == seconds


def test_timeout_over_an_hour_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="^timeout: "):
        validate(JobRequest, job(timeout="2h"))


@pytest.mark.parametrize(
    ("method", "expected"),
    [("post", "POST"), ("Put", "PUT"), ("get", "GET"), ("DELETE", "DELETE"), ("patch", "PATCH")],
)
def test_method_is_case_insensitive(method: str, expected: str) -> None:
    assert validate(JobRequest, job(method=method)).method == expected


def test_a_full_job_is_accepted() -> None:
    request = validate(
        JobRequest,
        job(
            body={"any": ["json", 1, None]},
            headers={"X-Tenant": "acme", "Authorization": "Bearer w", "X-Tab": "a\tb"},
            queue="emails.v2_high-priority",
            run_at="2030-01-01T09:00:00+02:00",
            priority=-5,
            max_attempts=1,
            backoff={"base": "10s", "max": "1h", "jitter": False},
            timeout="2m",
            idempotency_key="order-42",
            unique_key="user-7",
        ),
    )
    assert request.run_at == datetime(2030, 1, 1, 7, 0, tzinfo=UTC)
    assert request.headers["X-Tenant"] == "acme"
    assert request.backoff is not None and request.backoff.jitter is False
    assert request.queue == "emails.v2_high-priority"


def test_a_header_name_in_two_cases_is_two_fields_of_one_header() -> None:
    # JSON Schema cannot compare names ignoring case, so the API does not either; HTTP
    # sends both values, as it does a repeated field.
    request = validate(JobRequest, job(headers={"X-A": "1", "x-a": "2"}))
    assert request.headers == {"X-A": "1", "x-a": "2"}


def test_queue_name_of_64_characters_is_accepted() -> None:
    assert validate(JobRequest, job(queue="q" * 64)).queue == "q" * 64


def test_run_at_with_an_offset_other_than_utc_is_accepted() -> None:
    when = datetime(2030, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert validate(JobRequest, job(run_at=when.isoformat())).run_at == when


# -- invalid requests: BadRequest naming the field -------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param({}, "url", id="url missing"),
        pytest.param({"url": None}, "url", id="url null"),
        pytest.param({"url": 42}, "url", id="url not a string"),
        pytest.param(job(url="ftp://example.com/file"), "url", id="url ftp"),
        pytest.param(job(url="example.com/hook"), "url", id="url without scheme"),
        pytest.param(job(url="http://"), "url", id="url without host"),
        pytest.param(job(url="http:///path"), "url", id="url with empty host"),
        pytest.param(job(url="http://exa mple.com/"), "url", id="url with a space in the host"),
        pytest.param(job(url="http://example.com/a b"), "url", id="url with a space in the path"),
        pytest.param(job(url="http://example.com/a\nb"), "url", id="url with a newline"),
        pytest.param(job(url="http://example.com/a\tb"), "url", id="url with a tab"),
        pytest.param(
            job(url="https://example.com/" + "a" * 2030), "url", id="url over 2048 characters"
        ),
        pytest.param(job(url="http://example.com:99999/"), "url", id="url with a bad port"),
        pytest.param(job(queue="a/b"), "queue", id="queue with a slash"),
        pytest.param(job(queue="q" * 65), "queue", id="queue of 65 characters"),
        pytest.param(job(queue=""), "queue", id="queue empty"),
        pytest.param(job(queue="emails\n"), "queue", id="queue with a newline"),
        pytest.param(job(priority="5"), "priority", id="priority as a string"),
        pytest.param(job(priority=True), "priority", id="priority as a bool"),
        pytest.param(job(priority=1.5), "priority", id="priority as a float"),
        pytest.param(job(max_attempts=0), "max_attempts", id="max_attempts zero"),
        pytest.param(job(max_attempts=-1), "max_attempts", id="max_attempts negative"),
        pytest.param(job(max_attempts="3"), "max_attempts", id="max_attempts as a string"),
        pytest.param(job(delay=-1), "delay", id="delay negative"),
        pytest.param(job(delay="-5s"), "delay", id="delay negative string"),
        pytest.param(job(delay="abc"), "delay", id="delay not a duration"),
        pytest.param(job(delay=True), "delay", id="delay as a bool"),
        pytest.param(job(run_at="2030-01-01T09:00:00"), "run_at", id="run_at naive"),
        pytest.param(job(run_at="next tuesday"), "run_at", id="run_at not a time"),
        pytest.param(job(timeout=0), "timeout", id="timeout zero"),
        pytest.param(job(timeout="0s"), "timeout", id="timeout zero string"),
        pytest.param(job(timeout=-1), "timeout", id="timeout negative"),
        pytest.param(job(headers={"X-Foo": "a\r\nb"}), "headers", id="header value with CRLF"),
        pytest.param(job(headers={"X-Foo": "a\x00b"}), "headers", id="header value with NUL"),
        pytest.param(job(headers={"X Foo": "bar"}), "headers", id="header name with a space"),
        pytest.param(job(headers={"X-Foo:": "bar"}), "headers", id="header name with a colon"),
        pytest.param(job(headers={"": "bar"}), "headers", id="header name empty"),
        pytest.param(job(headers={"X-Foo": 1}), "headers", id="header value not a string"),
        pytest.param(job(headers=["X-Foo: bar"]), "headers", id="headers not an object"),
        pytest.param(job(headers={"webhook-id": "x"}), "headers", id="override webhook-id"),
        pytest.param(
            job(headers={"Webhook-Signature": "v1,x"}), "headers", id="override webhook-signature"
        ),
        pytest.param(job(headers={"pushq-attempt": "1"}), "headers", id="override pushq-attempt"),
        pytest.param(job(headers={"PUSHQ-QUEUE": "x"}), "headers", id="override pushq-queue"),
        pytest.param(job(headers={"User-Agent": "me"}), "headers", id="override user-agent"),
        pytest.param(job(headers={"connection": "close"}), "headers", id="hop-by-hop connection"),
        pytest.param(job(headers={"Transfer-Encoding": "chunked"}), "headers", id="hop-by-hop te"),
        pytest.param(job(headers={"Host": "evil.example"}), "headers", id="host header"),
        # A value pushq could never send (httpx encodes header values as ASCII).
        pytest.param(job(headers={"X-Name": "Jos\u00e9"}), "headers", id="non-ASCII header"),
        pytest.param(job(delay_seconds=5), "delay_seconds", id="unknown field"),
        pytest.param(job(backoff={"base": -1}), "backoff.base", id="backoff base negative"),
        pytest.param(job(backoff={"base": 0}), "backoff.base", id="backoff base zero"),
        pytest.param(job(backoff={"max": "soon"}), "backoff.max", id="backoff max bad"),
        pytest.param(job(backoff={"jitter": "yes"}), "backoff.jitter", id="backoff jitter bad"),
        pytest.param(job(backoff={"factor": 2}), "backoff.factor", id="backoff unknown field"),
        pytest.param(job(method="TRACE"), "method", id="method TRACE"),
        pytest.param(job(method="CONNECT"), "method", id="method CONNECT"),
        pytest.param(job(method=1), "method", id="method not a string"),
        pytest.param(job(idempotency_key=""), "idempotency_key", id="idempotency_key empty"),
        pytest.param(
            job(idempotency_key="k" * 256), "idempotency_key", id="idempotency_key too long"
        ),
        pytest.param(job(unique_key="a\nb"), "unique_key", id="unique_key with a newline"),
    ],
)
def test_bad_request_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as error:
        validate(JobRequest, data)
    message = error.value.message
    assert message.startswith(f"{field}: ") or message.startswith(f"{field}."), message
    assert error.value.status == 400


def test_delay_and_run_at_together_is_a_bad_request_naming_both() -> None:
    with pytest.raises(BadRequest) as error:
        validate(JobRequest, job(delay="5m", run_at="2030-01-01T09:00:00Z"))
    assert "delay" in error.value.message
    assert "run_at" in error.value.message


def test_validate_prefix_locates_the_field_inside_a_batch() -> None:
    with pytest.raises(BadRequest) as error:
        validate(JobRequest, job(priority="5"), prefix="jobs[2]")
    assert error.value.message.startswith("jobs[2].priority: ")


@pytest.mark.parametrize("data", [None, [], "url", 42])
def test_a_request_that_is_not_an_object_is_a_bad_request(data: Any) -> None:
    with pytest.raises(BadRequest):
        validate(JobRequest, data)


# -- the run_at pattern /openapi.json states --------------------------------------------


def test_run_at_pattern_accepts_exactly_the_dates_that_exist() -> None:
    """A fuzzer draws from the stated pattern: 1970-11-31 must fail the pattern, not
    pass it and then fail the parser (a 400 for a request the schema allows)."""
    pattern = re.compile(RUN_AT_PATTERN)
    for year in range(1970, 2100):
        for month in range(1, 13):
            for day in range(1, 32):
                text = f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z"
                try:
                    date(year, month, day)
                    exists = True
                except ValueError:
                    exists = False
                assert bool(pattern.fullmatch(text)) == exists, text


def test_a_redrive_rate_limit_states_its_pattern() -> None:
    schema = RedriveRequest.model_json_schema()["properties"]["rate_limit"]
    assert {"type": "string", "pattern": RATE_PATTERN} in schema["anyOf"]
