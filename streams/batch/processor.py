"""One batch of source records in: idempotent message writes, table update, user events out.

Write order (see docs/streams.md): messages and read marks into the store first (their
`origin`/`readBy` fields remember which record caused them), then the table states with
their watermarks, sent to the changelog together with the user events and dead letters
(which carry absolute state from the table), all acks awaited together. The projections
(`conversations`, `unread`) the batch changed are returned for the projection sink, which
writes them beside the batch loop; the caller acknowledges the records once they are
written. Any crash in between is
repaired by processing the same records again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import Document
from hubcore.store import message_from_doc
from streams.batch.changes import apply_changes, read_change_cut
from streams.batch.emission import UserResult, UserWork, emit_events, stops_counting
from streams.batch.gate import NoGate, WriteGate
from streams.batch.outcome import BatchOutcome, PhaseClock
from streams.batch.records import (
    ChangeInput,
    Decoded,
    Poison,
    RawInput,
    SourceRecord,
    StatusInput,
    decode_batch,
)
from streams.batch.replies import Reply, retry_cut, store_replies
from streams.batch.state import ConversationState, StateStore, UserState
from streams.batch.statuses import apply_statuses
from streams.sink.projection import (
    UnreadUpdate,
    conversation_document,
    find_messages,
    insert_messages,
    mark_read,
)
from streams.sink.sinks import RecordSink


@dataclass(slots=True)
class Prepared:
    """A batch applied to the store and the table, its output not sent yet."""

    outcome: BatchOutcome
    clock: PhaseClock
    work: dict[str, UserWork]
    results: dict[str, UserResult]
    status: dict[str, str]


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
        gate: WriteGate | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.sink = sink
        self.topics = topics
        self.emit_events = emit_events
        # Shared with the projection sink, whose writes wait while a store phase runs.
        self.gate = gate or NoGate()

    async def process(self, records: Sequence[SourceRecord]) -> BatchOutcome:
        """Apply `records` (any mix of topics and partitions, in consumed order)."""
        decoded = decode_batch(records, self.topics)
        if cut := _cut(records, decoded):
            first = await self.process(records[:cut])
            first.merge(await self.process(records[cut:]))
            return first
        prepared = await self._prepare(records, decoded)
        await (await self.send(prepared))
        prepared.clock.lap("acks")
        return prepared.outcome

    async def prepare(self, records: Sequence[SourceRecord]) -> Prepared | None:
        """Decode, write messages and read marks to the store, apply the effects to the
        table: everything before the batch's output is sent. None, having done nothing,
        for a batch that must be cut in two (`_cut`): `process` it instead."""
        decoded = decode_batch(records, self.topics)
        if _cut(records, decoded):
            return None
        return await self._prepare(records, decoded)

    async def _prepare(self, records: Sequence[SourceRecord], decoded: Decoded) -> Prepared:
        outcome = BatchOutcome(
            records=len(records),
            raws=len(decoded.raws),
            commands=len(decoded.commands),
            dead_letters=decoded.poison,
        )
        clock = PhaseClock(outcome.phases)
        work: dict[str, UserWork] = {}
        # The store phase is not mutated (docs/development.md, "Mutation testing"): what it
        # does is the store's to answer; tests/integration runs it.
        # pragma: no mutate start
        async with self.gate.store():
            clock.lap("gate")  # waiting for the projection sink's write in flight
            status = await self._store_messages(decoded.raws, work)
            replies = await store_replies(self.db, self.store, decoded, status)
            moved = await apply_statuses(self.db, decoded.statuses)
            changed = await apply_changes(self.db, decoded.changes)
            transitions = await mark_read(self.db, decoded.commands)
        # pragma: no mutate end
        for reply in replies:
            work.setdefault(reply.user_id, UserWork()).sent.append(reply)
        for item in decoded.statuses:
            if (doc := moved.get(item.record.origin)) is not None:
                work.setdefault(item.command.user_id, UserWork()).statuses.append((item, doc))
        for change in decoded.changes:
            if (doc := changed.get(change.record.origin)) is not None:
                work.setdefault(change.command.user_id, UserWork()).changes.append((change, doc))
        for command in decoded.commands:
            docs = transitions.get(command.record.origin, [])
            work.setdefault(command.command.user_id, UserWork()).commands.append((command, docs))
            for doc in docs:
                status[str(doc["_id"])] = "read"
        clock.lap("store")
        results = {
            user_id: self._apply(user_id, user, status)
            for user_id, user in work.items()
            if user.inserted
            or user.sent
            or user.statuses
            or user.changes
            or any(d for _, d in user.commands)
        }
        outcome.stored = sum(len(w.inserted) for w in work.values())
        outcome.read = sum(len(docs) for docs in transitions.values())
        outcome.users = len(results)
        for user_id, result in results.items():
            outcome.projections.unread[user_id] = UnreadUpdate.of(user_id, result.state)
            for conv_id, conv in result.conversations.items():
                if conv.last is not None:
                    doc = conversation_document(user_id, conv_id, conv)
                    outcome.projections.conversations[conv_id] = doc
        clock.lap("table")
        return Prepared(outcome, clock, work, results, status)

    async def send(self, prepared: Prepared) -> asyncio.Future[Any]:
        """Send the table's changed values to the changelog and the user events and dead
        letters, all without waiting; the answer resolves once every one is acked.

        The changelog and the events travel together (one produce request when they fit):
        an event may be acked before the changelog value it was computed from is, which
        is safe because a redo after a crash computes the same events from the same
        records (docs/streams.md, write order).
        """
        outcome = prepared.outcome
        changelog = await self.store.send()
        if self.emit_events:
            await emit_events(
                self.sink,
                self.topics,
                prepared.work,
                prepared.results,
                prepared.status,
                outcome.projections,
                outcome.events,
            )
        for poison in outcome.dead_letters:
            await self._send_dead_letter(poison)
        acks = asyncio.gather(changelog, self.sink.flush())
        prepared.clock.lap("send")
        return acks

    async def dead_letter(self, poison: Poison) -> None:
        """Send one dead letter and wait for it."""
        await self._send_dead_letter(poison)
        await self.sink.flush()

    async def _send_dead_letter(self, poison: Poison) -> None:
        await self.sink.send(
            self.topics.dead_letter,
            poison.record.key,
            poison.dead_letter().to_json(),
            poison.headers(),
        )

    # Not mutated (docs/development.md, "Mutation testing"): its outcome is the store's
    # answers; tests/integration (test_streams_crash_replay.py and others) runs it.
    # pragma: no mutate start
    async def _store_messages(
        self, raws: Sequence[RawInput], work: dict[str, UserWork]
    ) -> dict[str, str]:
        """Insert messages; fill each user's `inserted`; return id -> current status."""
        firsts: dict[str, RawInput] = {}
        for raw in raws:
            work.setdefault(raw.message.user_id, UserWork())
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

    # pragma: no mutate end

    def _apply(self, user_id: str, user: UserWork, status: dict[str, str]) -> UserResult:
        """Apply a user's effects to its values above their watermarks, and put them.

        Synchronous on purpose: no other coroutine can touch a state between get and put.
        Every touched value is put, even when all of it was applied before, so that a
        retry after a failed changelog write sends it again.
        """
        state = self.store.get_user(user_id)
        convs: dict[str, ConversationState] = {}

        def conversation(conv_id: str) -> ConversationState:
            if conv_id not in convs:
                convs[conv_id] = self.store.get_conversation(user_id, conv_id)
            return convs[conv_id]

        for raw in user.inserted:
            record, msg = raw.record, raw.message
            if state.applies(record):
                state.add(msg.platform, +1)
                state.mark_applied(record)
            conv = conversation(msg.conversation_id)
            if conv.applies(record):
                conv.unread += 1
                read = status[msg.id] == "read"
                conv.advance(msg.to_message("read" if read else "unread"), msg.conversation_title)
                conv.external_id = conv.external_id or msg.external_conversation_id
                conv.answer(msg)
                conv.mark_applied(record)
        # A user's commands-topic effects apply in offset order, not grouped by kind: each
        # raises its conversation's watermark, so a reply applied before an earlier
        # mark-read of the same batch would make that mark-read look applied already (a
        # replay, reading large batches, counted such messages unread for good).
        effects: list[tuple[int, Callable[[], None]]] = [
            *((r.record.offset, partial(_apply_reply, conversation, r)) for r in user.sent),
            *(
                (i.record.offset, partial(_apply_status, conversation, i, d))
                for i, d in user.statuses
            ),
            *(
                (c.record.offset, partial(_apply_change, state, conversation, c, d))
                for c, d in user.changes
            ),
            *(
                (c.record.offset, partial(_apply_read, state, conversation, c.record, d))
                for c, d in user.commands
                if d
            ),
        ]
        effects.sort(key=lambda effect: effect[0])
        for _, apply in effects:
            apply()
        self.store.put_user(user_id, state)
        for conv_id, conv in convs.items():
            self.store.put_conversation(user_id, conv_id, conv)
        return UserResult(state, convs)


def _cut(records: Sequence[SourceRecord], decoded: Decoded) -> int:
    """Where a batch must be cut so that its phases (kinds of effect, applied one kind after
    the other) store what processing its records one by one stores (0: nowhere)."""
    cuts = [cut for cut in (retry_cut(records, decoded), read_change_cut(records, decoded)) if cut]
    return min(cuts, default=0)


Conversations = Callable[[str], ConversationState]


def _apply_reply(conversation: Conversations, reply: Reply) -> None:
    conv = conversation(reply.message.conversation_id)
    if conv.applies(reply.record):
        # A reply is never unread; it only becomes the conversation's newest message.
        conv.advance(reply.message, None)
        conv.mark_applied(reply.record)


def _apply_status(conversation: Conversations, item: StatusInput, doc: Document) -> None:
    conv = conversation(str(doc["conversationId"]))
    if conv.applies(item.record):
        conv.set_status(str(doc["_id"]), item.command.status)
        conv.mark_applied(item.record)


def _apply_change(
    state: UserState, conversation: Conversations, change: ChangeInput, doc: Document
) -> None:
    conv_id, gone = str(doc["conversationId"]), stops_counting(doc)
    if gone and state.applies(change.record):
        state.add(str(doc["platform"]), -1)
        state.mark_applied(change.record)
    # Touched even when its newest message is another one: the watermark then does not
    # depend on the order a replay applies messages and commands in.
    conv = conversation(conv_id)
    if conv.applies(change.record):
        conv.unread -= 1 if gone else 0
        conv.change(message_from_doc(doc))
        conv.mark_applied(change.record)


def _apply_read(
    state: UserState, conversation: Conversations, record: SourceRecord, docs: list[Document]
) -> None:
    """One mark-read command's transitions: the user's totals and each conversation."""
    if state.applies(record):
        for doc in docs:
            state.add(str(doc["platform"]), -1)
        state.mark_applied(record)
    by_conversation: dict[str, list[str]] = {}
    for doc in docs:
        by_conversation.setdefault(str(doc["conversationId"]), []).append(str(doc["_id"]))
    for conv_id, ids in by_conversation.items():
        conv = conversation(conv_id)
        if conv.applies(record):
            conv.mark_read(ids)
            conv.mark_applied(record)
