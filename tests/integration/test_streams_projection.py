"""Conversation projections in the real store: one statement per conversation, any order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import CONVERSATIONS, Document
from schemas import RawMessage
from streams import projection
from streams.processor import BatchProcessor
from streams.records import SourceRecord
from streams.sinks import DiscardSink
from streams.state import MemoryStateStore
from tests.streams_helpers import raw_message

pytestmark = pytest.mark.integration

TOPICS = Topics("proj")


def _records(raws: Sequence[RawMessage], first_offset: int = 0) -> list[SourceRecord]:
    return [
        SourceRecord(TOPICS.raw_messages, 0, first_offset + i, r.user_id.encode(), r.to_json())
        for i, r in enumerate(raws)
    ]


async def _conversations(db: AsyncDatabase[Document]) -> dict[str, dict[str, Any]]:
    docs = await db[CONVERSATIONS].find({}).to_list()
    return {
        str(d["_id"]): {
            "last": d["lastMessage"]["id"],
            "at": d["lastMessageAt"],
            "unread": d["unreadCount"],
            "title": d["title"],
        }
        for d in docs
    }


def _processor(db: AsyncDatabase[Document]) -> BatchProcessor:
    return BatchProcessor(db, MemoryStateStore(), DiscardSink(), TOPICS, emit_events=False)


async def test_batches_in_any_order_reach_the_same_conversations(
    mongo_client: Any, mongo_db: AsyncDatabase[Document]
) -> None:
    raws = [raw_message(f"u{n % 3}", n, chat=f"chat-{n % 2}") for n in range(12)]
    forward = _processor(mongo_db)
    for start in range(0, 12, 4):
        await forward.process(_records(raws[start : start + 4], start))
    backward_db = mongo_client[mongo_db.name + "_b"]
    try:
        backward = _processor(backward_db)
        # The newest messages arrive first (offsets still grow in arrival order).
        for offset, start in enumerate((8, 4, 0)):
            await backward.process(_records(raws[start : start + 4], offset * 4))
        expected = await _conversations(mongo_db)
        assert await _conversations(backward_db) == expected
    finally:
        await mongo_client.drop_database(backward_db.name)
    newest = {r.conversation_id: r for r in raws}  # the last of each conversation wins
    assert {c: v["last"] for c, v in expected.items()} == {c: r.id for c, r in newest.items()}
    assert all(v["unread"] == 2 for v in expected.values())  # 12 messages, 6 conversations


async def test_conversation_written_between_read_and_write(
    mongo_db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    older, newer = raw_message("u1", 1), raw_message("u1", 2)
    processor = _processor(mongo_db)
    await processor.process(_records([older]))

    # Another writer's document appears after the read: the batch saw no conversation.
    async def nothing_stored(*args: Any, **kwargs: Any) -> dict[str, Document]:
        return {}

    monkeypatch.setattr(projection, "find_conversations", nothing_stored)
    await processor.process(_records([newer], 1))
    (conv,) = (await _conversations(mongo_db)).values()
    assert (conv["last"], conv["unread"]) == (newer.id, 2)


async def test_advance_overtaken_still_writes_the_count(
    mongo_db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = (raw_message("u1", n) for n in (1, 2, 3))
    processor = _processor(mongo_db)
    await processor.process(_records([first]))
    stale = await projection.find_conversations(mongo_db, [first.conversation_id])
    # Another writer advances to `third` after this batch read the stored `first`.
    await _processor(mongo_db).process(_records([third], 2))

    async def stale_read(*args: Any, **kwargs: Any) -> dict[str, Document]:
        return stale

    monkeypatch.setattr(projection, "find_conversations", stale_read)
    await processor.process(_records([second], 1))
    (conv,) = (await _conversations(mongo_db)).values()
    assert (conv["last"], conv["unread"]) == (third.id, 2)
