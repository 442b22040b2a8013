"""Sending across crashes, stops and a second process: never twice for one reply."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from connectors.outbound import ledger
from connectors.outbound.ledger import SendLedger
from hub.demo.platform_apis import PlatformApis, serving
from hubcore.accounts import AccountStore
from hubcore.kafka import Topics, create_producer
from hubcore.mongo import SEND_LEDGER, Document
from hubcore.settings import Settings
from schemas import SendResult, parse_command
from tests.integration.connectors.harness import (
    SECRETS,
    eventually,
    hub_env,
    killable_connectors,
    read_topic,
)
from tests.integration.connectors.sending_rig import outbound
from tests.local_servers import free_port
from tests.platform_payloads import account
from tests.streams_helpers import T0

pytestmark = pytest.mark.integration


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
        port = free_port()
        with killable_connectors({**env, "HUB_CONNECTORS_PORT": str(port)}, tmp_path, "second"):
            topic = Topics.from_settings(settings).commands

            async def result() -> SendResult | None:
                got = [parse_command(r.value) for r in await read_topic(settings, topic)]
                return next((c for c in got if isinstance(c, SendResult)), None)

            sent: SendResult = await eventually(result, 60, "the send result")
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    # The second process failed the reply without a platform call, and counted it so.
    lost = 'hub_connectors_send_failures_total{platform="whatsapp",reason="lost_during_call"}'
    assert f"{lost} 1.0" in metrics
    assert 'hub_connectors_send_attempts_total{platform="whatsapp"}' not in metrics
    assert len(fake.of("whatsapp")) == 1
    assert sent.status == "failed"
    assert sent.ambiguous
    assert sent.detail and "may have been delivered" in sent.detail


async def test_one_process_at_a_time_holds_a_reply(
    mongo_db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ledger's clock is the test's: a lease ends at a step of it, not after a sleep.
    now = [T0]
    monkeypatch.setattr(ledger, "utc_now", lambda: now[0])
    msg = outbound(account("slack", "T1"))
    first, second = SendLedger(mongo_db, lease=60.0), SendLedger(mongo_db, lease=60.0)
    assert (await first.open(msg))["state"] == "new"
    assert (await second.open(msg))["state"] == "new"  # the same entry, not a second one
    assert await first.claim(msg.message_id) is not None
    assert await second.claim(msg.message_id) is None  # the first is working on it
    now[0] += timedelta(seconds=30)
    await first.mark(msg.message_id, "waiting")  # renews the lease
    now[0] += timedelta(seconds=59)
    assert await second.claim(msg.message_id) is None
    now[0] += timedelta(seconds=2)  # the first went away: its lease ends
    taken = await second.claim(msg.message_id)
    assert taken is not None and taken["owner"] == second.owner
    assert taken["state"] == "waiting"
    assert await first.claim(msg.message_id) is None
