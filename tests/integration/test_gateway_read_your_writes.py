"""Read-your-writes across push and REST: a client that reads REST right after an event sees
everything the event showed (the message among its conversation's messages, the
conversation with that message as `lastMessage` and the event's `unreadCount`, the totals),
while the worker's projection writes are held, and under 100 msg/s of other users'
traffic. A real `hub streams` worker and a real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, create_producer
from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.gateway_kit import Frames, frames_until, open_ws, running_gateway, token
from tests.streams_helpers import Worker, mark_read, produce, raw_message, toggle_sink, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 20
OTHER_RATE = 100  # messages/s of other users meanwhile


def _after(message_id: str) -> Callable[[Frames], bool]:
    """Complete once the batch that told of `message_id` ended with its unread counts."""

    def done(frames: Frames) -> bool:
        told = next(
            (
                i
                for i, f in enumerate(frames)
                if f["type"] == "new_message" and f["data"]["message"]["id"] == message_id
            ),
            None,
        )
        return told is not None and any(
            f["type"] == "unread_count_update" for f in frames[told + 1 :]
        )

    return done


def _counted(frames: Frames) -> bool:
    return any(f["type"] == "unread_count_update" for f in frames)


def _told(frames: Frames) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The last conversation of each `conversation_update`, and the last unread counts."""
    convs = {
        f["data"]["conversation"]["id"]: f["data"]["conversation"]
        for f in frames
        if f["type"] == "conversation_update"
    }
    counts = [f["data"]["unreadCounts"] for f in frames if f["type"] == "unread_count_update"]
    return convs, counts[-1]


async def _rest(client: httpx.AsyncClient, path: str) -> Any:
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _listed(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    page = await _rest(client, "/api/conversations?limit=200")
    return {c["id"]: c for c in page["conversations"]}


async def _shows(
    client: httpx.AsyncClient, conv_id: str, told: dict[str, Any], message_id: str
) -> list[str]:
    """What REST shows differently from the event (empty: nothing)."""
    wrong = []
    conv = (await _listed(client)).get(conv_id)
    if conv is None:
        return [f"{conv_id} not listed"]
    if (conv["lastMessage"] or {}).get("id") != message_id:
        wrong.append(f"lastMessage {(conv['lastMessage'] or {}).get('id')} != {message_id}")
    if conv["unreadCount"] != told["unreadCount"]:
        wrong.append(f"unreadCount {conv['unreadCount']} != {told['unreadCount']}")
    messages = await _rest(client, f"/api/conversations/{conv_id}/messages?limit=200")
    if message_id not in {m["id"] for m in messages["messages"]}:
        wrong.append(f"{message_id} not among the messages")
    return wrong


@contextlib.asynccontextmanager
async def _rest_client(base_url: str, jwt: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {jwt}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=15) as client:
        yield client


async def test_rest_shows_what_was_pushed_while_the_sink_is_held(
    module_settings: Settings, worker: Worker, db: AsyncDatabase[Document]
) -> None:
    user = "ryw-held"
    topics = Topics.from_settings(module_settings)
    raws = [raw_message(user, n, chat=f"chat-{n % 2}") for n in range(1, 6)]
    jwt = token(module_settings, user)
    async with (
        running_gateway(module_settings) as gateway,
        _rest_client(gateway.base_url, jwt) as client,
    ):
        ws = await open_ws(gateway, jwt)
        await toggle_sink(worker, paused=True)
        try:
            await produce(
                module_settings, topics.raw_messages, [(user.encode(), r.to_json()) for r in raws]
            )
            frames = await frames_until(ws, _after(raws[-1].id))
            convs, counts = _told(frames)
            assert await db["conversations"].count_documents({"userId": user}) == 0
            newest = {r.conversation_id: r.id for r in raws}  # in sentAt order
            for conv_id, message_id in newest.items():
                assert await _shows(client, conv_id, convs[conv_id], message_id) == []
            unread = await _rest(client, "/api/unread")
            assert (unread["total"], unread["byPlatform"]) == (5, counts["byPlatform"])
            assert unread["byConversation"] == {c: v["unreadCount"] for c, v in convs.items()}

            # A read through REST: the next answers show it, still without projections.
            conv_id = raws[0].conversation_id
            answer = await client.post(f"/api/conversations/{conv_id}/read")
            assert answer.status_code == 202, answer.text
            read = answer.json()["messageIds"]
            convs, counts = _told(await frames_until(ws, _counted))
            assert convs[conv_id]["unreadCount"] == 0 and counts["total"] == 5 - len(read)
            listed = {
                c["id"]: c for c in (await _rest(client, "/api/conversations"))["conversations"]
            }
            assert listed[conv_id]["unreadCount"] == 0
            assert listed[conv_id]["lastMessage"]["status"] == "read"
            assert (await _rest(client, "/api/unread"))["total"] == 5 - len(read)
        finally:
            await toggle_sink(worker, paused=False)

        # Once projected, REST answers from the projections and lets the pushed state go.
        async def projected() -> bool:
            doc = await db["conversations"].find_one({"_id": conv_id})
            return doc is not None and doc["unreadCount"] == 0

        await wait_for(projected, what="the read conversation projected")
        fresh = gateway.app.runtime.registry.fresh
        listed = await _listed(client)
        assert listed[conv_id]["unreadCount"] == 0
        assert conv_id not in fresh.conversations(user)
        await ws.close()
        assert fresh.conversations(user) == {}  # no connection here: nothing kept


async def _other_traffic(settings: Settings, stop: asyncio.Event) -> int:
    """Messages of 50 other users at OTHER_RATE/s until `stop` (at most 120 s)."""
    topic = Topics.from_settings(settings).raw_messages
    producer = create_producer(settings)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        while not stop.is_set() and time.monotonic() - started < 120:
            due = started + sent / OTHER_RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            other = f"ryw-other-{sent % 50}"
            msg = raw_message(other, sent, chat=f"c{sent % 3}")
            await producer.send(topic, value=msg.to_json(), key=other.encode())
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def test_rest_right_after_each_event_under_load(
    module_settings: Settings, worker: Worker, db: AsyncDatabase[Document]
) -> None:
    user = "ryw-loaded"
    topics = Topics.from_settings(module_settings)
    jwt = token(module_settings, user)
    rng = random.Random(21)
    stop = asyncio.Event()
    async with (
        running_gateway(module_settings) as gateway,
        _rest_client(gateway.base_url, jwt) as client,
    ):
        ws = await open_ws(gateway, jwt)
        traffic = asyncio.create_task(_other_traffic(module_settings, stop))
        wrong: list[list[str]] = []
        try:
            for n in range(1, ROUNDS + 1):
                raw = raw_message(user, 1000 + n, chat=f"chat-{rng.randrange(3)}")
                await produce(
                    module_settings, topics.raw_messages, [(user.encode(), raw.to_json())]
                )
                frames = await frames_until(ws, _after(raw.id))
                convs, _ = _told(frames)
                wrong.append(
                    await _shows(client, raw.conversation_id, convs[raw.conversation_id], raw.id)
                )
                if n % 5 == 0:  # now and then a read, told and then listed
                    command = mark_read(user, [raw.id], f"ryw-read-{n}", raw.conversation_id)
                    await produce(
                        module_settings, topics.commands, [(user.encode(), command.to_json())]
                    )
                    frames = await frames_until(
                        ws, lambda f: any(x["type"] == "unread_count_update" for x in f)
                    )
                    convs, _ = _told(frames)
                    wrong.append(
                        await _shows(
                            client, raw.conversation_id, convs[raw.conversation_id], raw.id
                        )
                    )
        finally:
            stop.set()
            others = await traffic
        await ws.close()
    assert others >= OTHER_RATE, f"only {others} other messages went out"
    assert [w for w in wrong if w] == []
    assert len(wrong) == ROUNDS + ROUNDS // 5
