"""Webhook deliveries end to end: events on the real hub.user-events, the connectors'
delivery consumer, receivers on loopback (allowed by the operator setting), the real
MongoDB-compatible store; signatures checked with the `standardwebhooks` package."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase
from standardwebhooks.webhooks import Webhook as Verifier

from connectors.deliveries.consumer import group_id
from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from hubcore.webhooks import DeliveryView, Webhook, WebhookStore
from schemas import DeadLetter
from schemas.base import utc_now
from schemas.events import MessageDeleted, MessageDeletedData, UserEvent
from tests.integration.connectors.harness import (
    eventually,
    hub_env,
    killable_connectors,
    read_topic,
    running_app,
)
from tests.integration.gateway_kit import new_message, produce, running_gateway, token
from tests.webhook_receiver import HANG, Received, Receiver

pytestmark = pytest.mark.integration


def fast(settings: Settings, **more: object) -> Settings:
    """Loopback receivers allowed, and retry schedules of a test's length."""
    return settings.model_copy(
        update={
            "outbound_allowed_hosts": ["127.0.0.1"],
            "outbound_allow_plaintext": True,
            "webhook_backoff_first": 0.1,
            "webhook_backoff_max": 0.4,
            "webhook_scan_interval": 0.1,
            "webhook_timeout": 2.0,
            **more,
        }
    )


@asynccontextmanager
async def hub(settings: Settings, db: AsyncDatabase[Document]) -> AsyncIterator[WebhookStore]:
    await ensure_topics(settings)
    store = WebhookStore(db, settings)
    async with running_app(settings, db):
        yield store


@asynccontextmanager
async def with_rest(
    settings: Settings, db: AsyncDatabase[Document], user: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The delivering connectors and a gateway, and a REST client of `user`."""
    async with (
        hub(settings, db),
        running_gateway(settings) as gw,
        httpx.AsyncClient(
            base_url=gw.base_url, headers={"Authorization": f"Bearer {token(settings, user)}"}
        ) as api,
    ):
        yield api


def deleted(user: str, n: int) -> MessageDeleted:
    return MessageDeleted(
        id=f"del_{user}_{n}",
        user_id=user,
        occurred_at=utc_now(),
        data=MessageDeletedData(conversation_id="conv_a", message_id=f"msg_{user}_{n}"),
    )


async def read_past(settings: Settings, cursor: str) -> bool:
    """Whether the delivery consumer has committed past the event at `cursor`."""
    partition, offset = (int(part) for part in cursor.split("-"))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id(settings))
    finally:
        await admin.close()
    at = committed.get(TopicPartition(Topics.from_settings(settings).user_events, partition))
    return at is not None and at.offset > offset


def verified(hook: tuple[Webhook, str], received: list[Received]) -> list[dict[str, Any]]:
    """Each request's event, its signature verified by the reference implementation."""
    verifier = Verifier(hook[1])
    return [verifier.verify(r.body, r.headers) for r in received]


async def test_subscribed_events_signed_and_in_order(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    settings = fast(settings)
    receiver = Receiver()
    async with receiver.serving() as url, hub(settings, mongo_db) as store:
        messages = await store.create("alice", f"{url}/messages", ["new_message"], "")
        deletes = await store.create("alice", f"{url}/deletes", ["message_deleted"], "")
        events: list[UserEvent] = [new_message("alice", n, f"conv_{n % 3}") for n in range(30)]
        events[10:10] = [deleted("alice", n) for n in range(3)]
        events.append(new_message("bob", 1))
        await produce(settings, events)
        await eventually(lambda: len(receiver.at("/messages")) >= 30, 60, "30 messages")
        await eventually(lambda: len(receiver.at("/deletes")) >= 3, 60, "3 deletes")
        got = verified(messages, receiver.at("/messages"))
        assert [e["id"] for e in got] == [f"evt_alice_{n}" for n in range(30)]
        assert {e["type"] for e in got} == {"new_message"}
        # The body is the event as on /ws: type, id, cursor, occurredAt, data.
        assert set(got[0]) == {"type", "id", "cursor", "occurredAt", "data"}
        assert [e["id"] for e in verified(deletes, receiver.at("/deletes"))] == [
            f"del_alice_{n}" for n in range(3)
        ]
        assert len({r.webhook_id for r in receiver.requests}) == 33

        # The log says the same (successes are recorded in groups), nothing else scheduled.
        async def logged() -> list[DeliveryView] | None:
            page = await store.delivery_page(messages[0].id, 100, None)
            return page if {d.state for d in page} == {"delivered"} else None

        page = await eventually(logged, 30, "the log")
        assert len(page) == 30
        assert all(d.attempts == 1 and d.last_attempts[0].status == 200 for d in page)
    assert len(receiver.requests) == 33


async def test_failing_then_recovering_receiver_loses_nothing_and_keeps_order(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    settings = fast(settings, webhook_backoff_max=2.0)
    receiver = Receiver(script={"/flaky": [500, 503, 429, 500, 200]})
    receiver.retry_after["/flaky"] = "1"
    async with receiver.serving() as url, hub(settings, mongo_db) as store:
        hook = await store.create("alice", f"{url}/flaky", ["new_message"], "")
        await produce(settings, [new_message("alice", n, f"conv_{n % 2}") for n in range(12)])
        await eventually(lambda: len(receiver.at("/flaky", ok_only=True)) >= 12, 60, "12 ok")
        delivered = verified(hook, receiver.at("/flaky", ok_only=True))
        assert [e["id"] for e in delivered] == [f"evt_alice_{n}" for n in range(12)]
        attempts = receiver.at("/flaky")
        # The first event was tried five times, always with the same webhook-id.
        assert len({r.webhook_id for r in attempts[:5]}) == 1 and len(attempts) == 16
        # Retry-After (1 s, under HUB_WEBHOOK_BACKOFF_MAX) was honoured after the 429.
        assert attempts[3].at - attempts[2].at >= 0.9

        async def first_logged() -> DeliveryView | None:
            page = await store.delivery_page(hook[0].id, 100, None)
            return page[-1] if page and page[-1].state == "delivered" else None

        first = await eventually(first_logged, 30, "the first delivery logged")
        assert first.attempts == 5
        assert [a.status for a in first.last_attempts] == [500, 503, 429, 500, 200]
        assert [a.error for a in first.last_attempts][:3] == ["http_5xx", "http_5xx", "http_429"]


async def test_dead_endpoint_is_dead_lettered_and_disabled_without_delaying_another(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    settings = fast(settings, webhook_timeout=0.5, webhook_attempts=3)
    receiver = Receiver(script={"/dead": [HANG]})
    async with receiver.serving() as url, hub(settings, mongo_db) as store:
        dead = await store.create("alice", f"{url}/dead", ["new_message"], "")
        await store.create("alice", f"{url}/live", ["new_message"], "")
        started = time.monotonic()
        sent_at: dict[str, float] = {}
        for n in range(5):
            await produce(settings, [new_message("alice", n)])
            sent_at[f"evt_alice_{n}"] = time.monotonic()
        await eventually(lambda: len(receiver.at("/live")) >= 5, 30, "the live endpoint")
        lat = [r.at - sent_at[r.event["id"]] for r in receiver.at("/live")]
        # Each event reached the live endpoint while the dead one held its requests.
        assert max(lat) < 2.0, lat
        assert [r.event["id"] for r in receiver.at("/live")] == [f"evt_alice_{n}" for n in range(5)]

        async def disabled() -> Webhook | None:
            got = await store.get(dead[0].id)
            return got if got is not None and got.disabled_reason else None

        hook = await eventually(disabled, 30, "the dead endpoint disabled")
        assert "failed 3 attempts" in (hook.disabled_reason or "")
        assert "timeout" in (hook.disabled_reason or "")
        # Only the first event was tried (in order: the others wait), three times.
        assert {r.webhook_id for r in receiver.at("/dead")} == {
            r.webhook_id for r in receiver.at("/dead")[:1]
        }
        assert len(receiver.at("/dead")) == 3
        page = await store.delivery_page(dead[0].id, 100, None)
        assert [d.state for d in page] == ["pending"] * 4 + ["dead"]
        letters = [
            DeadLetter.from_json(r.value)
            for r in await read_topic(settings, Topics.from_settings(settings).dead_letter)
        ]
        ours = [d for d in letters if dead[0].id in d.reason]
        assert len(ours) == 1 and ours[0].error_type == "webhook_failed"
        assert ours[0].payload == receiver.at("/dead")[0].body.decode()
        assert time.monotonic() - started < 30


async def test_sigkill_mid_flight_delivers_every_event_at_least_once(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    settings = fast(settings)
    receiver = Receiver(delay=0.05)
    await ensure_topics(settings)
    store = WebhookStore(mongo_db, settings)
    async with receiver.serving() as url:
        hook = await store.create("alice", f"{url}/hook", ["new_message"], "")
        env = hub_env(
            settings,
            HUB_CONNECTORS_POLLERS="false",
            HUB_WEBHOOK_SCAN_INTERVAL="0.1",
            HUB_WEBHOOK_BACKOFF_FIRST="0.1",
            HUB_WEBHOOK_BACKOFF_MAX="0.4",
        )
        await produce(settings, [new_message("alice", n, f"conv_{n % 4}") for n in range(60)])
        with killable_connectors(env, tmp_path, "first") as first:
            await eventually(lambda: len(receiver.requests) >= 10, 60, "deliveries under way")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        killed_at = len(receiver.requests)
        assert killed_at < 60, "the kill came too late to test anything"
        with killable_connectors(env, tmp_path, "second"):
            wanted = {f"evt_alice_{n}" for n in range(60)}
            await eventually(
                lambda: wanted <= {r.event["id"] for r in receiver.requests}, 60, "all 60"
            )
    assert len(verified(hook, receiver.requests)) >= 60
    by_event: dict[str, set[str]] = defaultdict(set)
    for r in receiver.requests:
        by_event[r.event["id"]].add(r.webhook_id)
    # A duplicate (sent again after the kill) carries the webhook-id of its first send.
    assert all(len(webhook_ids) == 1 for webhook_ids in by_event.values())
    assert len(by_event) == 60
    # Per conversation, the first deliveries came in order.
    firsts: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for r in receiver.requests:
        event = r.event
        if event["id"] not in seen:
            seen.add(event["id"])
            conversation = event["data"]["message"]["conversationId"]
            firsts[conversation].append(int(event["id"].rsplit("_", 1)[1]))
    assert all(ns == sorted(ns) for ns in firsts.values())


async def test_replay_from_a_time_resends_exactly_that_range(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    settings = fast(settings)
    receiver = Receiver()
    async with receiver.serving() as url, with_rest(settings, mongo_db, "alice") as api:
        created = await api.post(
            "/api/webhooks", json={"url": f"{url}/hook", "events": ["new_message"]}
        )
        hook_id = created.json()["id"]
        await produce(settings, [new_message("alice", n) for n in range(5)])
        await eventually(lambda: len(receiver.requests) >= 5, 30, "the first five")
        since = utc_now()
        time.sleep(0.01)  # noqa: ASYNC251 - the next records must be stamped after `since`
        await produce(settings, [new_message("alice", n) for n in range(5, 10)])
        await eventually(lambda: len(receiver.requests) >= 10, 30, "the next five")
        first_ids = {r.event["id"]: r.webhook_id for r in receiver.requests}
        answer = await api.post(f"/api/webhooks/{hook_id}/replay", json={"from": since.isoformat()})
        assert answer.status_code == 202, answer.text
        assert answer.json()["scheduled"] == 5 and not answer.json()["truncated"]
        await eventually(lambda: len(receiver.requests) >= 15, 30, "the replay")
        again = receiver.requests[10:]
        assert [r.event["id"] for r in again] == [f"evt_alice_{n}" for n in range(5, 10)]
        assert all(first_ids[r.event["id"]] == r.webhook_id for r in again)
        log = (await api.get(f"/api/webhooks/{hook_id}/deliveries?limit=3")).json()
        assert len(log["deliveries"]) == 3 and log["nextCursor"] is not None
        ping = await api.post(f"/api/webhooks/{hook_id}/test")
        assert ping.status_code == 202
        await eventually(lambda: len(receiver.requests) >= 16, 30, "the ping")
        assert receiver.requests[-1].event["type"] == "ping"
        assert receiver.requests[-1].webhook_id == ping.json()["id"]
        bad = await api.post(f"/api/webhooks/{hook_id}/replay", json={"from": "yesterday"})
        assert bad.status_code == 422
    assert len(receiver.requests) == 16


async def _hub_cli(settings: Settings, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "webhooks",
        *args,
        env=hub_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_cli_lists_endpoints_and_deliveries_and_replays(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    settings = fast(settings)
    receiver = Receiver()
    async with receiver.serving() as url, hub(settings, mongo_db) as store:
        hook, _ = await store.create("carol", f"{url}/cli", ["new_message"], "")
        cursors = await produce(settings, [new_message("carol", n) for n in range(3)])
        await eventually(lambda: len(receiver.requests) >= 3, 30, "three deliveries")
        listed = await _hub_cli(settings, "list", "--user", "carol")
        assert hook.id in listed and "active" in listed and f"{url}/cli" in listed
        log = (await _hub_cli(settings, "deliveries", hook.id)).splitlines()
        assert [line.split()[0] for line in log] == cursors[::-1]
        assert all("delivered" in line and "200" in line for line in log)
        replayed = await _hub_cli(settings, "replay", hook.id, "--cursor", cursors[1])
        assert replayed.startswith("scheduled 2 ")
        await eventually(lambda: len(receiver.requests) >= 5, 30, "the replay")
        assert [r.event["id"] for r in receiver.requests[3:]] == ["evt_carol_1", "evt_carol_2"]


async def test_pause_resume_rotate_and_replay_the_gap(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    settings = fast(settings)
    receiver = Receiver()
    async with receiver.serving() as url, with_rest(settings, mongo_db, "dan") as api:
        created = (
            await api.post("/api/webhooks", json={"url": f"{url}/p", "events": ["new_message"]})
        ).json()
        hook_id, old_secret = created["id"], created["secret"]
        await produce(settings, [new_message("dan", 0)])
        await eventually(lambda: len(receiver.requests) >= 1, 30, "the first")
        before_pause = utc_now()
        paused = await api.patch(f"/api/webhooks/{hook_id}", json={"paused": True})
        assert paused.json()["paused"] is True
        cursors = await produce(settings, [new_message("dan", n) for n in (1, 2)])
        # Taken in batches (up to FETCH_MAX_WAIT_MS): resumed only once they were read.
        await eventually(lambda: read_past(settings, cursors[-1]), 30, "the paused events read")
        rotated = (await api.post(f"/api/webhooks/{hook_id}/rotate-secret")).json()
        resumed = await api.patch(f"/api/webhooks/{hook_id}", json={"paused": False})
        assert resumed.json()["paused"] is False
        # The consumer reads the endpoints per batch, and an idle endpoint's worker reads
        # it again at its next event: this one sees the resume and the rotation.
        await produce(settings, [new_message("dan", 3)])
        await eventually(lambda: len(receiver.requests) >= 2, 30, "the event after resume")
        last = receiver.requests[-1]
        # Events while paused were not scheduled; the one after resuming carries both
        # signatures during the grace period, each verified by the library.
        assert last.event["id"] == "evt_dan_3"
        assert last.headers["webhook-signature"].count("v1,") == 2
        for secret in (old_secret, rotated["secret"]):
            assert Verifier(secret).verify(last.body, last.headers)["id"] == "evt_dan_3"
        answer = await api.post(
            f"/api/webhooks/{hook_id}/replay", json={"from": before_pause.isoformat()}
        )
        assert answer.json()["scheduled"] == 3
        await eventually(lambda: len(receiver.requests) >= 5, 30, "the replayed gap")
        assert [r.event["id"] for r in receiver.requests] == [
            "evt_dan_0",
            "evt_dan_3",
            "evt_dan_1",
            "evt_dan_2",
            "evt_dan_3",
        ]
        # The replayed evt_dan_3 is the same delivery: the same webhook-id as before.
        assert receiver.requests[4].webhook_id == receiver.requests[1].webhook_id
