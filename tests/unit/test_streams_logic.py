"""Pure streams logic: decoding and poison, the watermarked unread state, canonical hashing."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hubcore.kafka import Topics
from schemas import DeadLetter
from streams.batch.changes import read_change_cut
from streams.batch.records import (
    CommandInput,
    RawInput,
    SourceRecord,
    decode_batch,
    decode_record,
)
from streams.batch.retry import is_retriable
from streams.batch.state import (
    ConversationState,
    MemoryStateStore,
    UserState,
    conversation_key,
    user_part,
)
from streams.errors import PoisonRecord
from streams.replay.statehash import canonical
from streams.table.table import key_partition
from tests.streams_helpers import delete_command, edit_command, mark_read, raw_message

TOPICS = Topics("ns")


def _record(
    value: bytes | None, *, key: bytes | None = b"u1", topic: str = "", offset: int = 0
) -> SourceRecord:
    return SourceRecord(topic or TOPICS.raw_messages, 2, offset, key, value)


def test_decode_valid_raw_and_command() -> None:
    raw = raw_message("u1", 1)
    command = mark_read("u1", [raw.id], "c1")
    got = decode_record(_record(raw.to_json()), TOPICS)
    assert isinstance(got, RawInput) and got.message == raw
    got_cmd = decode_record(_record(command.to_json(), topic=TOPICS.commands), TOPICS)
    assert isinstance(got_cmd, CommandInput) and got_cmd.command == command


@pytest.mark.parametrize(
    ("value", "key", "error_type", "words"),
    [
        (b"{nope", b"u1", "invalid_json", "JSON"),
        (b"[1, 2]", b"u1", "invalid_json", "object"),
        (None, b"u1", "empty_value", "tombstone"),
        (b'{"schema": "hub.raw-message/2"}', b"u1", "unknown_schema", "version"),
        (b'{"schema": "something/1"}', b"u1", "unknown_schema", "expected"),
        (b'{"schema": "hub.raw-message/1", "id": "x"}', b"u1", "validation_error", "userId"),
        (None, None, "empty_value", ""),
    ],
)
def test_poison_is_named(
    value: bytes | None, key: bytes | None, error_type: str, words: str
) -> None:
    with pytest.raises(PoisonRecord) as caught:
        decode_record(_record(value, key=key), TOPICS)
    assert caught.value.error_type == error_type
    assert words in caught.value.message
    assert caught.value.retriable is False


def test_key_must_be_the_user() -> None:
    raw = raw_message("u1", 1)
    with pytest.raises(PoisonRecord) as caught:
        decode_record(_record(raw.to_json(), key=b"someone-else"), TOPICS)
    assert caught.value.error_type == "key_mismatch"


def test_batch_splits_and_dead_letter_keeps_origin() -> None:
    raw = raw_message("u1", 1)
    records = [_record(raw.to_json(), offset=5), _record(b"\xff\xfe", offset=6)]
    decoded = decode_batch(records, TOPICS)
    assert [r.record.offset for r in decoded.raws] == [5]
    assert len(decoded.poison) == 1
    poison = decoded.poison[0]
    letter = DeadLetter.from_json(poison.dead_letter().to_json())
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (
        TOPICS.raw_messages,
        2,
        6,
    )
    assert letter.payload_encoding == "base64"  # not UTF-8: kept recoverable
    headers = dict(poison.headers())
    assert headers["hub-source-offset"] == b"6" and headers["hub-source-partition"] == b"2"


def test_user_state_counts_and_watermark() -> None:
    state = UserState()
    rec = _record(b"", offset=10)
    assert state.applies(rec) and state.version == 0
    state.add("telegram", +1)
    state.add("slack", +1)
    state.mark_applied(rec)
    assert not state.applies(rec)  # at the watermark: counted already
    assert state.applies(_record(b"", offset=11))
    state.mark_applied(_record(b"", offset=3))  # never lowers
    assert state.applied[rec.source] == 10 and state.version == 11
    state.add("slack", -1)
    # Zero entries vanish, so different paths to the same numbers give equal values.
    assert state.to_value() == {
        "total": 1,
        "byPlatform": {"telegram": 1},
        "applied": {rec.source: 10},
    }
    view = state.counts({"c2": 0, "c1": 1})
    assert view.by_conversation == {"c1": 1, "c2": 0}
    assert UserState.from_value(state.to_value()) == state


def _last_status(conv: ConversationState) -> str:
    assert conv.last is not None
    return conv.last.status


def test_conversation_state_advances_only_to_newer_messages() -> None:
    older, newer = raw_message("u1", 1).to_message(), raw_message("u1", 2).to_message()
    conv = ConversationState()
    conv.advance(newer, "Chat")
    conv.advance(older, "Old title")  # arrives late: changes nothing
    assert conv.last == newer and conv.title == "Chat"
    conv.unread = 2
    conv.mark_read([older.id])
    assert (conv.count, _last_status(conv)) == (1, "unread")
    conv.mark_read([newer.id])
    assert (conv.count, _last_status(conv)) == (0, "read")
    conv.mark_applied(_record(b"", offset=4))
    assert ConversationState.from_value(conv.to_value()) == conv


def test_transient_negative_counts_are_clamped_in_views() -> None:
    state = UserState()
    state.add("telegram", -1)  # a read re-applied before its message's insert
    assert state.counts({"c1": -1}).total == 0
    assert state.counts({"c1": -1}).by_conversation == {"c1": 0}
    conv = ConversationState(unread=-1)
    assert conv.count == 0


def test_memory_store_hands_out_copies() -> None:
    store = MemoryStateStore()
    state = store.get_user("u1")
    state.add("telegram", 1)
    assert store.get_user("u1").total == 0  # not put yet
    store.put_user("u1", state)
    assert store.get_user("u1").total == 1
    conv = store.get_conversation("u1", "c1")
    conv.unread = 3
    assert store.get_conversation("u1", "c1").unread == 0
    store.put_conversation("u1", "c1", conv)
    assert store.get_conversation("u1", "c1").unread == 3


def test_conversation_keys_share_their_users_partition() -> None:
    key = conversation_key("u1", "conv_1")
    assert user_part(key) == b"u1" and user_part(b"u1") == b"u1"
    assert key_partition(user_part(key), 12) == key_partition(b"u1", 12)


def test_canonical_json_is_order_and_type_stable() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    a = {"b": 1, "a": {"y": when, "x": [1, 2]}}
    b = {"a": {"x": [1, 2], "y": when}, "b": 1}
    assert canonical(a) == canonical(b)
    assert orjson.loads(canonical(a))["a"]["y"] == "2026-01-02T03:04:05.678Z"


def test_retriable_classification() -> None:
    from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
    from pymongo.errors import AutoReconnect, DuplicateKeyError

    assert is_retriable(AutoReconnect("gone"))
    assert is_retriable(KafkaConnectionError())
    assert not is_retriable(MessageSizeTooLargeError())
    assert not is_retriable(DuplicateKeyError("dup"))
    assert not is_retriable(ValueError("bug"))


def test_a_batch_is_cut_before_a_change_of_a_message_an_earlier_read_names() -> None:
    first, second = raw_message("u1", 1), raw_message("u1", 2)
    commands = [
        edit_command(first, "before the read", 10),  # edits then reads: phase order holds
        mark_read("u1", [first.id], "read-1"),
        delete_command(second),  # not read in this batch
        edit_command(first, "after the read", 20),  # must not share the read's batch
        delete_command(first),
    ]
    records = [
        _record(c.to_json(), topic=TOPICS.commands, offset=n) for n, c in enumerate(commands)
    ]
    assert read_change_cut(records, decode_batch(records, TOPICS)) == 3
    assert read_change_cut(records[:3], decode_batch(records[:3], TOPICS)) == 0
    reads = [_record(mark_read("u1", [second.id], "r2").to_json(), topic=TOPICS.commands)]
    assert read_change_cut(reads, decode_batch(reads, TOPICS)) == 0


def test_replies_go_to_the_newest_inbound_message_in_any_order() -> None:
    older, newer = raw_message("u1", 1), raw_message("u1", 2)
    newer = newer.model_copy(update={"sender": newer.sender.model_copy(update={"id": "s2"})})
    for order in ([older, newer], [newer, older]):
        conv = ConversationState()
        for message in order:
            conv.answer(message)
        assert (conv.reply_to, conv.recipient) == (newer.external_message_id, "s2")
        again = ConversationState.from_value(orjson.loads(orjson.dumps(conv.to_value())))
        again.answer(older)
        assert (again.reply_to, again.inbound_id) == (newer.external_message_id, newer.id)
