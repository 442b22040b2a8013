"""Events first, the store as a sink: a real `hub streams` worker and a real gateway. Events
reach the owner's WebSocket while the projection sink is held; then the projections catch
up and say what the events said. Mark read announces the conversation's new count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from hubcore.store import conversation_from_doc
from schemas import Conversation
from tests.integration.gateway_kit import (
    Frames,
    frames_until,
    open_ws,
    running_gateway,
    token,
)
from tests.streams_helpers import (
    Worker,
    mark_read,
    produce,
    projected_unread,
    raw_message,
    toggle_sink,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _total_is(n: int) -> Callable[[Frames], bool]:
    def done(frames: Frames) -> bool:
        counts = [f["data"]["unreadCounts"] for f in frames if f["type"] == "unread_count_update"]
        return bool(counts) and counts[-1]["total"] == n

    return done


def _conversations(frames: Frames) -> dict[str, Conversation]:
    """The last `conversation_update` of each conversation."""
    out: dict[str, Conversation] = {}
    for frame in frames:
        if frame["type"] == "conversation_update":
            conv = Conversation.model_validate(frame["data"]["conversation"])
            out[conv.id] = conv
    return out


async def _health(worker: Worker) -> dict[str, Any]:
    port = worker.env["HUB_STREAMS_WEB_PORT"]
    async with httpx.AsyncClient(timeout=5) as client:
        body: dict[str, Any] = (await client.get(f"http://127.0.0.1:{port}/health")).json()
    return body


async def test_events_reach_the_socket_while_the_sink_is_paused(
    module_settings: Settings, worker: Worker, db: AsyncDatabase[Document]
) -> None:
    user = "paused-user"
    topics = Topics.from_settings(module_settings)
    raws = [raw_message(user, n, chat=f"chat-{n % 2}") for n in range(1, 7)]
    async with running_gateway(module_settings) as gateway:
        ws = await open_ws(gateway, token(module_settings, user))
        await toggle_sink(worker, paused=True)
        try:
            await produce(
                module_settings, topics.raw_messages, [(user.encode(), r.to_json()) for r in raws]
            )
            frames = await frames_until(ws, _total_is(len(raws)))
            new = [f["data"]["message"]["id"] for f in frames if f["type"] == "new_message"]
            assert sorted(new) == sorted(r.id for r in raws)
            # The messages are stored on the critical path; the projections are not yet.
            assert await db["messages"].count_documents({"userId": user}) == len(raws)
            assert await db["conversations"].count_documents({"userId": user}) == 0
            assert await db["unread"].find_one({"_id": user}) is None
            health = await _health(worker)
            assert health["sinkPaused"] is True and health["sinkLagSeconds"] > 0
        finally:
            await toggle_sink(worker, paused=False)

        async def caught_up() -> Document | None:
            return await db["unread"].find_one({"_id": user, "total": len(raws)})

        unread = await wait_for(caught_up, what="the projections to catch up")
        announced = _conversations(frames)

        async def stored_as_announced() -> bool:
            # The conversations are written beside the unread document, maybe just after.
            stored = {
                str(d["_id"]): conversation_from_doc(d)
                async for d in db["conversations"].find({"userId": user})
            }
            return stored == announced

        await wait_for(stored_as_announced, what="the conversations as the events said")
        assert len(announced) == 2
        last_counts = [f for f in frames if f["type"] == "unread_count_update"][-1]
        counts = last_counts["data"]["unreadCounts"]
        assert (unread["total"], unread["byPlatform"]) == (counts["total"], counts["byPlatform"])
        assert await projected_unread(db, user) == {
            c.id: c.unread_count for c in announced.values()
        }
        assert (await _health(worker))["sinkLagSeconds"] == 0
        await ws.close()


async def test_mark_read_announces_the_conversation(
    module_settings: Settings, worker: Worker, db: AsyncDatabase[Document]
) -> None:
    user = "reader"
    topics = Topics.from_settings(module_settings)
    raws = [raw_message(user, n, chat="chat-r") for n in range(1, 4)]
    async with running_gateway(module_settings) as gateway:
        ws = await open_ws(gateway, token(module_settings, user))
        await produce(
            module_settings, topics.raw_messages, [(user.encode(), r.to_json()) for r in raws]
        )
        await frames_until(ws, _total_is(3))
        conv = raws[0].conversation_id
        # Read the two newest: the conversation keeps one unread, its last message is read.
        command = mark_read(user, [raws[1].id, raws[2].id], "read-cmd-1", conv)
        await produce(module_settings, topics.commands, [(user.encode(), command.to_json())])
        frames = await frames_until(ws, _total_is(1))
        types = [f["type"] for f in frames]
        assert types == ["message_status_update", "conversation_update", "unread_count_update"]
        announced = _conversations(frames)[conv]
        assert announced.unread_count == 1
        assert announced.last_message is not None
        assert (announced.last_message.id, announced.last_message.status) == (raws[2].id, "read")

        async def projected() -> bool:
            # An older state may be projected first (a write of the earlier batches).
            doc = await db["conversations"].find_one({"_id": conv})
            return doc is not None and conversation_from_doc(doc) == announced

        await wait_for(projected, what="the read conversation projected as announced")
        await ws.close()
