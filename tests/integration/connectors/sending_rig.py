"""The sending tests' rig: platform API stand-ins, a connectors app, a producer onto
hub.outbound, and the replies' builder."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from hub.demo.platform_apis import PlatformApis, serving
from hubcore.accounts import SEALED, Account
from hubcore.kafka import Topics, create_producer
from hubcore.mongo import ACCOUNTS, Document
from hubcore.settings import Settings
from schemas import OutboundMessage, SendResult, conversation_id, outbound_message_id, parse_command
from schemas.base import utc_now
from tests.integration.connectors.harness import Harness, eventually, read_topic, running_app
from tests.local_servers import free_port

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


@asynccontextmanager
async def sending_rig(
    settings_factory: Callable[..., Settings], mongo_client: AsyncMongoClient[Document]
) -> AsyncIterator[Rig]:
    """Stand-ins served, a connectors app (stoppable with `Rig.stop`) using them."""
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


class SmtpInbox:
    """aiosmtpd handler keeping every message the server accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@asynccontextmanager
async def smtp_account(
    rig: Rig, inbox: SmtpInbox | None = None
) -> AsyncIterator[tuple[Account, SmtpInbox]]:
    """A local SMTP server (plain, loopback; `inbox` its handler) and an email account of
    alice sending to it."""
    inbox = inbox or SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield await email_account(rig, port), inbox
    finally:
        controller.stop()


async def email_account(rig: Rig, smtp_port: int, *, tls: bool = False) -> Account:
    """An email account of alice sending through 127.0.0.1:`smtp_port` (STARTTLS if `tls`)."""
    imap = {"host": "127.0.0.1", "port": 993, "username": "u", "password": "p"}
    smtp = {"smtpHost": "127.0.0.1", "smtpPort": str(smtp_port), "smtpTls": str(tls).lower()}
    return await rig.harness.store.create(
        "alice", "email", "support@example.com", {**imap, **smtp}, "poll"
    )


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
