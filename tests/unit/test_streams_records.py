"""Every command type decoded to its input, and the exact reason a bad record is poison."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hubcore.kafka import Topics
from schemas import AttachmentResult
from streams.batch.records import (
    ChangeInput,
    CommandInput,
    RawInput,
    SendInput,
    SourceRecord,
    StatusInput,
    decode_batch,
    decode_record,
)
from streams.errors import PoisonRecord
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

TOPICS = Topics("ns")


def _command(value: bytes | None, key: bytes | None = b"u1", offset: int = 0) -> SourceRecord:
    return SourceRecord(TOPICS.commands, 1, offset, key, value)


def _attachment_result(message_id: str, conv: str) -> AttachmentResult:
    return AttachmentResult(
        id="evt_att",
        user_id="u1",
        conversation_id=conv,
        message_id=message_id,
        attachment_id="att_1",
        index=0,
        status="failed",
        reason="not_found",
        occurred_at=T0,
    )


def _commands() -> list[tuple[type[Any], Any]]:
    raw = raw_message("u1", 1)
    send = send_command("u1", raw.conversation_id, "client-1")
    return [
        (StatusInput, send_result(send, "acc", "sent", "p1")),
        (StatusInput, status_report("u1", "acc", "p1", "delivered", 0)),
        (ChangeInput, edit_command(raw, "fixed", 5)),
        (ChangeInput, delete_command(raw)),
        (ChangeInput, _attachment_result(raw.id, raw.conversation_id)),
        (SendInput, send),
        (CommandInput, mark_read("u1", [raw.id], "cmd1")),
    ]


@pytest.mark.parametrize(("kind", "command"), _commands())
def test_each_command_type_decodes_to_its_input(kind: type[Any], command: Any) -> None:
    record = _command(command.to_json())
    item = decode_record(record, TOPICS)
    assert type(item) is kind and not isinstance(item, RawInput)
    assert item.record == record and item.command == command
    with pytest.raises(PoisonRecord) as caught:
        decode_record(_command(command.to_json(), key=b"u2"), TOPICS)
    assert caught.value.error_type == "key_mismatch"
    assert caught.value.message == "record key b'u2' is not the userId 'u1'"


def test_a_command_without_a_type_is_a_mark_read() -> None:
    command = mark_read("u1", ["m1"], "cmd1")
    value = orjson.loads(command.to_json())
    del value["type"]
    item = decode_record(_command(orjson.dumps(value)), TOPICS)
    assert isinstance(item, CommandInput) and item.command == command


def test_a_reply_with_an_id_not_derived_from_its_cause_is_poison() -> None:
    send = send_command("u1", "conv", "client-1").model_copy(update={"message_id": "msg_mine"})
    with pytest.raises(PoisonRecord) as caught:
        decode_record(_command(send.to_json()), TOPICS)
    assert caught.value.error_type == "validation_error"
    assert caught.value.message == (
        "messageId 'msg_mine' is not derived from the userId, conversationId and clientMessageId"
    )
    for field in ("user_id", "conversation_id", "client_message_id"):
        other = send_command("u1", "conv", "client-1")
        changed = other.model_copy(update={field: "other"})
        if field == "user_id":
            record = _command(changed.to_json(), key=b"other")
        else:
            record = _command(changed.to_json())
        with pytest.raises(PoisonRecord, match="is not derived"):
            decode_record(record, TOPICS)


@pytest.mark.parametrize(
    ("value", "topic", "error_type", "message"),
    [
        (None, TOPICS.commands, "empty_value", "empty value (tombstone)"),
        (b"[]", TOPICS.commands, "invalid_json", "not a JSON object"),
        (
            b'{"schema": "hub.command/1", "type": "archive"}',
            TOPICS.commands,
            "unknown_command",
            "command type 'archive' is not applied by this worker",
        ),
        (
            b'{"schema": "hub.command/2/x"}',
            TOPICS.commands,
            "unknown_schema",
            "unknown schema version 'hub.command/2/x' (this worker reads 'hub.command/1')",
        ),
        (
            b'{"schema": "hub.other/1"}',
            TOPICS.commands,
            "unknown_schema",
            "schema is 'hub.other/1', expected 'hub.command/1'",
        ),
        (b"{}", "ns.elsewhere", "unknown_topic", "unexpected topic 'ns.elsewhere'"),
    ],
)
def test_poison_names_its_reason_exactly(
    value: bytes | None, topic: str, error_type: str, message: str
) -> None:
    with pytest.raises(PoisonRecord) as caught:
        decode_record(SourceRecord(topic, 0, 0, b"u1", value), TOPICS)
    assert (caught.value.error_type, caught.value.message) == (error_type, message)


def test_validation_errors_name_three_fields_and_count_the_rest() -> None:
    six = b'{"schema": "hub.command/1", "type": "edit", "text": 5}'
    with pytest.raises(PoisonRecord) as caught:
        decode_record(_command(six), TOPICS)
    assert caught.value.error_type == "validation_error"
    assert caught.value.message == (
        "id: Field required; userId: Field required; conversationId: Field required (and 3 more)"
    )
    three = orjson.dumps(
        {
            "schema": "hub.command/1",
            "type": "delete",
            "id": "d1",
            "userId": "u1",
            "deletedAt": "2026-01-01T00:00:00Z",
        }
    )
    with pytest.raises(PoisonRecord) as exact:
        decode_record(_command(three), TOPICS)
    assert exact.value.message == "conversationId: Field required; messageId: Field required"
    four = b'{"schema": "hub.command/1", "type": "delete", "id": "d1"}'
    with pytest.raises(PoisonRecord) as one_more:
        decode_record(_command(four), TOPICS)
    assert one_more.value.message.endswith("messageId: Field required (and 1 more)")
    nested = orjson.dumps(
        {**orjson.loads(mark_read("u1", ["m"], "c").to_json()), "messageIds": [1]}
    )
    with pytest.raises(PoisonRecord) as inner:
        decode_record(_command(nested), TOPICS)
    assert inner.value.message == "messageIds.0: Input should be a valid string"


def test_a_batch_goes_on_after_poison_and_keeps_each_kind_in_order() -> None:
    raw = raw_message("u1", 1)
    commands = _commands()
    records = [_command(b"nope", offset=0)]
    records += [_command(c.to_json(), offset=i + 1) for i, (_, c) in enumerate(commands)]
    records.append(SourceRecord(TOPICS.raw_messages, 0, 9, b"u1", raw.to_json()))
    decoded = decode_batch(records, TOPICS)
    assert [p.record.offset for p in decoded.poison] == [0]
    assert [type(s.command).__name__ for s in decoded.statuses] == ["SendResult", "StatusReport"]
    changes = [type(c.command).__name__ for c in decoded.changes]
    assert changes == ["EditMessage", "DeleteMessage", "AttachmentResult"]
    assert [s.record.offset for s in decoded.sends] == [6]
    assert [c.record.offset for c in decoded.commands] == [7]
    assert [(r.record.offset, type(r)) for r in decoded.raws] == [(9, RawInput)]
