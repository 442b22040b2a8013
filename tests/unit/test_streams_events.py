"""The user events a batch emits, built from what it changed: ids from their causes (a
redo repeats them), times from the commands, absolute counts from the table."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hubcore.store import message_doc
from schemas import ErrorEvent, MessageDeleted, MessageStatusUpdate, MessageUpdated, event_id
from streams.batch import events
from streams.batch.changes import change_event
from streams.batch.records import ChangeInput, CommandInput, SourceRecord, StatusInput
from streams.batch.state import ConversationState, UserState
from streams.batch.statuses import earlier_than, occurred, status_events
from streams.sink.projection import conversation_document
from tests.streams_helpers import (
    T0,
    delete_command,
    edit_command,
    mark_read,
    raw_message,
    send_command,
    send_result,
    status_report,
)

RECORD = SourceRecord("ns.commands", 0, 7, b"u1", None)


def test_new_message_ids_follow_the_message_and_the_retry() -> None:
    message = raw_message("u1", 1).to_message()
    first = events.new_message("u1", message)
    assert first.id == event_id("new_message", message.id)
    assert first.id == events.new_message("u1", message).id  # a redo repeats it
    retried = events.new_message("u1", message, attempt=2)
    assert retried.id == event_id("new_message", message.id, "retry-2")
    assert retried.id != events.new_message("u1", message, attempt=3).id
    assert (first.user_id, first.occurred_at, first.data.message) == (
        "u1",
        message.received_at,
        message,
    )


def test_conversation_update_ids_follow_the_version() -> None:
    raw = raw_message("u1", 1)
    conv = ConversationState(unread=1, applied={"t:0": 2})
    conv.advance(raw.to_message(), "Chat")
    doc = conversation_document("u1", raw.conversation_id, conv)
    event = events.conversation_update("u1", doc, T0)
    assert event.id == event_id("conversation_update", raw.conversation_id, str(doc["version"]))
    conv.mark_applied(SourceRecord("t", 0, 3, None, None))
    newer = conversation_document("u1", raw.conversation_id, conv)
    assert event.id != events.conversation_update("u1", newer, T0).id
    assert (event.user_id, event.occurred_at) == ("u1", T0)
    conversation = event.data.conversation
    assert (conversation.id, conversation.title, conversation.unread_count) == (
        raw.conversation_id,
        "Chat",
        1,
    )


def test_status_updates_one_per_conversation_with_sorted_ids() -> None:
    command = CommandInput(RECORD, mark_read("u1", ["m3", "m1", "m2"], "cmd1"))
    docs = [
        {"_id": "m3", "conversationId": "c2"},
        {"_id": "m2", "conversationId": "c1"},
        {"_id": "m1", "conversationId": "c1"},
    ]
    updates = events.status_updates(command, docs)
    assert [(u.data.conversation_id, u.data.message_ids) for u in updates] == [
        ("c1", ["m1", "m2"]),
        ("c2", ["m3"]),
    ]
    assert [u.id for u in updates] == [
        event_id("message_status_update", "cmd1", "c1"),
        event_id("message_status_update", "cmd1", "c2"),
    ]
    assert all(u.user_id == "u1" and u.occurred_at == command.command.issued_at for u in updates)
    assert all(u.data.status == "read" for u in updates)
    assert events.status_updates(command, []) == []


def test_unread_count_update_carries_the_clamped_totals() -> None:
    state = UserState(total=3, by_platform={"slack": 2, "telegram": 1, "email": -1})
    event = events.unread_count_update("u1", state, {"c1": 2, "c2": -1}, "t:0:5", T0)
    assert event.id == event_id("unread_count_update", "u1", "t:0:5")
    assert (event.user_id, event.occurred_at) == ("u1", T0)
    counts = event.data.unread_counts
    assert counts.total == 3
    assert counts.by_platform == {"slack": 2, "telegram": 1}
    assert counts.by_conversation == {"c1": 2, "c2": 0}


def test_an_edit_tells_the_stored_message_and_a_delete_its_ids() -> None:
    raw = raw_message("u1", 1)
    edit = edit_command(raw, "fixed", 30)
    stored = {**message_doc(raw, "x"), "text": "fixed", "editedAt": edit.edited_at}
    updated = change_event(ChangeInput(RECORD, edit), stored)
    assert isinstance(updated, MessageUpdated)
    assert updated.id == event_id("message_updated", edit.id)
    assert (updated.user_id, updated.occurred_at) == ("u1", edit.edited_at)
    assert updated.data.message.text == "fixed" and updated.data.message.id == raw.id
    delete = delete_command(raw)
    deleted = change_event(ChangeInput(RECORD, delete), stored)
    assert isinstance(deleted, MessageDeleted)
    assert deleted.id == event_id("message_deleted", delete.id)
    assert (deleted.user_id, deleted.occurred_at) == ("u1", delete.deleted_at)
    assert (deleted.data.conversation_id, deleted.data.message_id) == (
        raw.conversation_id,
        raw.id,
    )


@pytest.mark.parametrize(
    ("status", "earlier"),
    [
        ("pending", []),
        ("sent", ["pending"]),
        ("delivered", ["pending", "sent"]),
        ("read", ["pending", "sent", "delivered"]),
        ("failed", ["pending", "sent"]),
    ],
)
def test_statuses_only_move_forward(status: str, earlier: list[str]) -> None:
    assert earlier_than(status) == earlier


def test_a_sent_reply_is_told_and_a_failed_one_is_an_error_too() -> None:
    send = send_command("u1", "c1", "client-1")
    doc = {"_id": send.message_id, "conversationId": "c1"}
    sent = StatusInput(RECORD, send_result(send, "acc", "sent", "p1"))
    (update,) = status_events(sent, doc)
    assert isinstance(update, MessageStatusUpdate)
    assert update.id == event_id("message_status_update", sent.command.id, "c1")
    assert (update.user_id, update.occurred_at) == ("u1", sent.command.occurred_at)
    assert (update.data.conversation_id, update.data.message_ids, update.data.status) == (
        "c1",
        [send.message_id],
        "sent",
    )
    assert occurred(sent) == sent.command.occurred_at
    failed = StatusInput(RECORD, send_result(send, "acc", "failed", n=1))
    update, error = status_events(failed, doc)
    assert isinstance(update, MessageStatusUpdate) and update.data.status == "failed"
    assert isinstance(error, ErrorEvent)
    assert error.id == event_id("error", failed.command.id)
    assert (error.user_id, error.occurred_at) == ("u1", failed.command.occurred_at)
    assert (error.data.code, error.data.message, error.data.message_id) == (
        "send_failed",
        "chat not found",
        send.message_id,
    )


def test_a_failure_without_detail_gets_a_plain_message() -> None:
    report = status_report("u1", "acc", "p1", "failed", 0)
    item = StatusInput(RECORD, report)
    _, error = status_events(item, {"_id": "m1", "conversationId": "c1"})
    assert isinstance(error, ErrorEvent)
    assert error.data.message == "the platform did not accept the message"
    assert occurred(item) == T0 + timedelta(hours=2, seconds=10)
