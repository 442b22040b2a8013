"""The batch processor's table logic without a store: a user's effects applied to the
in-memory table (counts, conversations, watermarks), and a batch of poison only, which
needs no store at all, through `process`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest
from pymongo.asynchronous.database import AsyncDatabase

import streams.batch.processor as processor_module
from hubcore.kafka import Topics
from hubcore.mongo import Document
from hubcore.store import message_doc
from schemas import Message, OutboundMessage, RawMessage, Sender
from streams.batch.emission import UserResult, UserWork
from streams.batch.processor import BatchProcessor
from streams.batch.records import ChangeInput, CommandInput, RawInput, SourceRecord, StatusInput
from streams.batch.replies import Reply
from streams.batch.state import MemoryStateStore
from tests.streams_helpers import (
    T0,
    RecordingSink,
    delete_command,
    edit_command,
    mark_read,
    raw_message,
    send_command,
    send_result,
)

TOPICS = Topics("ns")
USER = "u1"


class _NoCollection:
    """A collection no test may use: what these tests run writes nothing to the store."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used: {name}")


class _NoStore:
    def __getitem__(self, name: str) -> _NoCollection:
        return _NoCollection()


def _processor() -> tuple[BatchProcessor, MemoryStateStore, RecordingSink]:
    store, sink = MemoryStateStore(), RecordingSink()
    db = cast(AsyncDatabase[Document], _NoStore())
    return BatchProcessor(db, store, sink, TOPICS), store, sink


def _apply(
    processor: BatchProcessor, work: UserWork, status: dict[str, str] | None = None
) -> UserResult:
    """One user's effects applied to the table (the one call into the processor's logic)."""
    return processor._apply(USER, work, status or {})


def _raw(n: int, offset: int, **kwargs: Any) -> RawInput:
    message = raw_message(USER, n, **kwargs)
    return RawInput(SourceRecord(TOPICS.raw_messages, 0, offset, USER.encode(), None), message)


def _command_record(offset: int) -> SourceRecord:
    return SourceRecord(TOPICS.commands, 1, offset, USER.encode(), None)


def _doc(raw: RawMessage, **fields: Any) -> Document:
    return {**message_doc(raw, "x"), **fields}


def test_new_messages_count_once_and_the_newest_leads_its_conversation() -> None:
    processor, store, _ = _processor()
    older, newer = _raw(1, 10), _raw(2, 11)
    other = _raw(3, 12, chat="chat-2", platform="slack")
    work = UserWork(inserted=[older, newer, other])
    status = {older.message.id: "unread", newer.message.id: "read", other.message.id: "unread"}
    result = _apply(processor, work, status)
    assert (result.state.total, result.state.by_platform) == (3, {"telegram": 2, "slack": 1})
    assert result.state.applied == {f"{TOPICS.raw_messages}:0": 12}
    conv = result.conversations[newer.message.conversation_id]
    assert conv.unread == 2
    assert conv.last is not None and conv.last.id == newer.message.id
    assert conv.last.status == "read"  # its status as the batch knows it
    assert (conv.platform, conv.account_id) == ("telegram", newer.message.account_id)
    assert conv.title == "Chat chat-1" and conv.external_id == "chat-1"
    # A reply goes to the newest message's sender, threaded on its platform id.
    assert (conv.reply_to, conv.recipient) == ("2", "s1")
    assert conv.applied == {f"{TOPICS.raw_messages}:0": 11}
    assert result.conversations[other.message.conversation_id].unread == 1
    # Put in the table, and a redo of the same records changes nothing.
    assert store.get_user(USER).to_value() == result.state.to_value()
    again = _apply(processor, UserWork(inserted=[older, newer, other]), status)
    assert again.state.to_value() == result.state.to_value()
    assert again.conversations[conv_id(newer)].to_value() == conv.to_value()


def conv_id(raw: RawInput) -> str:
    return raw.message.conversation_id


def test_an_older_message_arriving_late_counts_but_leads_nothing() -> None:
    processor, _, _ = _processor()
    newer, older = _raw(5, 1), _raw(1, 2)
    result = _apply(
        processor,
        UserWork(inserted=[newer, older]),
        dict.fromkeys((newer.message.id, older.message.id), "unread"),
    )
    conv = result.conversations[conv_id(newer)]
    assert conv.unread == 2
    assert conv.last is not None and conv.last.id == newer.message.id
    assert conv.reply_to == "5"
    assert conv.applied == {f"{TOPICS.raw_messages}:0": 2}


def test_a_message_without_a_platform_id_leaves_no_reply_target() -> None:
    processor, _, _ = _processor()
    raw = _raw(1, 0)
    message = raw.message.model_copy(update={"external_message_id": ""})
    result = _apply(
        processor, UserWork(inserted=[RawInput(raw.record, message)]), {raw.message.id: "unread"}
    )
    assert result.conversations[conv_id(raw)].reply_to is None


def test_a_known_external_id_is_kept() -> None:
    processor, store, _ = _processor()
    first = _raw(1, 0)
    _apply(processor, UserWork(inserted=[first]), {first.message.id: "unread"})
    later = _raw(2, 1)
    moved = later.message.model_copy(update={"external_conversation_id": "elsewhere"})
    result = _apply(
        processor, UserWork(inserted=[RawInput(later.record, moved)]), {later.message.id: "unread"}
    )
    assert result.conversations[conv_id(first)].external_id == "chat-1"
    assert store.get_conversation(USER, conv_id(first)).unread == 2


def _reply(raw: RawMessage, offset: int, client_id: str) -> Reply:
    send = send_command(USER, raw.conversation_id, client_id)
    message = Message(
        id=send.message_id,
        platform=raw.platform,
        account_id=raw.account_id,
        conversation_id=raw.conversation_id,
        sender=Sender(id=USER),
        text=send.text,
        sent_at=send.issued_at,
        received_at=send.issued_at,
        status="pending",
        direction="outbound",
    )
    outbound = OutboundMessage(
        message_id=send.message_id,
        client_message_id=client_id,
        user_id=USER,
        platform=raw.platform,
        account_id=raw.account_id,
        conversation_id=raw.conversation_id,
        external_conversation_id="chat-1",
        text=send.text,
        issued_at=send.issued_at,
    )
    return Reply(_command_record(offset), message, outbound)


def test_a_reply_leads_its_conversation_without_counting() -> None:
    processor, _, _ = _processor()
    raw = _raw(1, 0)
    reply = _reply(raw.message, 7, "c1")
    result = _apply(processor, UserWork(inserted=[raw], sent=[reply]), {raw.message.id: "unread"})
    conv = result.conversations[conv_id(raw)]
    assert conv.unread == 1 and result.state.total == 1
    assert conv.last == reply.message
    assert conv.applied == {f"{TOPICS.raw_messages}:0": 0, f"{TOPICS.commands}:1": 7}
    # The user's totals carry no command watermark: a reply changes no count.
    assert result.state.applied == {f"{TOPICS.raw_messages}:0": 0}
    redo = _apply(processor, UserWork(sent=[_reply(raw.message, 7, "c2")]))
    assert redo.conversations[conv_id(raw)].last == reply.message  # applied before


def test_a_delivery_status_moves_the_newest_reply() -> None:
    processor, _, _ = _processor()
    raw = _raw(1, 0)
    reply = _reply(raw.message, 3, "c1")
    _apply(processor, UserWork(inserted=[raw], sent=[reply]), {raw.message.id: "unread"})
    send = send_command(USER, raw.message.conversation_id, "c1")
    item = StatusInput(_command_record(4), send_result(send, raw.message.account_id, "sent", "p1"))
    doc = {"_id": reply.message.id, "conversationId": raw.message.conversation_id}
    result = _apply(processor, UserWork(statuses=[(item, doc)]))
    conv = result.conversations[conv_id(raw)]
    assert conv.last is not None and conv.last.status == "sent"
    assert conv.applied[f"{TOPICS.commands}:1"] == 4
    stale = StatusInput(_command_record(2), send_result(send, raw.message.account_id, "failed"))
    after = _apply(processor, UserWork(statuses=[(stale, doc)]))
    assert after.conversations[conv_id(raw)].last == conv.last  # below the watermark


def test_deleting_an_unread_message_uncounts_it_and_an_edit_changes_the_text() -> None:
    processor, _, _ = _processor()
    first, second = _raw(1, 0), _raw(2, 1, platform="telegram")
    _apply(
        processor,
        UserWork(inserted=[first, second]),
        dict.fromkeys((first.message.id, second.message.id), "unread"),
    )
    edit = ChangeInput(_command_record(5), edit_command(second.message, "fixed", 30))
    edited = _doc(second.message, text="fixed", editedAt=T0 + timedelta(minutes=1))
    result = _apply(processor, UserWork(changes=[(edit, edited)]))
    conv = result.conversations[conv_id(first)]
    assert conv.unread == 2 and result.state.total == 2
    assert conv.last is not None and conv.last.text == "fixed"
    assert conv.applied[f"{TOPICS.commands}:1"] == 5
    assert f"{TOPICS.commands}:1" not in result.state.applied  # nothing stopped counting
    delete = ChangeInput(_command_record(6), delete_command(first.message))
    tombstone = _doc(first.message, deleted=True, wasUnread=True, text="", status="read")
    gone = _apply(processor, UserWork(changes=[(delete, tombstone)]))
    assert (gone.state.total, gone.state.by_platform) == (1, {"telegram": 1})
    assert gone.state.applied[f"{TOPICS.commands}:1"] == 6
    conv = gone.conversations[conv_id(first)]
    assert conv.unread == 1
    assert conv.last is not None and conv.last.id == second.message.id  # not the deleted one
    # The same delete again (a redo) is below both watermarks.
    redo = _apply(processor, UserWork(changes=[(delete, tombstone)]))
    assert redo.state.total == 1 and redo.conversations[conv_id(first)].unread == 1


def test_deleting_a_read_message_changes_no_count() -> None:
    processor, _, _ = _processor()
    raw = _raw(1, 0)
    _apply(processor, UserWork(inserted=[raw]), {raw.message.id: "unread"})
    delete = ChangeInput(_command_record(2), delete_command(raw.message))
    tombstone = _doc(raw.message, deleted=True, text="", status="read")
    result = _apply(processor, UserWork(changes=[(delete, tombstone)]))
    assert result.state.total == 1 and result.conversations[conv_id(raw)].unread == 1
    last = result.conversations[conv_id(raw)].last
    assert last is not None and last.deleted and last.text == ""


def test_mark_read_uncounts_each_message_in_its_conversation() -> None:
    processor, store, _ = _processor()
    a1, a2 = _raw(1, 0), _raw(2, 1)
    b1 = _raw(3, 2, chat="chat-2", platform="slack")
    ids = (a1.message.id, a2.message.id, b1.message.id)
    _apply(processor, UserWork(inserted=[a1, a2, b1]), dict.fromkeys(ids, "unread"))
    command = CommandInput(_command_record(9), mark_read(USER, ids, "cmd1"))
    docs = [_doc(a2.message), _doc(b1.message)]
    empty = CommandInput(_command_record(8), mark_read(USER, [], "cmd2"))
    result = _apply(processor, UserWork(commands=[(empty, []), (command, docs)]))
    assert (result.state.total, result.state.by_platform) == (1, {"telegram": 1})
    # The command without transitions raises no watermark.
    assert result.state.applied[f"{TOPICS.commands}:1"] == 9
    a, b = result.conversations[conv_id(a1)], result.conversations[conv_id(b1)]
    assert (a.unread, b.unread) == (1, 0)
    assert a.last is not None and a.last.status == "read"
    assert b.last is not None and b.last.status == "read"
    assert a.applied[f"{TOPICS.commands}:1"] == 9
    assert store.get_conversation(USER, conv_id(b1)).unread == 0
    redo = _apply(processor, UserWork(commands=[(command, docs)]))
    assert redo.state.total == 1
    assert redo.conversations[conv_id(a1)].unread == 1


async def test_a_batch_of_poison_goes_to_the_dead_letters_in_order() -> None:
    processor, store, sink = _processor()
    records = [
        SourceRecord(TOPICS.raw_messages, 0, 4, b"u1", b"{nope"),
        SourceRecord(TOPICS.commands, 2, 9, b"u1", None),
    ]
    outcome = await processor.process(records)
    assert (outcome.records, outcome.raws, outcome.commands, outcome.users) == (2, 0, 0, 0)
    assert outcome.stored == 0 and outcome.read == 0
    letters = sink.on(TOPICS.dead_letter)
    assert [(d["source"]["topic"], d["source"]["offset"]) for d in letters] == [
        (TOPICS.raw_messages, 4),
        (TOPICS.commands, 9),
    ]
    assert [d["errorType"] for d in letters] == ["invalid_json", "empty_value"]
    assert [key for topic, key, _ in sink.records] == [b"u1", b"u1"]
    assert store.users == {} and store.conversations == {}


async def test_one_dead_letter_carries_its_source_in_headers() -> None:
    processor, _, _ = _processor()
    sent: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []

    class HeaderSink(RecordingSink):
        async def send(
            self, topic: str, key: bytes | None, value: bytes, headers: Any = ()
        ) -> None:
            sent.append((topic, key, list(headers)))

    processor.sink = HeaderSink()
    prepared = await processor.prepare([SourceRecord(TOPICS.commands, 3, 5, b"k", b"[1]")])
    assert prepared is not None
    await processor.dead_letter(prepared.outcome.dead_letters[0])
    assert sent == [
        (
            TOPICS.dead_letter,
            b"k",
            [
                ("hub-source-topic", TOPICS.commands.encode()),
                ("hub-source-partition", b"3"),
                ("hub-source-offset", b"5"),
                ("hub-error-type", b"invalid_json"),
            ],
        )
    ]


async def test_the_memory_store_is_durable_at_once() -> None:
    done = await MemoryStateStore().send()
    assert done.done() and done.result() is None


def _answers(items: Any, answers: dict[str, Any]) -> dict[str, Any]:
    """The answers for the items' records, as the store finds them by their origin."""
    return {i.record.origin: answers[i.record.origin] for i in items if i.record.origin in answers}


class _StoreAnswers:
    """What the store answers a batch, as the processor's store functions would: every
    message new, and the commands' effects given by the test (keyed by record origin)."""

    def __init__(
        self,
        moved: dict[str, Document] | None = None,
        changed: dict[str, Document] | None = None,
        transitions: dict[str, list[Document]] | None = None,
    ) -> None:
        self.moved, self.changed = moved or {}, changed or {}
        self.transitions = transitions or {}
        self.replies: list[list[str]] = []  # the sends of each batch, by origin

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def insert_messages(db: Any, raws: Any) -> set[str]:
            return {r.message.id for r in raws}

        async def find_messages(db: Any, ids: Any) -> dict[str, Document]:
            return {}

        async def store_replies(db: Any, store: Any, decoded: Any, status: Any) -> list[Reply]:
            self.replies.append([s.record.origin for s in decoded.sends])
            return []

        async def apply_statuses(db: Any, items: Any) -> dict[str, Document]:
            return {
                i.record.origin: self.moved[i.record.origin]
                for i in items
                if i.record.origin in self.moved
            }

        async def apply_changes(db: Any, items: Any) -> dict[str, Document]:
            return {
                i.record.origin: self.changed[i.record.origin]
                for i in items
                if i.record.origin in self.changed
            }

        async def mark_read(db: Any, commands: Any) -> dict[str, list[Document]]:
            return {
                c.record.origin: self.transitions[c.record.origin]
                for c in commands
                if c.record.origin in self.transitions
            }

        for name, fake in [
            ("insert_messages", insert_messages),
            ("find_messages", find_messages),
            ("store_replies", store_replies),
            ("apply_statuses", apply_statuses),
            ("apply_changes", apply_changes),
            ("mark_read", mark_read),
        ]:
            monkeypatch.setattr(processor_module, name, fake)


def _on_commands(value: Any, offset: int, key: bytes = b"u1") -> SourceRecord:
    return SourceRecord(TOPICS.commands, 1, offset, key, value.to_json())


def _on_raws(raw: RawMessage, offset: int) -> SourceRecord:
    return SourceRecord(TOPICS.raw_messages, 0, offset, raw.user_id.encode(), raw.to_json())


async def test_a_batch_reaches_the_table_the_projections_and_the_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor, store, sink = _processor()
    r1, r2 = raw_message(USER, 1), raw_message(USER, 2)
    other = raw_message("u2", 3)
    read = mark_read(USER, [r1.id], "cmd-read")
    edit = edit_command(r2, "fixed", 30)
    send = send_command(USER, r1.conversation_id, "client-1")
    status = send_result(send, r1.account_id, "sent", "p1")
    records = [
        _on_raws(r1, 0),
        _on_raws(r2, 1),
        _on_raws(other, 2),
        _on_raws(r1, 3),  # the same message again: stored and counted once
        # In the order the table applies a user's kinds of command today (statuses,
        # changes, reads), which is also their offset order here.
        _on_commands(status, 0),
        _on_commands(edit, 1),
        _on_commands(read, 2),
        SourceRecord(TOPICS.commands, 1, 3, b"u1", b"{nope"),
    ]
    edited = _doc(r2, text="fixed", editedAt=edit.edited_at)
    reply_doc = {"_id": send.message_id, "conversationId": r1.conversation_id}
    _StoreAnswers(
        moved={f"{TOPICS.commands}:1:0": reply_doc},
        changed={f"{TOPICS.commands}:1:1": edited},
        transitions={f"{TOPICS.commands}:1:2": [_doc(r1)]},
    ).install(monkeypatch)
    outcome = await processor.process(records)
    assert (outcome.records, outcome.raws, outcome.commands) == (8, 4, 1)
    assert (outcome.stored, outcome.read, outcome.users) == (3, 1, 2)
    unread = outcome.projections.unread
    assert (unread[USER].total, unread[USER].by_platform) == (1, {"telegram": 1})
    assert (unread["u2"].total, unread["u2"].version) == (1, 3)
    conversation = outcome.projections.conversations[r1.conversation_id]
    assert conversation["unreadCount"] == 1
    assert conversation["lastMessage"]["text"] == "fixed"
    assert store.get_user(USER).total == 1
    events = sink.on(TOPICS.user_events)
    kinds = [(e["type"], e["userId"]) for e in events]
    assert kinds.count(("new_message", USER)) == 2 and kinds.count(("new_message", "u2")) == 1
    new = {
        e["data"]["message"]["id"]: e["data"]["message"]["status"]
        for e in events
        if e["type"] == "new_message"
    }
    assert new == {r1.id: "read", r2.id: "unread", other.id: "unread"}  # read in this batch
    assert ("message_updated", USER) in kinds
    statuses = [e["data"] for e in events if e["type"] == "message_status_update"]
    assert {
        "conversationId": r1.conversation_id,
        "messageIds": [r1.id],
        "status": "read",
    } in statuses
    assert any(s.get("status") == "sent" and s["messageIds"] == [send.message_id] for s in statuses)
    counts = [e for e in events if e["type"] == "unread_count_update" and e["userId"] == USER]
    assert [c["data"]["unreadCounts"]["total"] for c in counts] == [1]
    updates = [e for e in events if e["type"] == "conversation_update"]
    assert {e["data"]["conversation"]["id"] for e in updates} == {
        r1.conversation_id,
        other.conversation_id,
    }
    assert [d["source"]["offset"] for d in sink.on(TOPICS.dead_letter)] == [3]
    assert outcome.events["new_message"] == 3
    assert list(outcome.phases) == ["gate", "store", "table", "send", "acks"]


async def test_a_retry_after_its_failure_in_one_batch_goes_in_a_batch_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor, _, _ = _processor()
    send = send_command(USER, "conv", "client-1")
    failed = send_result(send, "acc", "failed")
    answers = _StoreAnswers()
    answers.install(monkeypatch)
    records = [_on_commands(failed, 0), _on_commands(send, 1), _on_commands(send, 2)]
    outcome = await processor.process(records)
    assert outcome.records == 3
    origin = f"{TOPICS.commands}:1:"
    assert answers.replies == [[], [origin + "1", origin + "2"]]
    prepared = await processor.prepare(records)
    assert prepared is None  # to be cut: `process` does it


async def test_commands_that_changed_nothing_touch_no_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor, store, sink = _processor()
    r1 = raw_message(USER, 1)
    send = send_command(USER, r1.conversation_id, "client-1")
    _StoreAnswers().install(monkeypatch)
    records = [
        _on_commands(mark_read(USER, [r1.id], "cmd-read"), 0),
        _on_commands(edit_command(r1, "fixed", 30), 1),
        _on_commands(send_result(send, r1.account_id, "sent", "p1"), 2),
    ]
    outcome = await processor.process(records)
    assert (outcome.users, outcome.read, outcome.stored) == (0, 0, 0)
    assert outcome.projections.unread == {} and outcome.projections.conversations == {}
    assert sink.records == [] and store.users == {}
