"""pushq.policy.classify: the response table of DESIGN.md (Delivery), as a table."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from pushq.policy.classify import Classification, classify_response

NOW = 1_700_000_000.0
DAY = 86400.0


def _http_date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


def _classify(
    status: int,
    headers: dict[str, str] | None = None,
    permanent: Collection[int] = (),
    cap: float = DAY,
) -> Classification:
    return classify_response(
        status, headers or {}, permanent_statuses=permanent, retry_after_cap=cap, now=NOW
    )


def retry(status: int, after: float | None = None) -> Classification:
    return Classification("retry", retry_after=after, reason=f"HTTP {status}")


def permanent(status: int) -> Classification:
    return Classification("dead", reason=f"HTTP {status} (permanent)")


def refused(status: int) -> Classification:
    return Classification("dead", reason=f"HTTP {status} with pushq-retry: false")


SUCCEEDED = Classification("succeeded")
ASYNC = Classification("async")

TABLE: list[tuple[int, dict[str, str], tuple[int, ...], Classification]] = [
    # 2xx succeed, whatever else the response says
    (200, {}, (), SUCCEEDED),
    (201, {}, (), SUCCEEDED),
    (204, {}, (), SUCCEEDED),
    (200, {"pushq-retry": "false"}, (), SUCCEEDED),
    (200, {"retry-after": "60"}, (), SUCCEEDED),
    # 202 with pushq-async: true waits for /complete; only a 202 does
    (202, {"pushq-async": "true"}, (), ASYNC),
    (202, {"pushq-async": " TRUE "}, (), ASYNC),
    (202, {"pushq-async": "false"}, (), SUCCEEDED),
    (202, {}, (), SUCCEEDED),
    (200, {"pushq-async": "true"}, (), SUCCEEDED),
    (204, {"pushq-async": "true"}, (), SUCCEEDED),
    # every 4xx is retried by default: a 401 during a secret rotation, a 404 mid-deploy
    (400, {}, (), retry(400)),
    (401, {}, (), retry(401)),
    (403, {}, (), retry(403)),
    (404, {}, (), retry(404)),
    (405, {}, (), retry(405)),
    (408, {}, (), retry(408)),
    (409, {}, (), retry(409)),
    (413, {}, (), retry(413)),
    (422, {}, (), retry(422)),
    (425, {}, (), retry(425)),
    (429, {}, (), retry(429)),
    # 5xx and 3xx (redirects are never followed) are retried
    (500, {}, (), retry(500)),
    (502, {}, (), retry(502)),
    (503, {}, (), retry(503)),
    (504, {}, (), retry(504)),
    (301, {}, (), retry(301)),
    (302, {}, (), retry(302)),
    (308, {}, (), retry(308)),
    # 410 Gone is permanent, with or without a list
    (410, {}, (), permanent(410)),
    (410, {"retry-after": "60"}, (), permanent(410)),
    (410, {}, (422,), permanent(410)),
    # a status in permanent_statuses is permanent; others are still retried
    (422, {}, (422,), permanent(422)),
    (400, {}, (400, 404, 422), permanent(400)),
    (404, {}, (400, 404, 422), permanent(404)),
    (500, {}, (500,), permanent(500)),
    (302, {}, (302,), permanent(302)),
    (401, {}, (400, 404, 422), retry(401)),
    (503, {}, (422,), retry(503)),
    (422, {"retry-after": "60"}, (422,), permanent(422)),  # no wait for a dead job
    # the list never turns a success into a failure (the API refuses 2xx in it anyway)
    (200, {}, (200,), SUCCEEDED),
    # pushq-retry: false ends any non-2xx, even a 5xx or a 429 with Retry-After
    (500, {"pushq-retry": "false"}, (), refused(500)),
    (503, {"pushq-retry": "False"}, (), refused(503)),
    (429, {"pushq-retry": " FALSE ", "retry-after": "60"}, (), refused(429)),
    (401, {"pushq-retry": "false"}, (), refused(401)),
    (302, {"pushq-retry": "false"}, (), refused(302)),
    (410, {"pushq-retry": "false"}, (), refused(410)),
    (422, {"pushq-retry": "false"}, (422,), refused(422)),
    # any other value of pushq-retry changes nothing
    (500, {"pushq-retry": "true"}, (), retry(500)),
    (500, {"pushq-retry": "no"}, (), retry(500)),
    (500, {"pushq-retry": ""}, (), retry(500)),
    # Retry-After sets the earliest next attempt: seconds or an HTTP date
    (429, {"retry-after": "120"}, (), retry(429, 120.0)),
    (503, {"retry-after": "120"}, (), retry(503, 120.0)),
    (404, {"retry-after": "30"}, (), retry(404, 30.0)),
    (302, {"retry-after": "30"}, (), retry(302, 30.0)),
    (503, {"retry-after": "0"}, (), retry(503, 0.0)),
    (503, {"retry-after": "999999"}, (), retry(503, DAY)),  # capped
    (429, {"retry-after": _http_date(NOW + 200)}, (), retry(429, 200.0)),
    (429, {"retry-after": _http_date(NOW - 600)}, (), retry(429, 0.0)),  # already past
    (503, {"retry-after": "not a date"}, (), retry(503)),
    (503, {"retry-after": ""}, (), retry(503)),
]


@pytest.mark.parametrize(
    ("status", "headers", "permanent_statuses", "expected"),
    TABLE,
    ids=[f"{s}-{'-'.join(f'{k}={v}' for k, v in h.items())}-{list(p)}" for s, h, p, _ in TABLE],
)
def test_response_table(
    status: int,
    headers: dict[str, str],
    permanent_statuses: tuple[int, ...],
    expected: Classification,
) -> None:
    assert _classify(status, headers, permanent_statuses) == expected


@pytest.mark.parametrize(("cap", "expected"), [(3600.0, 3600.0), (60.0, 60.0), (DAY, 7200.0)])
def test_retry_after_is_capped(cap: float, expected: float) -> None:
    assert _classify(503, {"retry-after": "7200"}, cap=cap).retry_after == expected


def test_the_list_may_be_any_collection() -> None:
    assert _classify(422, permanent=frozenset({422})).kind == "dead"
    assert _classify(422, permanent=[422]).kind == "dead"
