"""The Telegram poller against a local getUpdates server, the real broker and the real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing
from pymongo.asynchronous.database import AsyncDatabase

from connectors.pollers.base import PollState
from connectors.pollers.supervisor import PollerSupervisor
from connectors.pollers.telegram import TelegramPoller
from connectors.publisher import Publisher
from hubcore.accounts import Account, AccountStore
from hubcore.kafka import ensure_topics
from hubcore.mongo import ACCOUNTS, Document
from hubcore.settings import Settings
from schemas import message_id
from tests import platform_payloads as p
from tests.fake_telegram import FakeTelegram, serving
from tests.integration.connectors.harness import (
    EXTERNAL_IDS,
    SECRETS,
    dead_letters,
    eventually,
    raw_messages,
    running_app,
)
from tests.local_servers import free_port

pytestmark = pytest.mark.integration

TOKEN = SECRETS["telegram"]["botToken"]


@asynccontextmanager
async def poller(
    account: Account, settings: Settings, db: AsyncDatabase[Document]
) -> AsyncIterator[TelegramPoller]:
    """A poller with a producer of its own: a fresh process, no memory of earlier ones."""
    publisher = Publisher(settings)
    await publisher.start()
    async with httpx.AsyncClient() as http:
        polling = TelegramPoller(account, settings, publisher, PollState(db), http)
        polling.start()
        try:
            yield polling
        finally:
            await polling.stop()
            await publisher.stop()


async def saved_offset(db: AsyncDatabase[Document], account: Account) -> Any:
    return (await PollState(db).load(f"telegram:{account.id}")).get("offset")


def poll_settings(
    factory: Callable[..., Settings], base: Settings, api: str, **more: Any
) -> Settings:
    return factory(
        mongo_db=base.mongo_db,
        telegram_api_base=api,
        telegram_long_poll=1,
        poll_interval=0.2,
        **more,
    )


async def test_restart_mid_stream_loses_and_duplicates_nothing(
    settings: Settings, settings_factory: Callable[..., Settings], mongo_db: AsyncDatabase[Document]
) -> None:
    fake = FakeTelegram(TOKEN, page=2)
    fake.add(*(p.telegram_update(100 + i, 10 + i, text=f"update {i}") for i in range(6)))
    fake.release(up_to=101)  # the first poller sees only the first page
    async with serving(fake) as api:
        s = poll_settings(settings_factory, settings, api)
        await ensure_topics(s)
        account = await AccountStore(mongo_db, settings).create(
            "alice", "telegram", EXTERNAL_IDS["telegram"], SECRETS["telegram"], "poll"
        )
        async with poller(account, s, mongo_db):
            await eventually(lambda: saved_offset(mongo_db, account), what="first commit")
            assert await saved_offset(mongo_db, account) == 102
        before = len(fake.offsets_seen)
        # While no poller runs, more arrives: the rest, a button press, and a broken update.
        fake.add(
            p.telegram_callback_query(106),
            {"update_id": 107, "message": {"message_id": 99, "date": 1746268800}},
            p.telegram_update(108, 30, text="after the restart"),
        )
        fake.release()
        async with poller(account, s, mongo_db):

            async def done() -> bool:
                return bool(await saved_offset(mongo_db, account) == 109)

            await eventually(done, what="second poller reached the end")
    assert fake.offsets_seen[0] == 0  # the first poller started from nothing
    assert fake.offsets_seen[before] == 102  # the second resumed from the store

    produced = await raw_messages(s)
    texts = [r.text for _, r in produced]
    assert texts == [f"update {i}" for i in range(6)] + ["after the restart"]
    assert [r.id for _, r in produced] == [
        message_id("telegram", account.id, "123456789", str(m)) for m in [*range(10, 16), 30]
    ]
    assert {key for key, _ in produced} == {"alice"}
    letters = await dead_letters(s)
    assert len(letters) == 1 and "message.chat is missing" in letters[0][1].reason


async def test_offset_does_not_advance_while_kafka_is_down(
    settings: Settings, settings_factory: Callable[..., Settings], mongo_db: AsyncDatabase[Document]
) -> None:
    fake = FakeTelegram(TOKEN)
    fake.add(p.telegram_update(500, 1))
    async with serving(fake) as api:
        s = poll_settings(
            settings_factory,
            settings,
            api,
            kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
            kafka_request_timeout=0.5,
        )
        account = await AccountStore(mongo_db, settings).create(
            "alice", "telegram", EXTERNAL_IDS["telegram"], SECRETS["telegram"], "poll"
        )
        async with poller(account, s, mongo_db):
            await eventually(lambda: len(fake.offsets_seen) >= 3, what="three polls")
    assert set(fake.offsets_seen) == {0}  # the update was never confirmed
    assert await saved_offset(mongo_db, account) is None


async def test_app_runs_pollers_for_poll_accounts_and_webhook_gives_the_same_id(
    settings: Settings, settings_factory: Callable[..., Settings], mongo_db: AsyncDatabase[Document]
) -> None:
    fake = FakeTelegram(TOKEN)
    update = p.telegram_update(900, 77, text="seen twice")
    fake.add(update)
    async with serving(fake) as api:
        s = poll_settings(settings_factory, settings, api, connectors_accounts_refresh=0.2)
        store = AccountStore(mongo_db, settings)
        account = await store.create(
            "alice", "telegram", EXTERNAL_IDS["telegram"], SECRETS["telegram"], "poll"
        )
        async with running_app(s, mongo_db, pollers=True) as app:
            await eventually(lambda: saved_offset(mongo_db, account), what="polled")
            webhook = await app.post(
                "telegram", account.id, p.body(update), p.telegram_headers("tg-secret_1")
            )
            assert webhook.status_code == 200
            assert await store.delete("alice", account.id)
            supervisor = app.runtime.pollers
            assert supervisor is not None
            await eventually(lambda: not supervisor.pollers, what="poller of a deleted account")
    ids = {r.id for _, r in await raw_messages(s)}
    assert ids == {message_id("telegram", account.id, "123456789", "77")}


async def test_a_token_that_makes_no_request_backs_that_account_off(
    settings: Settings, settings_factory: Callable[..., Settings], mongo_db: AsyncDatabase[Document]
) -> None:
    """A bot token with a line break (stored before the rules refused it) fails every poll:
    the poller keeps running, waits longer after each failure, and never logs the token."""
    bad = "123456:secret\nX-Evil: 1"
    fake = FakeTelegram(TOKEN)
    async with serving(fake) as api:
        s = settings_factory(mongo_db=settings.mongo_db, telegram_api_base=api, poll_interval=0.05)
        account = Account.model_validate(
            {
                "id": "acc_badtoken",
                "userId": "alice",
                "platform": "telegram",
                "externalId": EXTERNAL_IDS["telegram"],
                "mode": "poll",
                "createdAt": "2026-12-07T00:00:00Z",
                "credentials": {**SECRETS["telegram"], "botToken": bad},
            }
        )
        with structlog.testing.capture_logs() as logs:
            async with poller(account, s, mongo_db) as polling:

                def failed() -> list[Any]:
                    found = [e for e in logs if e["event"] == "poll failed"]
                    return found if len(found) >= 4 else []

                failures = await eventually(failed, what="four failed polls")
                assert polling.running
    waits = [e["retry_in"] for e in failures]
    assert waits == sorted(waits) and waits[3] > waits[0] * 2, waits
    assert [e["failures"] for e in failures[:4]] == [1, 2, 3, 4]
    assert not fake.offsets_seen  # no request ever left
    assert "secret" not in str(logs)


async def test_an_account_no_poller_can_be_made_for_is_skipped_not_fatal(
    settings: Settings, settings_factory: Callable[..., Settings], mongo_db: AsyncDatabase[Document]
) -> None:
    """A stored account whose credentials make its poller's constructor fail (here an
    email account without `host`, as one stored before today's rules might be) must not
    end the supervisor: every other account is polled."""
    fake = FakeTelegram(TOKEN)
    async with serving(fake) as api:
        s = poll_settings(settings_factory, settings, api)
        store = AccountStore(mongo_db, settings)
        good = await store.create(
            "alice", "telegram", EXTERNAL_IDS["telegram"], SECRETS["telegram"], "poll"
        )
        broken = good.model_copy(
            update={
                "id": "acc_broken",
                "platform": "email",
                "external_id": "b@example.com",
                "credentials": {"username": "b", "password": "p"},
            }
        )
        await mongo_db[ACCOUNTS].insert_one(store._to_doc(broken))
        publisher = Publisher(s)
        await publisher.start()
        supervisor = PollerSupervisor(s, mongo_db, publisher)
        try:
            await supervisor.sync()
            assert set(supervisor.pollers) == {good.id}
            await eventually(lambda: fake.offsets_seen, what="the good account polled")
        finally:
            await supervisor.stop()
            await publisher.stop()
