"""Replies out through each platform's API: real Kafka, real store, local API stand-ins."""

from __future__ import annotations

from email import message_from_bytes

import pytest

from hubcore.mongo import SEND_LEDGER
from tests.integration.connectors.harness import eventually
from tests.integration.connectors.sending_rig import Rig, outbound, smtp_account
from tests.platform_payloads import hub_signature

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("platform", ["telegram", "whatsapp", "slack", "generic"])
async def test_a_reply_reaches_the_platform_api_and_comes_back_sent(
    platform: str, rig: Rig
) -> None:
    fake = rig.fake
    account = await rig.account(platform)
    msg = outbound(account, reply_to="55" if platform != "generic" else None)
    await rig.produce(msg)
    [result] = await rig.results()
    [call] = fake.of(platform)
    assert call.method == "POST"
    if platform == "telegram":
        assert call.path == f"/telegram/bot{fake.telegram_token}/sendMessage"
        assert call.body["chat_id"] == "777"
        assert call.body["text"] == msg.text
        assert call.body["reply_parameters"]["message_id"] == 55
    elif platform == "whatsapp":
        assert call.path == f"/whatsapp/{account.external_id}/messages"
        assert call.headers["authorization"] == f"Bearer {fake.access_token}"
        assert call.body["messaging_product"] == "whatsapp"
        assert call.body["to"] == "16505551234"
        assert call.body["type"] == "text"
        assert call.body["text"]["body"] == msg.text
        assert call.body["context"] == {"message_id": "55"}
    elif platform == "slack":
        assert call.path == "/slack/chat.postMessage"
        assert call.headers["authorization"] == f"Bearer {fake.slack_token}"
        assert call.body == {"channel": "C0123", "text": msg.text, "thread_ts": "55"}
    else:
        assert call.path == "/callback"
        secret = account.credentials["secret"]
        expected = hub_signature(secret, call.raw)["X-Hub-Signature-256"]
        assert call.headers["x-hub-signature-256"] == expected
        assert call.body["messageId"] == msg.message_id
        assert call.body["text"] == msg.text
    assert result.status == "sent"
    assert result.message_id == msg.message_id
    assert result.user_id == account.user_id
    assert result.platform_message_id
    assert result.attempts == 1


async def test_the_same_reply_three_times_is_one_call(rig: Rig) -> None:
    fake = rig.fake
    account = await rig.account("whatsapp")
    msg = outbound(account)
    await rig.produce(msg, msg, msg)
    got = await rig.results(3)
    assert len(fake.of("whatsapp")) == 1
    assert {r.platform_message_id for r in got} == {got[0].platform_message_id}
    assert {r.status for r in got} == {"sent"}
    assert await rig.db[SEND_LEDGER].count_documents({}) == 1


async def test_rate_limited_then_sent_after_the_wait(rig: Rig) -> None:
    fake = rig.fake
    fake.retry_after = 2
    fake.script = ["429"]
    account = await rig.account("telegram")
    await rig.produce(outbound(account))
    [result] = await rig.results()
    first, second = fake.of("telegram")
    assert second.at - first.at >= 1.9  # Telegram's retry_after, not the 0.5 s backoff
    assert result.status == "sent"
    assert result.attempts == 2


@pytest.mark.parametrize("platform", ["telegram", "whatsapp", "slack"])
async def test_an_invalid_token_fails_at_once(platform: str, rig: Rig) -> None:
    fake = rig.fake
    account = await rig.account(platform)
    key = "botToken" if platform != "whatsapp" else "accessToken"
    await rig.set_credential(account, key, "bad")
    await rig.produce(outbound(account))
    [result] = await rig.results()
    assert len(fake.of(platform)) == 1
    assert result.status == "failed"
    assert result.attempts == 1
    assert not result.ambiguous
    assert result.detail
    assert any(word in result.detail for word in ("401", "invalid_auth", "Unauthorized"))


async def test_server_errors_are_retried_and_a_lost_answer_is_not_resent(rig: Rig) -> None:
    fake = rig.fake
    fake.hang_seconds = 5  # beyond HUB_SEND_TIMEOUT: the request arrived, no answer came
    fake.script = ["500", "hang"]
    account = await rig.account("slack")
    await rig.produce(outbound(account))
    [result] = await rig.results()
    assert len(fake.of("slack")) == 2
    assert result.status == "failed"
    assert result.ambiguous
    assert result.detail and "may have the message" in result.detail


async def test_a_retry_of_a_failed_reply_sends_it_once_more(rig: Rig) -> None:
    fake = rig.fake
    account = await rig.account("slack")
    await rig.set_credential(account, "botToken", "xoxb-revoked")
    await rig.produce(outbound(account))
    [failed] = await rig.results()
    assert failed.status == "failed"
    fake.slack_token = "xoxb-revoked"  # the app was authorised again

    # The user's retry (attempt 1) twice, and a late copy of the first attempt: one call.
    await rig.produce(outbound(account, attempt=1), outbound(account, attempt=1), outbound(account))
    results = await rig.results(4)
    assert len(fake.of("slack")) == 2
    retried = [r for r in results[1:] if r.id != failed.id]
    assert {r.status for r in retried} == {"sent"}
    assert len({r.id for r in retried}) == 1  # news of its own, the same for each copy
    assert all(r.message_id == failed.message_id for r in results)


async def test_a_retry_never_resends_what_may_have_arrived(rig: Rig) -> None:
    fake = rig.fake
    fake.hang_seconds = 5  # beyond HUB_SEND_TIMEOUT: the platform may have the message
    fake.script = ["hang"]
    account = await rig.account("telegram")
    await rig.produce(outbound(account, client_id="c-amb"))
    [first] = await rig.results()
    assert first.status == "failed" and first.ambiguous
    await rig.produce(outbound(account, client_id="c-amb", attempt=1))
    [_, again] = await rig.results(2)
    assert again.status == "failed" and again.ambiguous
    assert again.id != first.id
    assert len(fake.of("telegram")) == 1


async def test_an_email_reply_goes_out_over_smtp_threaded(rig: Rig) -> None:
    async with smtp_account(rig) as (account, inbox):
        msg = outbound(
            account,
            external_conversation_id="<root@example.com>",
            reply_to="<last@example.com>",
            recipient="ada@example.com",
            subject="Order 42",
        )
        await rig.produce(msg)
        [result] = await rig.results()
    assert result.status == "sent", result.detail
    [(mail_from, rcpt, content)] = inbox.messages
    mail = message_from_bytes(content)
    assert mail_from == "support@example.com"
    assert rcpt == ["ada@example.com"]
    assert mail["Subject"] == "Re: Order 42"
    assert mail["In-Reply-To"] == "<last@example.com>"
    assert mail["References"] == "<root@example.com> <last@example.com>"
    assert mail["Message-ID"] == result.platform_message_id
    assert str(mail.get_payload()).strip() == msg.text


async def test_a_stop_lets_the_call_under_way_finish(rig: Rig) -> None:
    rig.fake.hang_seconds = 1.0  # answered within HUB_SEND_TIMEOUT, after the stop began
    rig.fake.script = ["hang"]
    account = await rig.account("telegram")
    msg = outbound(account)
    await rig.produce(msg)
    await eventually(lambda: rig.fake.of("telegram"), 30, "the platform called")
    await rig.stop()
    entry = await rig.db[SEND_LEDGER].find_one({"_id": msg.message_id})
    assert entry is not None and entry["state"] == "sent"
    [result] = await rig.results()
    assert result.status == "sent" and not result.ambiguous
    assert len(rig.fake.of("telegram")) == 1
