"""A real `hub streams` worker against the real broker and store: messages, repeats, reads,
poison records and the events they cause."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, create_producer
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas import DeadLetter, event_id, parse_user_event
from tests.streams_helpers import (
    consume_all,
    mark_read,
    produce,
    projected_unread,
    raw_message,
    wait_for,
)

pytestmark = pytest.mark.integration


async def _unread(db: AsyncDatabase[Document], user: str) -> Document | None:
    return await db["unread"].find_one({"_id": user})


async def _conversation(db: AsyncDatabase[Document], conversation_id: str) -> Document | None:
    return await db["conversations"].find_one({"_id": conversation_id})


async def _events_of(settings: Settings, user: str, want: int) -> list[Any]:
    """The user events keyed by `user` (waits until at least `want` of them arrived)."""
    topic = Topics.from_settings(settings).user_events
    seen: list[Any] = []

    async def enough() -> bool:
        records = await consume_all(settings, topic, want=10_000, timeout=1.0)
        seen[:] = [r for r in records if r.key == user.encode()]
        return len(seen) >= want

    await wait_for(enough, timeout=30, what=f"{want} events of {user}")
    return [parse_user_event(r.value) for r in seen]


async def test_one_message(module_settings: Settings, db: AsyncDatabase[Document]) -> None:
    topics = Topics.from_settings(module_settings)
    raw = raw_message("one-user", 1)
    await produce(module_settings, topics.raw_messages, [(b"one-user", raw.to_json())])

    async def counted() -> Document | None:
        doc = await _unread(db, "one-user")
        return doc if doc and doc["total"] == 1 else None

    await wait_for(counted, what="unread total 1")
    assert await db["messages"].count_documents({"_id": raw.id}) == 1
    stored = await db["messages"].find_one({"_id": raw.id})
    assert stored is not None and stored["status"] == "unread" and stored["text"] == "hello 1"
    conv = await db["conversations"].find_one({"_id": raw.conversation_id})
    assert conv is not None
    assert conv["title"] == "Chat chat-1"
    assert conv["unreadCount"] == 1
    assert conv["lastMessage"]["id"] == raw.id
    unread = await _unread(db, "one-user")
    assert unread is not None
    assert await projected_unread(db, "one-user") == {raw.conversation_id: 1}
    assert unread["byPlatform"] == {"telegram": 1}

    got = await _events_of(module_settings, "one-user", 3)
    assert sorted(e.type for e in got) == [
        "conversation_update",
        "new_message",
        "unread_count_update",
    ]
    by_type = {e.type: e for e in got}
    assert all(e.user_id == "one-user" for e in got)
    assert by_type["new_message"].data.message == raw.to_message()
    conversation = by_type["conversation_update"].data.conversation
    assert conversation.id == raw.conversation_id
    assert conversation.unread_count == 1
    assert conversation.last_message is not None and conversation.last_message.id == raw.id
    counts = by_type["unread_count_update"].data.unread_counts
    assert counts.total == 1
    assert counts.by_platform == {"telegram": 1}
    assert counts.by_conversation == {raw.conversation_id: 1}
    # The contract's wire shape, exactly.
    wire = orjson.loads(by_type["unread_count_update"].to_json())
    assert set(wire["data"]["unreadCounts"]) == {"total", "byPlatform", "byConversation"}


async def test_repeats_store_once_count_once(
    module_settings: Settings, db: AsyncDatabase[Document]
) -> None:
    topics = Topics.from_settings(module_settings)
    raw = raw_message("rep-user", 1)
    # A later message on the same key (same partition) shows the repeats were processed.
    sentinel = raw_message("rep-user", 2, chat="other")
    records = [(b"rep-user", raw.to_json())] * 3 + [(b"rep-user", sentinel.to_json())]
    await produce(module_settings, topics.raw_messages, records)

    async def sentinel_stored() -> int:
        return await db["messages"].count_documents({"_id": sentinel.id})

    await wait_for(sentinel_stored, what="the message after the repeats")
    # Projections trail the events by the sink's lag: wait for the sentinel's.
    await wait_for(
        lambda: _conversation(db, sentinel.conversation_id), what="the sentinel's projection"
    )
    assert await db["messages"].count_documents({"_id": raw.id}) == 1
    unread = await _unread(db, "rep-user")
    assert unread is not None
    assert unread["total"] == 2
    assert await projected_unread(db, "rep-user") == {
        raw.conversation_id: 1,
        sentinel.conversation_id: 1,
    }
    got = await _events_of(module_settings, "rep-user", 4)
    new_ids = [e.data.message.id for e in got if e.type == "new_message"]
    assert sorted(new_ids) == sorted([raw.id, sentinel.id])


async def test_mark_read(module_settings: Settings, db: AsyncDatabase[Document]) -> None:
    topics = Topics.from_settings(module_settings)
    first, second = raw_message("read-user", 1), raw_message("read-user", 2)
    await produce(
        module_settings,
        topics.raw_messages,
        [(b"read-user", first.to_json()), (b"read-user", second.to_json())],
    )

    async def both_counted() -> bool:
        doc = await _unread(db, "read-user")
        return bool(doc and doc["total"] == 2)

    await wait_for(both_counted, what="two unread")
    conv = first.conversation_id

    async def total_is(n: int) -> None:
        async def check() -> bool:
            doc = await _unread(db, "read-user")
            return bool(doc and doc["total"] == n)

        await wait_for(check, what=f"unread {n}")

    cmd1 = mark_read("read-user", [first.id], "cmd-1", conv)
    await produce(module_settings, topics.commands, [(b"read-user", cmd1.to_json())])
    await total_is(1)
    # cmd-2 marks what is already read: it must change nothing and report nothing.
    cmd2 = mark_read("read-user", [first.id], "cmd-2", conv)
    cmd3 = mark_read("read-user", [first.id, second.id], "cmd-3", conv)
    await produce(
        module_settings,
        topics.commands,
        [(b"read-user", cmd2.to_json()), (b"read-user", cmd3.to_json())],
    )
    await total_is(0)
    statuses = {d["_id"]: d["status"] async for d in db["messages"].find({"userId": "read-user"})}
    assert statuses == {first.id: "read", second.id: "read"}
    stored_conv = await db["conversations"].find_one({"_id": conv})
    assert stored_conv is not None
    assert stored_conv["unreadCount"] == 0
    assert stored_conv["lastMessage"]["status"] == "read"

    # new_message x2, conversation_update and unread_count_update (one or two batches),
    # then per effective command one message_status_update and one unread_count_update.
    got = await _events_of(module_settings, "read-user", 7)
    status_updates = [e for e in got if e.type == "message_status_update"]
    assert [(e.data.message_ids, e.data.status) for e in status_updates] == [
        ([first.id], "read"),
        ([second.id], "read"),
    ]
    assert all(e.data.conversation_id == conv for e in status_updates)
    assert status_updates[0].id == event_id("message_status_update", "cmd-1", conv)
    assert status_updates[1].id == event_id("message_status_update", "cmd-3", conv)
    after_reads = got[got.index(status_updates[0]) :]
    totals = [e.data.unread_counts.total for e in after_reads if e.type == "unread_count_update"]
    assert totals == [1, 0]
    last = [e for e in got if e.type == "unread_count_update"][-1]
    assert last.data.unread_counts.by_conversation == {conv: 0}
    assert last.data.unread_counts.by_platform == {}


async def test_poison_goes_to_dead_letter_and_partition_flows(
    module_settings: Settings, db: AsyncDatabase[Document]
) -> None:
    topics = Topics.from_settings(module_settings)
    good = raw_message("poison-user", 1)
    future_version = {**orjson.loads(good.to_json()), "schema": "hub.raw-message/2"}
    bad_values = [b"{not json", orjson.dumps(future_version)]
    producer = create_producer(module_settings)
    await producer.start()
    try:
        positions = []
        for value in bad_values:
            meta = await producer.send_and_wait(topics.raw_messages, value, key=b"poison-user")
            positions.append((meta.partition, meta.offset))
        await producer.send_and_wait(topics.raw_messages, good.to_json(), key=b"poison-user")
    finally:
        await producer.stop()

    async def good_stored() -> int:
        return await db["messages"].count_documents({"_id": good.id})

    await wait_for(good_stored, what="the valid record after the poison")
    await wait_for(lambda: _conversation(db, good.conversation_id), what="the projection")
    records = await consume_all(module_settings, topics.dead_letter, want=2)
    mine = [r for r in records if r.key == b"poison-user"]
    assert len(mine) == 2
    for record, value, (partition, offset) in zip(mine, bad_values, positions, strict=True):
        letter = DeadLetter.from_json(record.value)
        headers = dict(record.headers)
        assert headers["hub-source-topic"] == topics.raw_messages.encode()
        assert headers["hub-source-partition"] == str(partition).encode()
        assert headers["hub-source-offset"] == str(offset).encode()
        assert letter.source.topic == topics.raw_messages
        assert (letter.source.partition, letter.source.offset) == (partition, offset)
        assert letter.payload.encode() == value
    first, second = (DeadLetter.from_json(r.value) for r in mine)
    assert first.error_type == "invalid_json" and "JSON" in first.reason
    assert second.error_type == "unknown_schema" and "hub.raw-message/2" in second.reason
    unread = await _unread(db, "poison-user")
    assert unread is not None and unread["total"] == 1
