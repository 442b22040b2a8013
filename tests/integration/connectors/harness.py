"""Drives a connectors app in-process (httpx ASGITransport) against the real broker and store."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import STDOUT, Popen
from typing import Any

import httpx
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from connectors.app import create_app
from connectors.runtime import Runtime
from hubcore.account_rules import Mode
from hubcore.accounts import Account, AccountStore
from hubcore.kafka import Topics, create_consumer
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas import AnyCommand, DeadLetter, RawMessage, parse_command
from tests import platform_payloads as p
from tests.local_servers import free_port
from tests.resources import security_env

SECRETS: dict[str, dict[str, Any]] = {
    "telegram": {"botToken": "123456:ABC-DEF1234ghIkl", "webhookSecret": "tg-secret_1"},
    "whatsapp": {"appSecret": "wa-app-secret", "verifyToken": "wa-verify"},
    "slack": {"signingSecret": "8f742231b10e8888abcd99yyyzzz85a5"},
    "generic": {"secret": "generic-secret"},
}
EXTERNAL_IDS = {
    "telegram": "123456",
    "whatsapp": "106540352242922",
    "slack": "T123ABC456",
    "generic": "crm",
}


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll an (async or sync) check until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        await asyncio.sleep(0.05)


async def read_topic(settings: Settings, topic: str, timeout: float = 20.0) -> list[ConsumerRecord]:
    """Every record of `topic` from the beginning up to its end offsets as of now."""
    consumer = create_consumer(settings)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout}s")
            for batch in (await consumer.getmany(*parts, timeout_ms=500)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


async def raw_messages(settings: Settings) -> list[tuple[str, RawMessage]]:
    """(key, record) of everything in raw-messages."""
    records = await read_topic(settings, Topics.from_settings(settings).raw_messages)
    return [(r.key.decode(), RawMessage.from_json(r.value)) for r in records]


async def commands(settings: Settings) -> list[tuple[str, AnyCommand]]:
    """(key, command) of everything in hub.commands."""
    records = await read_topic(settings, Topics.from_settings(settings).commands)
    return [(r.key.decode(), parse_command(r.value)) for r in records]


async def dead_letters(settings: Settings) -> list[tuple[str, DeadLetter]]:
    records = await read_topic(settings, Topics.from_settings(settings).dead_letter)
    return [(r.key.decode(), DeadLetter.from_json(r.value)) for r in records]


def hub_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        HUB_MONGO_URL=settings.mongo_url,
        HUB_MONGO_DB=settings.mongo_db,
        HUB_TOPIC_NAMESPACE=settings.topic_namespace,
        HUB_TOPIC_PARTITIONS=str(settings.topic_partitions),
        HUB_LOG_FORMAT="json",
        **security_env(settings),
        **extra,
    )
    return env


@dataclass
class Harness:
    """One connectors app with its HTTP client, store and topics."""

    settings: Settings
    app: FastAPI
    http: httpx.AsyncClient
    store: AccountStore

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.app.state.runtime
        return rt

    async def account(
        self, platform: str, user: str = "alice", mode: Mode | None = None, **creds: Any
    ) -> Account:
        credentials = {**SECRETS[platform], **creds}
        return await self.store.create(user, platform, EXTERNAL_IDS[platform], credentials, mode)

    async def post(
        self, platform: str, account_id: str, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        return await self.http.post(
            f"/webhooks/{platform}/{account_id}",
            content=content,
            headers={"Content-Type": "application/json", **headers},
        )


@asynccontextmanager
async def running_app(
    settings: Settings, db: AsyncDatabase[Document], *, pollers: bool = False, ready: bool = True
) -> AsyncIterator[Harness]:
    """The app with its lifespan run, optionally waiting until the producer is connected."""
    app = create_app(settings, pollers=pollers)
    async with app.router.lifespan_context(app):
        harness = Harness(
            settings,
            app,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://connectors"),
            AccountStore(db, settings),
        )
        if ready:
            await eventually(lambda: harness.runtime.publisher.ready, 30, "producer connected")
        async with harness.http:
            yield harness


def signed_delivery(platform: str, account: Account, n: int) -> tuple[bytes, dict[str, str]]:
    """The n-th distinct valid delivery of one message for `platform`, with its auth headers."""
    secrets = SECRETS[platform]
    if platform == "telegram":
        raw = p.body(p.telegram_update(5000 + n, 700 + n, text=f"telegram {n}"))
        return raw, p.telegram_headers(secrets["webhookSecret"])
    if platform == "whatsapp":
        messages = [(f"wamid.N{n}", "1603059201", f"whatsapp {n}")]
        raw = p.body(p.whatsapp_messages(account.external_id, messages))
        return raw, p.hub_signature(secrets["appSecret"], raw)
    if platform == "slack":
        raw = p.body(p.slack_message(account.external_id, ts=f"1700000000.{n:06d}"))
        return raw, p.slack_headers(secrets["signingSecret"], raw)
    raw = p.body(p.generic_message(f"m-{n}"))
    return raw, p.hub_signature(secrets["secret"], raw)


@contextmanager
def killable_connectors(env: dict[str, str], cwd: Path, name: str) -> Iterator[Popen[bytes]]:
    """`hub connectors` as a real process (no pollers), killed at the end if still running."""
    log = (cwd / f"{name}.log").open("wb")
    proc = Popen(
        [sys.executable, "-m", "hub", "connectors"],
        env={"HUB_CONNECTORS_PORT": str(free_port()), **env, "HUB_HOST": "127.0.0.1"},
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
