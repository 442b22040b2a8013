"""One batch of source records in, idempotent store writes, table update and user events out.

Write order (see README, "Streams"): messages and read marks into the store first (their
`origin`/`readBy` fields remember which record caused them), then the table state with its
watermarks (awaited until durable), then absolute counts and conversations into the store,
then the user events and dead letters. The caller acknowledges the records afterwards.
Any crash in between is repaired by processing the same records again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import Document
from schemas.base import Record
from streams import events
from streams.projection import (
    NewestMessage,
    find_conversations,
    find_messages,
    insert_messages,
    mark_read,
    write_projections,
)
from streams.records import (
    CommandInput,
    Poison,
    RawInput,
    SourceRecord,
    decode_batch,
    highest_offsets,
)
from streams.sinks import RecordSink
from streams.state import StateStore, UnreadState


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did, for the log line, metrics and replay's summary."""

    records: int = 0
    raws: int = 0
    commands: int = 0
    stored: int = 0
    read: int = 0
    users: int = 0
    events: dict[str, int] = field(default_factory=dict)
    dead_letters: list[Poison] = field(default_factory=list)
    # Milliseconds per phase of the write order: store, table, projections, events.
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _UserWork:
    """One user's part of a batch."""

    records: list[SourceRecord] = field(default_factory=list)
    inserted: list[RawInput] = field(default_factory=list)
    commands: list[tuple[CommandInput, list[Document]]] = field(default_factory=list)

    @property
    def effective(self) -> bool:
        """True when the batch stored a message or changed a status for this user."""
        return bool(self.inserted) or any(docs for _, docs in self.commands)


class _PhaseClock:
    """Writes the milliseconds since the previous lap into `phases`."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round((now - self.last) * 1000, 1)
        self.last = now


class BatchProcessor:
    """The pure batch logic shared by the Faust agent, `hub replay` and the tests."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        store: StateStore,
        sink: RecordSink,
        topics: Topics,
        *,
        emit_events: bool = True,
    ) -> None:
        self.db = db
        self.store = store
        self.sink = sink
        self.topics = topics
        self.emit_events = emit_events

    async def process(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """Apply `records` (any mix of topics and partitions, in consumed order)."""
        decoded = decode_batch(records, self.topics)
        outcome = BatchOutcome(
            records=len(records),
            raws=len(decoded.raws),
            commands=len(decoded.commands),
            dead_letters=decoded.poison,
        )
        clock = _PhaseClock(outcome.phases)
        work: dict[str, _UserWork] = {}
        status = await self._store_messages(decoded.raws, work)
        transitions = await mark_read(self.db, decoded.commands)
        for command in decoded.commands:
            user = work.setdefault(command.command.user_id, _UserWork())
            user.records.append(command.record)
            docs = transitions.get(command.record.origin, [])
            user.commands.append((command, docs))
            for doc in docs:
                status[str(doc["_id"])] = "read"
        clock.lap("store")
        states = self._update_states(work)
        await self.store.flush()
        clock.lap("table")
        outcome.stored = sum(len(w.inserted) for w in work.values())
        outcome.read = sum(len(docs) for docs in transitions.values())
        outcome.users = len(states)

        newest: dict[str, NewestMessage] = {}
        read: dict[str, list[str]] = {}
        owners: dict[str, str] = {}
        for user_id, user in work.items():
            for raw in user.inserted:
                candidate = NewestMessage(raw, status[raw.message.id])
                conv = raw.message.conversation_id
                owners[conv] = user_id
                if conv not in newest or candidate.order > newest[conv].order:
                    newest[conv] = candidate
            for _, docs in user.commands:
                for doc in docs:
                    conv = str(doc["conversationId"])
                    owners[conv] = user_id
                    read.setdefault(conv, []).append(str(doc["_id"]))
        await write_projections(
            self.db, newest=newest, read=read, states=states, conversation_users=owners
        )
        clock.lap("projections")
        if self.emit_events and states:
            await self._emit(work, states, newest, status, outcome)
        for poison in decoded.poison:
            await self.sink.send(
                self.topics.dead_letter,
                poison.record.key,
                poison.dead_letter().to_json(),
                poison.headers(),
            )
        await self.sink.flush()
        clock.lap("events")
        return outcome

    async def _store_messages(
        self, raws: Sequence[RawInput], work: dict[str, _UserWork]
    ) -> dict[str, str]:
        """Upsert messages; fill each user's `inserted`; return id -> current status."""
        firsts: dict[str, RawInput] = {}
        for raw in raws:
            work.setdefault(raw.message.user_id, _UserWork()).records.append(raw.record)
            # The first record of an id is the one whose origin an insert would carry.
            firsts.setdefault(raw.message.id, raw)
        inserted = await insert_messages(self.db, list(firsts.values()))
        existing = await find_messages(self.db, [i for i in firsts if i not in inserted])
        status: dict[str, str] = {}
        for message_id, raw in firsts.items():
            if message_id in inserted:
                status[message_id] = "unread"
            else:
                doc = existing.get(message_id)
                # Stored by this very record before a crash: still new, for counting.
                if doc is None or doc.get("origin") != raw.record.origin:
                    continue
                status[message_id] = str(doc.get("status", "unread"))
            work[raw.message.user_id].inserted.append(raw)
        return status

    def _update_states(self, work: dict[str, _UserWork]) -> dict[str, UnreadState]:
        """Apply each user's effects above its watermarks and put the states.

        Synchronous on purpose: no other coroutine can touch a state between get and put.
        Every user with an effect is put, even when all of it was counted before, so that
        a retry after a failed changelog write sends the state again.
        """
        states: dict[str, UnreadState] = {}
        for user_id, user in work.items():
            if not user.effective:
                continue
            state = self.store.get(user_id)
            for raw in user.inserted:
                if state.applies(raw.record):
                    state.add(raw.message.platform, raw.message.conversation_id, +1)
            for command, docs in user.commands:
                if state.applies(command.record):
                    for doc in docs:
                        state.add(str(doc["platform"]), str(doc["conversationId"]), -1)
            state.mark_applied(highest_offsets(user.records))
            self.store.put(user_id, state)
            states[user_id] = state
        return states

    async def _emit(
        self,
        work: dict[str, _UserWork],
        states: dict[str, UnreadState],
        newest: dict[str, NewestMessage],
        status: dict[str, str],
        outcome: BatchOutcome,
    ) -> None:
        conversations = await find_conversations(self.db, newest)
        topic = self.topics.user_events
        for user_id, state in states.items():
            user = work[user_id]
            key = user_id.encode()
            out: list[Record] = []
            changed: set[str] = set()
            causes: list[str] = []
            times: list[datetime] = []
            for raw in user.inserted:
                read_now = status[raw.message.id] == "read"
                message = raw.message.to_message(status="read" if read_now else "unread")
                out.append(events.new_message(user_id, message))
                changed.add(raw.message.conversation_id)
                causes.append(raw.record.origin)
                times.append(raw.message.received_at)
            for command, docs in user.commands:
                if docs:
                    out.extend(events.status_updates(command, docs))
                    changed.update(str(d["conversationId"]) for d in docs)
                    causes.append(command.record.origin)
                    times.append(command.command.issued_at)
            for conv in sorted({r.message.conversation_id for r in user.inserted}):
                doc = conversations.get(conv)
                if doc is not None:
                    cause = newest[conv].raw.message
                    out.append(
                        events.conversation_update(user_id, doc, cause.id, cause.received_at)
                    )
            out.append(
                events.unread_count_update(
                    user_id, state, changed, "|".join(sorted(causes)), max(times)
                )
            )
            for event in out:
                await self.sink.send(topic, key, event.to_json())
                kind = str(getattr(event, "type", "event"))
                outcome.events[kind] = outcome.events.get(kind, 0) + 1
