"""Replies out through each platform's API: real Kafka, real store, local API stand-ins."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from subprocess import STDOUT, Popen
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from connectors.outbound.ledger import SendLedger
from hubcore.accounts import SEALED, Account, AccountStore
from hubcore.kafka import Topics, create_producer
from hubcore.mongo import ACCOUNTS, SEND_LEDGER, Document
from hubcore.settings import Settings
from schemas import OutboundMessage, SendResult, conversation_id, outbound_message_id, parse_command
from schemas.base import utc_now
from tests.integration.connectors.harness import (
    SECRETS,
    Harness,
    eventually,
    hub_env,
    read_topic,
    running_app,
)
from tests.local_servers import free_port
from tests.platform_apis import PlatformApis, serving
from tests.platform_payloads import account, hub_signature

CHATS = {"telegram": "777", "whatsapp": "16505551234", "slack": "C0123", "generic": "support-1"}


@dataclass
class Rig:
    """The stand-in APIs, a running connectors app and a producer onto hub.outbound."""

    fake: PlatformApis
    base: str
    settings: Settings
    harness: Harness
    db: AsyncDatabase[Document]
    producer: AIOKafkaProducer
    stop: Callable[[], Awaitable[None]]

    async def account(self, platform: str, **creds: Any) -> Account:
        """An account with its sending credential."""
        sending: dict[str, str] = {
            "telegram": {"botToken": self.fake.telegram_token},
            "whatsapp": {"accessToken": self.fake.access_token},
            "slack": {"botToken": self.fake.slack_token},
            "generic": {"callbackUrl": f"{self.base}/callback"},
        }[platform]
        return await self.harness.account(platform, **{**sending, **creds})

    async def set_credential(self, account: Account, key: str, value: str) -> None:
        """Replace one credential, sealed as the store keeps them."""
        store = self.harness.store
        sealed = store.cipher.seal({**account.credentials, key: value})
        await self.db[ACCOUNTS].update_one({"_id": account.id}, {"$set": {SEALED: sealed}})

    async def produce(self, *msgs: OutboundMessage) -> None:
        topic = Topics.from_settings(self.settings).outbound
        for msg in msgs:
            await self.producer.send_and_wait(topic, msg.to_json(), key=msg.account_id.encode())

    async def results(self, n: int = 1, timeout: float = 30.0) -> list[SendResult]:
        """The first `n` send results on hub.commands (waits for them)."""
        topic = Topics.from_settings(self.settings).commands

        async def found() -> list[SendResult] | None:
            got = [parse_command(r.value) for r in await read_topic(self.settings, topic)]
            out = [c for c in got if isinstance(c, SendResult)]
            return out if len(out) >= n else None

        out: list[SendResult] = await eventually(found, timeout, f"{n} send results")
        return out


@pytest.fixture
async def rig(
    settings_factory: Callable[..., Settings], mongo_client: AsyncMongoClient[Document]
) -> AsyncIterator[Rig]:
    fake = PlatformApis()
    async with serving(fake) as base:
        settings = settings_factory(
            telegram_api_base=f"{base}/telegram",
            whatsapp_api_base=f"{base}/whatsapp",
            slack_api_base=f"{base}/slack",
            send_max_backoff=3.0,
            send_timeout=2.0,
            outbound_allowed_hosts=["127.0.0.1"],
            outbound_allow_plaintext=True,
        )
        db = mongo_client[settings.mongo_db]
        producer = create_producer(settings)
        await producer.start()
        try:
            async with contextlib.AsyncExitStack() as app:
                harness = await app.enter_async_context(running_app(settings, db))
                yield Rig(fake, base, settings, harness, db, producer, app.aclose)
        finally:
            await producer.stop()
            await mongo_client.drop_database(settings.mongo_db)


def outbound(account: Account, client_id: str = "c-1", **fields: Any) -> OutboundMessage:
    chat = CHATS.get(account.platform, "chat")
    conv = conversation_id(account.platform, account.id, chat)
    values: dict[str, Any] = {
        "message_id": outbound_message_id(account.user_id, conv, client_id),
        "client_message_id": client_id,
        "user_id": account.user_id,
        "platform": account.platform,
        "account_id": account.id,
        "conversation_id": conv,
        "external_conversation_id": chat,
        "text": f"reply {client_id}",
        "issued_at": utc_now(),
    }
    values.update(fields)
    return OutboundMessage(**values)


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


class _Inbox:
    """aiosmtpd handler keeping every message the server accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


async def test_an_email_reply_goes_out_over_smtp_threaded(rig: Rig) -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        imap = {"host": "127.0.0.1", "port": 993, "username": "u", "password": "p"}
        smtp = {"smtpHost": "127.0.0.1", "smtpPort": str(port), "smtpTls": "false"}
        account = await rig.harness.store.create(
            "alice", "email", "support@example.com", {**imap, **smtp}, "poll"
        )
        msg = outbound(
            account,
            external_conversation_id="<root@example.com>",
            reply_to="<last@example.com>",
            recipient="ada@example.com",
            subject="Order 42",
        )
        await rig.produce(msg)
        [result] = await rig.results()
    finally:
        controller.stop()
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


@contextmanager
def killable_connectors(env: dict[str, str], cwd: Path, name: str) -> Iterator[Popen[bytes]]:
    """`hub connectors` as a real process (no pollers), killed at the end if still running."""
    log = (cwd / f"{name}.log").open("wb")
    proc = Popen(
        [sys.executable, "-m", "hub", "connectors"],
        env={**env, "HUB_CONNECTORS_PORT": str(free_port()), "HUB_HOST": "127.0.0.1"},
        cwd=cwd,
        stdout=log,
        stderr=STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


async def test_sigkill_during_the_platform_call_never_sends_twice(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    fake = PlatformApis(hang_seconds=60)
    fake.script = ["hang"]  # the platform has the request; its answer never reaches the hub
    async with serving(fake) as base:
        settings = settings.model_copy(
            update={"outbound_allowed_hosts": ["127.0.0.1"], "outbound_allow_plaintext": True}
        )
        env = hub_env(
            settings,
            HUB_WHATSAPP_API_BASE=f"{base}/whatsapp",
            HUB_SEND_TIMEOUT="3",
            HUB_SEND_MAX_BACKOFF="2",
            HUB_CONNECTORS_POLLERS="false",
        )
        store = AccountStore(mongo_db, settings)
        creds = {**SECRETS["whatsapp"], "accessToken": fake.access_token}
        account = await store.create("alice", "whatsapp", "106540352242922", creds)
        producer = create_producer(settings)
        await producer.start()
        try:
            msg = outbound(account)
            topic = Topics.from_settings(settings).outbound
            await producer.send_and_wait(topic, msg.to_json(), key=account.id.encode())
        finally:
            await producer.stop()
        with killable_connectors(env, tmp_path, "first") as first:
            await eventually(lambda: fake.of("whatsapp"), 60, "the platform called")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        entry = await mongo_db[SEND_LEDGER].find_one({"_id": msg.message_id})
        assert entry is not None and entry["state"] == "calling"
        with killable_connectors(env, tmp_path, "second"):
            topic = Topics.from_settings(settings).commands

            async def result() -> SendResult | None:
                got = [parse_command(r.value) for r in await read_topic(settings, topic)]
                return next((c for c in got if isinstance(c, SendResult)), None)

            sent: SendResult = await eventually(result, 60, "the send result")
    assert len(fake.of("whatsapp")) == 1
    assert sent.status == "failed"
    assert sent.ambiguous
    assert sent.detail and "may have been delivered" in sent.detail


async def test_one_process_at_a_time_holds_a_reply(mongo_db: AsyncDatabase[Document]) -> None:
    msg = outbound(account("slack", "T1"))
    first, second = SendLedger(mongo_db, lease=1.0), SendLedger(mongo_db, lease=1.0)
    assert (await first.open(msg))["state"] == "new"
    assert (await second.open(msg))["state"] == "new"  # the same entry, not a second one
    assert await first.claim(msg.message_id) is not None
    assert await second.claim(msg.message_id) is None  # the first is working on it
    await first.mark(msg.message_id, "waiting")  # renews the lease
    assert await second.claim(msg.message_id) is None
    await asyncio.sleep(1.2)  # the first went away: its lease ends
    taken = await second.claim(msg.message_id)
    assert taken is not None and taken["owner"] == second.owner
    assert taken["state"] == "waiting"
    assert await first.claim(msg.message_id) is None


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
