"""/v2 schedules, URL groups, flow control and the DLQ's bulk verbs, end to end with the
official QStash SDK against a real pushq, every delivery verified by the SDK's own
`qstash.Receiver` (the fixtures of test_qstash.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from qstash import QStash
from qstash.errors import QStashError
from qstash.log import LogState

from ..harness import TEST_TOKEN, PushqProcess, wait_until
from ..pg import new_schema, postgres_url
from .test_qstash import FAST, QStashReceiver, qstash, receiver, unique

__all__ = ["qstash", "receiver"]  # the fixtures, shared with test_qstash.py
AUTH = {"authorization": f"Bearer {TEST_TOKEN}"}


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pushq(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PushqProcess]:
    """One pushq per store for this module's tests (the schedules, topics and flow keys
    they use are store verbs), on PostgreSQL in a schema of its own."""
    env, drop = {}, None
    if request.param == "postgresql":
        url, schema = postgres_url(), new_schema()  # skips without PUSHQ_TEST_POSTGRES_URL
        asyncio.run(_admin(url, f'CREATE SCHEMA "{schema}"'))
        env["PUSHQ_DATABASE_URL"] = f"{url}?search_path={schema}"
        drop = (url, f'DROP SCHEMA "{schema}" CASCADE')
    server = PushqProcess(tmp_path_factory.mktemp("pushq"), env=env)
    try:
        server.start()
        yield server
    finally:
        server.close()
        if drop is not None:
            asyncio.run(_admin(*drop))


# -- schedules -------------------------------------------------------------------------


def test_schedule_create_get_list_pause_resume_delete(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    path, queue = unique("scheduled"), unique("sched-q")
    schedule_id = qstash.schedule.create_json(
        destination=receiver.url(path) + "?from=cron",
        cron="CRON_TZ=Europe/Paris 0 9 * * 1-5",
        body={"report": "daily"},
        headers={"X-Report": "yes"},
        retries=5,
        retry_delay="1000 * retried",
        callback=receiver.url("sched-cb"),
        timeout=30,
        delay=10,
        queue=queue,
        label="reports",
        flow_control={"key": "reports", "parallelism": 2},
    )
    assert schedule_id.startswith("scd_")
    got = qstash.schedule.get(schedule_id)
    assert got.destination == receiver.url(path) + "?from=cron"
    assert got.cron == "CRON_TZ=Europe/Paris 0 9 * * 1-5"
    assert got.method == "POST" and got.retries == 5 and got.paused is False
    assert got.body == '{"report": "daily"}'
    assert got.headers is not None and {k.lower(): v for k, v in got.headers.items()}[
        "x-report"
    ] == ["yes"]
    assert got.callback == receiver.url("sched-cb") and got.timeout == 30 and got.delay == 10
    assert got.queue == queue and got.label == "reports"
    assert got.retry_delay_expression == "1000 * retried"
    assert got.flow_control is not None and got.flow_control.parallelism == 2
    assert got.next_schedule_time is not None and got.next_schedule_time > got.created_at
    assert schedule_id in [s.schedule_id for s in qstash.schedule.list()]

    # a pushq schedule underneath, in its own timezone, delivering to the same place
    v1 = pushq.client.get(f"/v1/schedules/{schedule_id}").json()
    assert v1["timezone"] == "Europe/Paris" and v1["cron"] == "0 9 * * 1-5"
    assert v1["job"]["url"] == receiver.url(path) + "?from=cron"

    qstash.schedule.pause(schedule_id)  # PATCH, as both SDKs send it
    assert qstash.schedule.get(schedule_id).paused is True
    resumed = httpx.post(f"{pushq.base_url}/v2/schedules/{schedule_id}/resume", headers=AUTH)
    assert resumed.status_code == 200  # the OpenAPI's POST form
    assert qstash.schedule.get(schedule_id).paused is False

    # upsert by id: the same schedule, new settings, the first creation time kept
    again = qstash.schedule.create(
        destination=receiver.url(path), cron="*/5 * * * *", schedule_id=schedule_id
    )
    assert again == schedule_id
    replaced = qstash.schedule.get(schedule_id)
    assert replaced.cron == "*/5 * * * *" and replaced.retries == 3 and replaced.queue is None
    assert replaced.created_at == got.created_at

    hidden = qstash.schedule.create(
        destination=receiver.url(path),
        cron="0 0 1 1 *",
        body="secret body",
        headers={"Authorization": "Bearer s3cret", "X-Seen": "yes"},
        redact={"body": True, "header": ["Authorization"]},
    )
    shown = qstash.schedule.get(hidden)
    assert shown.body == "REDACTED" and shown.headers is not None
    assert {k.lower(): v for k, v in shown.headers.items()} == {
        "authorization": ["REDACTED"],
        "x-seen": ["yes"],
    }
    qstash.schedule.delete(hidden)

    qstash.schedule.delete(schedule_id)
    with pytest.raises(QStashError, match="404"):
        qstash.schedule.get(schedule_id)
    with pytest.raises(QStashError, match="404"):
        qstash.schedule.delete(schedule_id)


def test_bad_schedules_get_qstash_errors(qstash: QStash, pushq: PushqProcess) -> None:
    for headers in (
        {},  # no Upstash-Cron
        {"Upstash-Cron": "every minute"},
        {"Upstash-Cron": "61 * * * *"},
        {"Upstash-Cron": "CRON_TZ=Mars/Olympus * * * * *"},
        {"Upstash-Cron": "* * * * *", "Upstash-Schedule-Id": "bad id!"},
        {"Upstash-Cron": "* * * * *", "Upstash-Retry-Delay": "__import__('os')"},
        {"Upstash-Cron": "0 0 30 2 *"},
    ):
        response = httpx.post(
            f"{pushq.base_url}/v2/schedules/http://127.0.0.1:1/x", headers={**AUTH, **headers}
        )
        assert response.status_code == 400, (headers, response.text)
        assert isinstance(response.json()["error"], str)
    to_group = httpx.post(
        f"{pushq.base_url}/v2/schedules/some-group", headers={**AUTH, "Upstash-Cron": "* * * * *"}
    )
    assert to_group.status_code == 400 and "URL" in to_group.json()["error"]
    # a /v1 schedule is not a /v2 one, and /v2 does not overwrite it
    pushq.client.put(
        "/v1/schedules/v1-only", json={"cron": "@daily", "job": {"url": "http://127.0.0.1:1/"}}
    ).raise_for_status()
    with pytest.raises(QStashError, match="404"):
        qstash.schedule.get("v1-only")
    with pytest.raises(QStashError, match="409"):
        qstash.schedule.create(
            destination="http://127.0.0.1:1/x", cron="* * * * *", schedule_id="v1-only"
        )


def test_a_triggered_firing_is_a_signed_v2_message(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    """/v1's trigger fires a /v2 schedule now: the same message a cron firing makes."""
    path, queue = unique("triggered"), unique("trigger-q")
    schedule_id = qstash.schedule.create_json(
        destination=receiver.url(path),
        cron="0 0 1 1 *",
        body={"fired": True},
        headers={"X-Fired": "by trigger"},
        queue=queue,
        flow_control={"key": path, "parallelism": 4},
    )
    assert pushq.client.get(f"/v1/flow-keys/{path}").json()["concurrency"] == 4
    fired = pushq.client.post(f"/v1/schedules/{schedule_id}/trigger")
    assert fired.status_code == 201, fired.text
    assert fired.json()["schedule"] == schedule_id and fired.json()["flow_key"] == path
    [got] = receiver.wait_for(path)
    assert got.verified is None, got.verified
    assert json.loads(got.body) == {"fired": True} and got.headers["x-fired"] == "by trigger"
    assert got.headers["upstash-schedule-id"] == schedule_id
    assert got.headers["upstash-message-id"] == fired.json()["id"]
    assert pushq.wait_state(fired.json()["id"], "succeeded")["queue"] == f"qstash.{queue}"
    logged = qstash.log.list(filter={"schedule_id": schedule_id}).logs
    assert {log.message_id for log in logged} == {fired.json()["id"]}
    assert {log.schedule_id for log in logged} == {schedule_id}
    qstash.schedule.delete(schedule_id)


@pytest.mark.heavy
def test_a_schedule_fires_with_its_publish_headers(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    """Waits for a real cron minute (up to ~60 s): one signed message per firing."""
    path = unique("every-minute")
    schedule_id = qstash.schedule.create(
        destination=receiver.url(path),
        cron="* * * * *",
        body="tick",
        content_type="text/plain",
        method="PUT",
        headers={"X-Tick": "1"},
        retries=1,
    )
    [got] = receiver.wait_for(path, timeout=90)
    assert got.verified is None, got.verified
    assert got.method == "PUT" and got.body == b"tick" and got.headers["x-tick"] == "1"
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["upstash-schedule-id"] == schedule_id
    message_id = got.headers["upstash-message-id"]
    job = pushq.wait_state(message_id, "succeeded")
    assert job["schedule"] == schedule_id and job["max_attempts"] == 2

    def last_states() -> dict[str, object] | None:
        return qstash.schedule.get(schedule_id).last_schedule_states  # type: ignore[return-value]

    wait_until(lambda: (last_states() or {}).get(message_id) is not None)
    assert str((last_states() or {})[message_id]) == "ScheduleState.SUCCESS"
    assert qstash.schedule.get(schedule_id).last_schedule_time is not None
    qstash.schedule.delete(schedule_id)


# -- URL groups ----------------------------------------------------------------------


def test_url_groups_fan_out_and_answer_an_array(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    group, a, b = unique("group"), unique("ep-a"), unique("ep-b")
    qstash.url_group.upsert_endpoints(
        group, [{"url": receiver.url(a), "name": "a"}, {"url": receiver.url(b)}]
    )
    info = qstash.url_group.get(group)
    assert info.name == group and [e.url for e in info.endpoints] == [
        receiver.url(a),
        receiver.url(b),
    ]
    assert info.endpoints[0].name == "a" and info.endpoints[1].name is None
    assert group in [g.name for g in qstash.url_group.list()]
    assert pushq.client.get(f"/v1/topics/{group}").status_code == 200  # a pushq topic

    sent = qstash.message.publish_json(url_group=group, body={"fan": "out"})
    assert isinstance(sent, list) and len(sent) == 2  # the SDK parsed an array
    assert {s.url for s in sent} == {receiver.url(a), receiver.url(b)}
    [got_a] = receiver.wait_for(a)
    [got_b] = receiver.wait_for(b)
    assert got_a.verified is None and got_b.verified is None
    assert got_a.headers["upstash-topic-name"] == group
    assert json.loads(got_b.body) == {"fan": "out"}
    message = pushq.wait_state(got_a.headers["upstash-message-id"], "succeeded")
    assert message["topic"] == group
    logged = qstash.log.list(filter={"url_group": group}).logs
    assert {log.message_id for log in logged} == {s.message_id for s in sent}
    assert {log.endpoint for log in logged} == {"a", None}

    # a deduplication id holds per endpoint: the second publish is a duplicate of each
    first = qstash.message.publish(url_group=group, body="once", deduplication_id=group)
    second = qstash.message.publish(url_group=group, body="once", deduplication_id=group)
    assert isinstance(first, list) and isinstance(second, list)
    assert [m.message_id for m in second] == [m.message_id for m in first]
    assert all(m.deduplicated for m in second) and len({m.message_id for m in first}) == 2

    # batch: a URL-group item answers a nested array
    batch = qstash.message.batch_json(
        [{"url_group": group, "body": {"n": 1}}, {"url": receiver.url(a), "body": {"n": 2}}]
    )
    assert isinstance(batch[0], list) and len(batch[0]) == 2 and not isinstance(batch[1], list)

    # upsert renames by url, removal by name or url; the emptied group is deleted
    qstash.url_group.upsert_endpoints(group, [{"url": receiver.url(b), "name": "b"}])
    assert [e.name for e in qstash.url_group.get(group).endpoints] == ["a", "b"]
    qstash.url_group.remove_endpoints(group, [{"name": "a"}])
    assert [e.url for e in qstash.url_group.get(group).endpoints] == [receiver.url(b)]
    qstash.url_group.remove_endpoints(group, [{"url": receiver.url(b)}])
    with pytest.raises(QStashError, match="404"):
        qstash.url_group.get(group)

    other = unique("group")
    qstash.url_group.upsert_endpoints(other, [{"url": receiver.url(a)}])
    qstash.url_group.delete(other)
    with pytest.raises(QStashError, match="404"):
        qstash.url_group.delete(other)
    with pytest.raises(QStashError, match="404"):
        qstash.message.publish(url_group=other, body="nobody")


def test_bad_url_groups_get_qstash_errors(qstash: QStash, pushq: PushqProcess) -> None:
    url = f"{pushq.base_url}/v2/topics/g1/endpoints"
    for body in (b"", b"[]", b'{"endpoints": []}', b'{"endpoints": [{"name": "x"}]}'):
        response = httpx.post(url, headers=AUTH, content=body)
        assert response.status_code == 400, (body, response.text)
        assert isinstance(response.json()["error"], str)
    for endpoint in ({"url": "ftp://x"}, {"url": "http://169.254.169.254/"}, {"url": 3}):
        response = httpx.post(url, headers=AUTH, json={"endpoints": [endpoint]})
        assert response.status_code == 400, (endpoint, response.text)
    bad_name = httpx.post(
        f"{pushq.base_url}/v2/topics/bad name!/endpoints",
        headers=AUTH,
        json={"endpoints": [{"url": "http://127.0.0.1:1/"}]},
    )
    assert bad_name.status_code == 400
    with pytest.raises(QStashError, match="404"):
        qstash.url_group.remove_endpoints("never-made", [{"name": "x"}])


# -- flow control --------------------------------------------------------------------


def test_flow_control_keys_are_pushq_flow_keys(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    key, path = unique("tenant"), unique("flow")
    sent = qstash.message.publish_json(
        url=receiver.url(path),
        body={"k": 1},
        flow_control={"key": key, "parallelism": 3, "rate": 5, "period": 10},
    )
    receiver.wait_for(path)
    job = pushq.wait_state(sent.message_id, "succeeded")  # type: ignore[union-attr]
    assert job["flow_key"] == key
    v1 = pushq.client.get(f"/v1/flow-keys/{key}").json()
    assert v1["concurrency"] == 3 and v1["rate_limit"] == "30/m"  # 5 per 10 s
    info = qstash.flow_control.get(key)
    assert info.key == key and info.parallelism_max == 3 and info.rate_max == 30
    assert info.rate_period == 60 and info.is_paused is False

    qstash.flow_control.pause(key)
    held = qstash.message.publish_json(
        url=receiver.url(path), body={"k": 2}, flow_control={"key": key, "parallelism": 3}
    )
    wait_until(lambda: qstash.flow_control.get(key).wait_list_size == 1)
    assert qstash.flow_control.get(key).is_paused
    assert pushq.job(held.message_id)["state"] != "succeeded"  # type: ignore[union-attr]
    qstash.flow_control.resume(key)
    receiver.wait_for(path, 2)

    qstash.flow_control.pin(key, {"parallelism": 1})
    qstash.message.publish(
        url=receiver.url(path), body="x", flow_control={"key": key, "parallelism": 9}
    )
    pinned = qstash.flow_control.get(key)
    assert pinned.parallelism_max == 1 and pinned.is_pinned_parallelism  # the pin wins
    qstash.flow_control.unpin(key, {"parallelism": True})
    assert not qstash.flow_control.get(key).is_pinned_parallelism
    qstash.flow_control.reset_rate(key)
    assert qstash.flow_control.get(key).rate_max == 30
    overall = qstash.flow_control.get_global_parallelism()
    assert overall.parallelism_max >= 1 and overall.parallelism_count >= 0
    for bad in ("/v2/flowControl/k/pin", "/v2/flowControl/k/pin?parallelism=0"):
        response = httpx.post(pushq.base_url + bad, headers=AUTH)
        assert response.status_code == 400 and isinstance(response.json()["error"], str)


# -- the DLQ: bulk delete and retry -------------------------------------------------


def _dead(qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess, path: str) -> list[str]:
    ids = []
    for n in range(3):
        sent = qstash.message.publish(
            url=receiver.url(path), body=f"dead {n}", retries=0, label=path
        )
        ids.append(sent.message_id)  # type: ignore[union-attr]
    for message_id in ids:
        pushq.wait_state(message_id, "dead")
    return ids


def test_dlq_bulk_delete_and_retry(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    path = unique("dead")
    receiver.script(path, 500)
    ids = _dead(qstash, receiver, pushq, path)
    assert qstash.dlq.delete_many([ids[0], "no-such-id"]) == 1  # the Python SDK's body form
    # JS's forms: retry by id in the query, then by filter (label) a page at a time
    one = httpx.post(f"{pushq.base_url}/v2/dlq/retry", params={"dlqIds": ids[1]}, headers=AUTH)
    assert one.status_code == 200 and one.json() == {"responses": [{"messageId": ids[1]}]}
    receiver.script(path, 200)
    pushq.wait_state(ids[1], "succeeded")
    by_filter = httpx.post(
        f"{pushq.base_url}/v2/dlq/retry", params={"label": path, "count": 10}, headers=AUTH
    )
    assert by_filter.json() == {"responses": [{"messageId": ids[2]}]}
    pushq.wait_state(ids[2], "succeeded")
    verified = [r.verified for r in receiver.to(path)]
    assert len(verified) == 5 and set(verified) == {None}

    # bulk delete by filter, a page at a time: the cursor leads on while more may match
    path = unique("dead-again")
    receiver.script(path, 500)
    again = _dead(qstash, receiver, pushq, path)
    first = httpx.delete(
        f"{pushq.base_url}/v2/dlq", params={"label": path, "count": 2}, headers=AUTH
    ).json()
    assert first["deleted"] == 2 and first["cursor"]
    rest = httpx.delete(
        f"{pushq.base_url}/v2/dlq",
        params={"label": path, "count": 2, "cursor": first["cursor"]},
        headers=AUTH,
    ).json()
    assert rest == {"deleted": 1}
    assert not [m for m in qstash.dlq.list(filter={"label": path}).messages]
    assert all(pushq.client.get(f"/v1/dlq/{i}").status_code == 404 for i in again)
    bad = httpx.post(f"{pushq.base_url}/v2/dlq/retry", params={"count": "lots"}, headers=AUTH)
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)


def test_events_filter_by_state_and_ids(qstash: QStash, receiver: QStashReceiver) -> None:
    path = unique("events")
    receiver.script(path, 500, 200)
    sent = qstash.message.publish(url=receiver.url(path), retry_delay=FAST)
    other = qstash.message.publish(url=receiver.url(path), delay=3600)
    receiver.wait_for(path, 2)
    message_id = sent.message_id  # type: ignore[union-attr]

    def delivered() -> list[str]:
        logs = qstash.log.list(filter={"message_id": message_id, "state": LogState.DELIVERED}).logs
        return [log.message_id for log in logs]

    wait_until(lambda: delivered() == [message_id])
    qstash.message.cancel(other.message_id)  # type: ignore[union-attr]
    wait_until(
        lambda: (
            [
                log.state.value
                for log in qstash.log.list(filter={"message_id": other.message_id}).logs  # type: ignore[union-attr]
            ][0]
            == "CANCELED"
        )
    )


def test_bulk_cancel_by_filter_cancels_only_what_matches(
    qstash: QStash, receiver: QStashReceiver, pushq: PushqProcess
) -> None:
    """The JS SDK's messages.cancel({filter}) sends its filters in the query."""
    path, a, b, c = unique("later"), unique("a"), unique("b"), unique("c")
    sent = {
        label: [
            qstash.message.publish(url=receiver.url(path), delay=3600, label=label).message_id  # type: ignore[union-attr]
            for _ in range(2)
        ]
        for label in (a, b, c)
    }
    one = httpx.delete(f"{pushq.base_url}/v2/messages", params={"label": a}, headers=AUTH)
    assert one.json() == {"cancelled": 2}
    assert {pushq.job(i)["state"] for i in sent[a]} == {"cancelled"}
    assert {pushq.job(i)["state"] for i in sent[b] + sent[c]} == {"scheduled"}
    # a filter given twice matches either value; host and path match the destination
    both = httpx.delete(
        f"{pushq.base_url}/v2/messages",
        params=[("label", b), ("label", c), ("path", f"/{path}"), ("host", "nowhere:1")],
        headers=AUTH,
    )
    assert both.json() == {"cancelled": 0}
    both = httpx.delete(
        f"{pushq.base_url}/v2/messages",
        params=[("label", b), ("label", c), ("path", f"/{path}")],
        headers=AUTH,
    )
    assert both.json() == {"cancelled": 4}


def test_bad_control_requests_get_4xx_qstash_errors(pushq: PushqProcess) -> None:
    url = "/v2/publish/http://127.0.0.1:1/x"
    cron = {"Upstash-Cron": "* * * * *"}
    for method, path, headers, body, status in (
        (
            "POST",
            "/v2/schedules/http://127.0.0.1:1/x",
            {**cron, "Upstash-Queue-Name": "a b"},
            b"",
            400,
        ),
        ("PATCH", "/v2/schedules/never-made/pause", {}, b"", 404),
        ("POST", "/v2/publish/bad name", {}, b"", 400),
        ("POST", "/v2/enqueue/q/never-made-group", {}, b"", 404),
        ("POST", "/v2/batch", {}, b'[{"destination": "never-made-group"}]', 404),
        ("GET", "/v2/flowControl/" + "k" * 300, {}, b"", 400),
        ("POST", "/v2/flowControl/k/pin?rate=5&period=0", {}, b"", 400),
        ("POST", "/v2/flowControl/k/unpin?rate=maybe", {}, b"", 400),
        (
            "POST",
            url,
            {"Upstash-Flow-Control-Key": "k", "Upstash-Flow-Control-Value": "rate=0"},
            b"",
            400,
        ),
        (
            "POST",
            url,
            {"Upstash-Flow-Control-Key": "k", "Upstash-Flow-Control-Value": "period=0s"},
            b"",
            400,
        ),
        ("DELETE", "/v2/dlq", {}, b"[1, 2]", 400),  # not "every entry"
        ("DELETE", "/v2/dlq?cursor=garbage", {}, b"", 400),
        ("POST", "/v2/dlq/retry", {}, b'{"dlqIds": "x"}', 400),
        ("DELETE", "/v2/messages?fromDate=yesterday", {}, b"", 400),
    ):
        response = httpx.request(
            method, pushq.base_url + path, headers={**AUTH, **headers}, content=body
        )
        assert response.status_code == status, (method, path, response.text)
        assert isinstance(response.json()["error"], str)
