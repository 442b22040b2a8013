"""Decoding source records (raw messages, commands) into typed inputs, or into poison."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from hubcore.kafka import Topics
from schemas import (
    AttachmentResult,
    DeadLetter,
    DeadLetterSource,
    DeleteMessage,
    EditMessage,
    MarkRead,
    RawMessage,
    SendMessage,
    SendResult,
    StatusReport,
)
from schemas.base import utc_now
from schemas.ids import outbound_message_id
from streams.errors import PoisonRecord

# Headers a dead letter carries, so tools can find the original without parsing the value.
HEADER_TOPIC = "hub-source-topic"
HEADER_PARTITION = "hub-source-partition"
HEADER_OFFSET = "hub-source-offset"
HEADER_ERROR = "hub-error-type"


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One consumed record, transport-neutral (from Faust or from a plain consumer)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def origin(self) -> str:
        """`<topic>:<partition>:<offset>`: what the store remembers as this record's cause."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def source(self) -> str:
        """`<topic>:<partition>`: the key of this record's watermark in the table state."""
        return f"{self.topic}:{self.partition}"


@dataclass(frozen=True, slots=True)
class RawInput:
    record: SourceRecord
    message: RawMessage


@dataclass(frozen=True, slots=True)
class CommandInput:
    record: SourceRecord
    command: MarkRead


@dataclass(frozen=True, slots=True)
class SendInput:
    record: SourceRecord
    command: SendMessage


@dataclass(frozen=True, slots=True)
class StatusInput:
    record: SourceRecord
    command: SendResult | StatusReport


@dataclass(frozen=True, slots=True)
class ChangeInput:
    record: SourceRecord
    command: EditMessage | DeleteMessage | AttachmentResult


@dataclass(frozen=True, slots=True)
class Poison:
    record: SourceRecord
    error: PoisonRecord

    def dead_letter(self) -> DeadLetter:
        """The `hub.dead-letter` value for this record."""
        payload, encoding = DeadLetter.encode_payload(self.record.value)
        return DeadLetter(
            reason=self.error.message,
            error_type=self.error.error_type,
            retriable=False,
            source=DeadLetterSource(
                topic=self.record.topic,
                partition=self.record.partition,
                offset=self.record.offset,
            ),
            payload=payload,
            payload_encoding=encoding,
            failed_at=utc_now(),
        )

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers naming the original topic, partition and offset."""
        return [
            (HEADER_TOPIC, self.record.topic.encode()),
            (HEADER_PARTITION, str(self.record.partition).encode()),
            (HEADER_OFFSET, str(self.record.offset).encode()),
            (HEADER_ERROR, self.error.error_type.encode()),
        ]


@dataclass(slots=True)
class Decoded:
    """A batch split by kind, each list in the order the records were consumed."""

    raws: list[RawInput] = field(default_factory=list)
    commands: list[CommandInput] = field(default_factory=list)
    sends: list[SendInput] = field(default_factory=list)
    statuses: list[StatusInput] = field(default_factory=list)
    changes: list[ChangeInput] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _parse(record: SourceRecord, expected: str) -> dict[str, object]:
    if record.value is None:
        raise PoisonRecord("empty value (tombstone)", error_type="empty_value")
    try:
        obj = orjson.loads(record.value)
    except orjson.JSONDecodeError as exc:
        raise PoisonRecord(f"not valid JSON: {exc}", error_type="invalid_json") from None
    if not isinstance(obj, dict):
        raise PoisonRecord("not a JSON object", error_type="invalid_json")
    schema = obj.get("schema")
    if schema != expected:
        name = expected.partition("/")[0]
        if isinstance(schema, str) and schema.partition("/")[0] == name:
            problem = f"unknown schema version {schema!r} (this worker reads {expected!r})"
        else:
            problem = f"schema is {schema!r}, expected {expected!r}"
        raise PoisonRecord(problem, error_type="unknown_schema")
    return obj


def _check_key(record: SourceRecord, user_id: str) -> None:
    # The table's changelog partition is derived from the key: a record keyed by anything
    # but its user would put that user's counts on a partition another worker owns.
    if record.key != user_id.encode():
        raise PoisonRecord(
            f"record key {record.key!r} is not the userId {user_id!r}", error_type="key_mismatch"
        )


def _decode_command(
    record: SourceRecord,
) -> CommandInput | SendInput | StatusInput | ChangeInput:
    obj = _parse(record, MarkRead.SCHEMA)
    kind = obj.get("type", "mark_read")
    if kind in ("send_result", "status_report"):
        model = SendResult if kind == "send_result" else StatusReport
        status = model.model_validate(obj)
        _check_key(record, status.user_id)
        return StatusInput(record, status)
    if kind in ("edit", "delete", "attachment"):
        change: EditMessage | DeleteMessage | AttachmentResult
        if kind == "edit":
            change = EditMessage.model_validate(obj)
        elif kind == "delete":
            change = DeleteMessage.model_validate(obj)
        else:
            change = AttachmentResult.model_validate(obj)
        _check_key(record, change.user_id)
        return ChangeInput(record, change)
    if kind == "send":
        send = SendMessage.model_validate(obj)
        _check_key(record, send.user_id)
        # The id is derived, so a client cannot make its reply overwrite another message.
        expected = outbound_message_id(send.user_id, send.conversation_id, send.client_message_id)
        if send.message_id != expected:
            raise PoisonRecord(
                f"messageId {send.message_id!r} is not derived from the userId, conversationId "
                "and clientMessageId",
                error_type="validation_error",
            )
        return SendInput(record, send)
    if kind != "mark_read":
        raise PoisonRecord(
            f"command type {kind!r} is not applied by this worker", error_type="unknown_command"
        )
    command = MarkRead.model_validate(obj)
    _check_key(record, command.user_id)
    return CommandInput(record, command)


def decode_record(
    record: SourceRecord, topics: Topics
) -> RawInput | CommandInput | SendInput | StatusInput | ChangeInput:
    """Validate one record of the raw-messages or commands topic; `PoisonRecord` if bad."""
    try:
        if record.topic == topics.raw_messages:
            message = RawMessage.model_validate(_parse(record, RawMessage.SCHEMA))
            _check_key(record, message.user_id)
            return RawInput(record, message)
        if record.topic == topics.commands:
            return _decode_command(record)
    except ValidationError as exc:
        raise PoisonRecord(_describe(exc), error_type="validation_error") from None
    raise PoisonRecord(f"unexpected topic {record.topic!r}", error_type="unknown_topic")


def decode_batch(records: Iterable[SourceRecord], topics: Topics) -> Decoded:
    """Split a batch into raw messages, commands and poison records."""
    out = Decoded()
    for record in records:
        try:
            item = decode_record(record, topics)
        except PoisonRecord as exc:
            out.poison.append(Poison(record, exc))
            continue
        if isinstance(item, RawInput):
            out.raws.append(item)
        elif isinstance(item, SendInput):
            out.sends.append(item)
        elif isinstance(item, StatusInput):
            out.statuses.append(item)
        elif isinstance(item, ChangeInput):
            out.changes.append(item)
        else:
            out.commands.append(item)
    return out
