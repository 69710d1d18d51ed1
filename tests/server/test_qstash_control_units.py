"""The pure parts of /v2 schedules and flow control: Upstash-Cron, QStash rates as
pushq rates, and a schedule's stored publish made into one firing's message."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pushq.errors import BadRequest
from pushq.policy.ratelimit import parse_rate
from pushq.server.config import Settings
from pushq.server.qstash.flow_control import limits_of, rate_limit
from pushq.server.qstash.schedules import job_of_template, parse_cron
from pushq.signing import generate_secret


@pytest.mark.parametrize(
    ("text", "cron", "timezone"),
    [
        ("* * * * *", "* * * * *", "UTC"),
        ("CRON_TZ=Europe/Paris 0 9 * * 1-5", "0 9 * * 1-5", "Europe/Paris"),
        ("  CRON_TZ=America/New_York   @daily ", "@daily", "America/New_York"),
    ],
)
def test_upstash_cron(text: str, cron: str, timezone: str) -> None:
    assert parse_cron(text) == (cron, timezone)


@pytest.mark.parametrize(
    "text", [None, "", "   ", "* * * *", "CRON_TZ=Nowhere/Land * * * * *", "CRON_TZ=UTC"]
)
def test_bad_upstash_cron(text: str | None) -> None:
    with pytest.raises(BadRequest, match="Upstash-Cron"):
        parse_cron(text)


@pytest.mark.parametrize(
    ("rate", "period", "pushq"),
    [
        (10, 1, "10/s"),
        (5, 10, "30/m"),
        (1, 60, "1/m"),
        (2, 120, "1/m"),
        (1, 3600, "1/h"),
        (3, 7, "1543/h"),  # no whole count per unit: rounded per hour
        (1, 86400, "1/h"),  # slower than pushq can say: raised to one an hour
    ],
)
def test_qstash_rates_as_pushq_rates(rate: int, period: int, pushq: str) -> None:
    assert rate_limit(rate, period) == pushq
    parse_rate(pushq)  # a rate pushq's queues and keys accept


def test_flow_control_values_as_limits() -> None:
    assert limits_of({"parallelism": 3}) == {"concurrency": 3}
    assert limits_of({"rate": 5, "period": 10}) == {"rate_limit": "30/m"}
    assert limits_of({"period": 10}) == {}


def test_a_firing_is_the_stored_publish(tmp_path: Path) -> None:
    settings = Settings(api_token="t" * 20, signing_secrets=(generate_secret(),), data_dir=tmp_path)
    template = {
        "url": "http://127.0.0.1:9/hook",
        "method": "PUT",
        "queue": "qstash.reports",
        "idempotency_key": "schedule:scd_1:1800000000",
        "qstash": {
            "scheduleId": "scd_1",
            "headers": [
                ["content-type", "text/plain"],
                ["upstash-method", "PUT"],
                ["upstash-forward-x-a", "1"],
                ["upstash-retries", "2"],
                ["upstash-flow-control-key", "tenant"],
                ["upstash-flow-control-value", "parallelism=2"],
            ],
            "body": base64.b64encode(b"tick").decode(),
            "ordering": "fifo",
            "callerIp": "10.0.0.1",
        },
    }
    job = job_of_template(template, settings, 1_800_000_000.0)
    assert (job.url, job.method, job.body, job.queue) == (
        template["url"],
        "PUT",
        b"tick",
        "qstash.reports",
    )
    assert job.headers == {"Content-Type": "text/plain", "x-a": "1"}
    assert job.max_attempts == 3 and job.ordering_key == "fifo" and job.flow_key == "tenant"
    assert job.idempotency_key == "schedule:scd_1:1800000000"
    assert job.meta is not None
    assert job.meta["scheduleId"] == "scd_1" and job.meta["callerIp"] == "10.0.0.1"
