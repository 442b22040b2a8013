"""A record that makes processing fail for good, inside a batch of 500, against the real broker
and store: bisection isolates it into the dead letters and the other 499 are processed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, create_producer, ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas import DeadLetter
from streams.batch.outcome import BatchOutcome
from streams.batch.processor import BatchProcessor
from streams.batch.records import SourceRecord
from streams.batch.retry import BatchRunner
from streams.batch.state import MemoryStateStore
from streams.sink.projection import write_projections
from streams.sink.sinks import KafkaSink
from tests.streams_helpers import consume_all, projected_unread, raw_message

pytestmark = pytest.mark.integration

POISON_TEXT = "makes processing fail"


class FailsOnOneRecord(BatchProcessor):
    """The real batch logic, with a defect that one record's content triggers (as a bug
    would): every batch holding it fails with a non-retriable error."""

    async def process(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        if any(POISON_TEXT.encode() in (r.value or b"") for r in records):
            raise ValueError("cannot handle this record")
        return await super().process(records)


def _records(topics: Topics, count: int, first: int, poison_at: int | None) -> list[SourceRecord]:
    out = []
    for i in range(count):
        text = POISON_TEXT if i == poison_at else None
        raw = raw_message("bisect-user", first + i, chat=f"chat-{i % 7}", text=text)
        out.append(SourceRecord(topics.raw_messages, 0, first + i, b"bisect-user", raw.to_json()))
    return out


async def test_poison_in_a_batch_of_500_is_isolated(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    topics = Topics.from_settings(settings)
    await ensure_topics(settings)
    producer = create_producer(settings)
    await producer.start()
    try:
        store = MemoryStateStore()
        processor = FailsOnOneRecord(mongo_db, store, KafkaSink(producer), topics)
        runner = BatchRunner(processor, max_backoff=0.01)
        batch = _records(topics, 500, 0, poison_at=237)
        outcome = await runner.run(batch)
        # The partition flows on: the next batch is processed as usual.
        after = await runner.run(_records(topics, 10, 500, poison_at=None))
    finally:
        await producer.stop()

    assert [p.record.offset for p in outcome.dead_letters] == [237]
    assert (outcome.records, outcome.stored, after.stored) == (500, 499, 10)
    assert runner.retrying_for() == 0
    assert await mongo_db["messages"].count_documents({}) == 509
    assert store.get_user("bisect-user").total == 509
    outcome.projections.merge(after.projections)
    await write_projections(mongo_db, outcome.projections.conversations, outcome.projections.unread)
    unread = await mongo_db["unread"].find_one({"_id": "bisect-user"})
    assert unread is not None and unread["total"] == 509
    assert sum((await projected_unread(mongo_db, "bisect-user")).values()) == 509

    letters = await consume_all(settings, topics.dead_letter, want=1, timeout=15)
    assert len(letters) == 1
    letter = DeadLetter.from_json(letters[0].value)
    assert letter.error_type == "processing_failed" and "cannot handle" in letter.reason
    assert (letter.source.topic, letter.source.offset) == (topics.raw_messages, 237)
    assert letter.payload.encode() == batch[237].value
