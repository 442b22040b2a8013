"""The retry helper, the platform-answer sorting and the email reply's headers (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from connectors.errors import SendError
from connectors.outbound.http import retry_after, status_error
from connectors.outbound.smtp import compose
from hubcore.account_rules import check_account
from hubcore.errors import InvalidField
from hubcore.outbound import AddressRefused, OutboundPolicy
from hubcore.retry import Backoff, retry
from schemas import OutboundMessage
from schemas.base import utc_now
from tests import platform_payloads as p


async def test_retry_waits_as_asked_and_stops_on_a_final_error() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    answers: list[Exception | str] = [
        SendError("429", retriable=True, retry_after=7),
        SendError("503", retriable=True),
        "ok",
    ]

    async def call(attempt: int) -> str:
        answer = answers[attempt - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    backoff = Backoff(attempts=5, first=1.0, max_delay=5.0)
    assert await retry(call, backoff, sleep=sleep) == "ok"
    assert waits[0] == 5.0  # Retry-After, capped by max_delay
    assert 1.0 <= waits[1] <= 2.0  # 2 s after the second failure, jitter halves at most

    calls = 0

    async def final(_: int) -> str:
        nonlocal calls
        calls += 1
        raise SendError("401 Unauthorized")

    with pytest.raises(SendError, match="401"):
        await retry(final, backoff, sleep=sleep)
    assert calls == 1


async def test_retry_gives_up_after_its_attempts() -> None:
    calls = 0

    async def busy(_: int) -> str:
        nonlocal calls
        calls += 1
        raise SendError("503", retriable=True)

    async def sleep(_: float) -> None:
        return None

    with pytest.raises(SendError):
        await retry(busy, Backoff(attempts=3), sleep=sleep)
    assert calls == 3


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://x"))


def test_platform_answers_sorted() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert retry_after(_response(429, {"Retry-After": "3"})) == 3.0
    assert 25 <= (retry_after(_response(429, {"Retry-After": later})) or 0) <= 30
    assert retry_after(_response(429), body_seconds=4) == 4.0
    assert retry_after(_response(429, {"Retry-After": "soon"})) is None
    limited = status_error("x", _response(429, {"Retry-After": "2"}), "slow down")
    assert limited.retriable and limited.retry_after == 2.0
    assert status_error("x", _response(502), "bad gateway").retriable
    refused = status_error("x", _response(400), "chat not found")
    assert not refused.retriable and not refused.ambiguous
    assert "400 chat not found" in str(refused)


def test_an_email_reply_is_threaded_under_the_message_answered() -> None:
    account = p.account("email", "support@example.com")
    msg = OutboundMessage(
        message_id="msg_1",
        client_message_id="c",
        user_id="alice",
        platform="email",
        account_id="acc_1",
        conversation_id="conv_1",
        external_conversation_id="<root@x>",
        reply_to="<root@x>",
        recipient="ada@example.com",
        subject="Re: Hello",
        text="Thanks!",
        issued_at=utc_now(),
    )
    mail = compose(account, msg, "support@example.com")
    assert mail["Subject"] == "Re: Hello"
    assert mail["In-Reply-To"] == "<root@x>"
    assert mail["References"] == "<root@x>"
    assert mail["Message-ID"] == "<msg_1@hub.invalid>"


def test_sending_credentials_are_checked_like_the_rest() -> None:
    creds, _ = check_account(
        "whatsapp", "1065", {"appSecret": "a", "verifyToken": "v", "accessToken": "t"}, None
    )
    assert creds["accessToken"] == "t"
    with pytest.raises(InvalidField, match=r"credentials\.accessToken"):
        check_account(
            "whatsapp", "1065", {"appSecret": "a", "verifyToken": "v", "accessToken": ""}, None
        )
    imap = {"host": "imap.example.com", "username": "u", "password": "p"}
    email, _ = check_account(
        "email", "me@example.com", {**imap, "smtpHost": "smtp.example.com"}, None
    )
    assert (email["smtpPort"], email["smtpTls"]) == (465, True)
    with pytest.raises(InvalidField, match=r"credentials\.smtpHost"):
        check_account("email", "me@example.com", {**imap, "smtpPort": "587"}, None)
    for bad in ("ftp://x.example.com/", "https://user:pw@x.example.com/", "hooks/no-host"):
        with pytest.raises(InvalidField, match=r"credentials\.callbackUrl"):
            check_account("generic", "crm", {"secret": "s", "callbackUrl": bad}, None)


def test_callback_urls_go_only_to_public_hosts_over_https() -> None:
    table = {"hooks.example.com": ["93.184.215.14"], "inside.example.com": ["10.0.0.7"]}

    def resolver(host: str, port: int) -> list[str]:
        return table.get(host, [])

    policy = OutboundPolicy(resolver=resolver)
    assert policy.url_address("https://hooks.example.com/in") == "93.184.215.14"
    with pytest.raises(AddressRefused, match="private"):
        policy.url_address("https://inside.example.com/in")
    with pytest.raises(AddressRefused, match="plaintext"):
        policy.url_address("http://hooks.example.com/in")
    with pytest.raises(AddressRefused, match="loopback"):
        policy.url_address("https://127.0.0.1:8080/in")
