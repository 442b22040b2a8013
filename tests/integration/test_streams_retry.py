"""The user's retry of a failed reply (the same `clientMessageId` again): one message,
pending again, handed to the connectors as the next attempt; anything else stays a repeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import MESSAGES, Document
from schemas import OutboundMessage
from streams.batch.processor import BatchProcessor
from streams.batch.records import SourceRecord
from streams.batch.state import MemoryStateStore
from tests.resources import unique
from tests.streams_helpers import BrokerSink, raw_message, send_command, send_result

pytestmark = pytest.mark.integration

TOPICS = Topics(unique("t."))  # the `sinks` fixture produces to its topics


def _record(topic: str, offset: int, value: Any) -> SourceRecord:
    return SourceRecord(topic, 0, offset, value.user_id.encode(), value.to_json())


def _told(sink: BrokerSink) -> list[tuple[str, str]]:
    """(event type, status) of the replies' events."""
    out = []
    for event in sink.on(TOPICS.user_events):
        if event["type"] == "new_message" and event["data"]["message"]["direction"] == "outbound":
            out.append(("new_message", event["data"]["message"]["status"]))
        elif event["type"] == "message_status_update":
            out.append(("message_status_update", event["data"]["status"]))
    return out


async def test_a_failed_reply_is_sent_again_by_the_users_retry(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    inbound = raw_message("u-r", 1, chat="chat-r")
    reply = send_command("u-r", inbound.conversation_id, "c-r")
    account = inbound.account_id
    first = sinks()
    processor = BatchProcessor(mongo_db, store, first, TOPICS)
    await processor.process(
        [_record(TOPICS.raw_messages, 0, inbound), _record(TOPICS.commands, 0, reply)]
    )
    await processor.process([_record(TOPICS.commands, 1, send_result(reply, account, "failed"))])
    assert _told(first) == [("new_message", "pending"), ("message_status_update", "failed")]

    retry = sinks()
    await BatchProcessor(mongo_db, store, retry, TOPICS).process(
        [_record(TOPICS.commands, 2, reply)]
    )
    assert _told(retry) == [("new_message", "pending")]
    [again] = [OutboundMessage.model_validate(v) for v in retry.on(TOPICS.outbound)]
    assert (again.message_id, again.attempt) == (reply.message_id, 1)
    assert retry.on(TOPICS.user_events)[0]["id"] != first.on(TOPICS.user_events)[0]["id"]
    assert await mongo_db[MESSAGES].count_documents({"_id": reply.message_id}) == 1

    # A redo of the retry's record tells the same again; another copy of it is a repeat.
    redo, repeat = sinks(), sinks()
    await BatchProcessor(mongo_db, store, redo, TOPICS).process(
        [_record(TOPICS.commands, 2, reply)]
    )
    assert redo.on(TOPICS.user_events)[0]["id"] == retry.on(TOPICS.user_events)[0]["id"]
    assert OutboundMessage.model_validate(redo.on(TOPICS.outbound)[0]).attempt == 1
    await BatchProcessor(mongo_db, store, repeat, TOPICS).process(
        [_record(TOPICS.commands, 3, reply)]
    )
    assert repeat.records == []

    # A redo of the first attempt's failure does not fail the retry; its success counts.
    later = sinks()
    processor = BatchProcessor(mongo_db, store, later, TOPICS)
    await processor.process([_record(TOPICS.commands, 1, send_result(reply, account, "failed"))])
    doc = await mongo_db[MESSAGES].find_one({"_id": reply.message_id})
    assert doc is not None and doc["status"] == "pending"
    await processor.process(
        [_record(TOPICS.commands, 4, send_result(reply, account, "sent", "99", n=1))]
    )
    doc = await mongo_db[MESSAGES].find_one({"_id": reply.message_id})
    assert doc is not None and (doc["status"], doc["platformMessageId"]) == ("sent", "99")
    assert ("message_status_update", "sent") in _told(later)
    assert ("message_status_update", "failed") not in _told(later)[1:]


async def test_a_retry_in_the_batch_of_the_failure_is_one_too(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    """Replay reads larger batches than the live worker: the failure and the user's retry
    after it may share one, and must apply as they did live."""
    inbound = raw_message("u-b", 1, chat="chat-b")
    reply = send_command("u-b", inbound.conversation_id, "c-b")
    account = inbound.account_id
    sink = sinks()
    outcome = await BatchProcessor(mongo_db, MemoryStateStore(), sink, TOPICS).process(
        [
            _record(TOPICS.raw_messages, 0, inbound),
            _record(TOPICS.commands, 0, reply),
            _record(TOPICS.commands, 1, send_result(reply, account, "failed")),
            _record(TOPICS.commands, 2, reply),
            _record(TOPICS.commands, 3, send_result(reply, account, "sent", "42", n=1)),
        ]
    )
    assert outcome.records == 5
    assert _told(sink) == [
        ("new_message", "pending"),
        ("message_status_update", "failed"),
        ("new_message", "pending"),
        ("message_status_update", "sent"),
    ]
    attempts = [OutboundMessage.model_validate(v).attempt for v in sink.on(TOPICS.outbound)]
    assert attempts == [0, 1]
    doc = await mongo_db[MESSAGES].find_one({"_id": reply.message_id})
    assert doc is not None and (doc["status"], doc["retries"]) == ("sent", 1)
