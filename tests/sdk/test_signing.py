"""pushq.signing: Standard Webhooks signatures, checked against the reference library."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pushq.errors import InvalidSignature
from pushq.signing import (
    DEFAULT_TOLERANCE,
    check_job_token,
    generate_secret,
    job_token_key,
    make_job_token,
    secret_key,
    sign,
    verify,
)

MSG_ID = "01HZX3Q9J5W8F6ZK2M4N7P0RST"
BODY = b'{"hello":"world","n":1}'
SECRET_A = generate_secret()
SECRET_B = generate_secret()
NOW = 1_700_000_000.0


def signed_headers(
    secrets: list[str], *, ts: int, msg_id: str = MSG_ID, body: bytes = BODY
) -> dict[str, str]:
    signature = sign([secret_key(s) for s in secrets], msg_id, ts, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


# -- interoperability with the standardwebhooks package ---------------------------------


def test_one_signature_verifies_with_standardwebhooks() -> None:
    headers = signed_headers([SECRET_A], ts=int(time.time()))
    assert Webhook(SECRET_A).verify(BODY, headers) == {"hello": "world", "n": 1}


def test_two_signatures_each_verify_alone_with_standardwebhooks() -> None:
    headers = signed_headers([SECRET_A, SECRET_B], ts=int(time.time()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET_A, SECRET_B):
        assert Webhook(secret).verify(BODY, headers) == {"hello": "world", "n": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_standardwebhooks_signature_verifies_with_pushq() -> None:
    ts = int(time.time())
    signature = Webhook(SECRET_A).sign(MSG_ID, datetime.fromtimestamp(ts, UTC), BODY.decode())
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(ts), "webhook-signature": signature}
    verify(SECRET_A, BODY, headers, now=time.time())


def test_sign_with_no_keys_is_empty() -> None:
    assert sign([], MSG_ID, int(NOW), BODY) == ""


# -- pushq's own verify -------------------------------------------------------------------


def test_verify_accepts_a_valid_signature() -> None:
    verify(SECRET_A, BODY, signed_headers([SECRET_A], ts=int(NOW)), now=NOW)


def test_verify_is_case_insensitive_about_header_names() -> None:
    headers = {k.title(): v for k, v in signed_headers([SECRET_A], ts=int(NOW)).items()}
    verify(SECRET_A, BODY, headers, now=NOW)


def test_verify_accepts_a_list_where_only_one_secret_matches() -> None:
    headers = signed_headers([SECRET_B], ts=int(NOW))
    verify([generate_secret(), SECRET_B, generate_secret()], BODY, headers, now=NOW)


def test_verify_accepts_either_signature_of_a_rotation() -> None:
    headers = signed_headers([SECRET_A, SECRET_B], ts=int(NOW))
    verify(SECRET_A, BODY, headers, now=NOW)
    verify([SECRET_B], BODY, headers, now=NOW)


@pytest.mark.parametrize("skew", [0, DEFAULT_TOLERANCE, -DEFAULT_TOLERANCE])
def test_verify_accepts_timestamps_within_tolerance(skew: int) -> None:
    verify(SECRET_A, BODY, signed_headers([SECRET_A], ts=int(NOW) + skew), now=NOW)


def _tampered(headers: dict[str, str], **changes: str) -> dict[str, str]:
    return {**headers, **{k.replace("_", "-"): v for k, v in changes.items()}}


GOOD = signed_headers([SECRET_A], ts=int(NOW))


@pytest.mark.parametrize(
    ("secrets", "body", "headers"),
    [
        pytest.param(SECRET_A, BODY + b" ", GOOD, id="tampered body"),
        pytest.param(SECRET_A, b'{"hello":"world","n":2}', GOOD, id="changed body"),
        pytest.param(SECRET_B, BODY, GOOD, id="wrong secret"),
        pytest.param([SECRET_B, generate_secret()], BODY, GOOD, id="no secret of a list"),
        pytest.param([], BODY, GOOD, id="empty secret list"),
        pytest.param(SECRET_A, BODY, _tampered(GOOD, webhook_id="other"), id="other id"),
        pytest.param(
            SECRET_A,
            BODY,
            signed_headers([SECRET_A], ts=int(NOW) - DEFAULT_TOLERANCE - 1),
            id="old timestamp",
        ),
        pytest.param(
            SECRET_A,
            BODY,
            signed_headers([SECRET_A], ts=int(NOW) + DEFAULT_TOLERANCE + 1),
            id="future timestamp",
        ),
        pytest.param(
            SECRET_A,
            BODY,
            _tampered(GOOD, webhook_timestamp=str(int(NOW) + 1)),
            id="timestamp not the signed one",
        ),
        pytest.param(
            SECRET_A, BODY, _tampered(GOOD, webhook_timestamp="soon"), id="timestamp not a number"
        ),
        pytest.param(
            SECRET_A,
            BODY,
            {k: v for k, v in GOOD.items() if k != "webhook-id"},
            id="missing webhook-id",
        ),
        pytest.param(
            SECRET_A,
            BODY,
            {k: v for k, v in GOOD.items() if k != "webhook-timestamp"},
            id="missing webhook-timestamp",
        ),
        pytest.param(
            SECRET_A,
            BODY,
            {k: v for k, v in GOOD.items() if k != "webhook-signature"},
            id="missing webhook-signature",
        ),
        pytest.param(SECRET_A, BODY, {}, id="no headers"),
        pytest.param(
            SECRET_A,
            BODY,
            _tampered(GOOD, webhook_signature=GOOD["webhook-signature"].replace("v1,", "v2,")),
            id="unknown signature version",
        ),
        pytest.param(
            SECRET_A, BODY, _tampered(GOOD, webhook_signature="garbage"), id="garbage signature"
        ),
        pytest.param(
            SECRET_A,
            BODY,
            _tampered(GOOD, webhook_signature="v1,caf\u00e9"),
            id="non-ASCII signature",
        ),
        pytest.param("not-a-secret", BODY, GOOD, id="secret without whsec_"),
    ],
)
def test_verify_rejects(secrets: str | list[str], body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature):
        verify(secrets, body, headers, now=NOW)


def test_verify_tolerance_is_configurable() -> None:
    headers = signed_headers([SECRET_A], ts=int(NOW) - 30)
    verify(SECRET_A, BODY, headers, now=NOW, tolerance=60)
    with pytest.raises(InvalidSignature):
        verify(SECRET_A, BODY, headers, now=NOW, tolerance=10)


# -- secrets ------------------------------------------------------------------------------


def test_generate_secret_is_whsec_and_32_bytes_of_base64() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(key) == 32
    assert secret_key(secret) == key
    assert generate_secret() != secret


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("", id="empty"),
        pytest.param(base64.b64encode(b"k" * 32).decode(), id="no whsec_ prefix"),
        pytest.param("WHSEC_" + base64.b64encode(b"k" * 32).decode(), id="upper-case prefix"),
        pytest.param("whsec_", id="prefix only"),
        pytest.param("whsec_" + base64.b64encode(b"k" * 16).decode(), id="16-byte key"),
        pytest.param("whsec_" + base64.b64encode(b"k" * 23).decode(), id="23-byte key"),
        pytest.param("whsec_not base64!!", id="not base64"),
    ],
)
def test_secret_key_rejects(secret: str) -> None:
    with pytest.raises(ValueError):
        secret_key(secret)


def test_secret_key_accepts_24_bytes() -> None:
    assert secret_key("whsec_" + base64.b64encode(b"k" * 24).decode()) == b"k" * 24


# -- job tokens -----------------------------------------------------------------------------

TOKEN_KEY = job_token_key("pq_" + "a" * 40)


def test_job_token_key_is_not_the_api_token() -> None:
    api_token = "pq_" + "a" * 40
    assert api_token.encode() not in TOKEN_KEY
    assert job_token_key("pq_" + "b" * 40) != TOKEN_KEY


def test_job_token_checks_for_the_same_job_attempt_and_lease() -> None:
    token = make_job_token(TOKEN_KEY, MSG_ID, 2, "lease-1")
    assert token.startswith("2.")
    assert check_job_token(TOKEN_KEY, token, MSG_ID, 2, "lease-1")


@pytest.mark.parametrize(
    ("key", "job_id", "attempt", "lease"),
    [
        pytest.param(TOKEN_KEY, "01HZX3Q9J5W8F6ZK2M4N7P0RSV", 2, "lease-1", id="other job"),
        pytest.param(TOKEN_KEY, MSG_ID, 1, "lease-1", id="earlier attempt"),
        pytest.param(TOKEN_KEY, MSG_ID, 3, "lease-1", id="later attempt"),
        pytest.param(TOKEN_KEY, MSG_ID, 2, "lease-2", id="other lease"),
        pytest.param(TOKEN_KEY, MSG_ID, 2, "", id="no lease"),
        pytest.param(job_token_key("pq_" + "b" * 40), MSG_ID, 2, "lease-1", id="other key"),
    ],
)
def test_job_token_does_not_check_for_anything_else(
    key: bytes, job_id: str, attempt: int, lease: str
) -> None:
    token = make_job_token(TOKEN_KEY, MSG_ID, 2, "lease-1")
    assert not check_job_token(key, token, job_id, attempt, lease)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("2.", id="attempt only"),
        pytest.param("garbage", id="garbage"),
        pytest.param("2.caf\u00e9", id="non-ASCII"),  # a header decoded as latin-1
    ],
)
def test_check_job_token_rejects_malformed_tokens(token: str) -> None:
    assert check_job_token(TOKEN_KEY, token, MSG_ID, 2, "lease-1") is False
