"""Web Push end to end on the real Kafka and FerretDB: user events on the topic, presence
documents in the store (the shape the presence projection writes), the notifier of the
connectors process, and a push service stand-in that decrypts every payload and verifies
every VAPID token (tests/push_service.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from connectors.app import create_app
from connectors.publisher import Publisher
from connectors.push.notifier import Notifier, NotifierConsumer
from connectors.push.sender import PushSender
from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.mongo import Document
from hubcore.push_store import PRESENCE, PushStore, UserPushSettings
from hubcore.settings import Settings, SettingsError
from hubcore.webpush import Vapid, new_vapid_key
from schemas import NewMessage
from schemas.base import format_utc, utc_now
from tests.integration.connectors.harness import running_app
from tests.integration.gateway_kit import new_message, produce
from tests.push_service import Browser, PushService, push_service

pytestmark = pytest.mark.integration

DEADLINE = 60.0


@dataclass
class Rig:
    settings: Settings
    db: AsyncDatabase[Document]
    store: PushStore
    service: PushService
    notifier: Notifier
    decisions: list[tuple[str, str]]
    changed: asyncio.Condition

    async def browser_of(self, user: str) -> Browser:
        browser = self.service.browser()
        await self.store.subscribe(user, browser.endpoint, browser.p256dh, browser.auth)
        return browser

    async def away(self, user: str, seconds_ago: float) -> None:
        """The presence projection's document of a user with no device since then."""
        seen = utc_now() - timedelta(seconds=seconds_ago)
        doc = {"online": False, "devices": [], "lastSeen": format_utc(seen), "version": 2}
        await self.db[PRESENCE].replace_one({"_id": user}, doc, upsert=True)

    async def online(self, user: str) -> None:
        device = {
            "gatewayId": "gw-1",
            "connectionId": "c-1",
            "clientKind": "ws",
            "since": format_utc(utc_now()),
        }
        doc = {"online": True, "devices": [device], "lastSeen": format_utc(utc_now()), "version": 1}
        await self.db[PRESENCE].replace_one({"_id": user}, doc, upsert=True)

    async def decided(self, count: int, user: str) -> list[str]:
        """The first `count` decisions about `user`'s messages, once taken."""

        def mine() -> list[str]:
            return [d for mid, d in self.decisions if mid.startswith(f"msg_{user}_")]

        async with asyncio.timeout(DEADLINE), self.changed:
            await self.changed.wait_for(lambda: len(mine()) >= count)
        await self.notifier.idle()
        return mine()


Make = Callable[..., Any]


@pytest.fixture
async def rig(
    settings_factory: Callable[..., Settings],
    mongo_client: Any,
) -> AsyncIterator[Callable[..., Any]]:
    """Builds the notifier consuming a namespace of its own, with the given settings."""
    stack = contextlib.AsyncExitStack()

    async def make(**overrides: Any) -> Rig:
        service = await stack.enter_async_context(push_service())
        settings = settings_factory(
            vapid_private_key=new_vapid_key(),
            vapid_subject="mailto:ops@hub.test",
            outbound_allowed_hosts=["127.0.0.1"],
            outbound_allow_plaintext=True,
            push_attempts=3,
            **overrides,
        )
        await ensure_topics(settings)
        db = mongo_client[settings.mongo_db]
        store = PushStore(db)
        decisions: list[tuple[str, str]] = []
        changed = asyncio.Condition()

        def observe(message_id: str, decision: str) -> None:
            decisions.append((message_id, decision))

            async def tell() -> None:
                async with changed:
                    changed.notify_all()

            asyncio.get_running_loop().create_task(tell())

        http = httpx.AsyncClient()
        vapid = Vapid.from_settings(settings)
        assert vapid is not None
        sender = PushSender(settings, http, vapid, store, sleep=lambda s: asyncio.sleep(0))
        notifier = Notifier(settings, store, sender, observer=observe)
        publisher = Publisher(settings)
        await publisher.start()
        consumer = NotifierConsumer(settings, notifier, publisher)
        consumer.start()

        async def close() -> None:
            await consumer.stop()
            await publisher.stop()
            await http.aclose()
            await mongo_client.drop_database(settings.mongo_db)

        stack.push_async_callback(close)
        return Rig(settings, db, store, service, notifier, decisions, changed)

    async with stack:
        yield make


def _burst(user: str, count: int, conversation: str = "conv_a", first: int = 0) -> list[NewMessage]:
    return [new_message(user, first + n, conversation) for n in range(count)]


async def test_a_user_away_gets_one_decrypted_notification_per_burst(rig: Make) -> None:
    r: Rig = await rig(push_interval=600.0, push_grace=30.0)
    await r.away("ann", seconds_ago=3600)
    phone, laptop = await r.browser_of("ann"), await r.browser_of("ann")
    await produce(r.settings, _burst("ann", 4))
    assert await r.decided(4, "ann") == ["sent", "coalesced", "coalesced", "coalesced"]
    for browser in (phone, laptop):
        [receipt] = r.service.of(browser)
        assert receipt.payload["title"] == "Sender (generic)"
        assert receipt.payload["body"] == "message 0 for ann"
        assert receipt.payload["conversationId"] == "conv_a"
        assert receipt.payload["count"] == 1
        assert receipt.payload["url"] == "/#conversation=conv_a"
        assert receipt.ttl == r.settings.push_ttl and receipt.urgency == "normal"
        assert receipt.topic and receipt.vapid_sub == "mailto:ops@hub.test"
    assert r.service.refusals == []


async def test_the_rest_of_a_burst_comes_once_at_the_end_of_the_interval(rig: Make) -> None:
    r: Rig = await rig(push_interval=1.0, push_grace=0.0)
    await r.away("bo", seconds_ago=3600)
    browser = await r.browser_of("bo")
    started = time.monotonic()
    await produce(r.settings, _burst("bo", 3))
    first, summary = await r.service.wait_for(browser, 2)
    assert time.monotonic() - started >= 1.0
    assert first.payload["count"] == 1 and first.payload["messageId"] == "msg_bo_0"
    assert summary.payload["count"] == 2 and summary.payload["messageId"] == "msg_bo_2"
    assert summary.payload["body"] == "2 new messages: message 2 for bo"
    assert first.topic == summary.topic  # the push service may replace the first
    # Another conversation is not held back by the first one's interval.
    await produce(r.settings, _burst("bo", 1, "conv_b", first=10))
    third = (await r.service.wait_for(browser, 3))[2]
    assert third.payload["conversationId"] == "conv_b"
    assert r.decisions[-1] == ("msg_bo_10", "sent")
    assert len(r.service.of(browser)) == 3


async def test_nothing_while_online_muted_or_switched_off(rig: Make) -> None:
    r: Rig = await rig(push_interval=0.0, push_grace=0.0)
    browsers = {user: await r.browser_of(user) for user in ("on", "mute", "off", "away")}
    await r.online("on")
    for user in ("mute", "off", "away"):
        await r.away(user, seconds_ago=3600)
    await r.store.set_muted("mute", "conv_a", True)
    await r.store.set_user_settings("off", UserPushSettings(enabled=False, preview=True))
    events = [*_burst("on", 1), *_burst("mute", 1), *_burst("off", 1), *_burst("away", 1)]
    await produce(r.settings, events)
    assert await r.decided(1, "on") == ["online"]
    assert await r.decided(1, "mute") == ["muted"]
    assert await r.decided(1, "off") == ["disabled"]
    assert await r.decided(1, "away") == ["sent"]
    assert [len(r.service.of(browsers[u])) for u in ("on", "mute", "off", "away")] == [0, 0, 0, 1]
    # An outbound message (the user's own reply) never notifies.
    sent = new_message("away", 5)
    outbound = sent.data.message.model_copy(update={"direction": "outbound"})
    reply = sent.model_copy(update={"data": sent.data.model_copy(update={"message": outbound})})
    await produce(r.settings, [reply])
    assert (await r.decided(2, "away"))[1] == "outbound"


async def test_no_preview_when_the_user_turns_it_off(rig: Make) -> None:
    r: Rig = await rig(push_interval=0.0, push_grace=0.0)
    await r.away("pat", seconds_ago=3600)
    browser = await r.browser_of("pat")
    await r.store.set_user_settings("pat", UserPushSettings(enabled=True, preview=False))
    await produce(r.settings, _burst("pat", 1))
    [receipt] = await r.service.wait_for(browser, 1)
    assert receipt.payload["title"] == "New message (generic)"
    assert receipt.payload["body"] == "1 new message"
    assert "message 0" not in str(receipt.payload)


async def test_a_user_seen_within_the_grace_is_notified_when_it_is_over(rig: Make) -> None:
    r: Rig = await rig(push_interval=0.0, push_grace=2.0)
    await r.away("gus", seconds_ago=0.5)
    browser = await r.browser_of("gus")
    started = time.monotonic()
    await produce(r.settings, _burst("gus", 1))
    assert await r.decided(1, "gus") == ["deferred"]
    [receipt] = await r.service.wait_for(browser, 1)
    assert time.monotonic() - started >= 1.0  # not before the grace was over
    assert receipt.payload["count"] == 1
    assert await r.decided(2, "gus") == ["deferred", "sent"]
    # Back online during the grace: nothing.
    await r.away("gus", seconds_ago=0.5)
    await produce(r.settings, _burst("gus", 1, first=1))
    assert (await r.decided(3, "gus"))[2] == "deferred"
    await r.online("gus")
    assert (await r.decided(4, "gus"))[3] == "online"
    assert len(r.service.of(browser)) == 1


async def test_gone_subscriptions_are_removed_and_busy_services_retried(rig: Make) -> None:
    r: Rig = await rig(push_interval=0.0, push_grace=0.0)
    await r.away("eve", seconds_ago=3600)
    gone, busy, down = [await r.browser_of("eve") for _ in range(3)]
    gone.answers.append((410, {}))
    busy.answers.extend([(429, {"Retry-After": "0"}), (503, {})])
    down.answers.extend([(500, {})] * 3)
    await produce(r.settings, _burst("eve", 1))
    assert await r.decided(1, "eve") == ["sent"]
    assert r.service.attempts[gone.id] == 1
    assert await r.store.subscriptions.count_documents({"_id": gone.id}) == 0
    subs = await r.store.of_user("eve", 10)
    assert {s.endpoint for s in subs} == {busy.endpoint, down.endpoint}
    assert r.service.attempts[busy.id] == 3 and len(r.service.of(busy)) == 1
    # Three 500s use up the attempts: that subscription failed, it is kept.
    assert r.service.attempts[down.id] == 3 and r.service.of(down) == []


async def test_a_malformed_user_event_goes_to_the_dead_letter_topic(rig: Make) -> None:
    r: Rig = await rig(push_interval=0.0, push_grace=0.0)
    await r.away("dl", seconds_ago=3600)
    browser = await r.browser_of("dl")
    topics = Topics.from_settings(r.settings)
    producer = create_producer(r.settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.user_events, key=b"dl", value=b'{"type": "new_message", "userId": "dl"}'
        )
    finally:
        await producer.stop()
    await produce(r.settings, _burst("dl", 1))
    await r.service.wait_for(browser, 1)  # the bad record did not stop the consumer
    consumer = AIOKafkaConsumer(
        topics.dead_letter,
        bootstrap_servers=r.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(DEADLINE):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert b"push notifier" in (record.value or b"")


async def test_the_connectors_process_runs_the_notifier(
    settings_factory: Callable[..., Settings], mongo_client: Any
) -> None:
    async with push_service() as service:
        settings = settings_factory(
            vapid_private_key=new_vapid_key(),
            outbound_allowed_hosts=["127.0.0.1"],
            outbound_allow_plaintext=True,
        )
        await ensure_topics(settings)
        db = mongo_client[settings.mongo_db]
        store = PushStore(db)
        browser = service.browser()
        await store.subscribe("cat", browser.endpoint, browser.p256dh, browser.auth)
        async with running_app(settings, db):
            assert [t for t in asyncio.all_tasks() if t.get_name() == "push-notifier"]
            await produce(settings, _burst("cat", 1))
            [receipt] = await service.wait_for(browser, 1)
        assert receipt.payload["messageId"] == "msg_cat_0"
        with pytest.raises(SettingsError, match="HUB_VAPID_PRIVATE_KEY"):
            create_app(settings.model_copy(update={"vapid_private_key": SecretStr("nope")}))
        off = settings.model_copy(update={"vapid_private_key": None})
        async with running_app(off, db) as harness:
            assert not [t for t in asyncio.all_tasks() if t.get_name() == "push-notifier"]
            assert harness.runtime.publisher.ready
