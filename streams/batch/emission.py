"""The user events of a batch (and the replies for the connectors), built from what the
batch changed and the table's states after it: absolute values, ids from their causes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hubcore.kafka import Topics
from hubcore.mongo import Document
from schemas.base import Record
from streams.batch import events, wire
from streams.batch.changes import change_event
from streams.batch.records import ChangeInput, CommandInput, RawInput, StatusInput
from streams.batch.replies import Reply
from streams.batch.state import ConversationState, UserState
from streams.batch.statuses import occurred, status_events
from streams.sink.projection import Projections
from streams.sink.sinks import RecordSink


@dataclass(slots=True)
class UserWork:
    """One user's part of a batch."""

    inserted: list[RawInput] = field(default_factory=list)
    sent: list[Reply] = field(default_factory=list)
    statuses: list[tuple[StatusInput, Document]] = field(default_factory=list)
    changes: list[tuple[ChangeInput, Document]] = field(default_factory=list)
    commands: list[tuple[CommandInput, list[Document]]] = field(default_factory=list)


def stops_counting(doc: Document) -> bool:
    """True for the delete that removed an unread message."""
    return bool(doc.get("deleted")) and bool(doc.get("wasUnread"))


@dataclass(slots=True)
class UserResult:
    """One user's states after a batch: totals, and the conversations it touched."""

    state: UserState
    conversations: dict[str, ConversationState]


def _add(out: list[tuple[str, bytes]], event: Record) -> None:
    out.append((str(getattr(event, "type", "event")), event.to_json()))


async def emit_events(
    sink: RecordSink,
    topics: Topics,
    work: dict[str, UserWork],
    results: dict[str, UserResult],
    status: dict[str, str],
    projections: Projections,
    counted: dict[str, int],
) -> None:
    """The users' events, with absolute state from the table, in causal order, then the
    replies for the connectors; `counted` gets the number sent of each kind."""
    topic = topics.user_events
    for user_id, result in results.items():
        user = work[user_id]
        out: list[tuple[str, bytes]] = []  # (event type, value)
        causes: list[str] = []
        times: dict[str, datetime] = {}
        for raw in user.inserted:
            out.append(
                ("new_message", wire.new_message(user_id, raw.message, status[raw.message.id]))
            )
            causes.append(raw.record.origin)
            conv_id = raw.message.conversation_id
            times[conv_id] = max(
                times.get(conv_id, raw.message.received_at), raw.message.received_at
            )
        for reply in user.sent:
            _add(out, events.new_message(user_id, reply.message, reply.outbound.attempt))
            conv_id = reply.message.conversation_id
            at = reply.message.received_at
            times[conv_id] = max(times.get(conv_id, at), at)
        for item, doc in user.statuses:
            for told_status in status_events(item, doc):
                _add(out, told_status)
            conv_id, at = str(doc["conversationId"]), occurred(item)
            times[conv_id] = max(times.get(conv_id, at), at)
        for change, doc in user.changes:
            told = change_event(change, doc)
            _add(out, told)
            at = told.occurred_at
            if stops_counting(doc):
                causes.append(change.record.origin)
            conv_id = str(doc["conversationId"])
            last = result.conversations[conv_id].last
            if stops_counting(doc) or (last is not None and last.id == doc["_id"]):
                # Clients hear of the conversation only when what they see of it changed.
                times[conv_id] = max(times.get(conv_id, at), at)
        for command, docs in user.commands:
            if docs:
                for update in events.status_updates(command, docs):
                    _add(out, update)
                causes.append(command.record.origin)
                at = command.command.issued_at
                for doc in docs:
                    conv_id = str(doc["conversationId"])
                    times[conv_id] = max(times.get(conv_id, at), at)
        for conv_id in sorted(result.conversations):
            projected = projections.conversations.get(conv_id)
            if projected is not None and conv_id in times:
                value = wire.conversation_update(user_id, projected, times[conv_id])
                out.append(("conversation_update", value))
        if causes:  # replies alone change no count
            counts = {c: conv.count for c, conv in result.conversations.items()}
            out.append(
                (
                    "unread_count_update",
                    wire.unread_count_update(
                        user_id, result.state, counts, "|".join(sorted(causes)), max(times.values())
                    ),
                )
            )
        key = user_id.encode()
        for kind, value in out:
            await sink.send(topic, key, value)
            counted[kind] = counted.get(kind, 0) + 1
        # With the events, before the records are acknowledged: a redo sends the same
        # record again, which the connectors' send ledger recognises by its message id.
        for reply in user.sent:
            outbound = reply.outbound
            await sink.send(topics.outbound, outbound.account_id.encode(), outbound.to_json())
            counted["outbound"] = counted.get("outbound", 0) + 1
