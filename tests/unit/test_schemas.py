"""Schemas: every record round-trips through JSON; published files match the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from schemas import (
    ConversationUpdate,
    DeadLetter,
    DeadLetterSource,
    DeleteMessage,
    EditMessage,
    ErrorEvent,
    MarkRead,
    Message,
    MessageStatusUpdate,
    NewMessage,
    OutboundMessage,
    RawMessage,
    Sender,
    SendMessage,
    SendResult,
    StatusReport,
    UnreadCountUpdate,
    conversation_id,
    export,
    message_id,
    outbound_message_id,
    parse_command,
    parse_user_event,
)
from schemas.messages import Conversation, UnreadCounts

T0 = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def _raw() -> RawMessage:
    conv = conversation_id("telegram", "acc_1", "chat-9")
    return RawMessage(
        id=message_id("telegram", "acc_1", "chat-9", "42"),
        user_id="alice",
        platform="telegram",
        account_id="acc_1",
        conversation_id=conv,
        external_conversation_id="chat-9",
        external_message_id="42",
        conversation_title="Bob",
        sender=Sender(id="7", name="Bob"),
        text="hi",
        sent_at=T0,
        received_at=T0 + timedelta(seconds=1),
        raw={"update_id": 1},
    )


def _message() -> Message:
    return _raw().to_message()


def _events() -> list[Any]:
    common: dict[str, Any] = {"id": "evt_1", "user_id": "alice", "occurred_at": T0}
    msg = _message()
    conv = Conversation(
        id=msg.conversation_id,
        platform="telegram",
        account_id="acc_1",
        title="Bob",
        last_message=msg,
        unread_count=1,
        updated_at=T0,
    )
    counts = UnreadCounts(total=1, by_platform={"telegram": 1}, by_conversation={conv.id: 1})
    return [
        NewMessage(**common, data={"message": msg}),
        MessageStatusUpdate(
            **common, data={"conversation_id": conv.id, "message_ids": [msg.id], "status": "read"}
        ),
        UnreadCountUpdate(**common, data={"unread_counts": counts}),
        ConversationUpdate(**common, data={"conversation": conv}),
        ErrorEvent(**common, data={"code": "x", "message": "y"}),
    ]


@pytest.mark.parametrize("event", _events(), ids=lambda e: e.type)
def test_user_event_round_trip(event: Any) -> None:
    wire = event.to_json()
    body = orjson.loads(wire)
    assert body["schema"] == "hub.user-event/1"
    assert body["type"] == event.type
    assert body["userId"] == "alice"
    again = parse_user_event(wire)
    assert again == event
    assert type(again) is type(event)


def test_contract_payload_names() -> None:
    new, status, unread, conv, _ = (orjson.loads(e.to_json()) for e in _events())
    assert set(new["data"]["message"]) == {
        "id",
        "platform",
        "accountId",
        "conversationId",
        "sender",
        "text",
        "sentAt",
        "receivedAt",
        "status",
        "direction",
        "editedAt",
        "deleted",
        "attachments",  # contract extension: docs/media.md
    }
    assert set(status["data"]) == {"conversationId", "messageIds", "status"}
    assert set(unread["data"]["unreadCounts"]) == {"total", "byPlatform", "byConversation"}
    assert set(conv["data"]["conversation"]) == {
        "id",
        "platform",
        "accountId",
        "title",
        "lastMessage",
        "unreadCount",
        "updatedAt",
        "recipient",  # contract extension (docs/security.md): email only, else null
    }
    assert new["data"]["message"]["sentAt"] == "2026-11-25T12:00:00.123Z"


@pytest.mark.parametrize(
    "record",
    [
        _raw(),
        MarkRead(id="cmd_1", user_id="alice", message_ids=["msg_1"], issued_at=T0),
        DeadLetter(
            reason="bad JSON",
            error_type="InvalidInput",
            source=DeadLetterSource(topic="hub.raw-messages", partition=0, offset=5),
            payload="{",
            failed_at=T0,
        ),
    ],
    ids=lambda r: r.SCHEMA,
)
def test_record_round_trip(record: Any) -> None:
    wire = record.to_json()
    assert orjson.loads(wire)["schema"] == record.SCHEMA
    assert type(record).from_json(wire) == record


def test_times_are_utc_and_must_be_aware() -> None:
    plus2 = timezone(timedelta(hours=2))
    msg = _message().model_copy(update={})
    raw = _raw().model_dump()
    raw["sent_at"] = datetime(2026, 11, 25, 14, 0, tzinfo=plus2)
    assert RawMessage(**raw).sent_at == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    raw["sent_at"] = datetime(2026, 11, 25, 14, 0)  # noqa: DTZ001 - the naive input under test
    with pytest.raises(ValidationError):
        RawMessage(**raw)
    assert msg.sent_at.tzinfo is not None


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        _message().text = "changed"  # type: ignore[misc]


def test_wrong_schema_version_is_rejected() -> None:
    body = orjson.loads(_raw().to_json())
    body["schema"] = "hub.raw-message/2"
    with pytest.raises(ValidationError):
        RawMessage.from_json(orjson.dumps(body))


def test_ids_are_deterministic_and_distinct() -> None:
    a = message_id("slack", "acc_1", "C1", "1.0001")
    assert a == message_id("slack", "acc_1", "C1", "1.0001")
    assert a != message_id("slack", "acc_2", "C1", "1.0001")
    assert message_id("x", "a", "bc", "d") != message_id("x", "ab", "c", "d")


def test_published_schema_files_are_current() -> None:
    stale = export.stale()
    assert not stale, f"run `hub schemas export`: stale {stale}"


def test_staleness_check_notices_a_change(tmp_path: Any) -> None:
    export.write(tmp_path)
    assert export.stale(tmp_path) == []
    (tmp_path / "json" / "command.v1.json").write_text("{}")
    assert export.stale(tmp_path) == ["json/command.v1.json"]


def _commands() -> list[Any]:
    conv = conversation_id("slack", "acc_1", "C1")
    sent = outbound_message_id("alice", conv, "c-1")
    base: dict[str, Any] = {"id": "cmd_1", "user_id": "alice"}
    return [
        MarkRead(**base, conversation_id=conv, message_ids=["m1"], issued_at=T0),
        SendMessage(
            **base,
            conversation_id=conv,
            message_id=sent,
            client_message_id="c-1",
            text="hi",
            issued_at=T0,
        ),
        SendResult(
            **base,
            conversation_id=conv,
            message_id=sent,
            account_id="acc_1",
            status="failed",
            detail="timed out after the request left",
            attempts=1,
            ambiguous=True,
            occurred_at=T0,
        ),
        StatusReport(
            **base, account_id="acc_1", platform_message_id="wamid.X", status="read", occurred_at=T0
        ),
        EditMessage(**base, conversation_id=conv, message_id="m1", text="new", edited_at=T0),
        DeleteMessage(**base, conversation_id=conv, message_id="m1", deleted_at=T0),
    ]


@pytest.mark.parametrize("command", _commands(), ids=lambda c: c.type)
def test_command_round_trip(command: Any) -> None:
    wire = command.to_json()
    assert orjson.loads(wire)["schema"] == "hub.command/1"
    again = parse_command(wire)
    assert again == command
    assert type(again) is type(command)


def test_outbound_ids_and_limits() -> None:
    conv = conversation_id("slack", "acc_1", "C1")
    one = outbound_message_id("alice", conv, "c-1")
    assert one == outbound_message_id("alice", conv, "c-1")
    assert one != outbound_message_id("bob", conv, "c-1")
    assert one != outbound_message_id("alice", conv, "c-2")
    fields: dict[str, Any] = {
        "message_id": one,
        "user_id": "alice",
        "platform": "slack",
        "account_id": "acc_1",
        "conversation_id": conv,
        "external_conversation_id": "C1",
        "text": "hi",
        "issued_at": T0,
    }
    record = OutboundMessage(client_message_id="c-1", **fields)
    assert OutboundMessage.from_json(record.to_json()) == record
    with pytest.raises(ValidationError, match=r"client_?[mM]essage_?[iI]d"):
        OutboundMessage(client_message_id="x" * 101, **fields)
    with pytest.raises(ValidationError):
        parse_command(b'{"schema": "hub.command/1", "type": "launch", "id": "1", "userId": "a"}')
