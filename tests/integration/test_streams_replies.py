"""Replies (`send` commands) through the batch logic against the real store: stored outbound
and pending, announced, handed to the connectors once per command, never counted unread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import MESSAGES, Document
from schemas import Message, OutboundMessage, SendMessage
from schemas.attachments import OutboundAttachment
from streams.batch.processor import BatchProcessor
from streams.batch.records import SourceRecord
from streams.batch.state import MemoryStateStore
from tests.resources import unique
from tests.streams_helpers import (
    BrokerSink,
    delete_command,
    edit_command,
    ground_truth,
    raw_message,
    send_command,
    send_result,
    status_report,
)

pytestmark = pytest.mark.integration

TOPICS = Topics(unique("t."))  # the `sinks` fixture produces to its topics


def _raw_record(offset: int, value: Any) -> SourceRecord:
    return SourceRecord(TOPICS.raw_messages, 0, offset, value.user_id.encode(), value.to_json())


def _command_record(offset: int, value: Any) -> SourceRecord:
    return SourceRecord(TOPICS.commands, 0, offset, value.user_id.encode(), value.to_json())


async def test_a_reply_is_stored_announced_and_sent_once(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    inbound = raw_message("u1", 1, chat="chat-9", text="Where is my order?")
    first = BatchProcessor(mongo_db, store, sinks(), TOPICS)
    await first.process([_raw_record(0, inbound)])

    reply = send_command("u1", inbound.conversation_id, "c-1")
    sink = sinks()
    outcome = await BatchProcessor(mongo_db, store, sink, TOPICS).process(
        [_command_record(0, reply)]
    )
    assert outcome.dead_letters == []

    doc = await mongo_db[MESSAGES].find_one({"_id": reply.message_id})
    assert doc is not None
    assert (doc["direction"], doc["status"], doc["text"]) == ("outbound", "pending", reply.text)

    kinds = [e["type"] for e in sink.on(TOPICS.user_events)]
    assert kinds == ["new_message", "conversation_update"]  # no count changed
    message = Message.model_validate(sink.on(TOPICS.user_events)[0]["data"]["message"])
    assert (message.id, message.direction, message.status) == (
        reply.message_id,
        "outbound",
        "pending",
    )
    conversation = sink.on(TOPICS.user_events)[1]["data"]["conversation"]
    assert conversation["lastMessage"]["id"] == reply.message_id
    assert conversation["unreadCount"] == 1  # the customer's message is still unread

    [out_value] = sink.on(TOPICS.outbound)
    outbound = OutboundMessage.model_validate(out_value)
    assert outbound.message_id == reply.message_id
    assert outbound.account_id == inbound.account_id
    assert outbound.external_conversation_id == "chat-9"
    assert outbound.reply_to == inbound.external_message_id
    assert [key for topic, key, _ in sink.records if topic == TOPICS.outbound] == [
        inbound.account_id.encode()
    ]
    state = store.get_user("u1")
    assert state.total == 1

    # The same record again (a crash before the ack): the same events and outbound record.
    redo = sinks()
    await BatchProcessor(mongo_db, store, redo, TOPICS).process([_command_record(0, reply)])
    assert redo.on(TOPICS.outbound) == sink.on(TOPICS.outbound)
    ids = [e["id"] for e in redo.on(TOPICS.user_events)]
    assert ids == [e["id"] for e in sink.on(TOPICS.user_events)]

    # The same reply in a later command (the client retried): nothing new, nothing sent.
    again = sinks()
    await BatchProcessor(mongo_db, store, again, TOPICS).process([_command_record(1, reply)])
    assert again.records == []
    assert await mongo_db[MESSAGES].count_documents({"direction": "outbound"}) == 1


async def test_a_reply_to_a_conversation_the_user_has_not_is_dead_lettered(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    theirs = raw_message("owner", 1, chat="chat-x")
    await BatchProcessor(mongo_db, store, sinks(), TOPICS).process([_raw_record(0, theirs)])
    intruder = send_command("intruder", theirs.conversation_id, "c-1")
    sink = sinks()
    outcome = await BatchProcessor(mongo_db, store, sink, TOPICS).process(
        [_command_record(0, intruder)]
    )
    assert [p.error.error_type for p in outcome.dead_letters] == ["unknown_conversation"]
    assert sink.on(TOPICS.outbound) == []
    assert sink.on(TOPICS.user_events) == []
    [dead] = sink.on(TOPICS.dead_letter)
    assert "unknown" in dead["reason"]
    assert await mongo_db[MESSAGES].count_documents({"direction": "outbound"}) == 0


async def test_a_reply_in_the_batch_of_the_conversations_first_message(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    inbound = raw_message("u2", 1, chat="chat-new", platform="slack")
    reply = send_command("u2", inbound.conversation_id, "c-9")
    sink = sinks()
    await BatchProcessor(mongo_db, MemoryStateStore(), sink, TOPICS).process(
        [_raw_record(0, inbound), _command_record(0, reply)]
    )
    [out_value] = sink.on(TOPICS.outbound)
    assert OutboundMessage.model_validate(out_value).external_conversation_id == "chat-new"
    kinds = [e["type"] for e in sink.on(TOPICS.user_events)]
    assert kinds == ["new_message", "new_message", "conversation_update", "unread_count_update"]
    counts = sink.on(TOPICS.user_events)[-1]["data"]["unreadCounts"]
    assert counts["total"] == 1


def _statuses(sink: BrokerSink) -> list[str]:
    return [
        e["data"]["status"]
        for e in sink.on(TOPICS.user_events)
        if e["type"] == "message_status_update"
    ]


async def test_whatsapp_statuses_never_move_backwards(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    sink = sinks()
    inbound = raw_message("u3", 1, chat="15550001", platform="whatsapp")
    reply = send_command("u3", inbound.conversation_id, "c-3")
    processor = BatchProcessor(mongo_db, store, sink, TOPICS)
    await processor.process([_raw_record(0, inbound), _command_record(0, reply)])
    account = inbound.account_id
    later = [
        send_result(reply, account, "sent", "wamid.A"),
        status_report("u3", account, "wamid.A", "delivered", 1),
        status_report("u3", account, "wamid.A", "read", 2),
        status_report("u3", account, "wamid.A", "delivered", 3),  # late
    ]
    for offset, command in enumerate(later, start=1):
        await processor.process([_command_record(offset, command)])
    assert _statuses(sink) == ["sent", "delivered", "read"]
    doc = await mongo_db[MESSAGES].find_one({"_id": reply.message_id})
    assert doc is not None
    assert (doc["status"], doc["platformMessageId"]) == ("read", "wamid.A")
    updates = [e for e in sink.on(TOPICS.user_events) if e["type"] == "conversation_update"]
    assert updates[-1]["data"]["conversation"]["lastMessage"]["status"] == "read"
    # The same reports again (the platform repeating itself) change nothing.
    again = sinks()
    await BatchProcessor(mongo_db, store, again, TOPICS).process(
        [_command_record(10 + i, c) for i, c in enumerate(later)]
    )
    assert _statuses(again) == []


async def test_reports_of_one_batch_apply_in_order(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    sink = sinks()
    inbound = raw_message("u4", 1, chat="15550002", platform="whatsapp")
    reply = send_command("u4", inbound.conversation_id, "c-4")
    account = inbound.account_id
    await BatchProcessor(mongo_db, MemoryStateStore(), sink, TOPICS).process(
        [_raw_record(0, inbound)]
        + [
            _command_record(i, c)
            for i, c in enumerate(
                [
                    reply,
                    send_result(reply, account, "sent", "wamid.B"),
                    status_report("u4", account, "wamid.B", "read", 1),
                    status_report("u4", account, "wamid.B", "delivered", 2),
                ]
            )
        ]
    )
    doc = await mongo_db[MESSAGES].find_one({"_id": reply.message_id})
    assert doc is not None and doc["status"] == "read"
    assert _statuses(sink) == ["sent", "read"]  # every step, in order; the late one none


async def test_a_failed_send_says_so(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    sink = sinks()
    inbound = raw_message("u5", 1, chat="chat-f")
    reply = send_command("u5", inbound.conversation_id, "c-5")
    processor = BatchProcessor(mongo_db, store, sink, TOPICS)
    await processor.process([_raw_record(0, inbound), _command_record(0, reply)])
    await processor.process([_command_record(1, send_result(reply, inbound.account_id, "failed"))])
    # A success reported after the failure does not revive the reply.
    await processor.process(
        [_command_record(2, send_result(reply, inbound.account_id, "sent", "9", n=1))]
    )
    assert _statuses(sink) == ["failed"]
    [error] = [e for e in sink.on(TOPICS.user_events) if e["type"] == "error"]
    assert error["data"] == {
        "code": "send_failed",
        "message": "chat not found",
        "messageId": reply.message_id,
    }
    # Another user's result for this reply changes nothing.
    other = sinks()
    stolen = send_result(reply, inbound.account_id, "sent", "9", n=2).model_copy(
        update={"user_id": "intruder"}
    )
    await BatchProcessor(mongo_db, store, other, TOPICS).process([_command_record(3, stolen)])
    assert other.records == []


def _kinds(sink: BrokerSink) -> list[str]:
    return [str(e["type"]) for e in sink.on(TOPICS.user_events)]


def _event(sink: BrokerSink, kind: str) -> dict[str, Any]:
    [event] = [e for e in sink.on(TOPICS.user_events) if e["type"] == kind]
    return event


async def test_a_telegram_edit_updates_the_message_and_the_conversation(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    older, newest = raw_message("u6", 1, chat="t-1"), raw_message("u6", 2, chat="t-1")
    await BatchProcessor(mongo_db, store, sinks(), TOPICS).process(
        [_raw_record(0, older), _raw_record(1, newest)]
    )
    sink = sinks()
    await BatchProcessor(mongo_db, store, sink, TOPICS).process(
        [
            _command_record(0, edit_command(newest, "hello, corrected", 30)),
            _command_record(1, edit_command(newest, "an older edit", 10)),  # late: ignored
            _command_record(2, edit_command(older, "first, corrected", 30)),
        ]
    )
    assert _kinds(sink) == ["message_updated", "message_updated", "conversation_update"]
    texts = [e["data"]["message"]["text"] for e in sink.on(TOPICS.user_events)[:2]]
    assert texts == ["hello, corrected", "first, corrected"]
    assert sink.on(TOPICS.user_events)[0]["data"]["message"]["editedAt"] is not None
    conversation = _event(sink, "conversation_update")["data"]["conversation"]
    assert conversation["lastMessage"]["text"] == "hello, corrected"
    assert conversation["unreadCount"] == 2
    doc = await mongo_db[MESSAGES].find_one({"_id": newest.id})
    assert doc is not None and doc["text"] == "hello, corrected"


async def test_a_slack_delete_of_an_unread_message_stops_counting_it(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    first, last = (raw_message("u7", n, chat="C1", platform="slack") for n in (1, 2))
    await BatchProcessor(mongo_db, store, sinks(), TOPICS).process(
        [_raw_record(0, first), _raw_record(1, last)]
    )
    # Another user naming this message changes nothing, and nobody is told anything.
    other = sinks()
    await BatchProcessor(mongo_db, store, other, TOPICS).process(
        [_command_record(0, delete_command(last, user="u8"))]
    )
    assert other.records == []

    sink = sinks()
    redo = sinks()
    for target in (sink, redo):  # the second run is a redo of the same record
        await BatchProcessor(mongo_db, store, target, TOPICS).process(
            [_command_record(1, delete_command(last))]
        )
    assert _kinds(sink) == ["message_deleted", "conversation_update", "unread_count_update"]
    assert _event(sink, "message_deleted")["data"] == {
        "conversationId": last.conversation_id,
        "messageId": last.id,
    }
    conversation = _event(sink, "conversation_update")["data"]["conversation"]
    assert conversation["unreadCount"] == 1
    assert conversation["lastMessage"]["deleted"] is True
    assert conversation["lastMessage"]["text"] == ""
    assert _event(sink, "unread_count_update")["data"]["unreadCounts"]["total"] == 1
    assert [e["id"] for e in redo.on(TOPICS.user_events)] == [
        e["id"] for e in sink.on(TOPICS.user_events)
    ]
    assert store.get_user("u7").total == 1  # the redo did not count it twice
    doc = await mongo_db[MESSAGES].find_one({"_id": last.id})
    assert doc is not None and (doc["deleted"], doc["text"], doc["status"]) == (True, "", "read")
    assert await ground_truth(mongo_db, "u7") == {last.conversation_id: 1}
    # An edit after the delete does not bring the text back.
    late = sinks()
    await BatchProcessor(mongo_db, store, late, TOPICS).process(
        [_command_record(2, edit_command(last, "back again", 60))]
    )
    assert late.records == []


async def test_a_reply_with_attachments_carries_them_everywhere(
    mongo_db: AsyncDatabase[Document],
    sinks: Callable[[], BrokerSink],
) -> None:
    store = MemoryStateStore()
    inbound = raw_message("u7", 1, chat="chat-7")
    await BatchProcessor(mongo_db, store, sinks(), TOPICS).process([_raw_record(0, inbound)])
    photo = OutboundAttachment(
        id="att_photo",
        kind="image",
        mime_type="image/png",
        size=120,
        name="p.png",
        width=3,
        height=2,
        status="ready",
        sha256="a" * 64,
    )
    plain = send_command("u7", inbound.conversation_id, "c-7").model_dump(by_alias=True)
    reply = SendMessage.model_validate({**plain, "text": "", "attachments": [photo]})
    sink = sinks()
    await BatchProcessor(mongo_db, store, sink, TOPICS).process([_command_record(0, reply)])

    doc = await mongo_db[MESSAGES].find_one({"_id": reply.message_id})
    assert doc is not None
    assert doc["attachments"] == [photo.public().model_dump(by_alias=True)]
    assert "sha256" not in doc["attachments"][0]
    event = sink.on(TOPICS.user_events)[0]["data"]["message"]
    assert Message.model_validate(event).attachments == [photo.public()]
    [out_value] = sink.on(TOPICS.outbound)
    assert OutboundMessage.model_validate(out_value).attachments == [photo]
