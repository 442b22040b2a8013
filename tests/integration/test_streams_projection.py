"""Projections in the real store: any batch order reaches the same documents, and a version
guard keeps an older state from overwriting a newer one. What is under test is the store's
writes; the batches only compute them (no output sent, the table in memory), so no Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import CONVERSATIONS, UNREAD, Document
from schemas import RawMessage
from streams.batch.processor import BatchProcessor
from streams.batch.records import SourceRecord
from streams.batch.state import MemoryStateStore
from streams.sink import projection
from streams.sink.projection import Projections, write_projections
from streams.sink.sinks import DiscardSink
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
            "version": d["version"],
        }
        for d in docs
    }


def _without_versions(convs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c: {k: v for k, v in doc.items() if k != "version"} for c, doc in convs.items()}


def _processor(db: AsyncDatabase[Document]) -> BatchProcessor:
    return BatchProcessor(db, MemoryStateStore(), DiscardSink(), TOPICS, emit_events=False)


async def _run(processor: BatchProcessor, records: list[SourceRecord]) -> Projections:
    """Process a batch and write its projections, as the worker's sink would."""
    outcome = await processor.process(records)
    projections = outcome.projections
    await write_projections(processor.db, projections.conversations, projections.unread)
    return projections


async def test_batches_in_any_order_reach_the_same_conversations(
    mongo_client: Any, mongo_db: AsyncDatabase[Document]
) -> None:
    raws = [raw_message(f"u{n % 3}", n, chat=f"chat-{n % 2}") for n in range(12)]
    forward = _processor(mongo_db)
    for start in range(0, 12, 4):
        await _run(forward, _records(raws[start : start + 4], start))
    backward_db = mongo_client[mongo_db.name + "_b"]
    try:
        backward = _processor(backward_db)
        # The newest messages arrive first (offsets still grow in arrival order).
        for offset, start in enumerate((8, 4, 0)):
            await _run(backward, _records(raws[start : start + 4], offset * 4))
        expected = await _conversations(mongo_db)
        # Versions follow the offsets, which differ; the conversations do not.
        got = await _conversations(backward_db)
        assert _without_versions(got) == _without_versions(expected)
    finally:
        await mongo_client.drop_database(backward_db.name)
    newest = {r.conversation_id: r for r in raws}  # the last of each conversation wins
    assert {c: v["last"] for c, v in expected.items()} == {c: r.id for c, r in newest.items()}
    assert all(v["unread"] == 2 for v in expected.values())  # 12 messages, 6 conversations


async def test_older_version_never_overwrites_newer(mongo_db: AsyncDatabase[Document]) -> None:
    processor = _processor(mongo_db)
    first = await processor.process(_records([raw_message("u1", 1)]))
    second = await processor.process(_records([raw_message("u1", 2)], 1))
    newer, older = second.projections, first.projections
    assert await write_projections(mongo_db, newer.conversations, newer.unread) == 2
    # A stale worker, a redelivery or a slow sink writes the older state afterwards.
    assert await write_projections(mongo_db, older.conversations, older.unread) == 0
    # Even a statement that got past the version lookup is refused by its guard.
    for update in older.unread.values():
        guard = projection._older_than(update.user_id, update.version)
        await mongo_db[UNREAD].update_one(guard, {"$set": {"total": 1}})
    for conv_id, doc in older.conversations.items():
        guard = projection._older_than(conv_id, doc["version"])
        await mongo_db[CONVERSATIONS].update_one(guard, {"$set": {"unreadCount": 1}})
    (conv,) = (await _conversations(mongo_db)).values()
    assert (conv["unread"], conv["version"]) == (2, 2)
    unread = await mongo_db[UNREAD].find_one({"_id": "u1"})
    assert unread is not None
    assert (unread["total"], unread["version"]) == (2, 2)


async def test_sink_path_updates_first_and_still_creates_and_guards(
    mongo_db: AsyncDatabase[Document],
) -> None:
    processor = _processor(mongo_db)
    first = await processor.process(_records([raw_message("u1", 1)]))
    second = await processor.process(_records([raw_message("u1", 2)], 1))
    older, newer = first.projections, second.projections
    # Nothing stored yet: the updates match nothing, and the documents are created.
    assert await write_projections(mongo_db, older.conversations, older.unread, stored=True) == 2
    (conv,) = (await _conversations(mongo_db)).values()
    assert (conv["unread"], conv["version"]) == (1, 1)
    assert await write_projections(mongo_db, newer.conversations, newer.unread, stored=True) == 2
    # One stored (updated first) and one new (created after the lookup): both counted.
    third = [raw_message("u1", 3), raw_message("u1", 4, chat="chat-2")]
    both = (await processor.process(_records(third, 2))).projections.conversations
    assert len(both) == 2
    assert await write_projections(mongo_db, both, {}, stored=True) == 2
    assert await write_projections(mongo_db, older.conversations, {}, stored=True) == 0
    # The older state again (a redelivery, a stale worker): refused, the newer one stays.
    assert await write_projections(mongo_db, older.conversations, older.unread, stored=True) == 0
    convs = await _conversations(mongo_db)
    assert {(c["unread"], c["version"]) for c in convs.values()} == {
        (3, 3),
        (1, int(both[raw_message("u1", 4, chat="chat-2").conversation_id]["version"])),
    }
    unread = await mongo_db[UNREAD].find_one({"_id": "u1"})
    assert unread is not None
    assert (unread["total"], unread["version"]) == (2, 2)


async def test_document_without_version_is_replaced(mongo_db: AsyncDatabase[Document]) -> None:
    raw = raw_message("u1", 1)
    legacy = {"_id": raw.conversation_id, "userId": "u1", "unreadCount": 7}
    await mongo_db[CONVERSATIONS].insert_one(legacy)
    await mongo_db[UNREAD].insert_one({"_id": "u1", "total": 7})
    await _run(_processor(mongo_db), _records([raw]))
    (conv,) = (await _conversations(mongo_db)).values()
    assert (conv["unread"], conv["version"]) == (1, 1)
    unread = await mongo_db[UNREAD].find_one({"_id": "u1"})
    assert unread is not None and unread["total"] == 1 and unread["version"] == 1
