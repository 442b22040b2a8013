"""The batch logic reaches the same state whatever the batches: a mixed history applied one
record at a time (as a lightly loaded worker does) and in two large batches, every raw
message first (as `hub replay` does), leaves the same store, the same table and, in every
conversation, an unread count equal to its unread inbound messages. Against the real
store; no Kafka is involved (records are made here, as the worker and replay make them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import orjson
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.mongo_client import AsyncMongoClient

from hubcore.kafka import Topics
from hubcore.mongo import MESSAGES, Document
from hubcore.settings import Settings
from schemas.base import Record
from streams.batch.processor import BatchProcessor
from streams.batch.records import SourceRecord
from streams.batch.state import MemoryStateStore
from streams.replay.statehash import canonical
from streams.sink.sinks import DiscardSink
from tests.streams_helpers import MixedHistory, ground_truth

pytestmark = pytest.mark.integration

TOPICS = Topics("order")


class Log:
    """The two source topics as offsets are handed out: one partition each."""

    def __init__(self) -> None:
        self.raws: list[SourceRecord] = []
        self.commands: list[SourceRecord] = []

    def add(self, topic: str, items: Sequence[Record], into: list[SourceRecord]) -> None:
        for item in items:
            user = str(cast(Any, item).user_id)  # every source record names its user
            into.append(SourceRecord(topic, 0, len(into), user.encode(), item.to_json()))


async def _table_and_store(
    db: AsyncDatabase[Document], store: MemoryStateStore
) -> tuple[dict[str, Any], list[bytes]]:
    table: dict[str, Any] = {u: s.to_value() for u, s in store.users.items()}
    table |= {f"{u}/{c}": s.to_value() for (u, c), s in store.conversations.items()}
    messages = [canonical(d) async for d in db[MESSAGES].find({}).sort("_id", 1)]
    return table, messages


async def _assert_counts_match_messages(
    db: AsyncDatabase[Document], store: MemoryStateStore, users: list[str]
) -> None:
    for user in users:
        truth = await ground_truth(db, user)
        counted = {
            c: s.unread for (u, c), s in store.conversations.items() if u == user and s.unread
        }
        assert counted == truth, user
        assert store.users[user].total == sum(truth.values()), user


async def test_one_by_one_and_replay_batches_reach_the_same_state(
    mongo_client: AsyncMongoClient[Document], settings: Settings
) -> None:
    history = MixedHistory(4, seed=27, per_round=12)
    log = Log()
    one_by_one = mongo_client[settings.mongo_db + "_live"]
    live = MemoryStateStore()
    processor = BatchProcessor(one_by_one, live, DiscardSink(), TOPICS, emit_events=False)
    for _ in range(6):
        raws, commands = history.round()
        start = len(log.raws)
        log.add(TOPICS.raw_messages, raws, log.raws)
        for record in log.raws[start:]:
            await processor.process([record])
        start = len(log.commands)
        log.add(TOPICS.commands, commands, log.commands)
        for record in log.commands[start:]:
            await processor.process([record])
    kinds = {orjson.loads(r.value or b"{}").get("type") for r in log.commands}
    assert kinds == {"mark_read", "send", "send_result", "edit", "delete"}, kinds

    replayed = mongo_client[settings.mongo_db + "_replay"]
    rebuilt = MemoryStateStore()
    replay = BatchProcessor(replayed, rebuilt, DiscardSink(), TOPICS, emit_events=False)
    try:
        await replay.process(log.raws)
        await replay.process(log.commands)

        await _assert_counts_match_messages(one_by_one, live, history.users)
        await _assert_counts_match_messages(replayed, rebuilt, history.users)
        table, messages = await _table_and_store(replayed, rebuilt)
        live_table, live_messages = await _table_and_store(one_by_one, live)
        assert {k: (v, live_table.get(k)) for k, v in table.items() if live_table.get(k) != v} == {}
        assert set(live_messages) ^ set(messages) == set()
        assert messages == live_messages
    finally:
        await mongo_client.drop_database(one_by_one.name)
        await mongo_client.drop_database(replayed.name)
