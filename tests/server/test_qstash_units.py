"""The pure parts of /v2 as tables: the retry-delay evaluator, durations, publish
headers, the JWT (checked with qstash.Receiver), the default backoff."""

from __future__ import annotations

import math

import pytest
from qstash import Receiver
from qstash.errors import SignatureError

from pushq.errors import BadRequest
from pushq.server.qstash import retry_delay
from pushq.server.qstash.durations import parse_duration
from pushq.server.qstash.headers import parse_publish
from pushq.server.qstash.hook import default_backoff
from pushq.server.qstash.keys import generate_key, sign_jwt

TOKEN = "api-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("expression", "retried", "millis"),
    [
        ("1000", 0, 1000),
        ("1000 * (1 + retried)", 2, 3000),
        ("pow(2, retried)", 3, 8),
        ("2 ^ retried * 100", 2, 400),
        ("2 ** 3", 0, 8),
        ("max(10, pow(2, retried))", 1, 10),
        ("min(5, 3, 4)", 0, 3),
        ("sqrt(16) + abs(-2) + floor(1.7) + ceil(1.2) + round(2.5)", 0, 4 + 2 + 1 + 2 + 2),
        ("exp(0)", 0, 1),
        ("-retried + 10 % 4", 1, 1),
        ("((((retried))))", 7, 7),
    ],
)
def test_retry_delay_expressions(expression: str, retried: int, millis: float) -> None:
    assert retry_delay.evaluate(retry_delay.parse(expression), retried) == millis


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "retried.__class__",
        "open('x')",
        "lambda: 1",
        "1 +",
        "(1",
        "pow(1)",
        "1 1",
        "x",
        "1; 2",
        "[1]",
        "(" * 40 + "1" + ")" * 40,
        "-" * 40 + "1",
        "1" * 300,
    ],
)
def test_retry_delay_refuses_anything_else(expression: str) -> None:
    with pytest.raises(ValueError):
        retry_delay.parse(expression)


def test_retry_delay_clamps_and_gives_up_on_bad_values() -> None:
    assert retry_delay.delay_seconds("1/0", 0, 86400) is None
    assert retry_delay.delay_seconds("pow(10, 400)", 0, 86400) is None
    assert retry_delay.delay_seconds("-5", 0, 86400) == 0.0
    assert retry_delay.delay_seconds("pow(10, 12)", 0, 86400) == 86400


def test_default_backoff_is_qstash_s() -> None:
    assert default_backoff(1) == pytest.approx(math.exp(2.5))
    assert default_backoff(4) == pytest.approx(math.exp(10))
    assert default_backoff(10) == 86400


@pytest.mark.parametrize(
    ("text", "seconds"), [("50s", 50), ("10m", 600), ("1d10h30m", 124200), ("7", 7)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1x", "s", "1d 2h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_publish_headers() -> None:
    publish = parse_publish(
        [
            ("Authorization", f"Bearer {TOKEN}"),
            ("Host", "pushq"),
            ("Content-Type", "text/plain"),
            ("upstash-method", "put"),
            ("Upstash-Forward-X-A", "1"),
            ("Upstash-Forward-x-a", "2"),  # merged case-insensitively; the last wins
            ("Upstash-Forward-Content-Length", "99"),
            ("Upstash-Forward-Upstash-Signature", "stale"),
            ("Upstash-Forward-Leak", f"Bearer {TOKEN}"),
            ("Upstash-Delay", "1m"),
            ("Upstash-Retries", "5"),
            ("Upstash-Callback", "http://cb.example/x"),
            ("Upstash-Callback-Forward-H", "v"),
            ("Upstash-Callback-Retries", "1"),
            ("Upstash-Callback-Custom", "c"),
            ("Upstash-Failure-Callback-Callback-Forward-Deep", "d"),
            ("Upstash-Content-Based-Deduplication", "True"),
            ("Upstash-Flow-Control-Key", "k"),
            ("Upstash-Flow-Control-Value", "parallelism=2, rate=10, period=1m"),
            ("Upstash-Redact-Fields", "body,header[X-A]"),
            ("Upstash-Telemetry-Sdk", "ignored"),
        ],
        token=TOKEN,
    )
    assert publish.method == "PUT"
    assert publish.headers == {"Content-Type": "text/plain", "x-a": "2"}
    assert publish.delay == 60 and publish.retries == 5
    assert publish.callback_headers == [
        ("Upstash-Forward-H", "v"),
        ("Upstash-Retries", "1"),
        ("Upstash-Forward-Custom", "c"),
    ]
    assert publish.failure_callback_headers == [("Upstash-Callback-Forward-Deep", "d")]
    assert publish.content_based_deduplication
    assert publish.flow_control == {"parallelism": 2, "rate": 10, "period": 60}
    assert publish.redact == ["body", "header[X-A]"]
    nested = parse_publish(publish.failure_callback_headers, token=TOKEN)
    assert nested.callback_headers == [("Upstash-Forward-Deep", "d")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Upstash-Method", "BREW"),
        ("Upstash-Retries", "-1"),
        ("Upstash-Retries", "many"),
        ("Upstash-Delay", "soon"),
        ("Upstash-Not-Before", "tomorrow"),
        ("Upstash-Retry-Delay", "eval('1')"),
        ("Upstash-Flow-Control-Value", "speed=3"),
        ("Upstash-Forward-Bad Name", "x"),
        ("Upstash-Forward-X", "line\nbreak"),
    ],
)
def test_bad_publish_headers(name: str, value: str) -> None:
    with pytest.raises(BadRequest):
        parse_publish([(name, value)], token=TOKEN)


def test_the_jwt_verifies_with_the_sdk_receiver() -> None:
    current, following = generate_key(), generate_key()
    assert current.startswith("sig_") and len(current) > 32
    import time

    url, body = "http://x.example/a?b=1", b'{"k": 1}'
    token = sign_jwt(current, url=url, body=body, now=time.time())
    Receiver(current, following).verify(signature=token, body=body.decode(), url=url)
    Receiver(following, current).verify(signature=token, body=body.decode())  # next key
    with pytest.raises(SignatureError):
        Receiver(following, following).verify(signature=token, body=body.decode())
    with pytest.raises(SignatureError):
        Receiver(current, following).verify(signature=token, body="other", url=url)
    with pytest.raises(SignatureError):
        Receiver(current, following).verify(signature=token, body=body.decode(), url=url + "&c")
