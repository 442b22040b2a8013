"""`hub replay`: rebuild the store's projections and the unread table from the history topics.

Phases: every raw message first, then every command, each read from the beginning up to
the end offsets captured at the start, through the same `BatchProcessor` as live
processing, with an in-memory table and no user events; then the projections are written
once, from the final table state (the versions are those live processing reaches).
Commands carry the explicit ids of messages that existed when they were issued, so
applying all messages first reaches the state live processing reached, whatever the live
interleaving of the two topics was.

Into the live database, the projections are built in staging collections (`messages__replay`
...) and renamed into place only once complete: until then the previous state stays
readable, and a failed replay drops what it staged and changes nothing. Then the rebuilt
table state is appended to the table's changelog
(tombstones for keys that no longer exist) and the workers' consumer group is moved to the
captured end offsets, so workers started afterwards recover exactly that state and go on
with the records produced since.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, close_consumer, create_consumer, create_producer, ensure_topics
from hubcore.mongo import (
    DERIVED_COLLECTIONS,
    Document,
    create_client,
    ensure_indexes,
)
from hubcore.settings import Settings
from streams.batch.processor import BatchProcessor
from streams.batch.records import SourceRecord
from streams.batch.retry import BatchRunner
from streams.batch.state import MemoryStateStore, conversation_key
from streams.errors import ReplayRefused
from streams.replay.staging import STAGED, Staged, switch
from streams.sink.projection import UnreadUpdate, conversation_document, write_projections
from streams.sink.sinks import DiscardSink
from streams.topology import (
    check_copartitioned,
    commit_group_offsets,
    group_members,
    partition_counts,
)
from streams.worker import app_id, changelog_topic

COMPACTED = {"cleanup.policy": "compact"}


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did."""

    events: int = 0
    raws: int = 0
    commands: int = 0
    stored: int = 0
    read: int = 0
    users: int = 0
    seconds: float = 0.0
    database: str = ""
    table_written: bool = False

    @property
    def rate(self) -> float:
        """Source events per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int], None]


def final_projections(
    store: MemoryStateStore,
) -> tuple[dict[str, Document], dict[str, UnreadUpdate]]:
    """Every conversation document and unread document of a rebuilt table."""
    conversations = {
        conv_id: conversation_document(user_id, conv_id, conv)
        for (user_id, conv_id), conv in store.conversations.items()
        if conv.last is not None
    }
    unread = {user_id: UnreadUpdate.of(user_id, state) for user_id, state in store.users.items()}
    return conversations, unread


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return create_consumer(
        settings,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )


async def _bounds(
    settings: Settings, topics: list[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """(beginning, end) offsets of every partition of `topics`, captured now."""
    counts = await partition_counts(settings, topics)
    tps = [TopicPartition(t, p) for t in topics for p in range(counts.get(t, 0))]
    consumer = _consumer(settings)
    await consumer.start()
    try:
        return await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    finally:
        await close_consumer(consumer)


async def _drop_finished(
    consumer: AIOKafkaConsumer,
    todo: dict[TopicPartition, Any],
    stop: Callable[[TopicPartition], int],
) -> None:
    """Forget (and pause) the partitions whose position reached their stop offset.

    The position, not the last offset seen, says done: compaction leaves gaps.
    """
    for tp in list(todo):
        if await consumer.position(tp) >= stop(tp):
            del todo[tp]
            consumer.pause(tp)


class Replay:
    """One rebuild; `run()` does it all."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: str | None = None,
        batch_size: int = 5000,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.database = database or settings.mongo_db
        self.live = self.database == settings.mongo_db
        self.batch_size = batch_size
        self.progress = progress or (lambda n: None)
        self.topics = Topics.from_settings(settings)

    async def total(self) -> int:
        """How many source records the replay will read (for a progress bar)."""
        begin, end = await _bounds(self.settings, [self.topics.raw_messages, self.topics.commands])
        return sum(end[tp] - begin[tp] for tp in end)

    async def run(self) -> ReplaySummary:
        """Wipe, rebuild, and (into the live database) hand the table over to the workers."""
        started = time.perf_counter()
        settings = self.settings
        group = app_id(settings)
        if self.live and await group_members(settings, group):
            raise ReplayRefused(
                f"streams workers of group {group!r} are running",
                fix="stop them first, or rebuild into another database with --database",
            )
        await ensure_topics(settings, {changelog_topic(settings): COMPACTED})
        await check_copartitioned(settings, [changelog_topic(settings)])
        sources = [self.topics.raw_messages, self.topics.commands]
        begin, end = await _bounds(settings, sources)

        client = create_client(settings.mongo_url)
        try:
            live = client[self.database]
            # The live collections stay as they are (and readable) until the rebuild is
            # complete; a replay that fails leaves them untouched.
            db = cast("AsyncDatabase[Document]", Staged(live)) if self.live else live
            for name in DERIVED_COLLECTIONS:
                await db.drop_collection(db[name].name)
            await ensure_indexes(db)
            store = MemoryStateStore()
            runner = BatchRunner(
                BatchProcessor(db, store, DiscardSink(), self.topics, emit_events=False)
            )
            summary = ReplaySummary(database=self.database)
            try:
                for topic in sources:
                    ranges = {tp: (begin[tp], end[tp]) for tp in end if tp.topic == topic}
                    await self._phase(runner, ranges, summary)
                await write_projections(db, *final_projections(store))
            except BaseException:
                if self.live:
                    for name in DERIVED_COLLECTIONS:
                        await live.drop_collection(name + STAGED)
                raise
            if self.live:
                await switch(client, live)
        finally:
            await client.close()
        summary.users = len(store.users)
        if self.live:
            await self._hand_over(store, end)
            summary.table_written = True
        summary.seconds = time.perf_counter() - started
        return summary

    async def _phase(
        self,
        runner: BatchRunner,
        ranges: dict[TopicPartition, tuple[int, int]],
        summary: ReplaySummary,
    ) -> None:
        """Read each partition in `ranges` from its start to its captured end."""
        todo = {tp: r for tp, r in ranges.items() if r[1] > r[0]}
        if not todo:
            return
        consumer = _consumer(self.settings)
        await consumer.start()
        try:
            consumer.assign(list(todo))
            for tp, (first, _) in todo.items():
                consumer.seek(tp, first)
            while todo:
                fetched = await consumer.getmany(
                    *todo, timeout_ms=1000, max_records=self.batch_size
                )
                batch: list[SourceRecord] = []
                for tp, records in fetched.items():
                    stop = todo[tp][1]
                    batch.extend(
                        SourceRecord(r.topic, r.partition, r.offset, r.key, r.value)
                        for r in records
                        if r.offset < stop
                    )
                await _drop_finished(consumer, todo, lambda tp: todo[tp][1])
                if batch:
                    outcome = await runner.run(batch)
                    summary.events += outcome.records
                    summary.raws += outcome.raws
                    summary.commands += outcome.commands
                    summary.stored += outcome.stored
                    summary.read += outcome.read
                    self.progress(outcome.records)
        finally:
            await close_consumer(consumer)

    async def _hand_over(self, store: MemoryStateStore, end: dict[TopicPartition, int]) -> None:
        """Make the rebuilt table the workers' state and move their group past the history."""
        settings = self.settings
        topic = changelog_topic(settings)
        old_keys = await self._changelog_keys(topic)
        producer = create_producer(settings)
        await producer.start()
        try:
            values = {u.encode(): s.to_value() for u, s in store.users.items()}
            for (user_id, conv_id), conv in store.conversations.items():
                values[conversation_key(user_id, conv_id)] = conv.to_value()
            futures = []
            for key, value in sorted(values.items()):
                futures.append(await producer.send(topic, value=orjson.dumps(value), key=key))
            for key in sorted(old_keys - set(values)):
                futures.append(await producer.send(topic, value=None, key=key))
            for fut in futures:
                await fut
        finally:
            await producer.stop()
        await commit_group_offsets(settings, app_id(settings), end)

    async def _changelog_keys(self, topic: str) -> set[bytes]:
        """Every key the changelog holds now."""
        begin, end = await _bounds(self.settings, [topic])
        todo = {tp: end[tp] for tp in end if end[tp] > begin[tp]}
        keys: set[bytes] = set()
        if not todo:
            return keys
        consumer = _consumer(self.settings)
        await consumer.start()
        try:
            consumer.assign(list(todo))
            for tp in todo:
                consumer.seek(tp, begin[tp])
            while todo:
                fetched = await consumer.getmany(*todo, timeout_ms=1000, max_records=10000)
                for records in fetched.values():
                    keys.update(r.key for r in records if r.key is not None)
                await _drop_finished(consumer, todo, todo.__getitem__)
        finally:
            await close_consumer(consumer)
        return keys
