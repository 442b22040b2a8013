"""The MongoDB side of a batch: idempotent bulk writes in the layout of `hubcore.store`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from hubcore.mongo import CONVERSATIONS, MESSAGES, UNREAD, Document, bulk_write_chunked
from hubcore.store import last_message_value, message_doc
from streams.records import CommandInput, RawInput
from streams.state import UnreadState

DUPLICATE_KEY = 11000

# What the batch logic needs to know of an existing message.
_MESSAGE_FIELDS = {"_id": 1, "origin": 1, "status": 1, "readBy": 1, "userId": 1}
_TRANSITION_FIELDS = {"_id": 1, "readBy": 1, "userId": 1, "platform": 1, "conversationId": 1}


async def insert_messages(db: AsyncDatabase[Document], raws: Sequence[RawInput]) -> set[str]:
    """Insert the messages not stored yet; a stored one is left untouched.

    `raws` must hold each message id once. Returns the ids inserted by this call. An
    unordered insert whose duplicate-key errors are expected does what an upsert with
    `$setOnInsert` does, at a fraction of the cost on FerretDB (which commits every
    rewritten document on its own, while inserts are batched).
    """
    return await _insert_missing(
        db[MESSAGES], [message_doc(r.message, r.record.origin) for r in raws]
    )


async def _insert_missing(collection: AsyncCollection[Document], docs: list[Document]) -> set[str]:
    """Insert `docs` (unordered, one command); returns the ids inserted, an existing id is
    left untouched (its duplicate-key error is expected)."""
    if not docs:
        return set()
    wanted = {str(d["_id"]) for d in docs}
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if other:
            raise
        return wanted - {str(e["op"]["_id"]) for e in errors}
    return wanted


async def find_messages(db: AsyncDatabase[Document], ids: Sequence[str]) -> dict[str, Document]:
    """Message id -> its bookkeeping fields, for the ids that exist."""
    if not ids:
        return {}
    cursor = db[MESSAGES].find({"_id": {"$in": list(ids)}}, _MESSAGE_FIELDS)
    return {str(doc["_id"]): doc async for doc in cursor}


async def mark_read(
    db: AsyncDatabase[Document], commands: Sequence[CommandInput]
) -> dict[str, list[Document]]:
    """Apply mark-read commands; return command origin -> the messages it transitioned.

    A message transitioned by a command carries `readBy` = the command's origin, so the
    answer includes what an earlier, crashed attempt of the same command changed and
    nothing that was already read before it.
    """
    ops = [
        UpdateMany(
            {
                "_id": {"$in": c.command.message_ids},
                "userId": c.command.user_id,
                "status": "unread",
            },
            {"$set": {"status": "read", "readBy": c.record.origin}},
        )
        for c in commands
        if c.command.message_ids
    ]
    if not ops:
        return {}
    await bulk_write_chunked(db[MESSAGES], ops)
    origins = [c.record.origin for c in commands]
    out: dict[str, list[Document]] = {}
    cursor = db[MESSAGES].find({"readBy": {"$in": origins}}, _TRANSITION_FIELDS)
    async for doc in cursor:
        out.setdefault(str(doc["readBy"]), []).append(doc)
    for docs in out.values():
        docs.sort(key=lambda d: str(d["_id"]))
    return out


@dataclass(frozen=True, slots=True)
class NewestMessage:
    """The newest new message of a conversation in a batch, with its current status."""

    raw: RawInput
    status: str

    @property
    def order(self) -> tuple[datetime, str]:
        # Ties on sentAt are broken by id so every batch split picks the same message.
        return (self.raw.message.sent_at, self.raw.message.id)


def _last_message(newest: NewestMessage) -> Document:
    last = last_message_value(message_doc(newest.raw.message, newest.raw.record.origin))
    last["status"] = newest.status
    return last


def _new_conversation(newest: NewestMessage, unread: int) -> Document:
    """The document of a conversation first seen with this message."""
    msg = newest.raw.message
    return {
        "_id": msg.conversation_id,
        "userId": msg.user_id,
        "platform": msg.platform,
        "accountId": msg.account_id,
        "title": msg.conversation_title,
        "lastMessage": _last_message(newest),
        "lastMessageAt": msg.sent_at,
        "updatedAt": msg.sent_at,
        "unreadCount": unread,
    }


def _advance_op(newest: NewestMessage, extra: Mapping[str, Any]) -> UpdateOne:
    """Make this message the last one, and `$set` `extra`, only if it is newer than the
    stored last message, so the order in which batches (or a replay) deliver messages
    does not change the outcome."""
    msg = newest.raw.message
    at = msg.sent_at
    newer: dict[str, Any] = {
        "lastMessage": _last_message(newest),
        "lastMessageAt": at,
        "updatedAt": at,
        **extra,
    }
    if msg.conversation_title is not None:
        newer["title"] = msg.conversation_title
    return UpdateOne(
        {
            "_id": msg.conversation_id,
            "$or": [
                {"lastMessageAt": {"$lt": at}},
                {"lastMessageAt": at, "lastMessage.id": {"$lt": msg.id}},
            ],
        },
        {"$set": newer},
    )


def _is_newer(candidate: NewestMessage, stored: Document) -> bool:
    """True when `candidate` should replace the stored conversation's last message."""
    at = stored.get("lastMessageAt")
    if at is None:
        return True  # the guarded advance decides
    return candidate.order > (at, str((stored.get("lastMessage") or {}).get("id", "")))


def _count_op(conv_id: str, unread: int) -> UpdateOne:
    return UpdateOne({"_id": conv_id}, {"$set": {"unreadCount": unread}})


async def _write_conversations(
    db: AsyncDatabase[Document], newest: Mapping[str, NewestMessage], counts: Mapping[str, int]
) -> None:
    """Write every touched conversation (`counts`: id -> its unread count): new ones in one
    insert command, the others with one statement each (FerretDB commits every rewritten
    document on its own, while an insert command is one commit).

    The stored last messages are read first to choose between insert, advance and count
    only. Should another writer get in between (a partition hand-over), the statements of
    the unconditional form follow: the advance and count for a conversation that existed
    after all, and the count for one whose advance no longer applied.
    """
    stored = await find_conversations(db, newest, {"lastMessageAt": 1, "lastMessage.id": 1})
    ops: list[UpdateOne] = []
    creates: list[Document] = []
    advances: list[str] = []
    for conv_id, unread in counts.items():
        candidate = newest.get(conv_id)
        doc = stored.get(conv_id)
        if candidate is None:
            ops.append(_count_op(conv_id, unread))
        elif doc is None:
            creates.append(_new_conversation(candidate, unread))
        elif _is_newer(candidate, doc):
            advances.append(conv_id)
            ops.append(_advance_op(candidate, {"unreadCount": unread}))
        else:
            ops.append(_count_op(conv_id, unread))
    inserted = await _insert_missing(db[CONVERSATIONS], creates)
    outcome = await bulk_write_chunked(db[CONVERSATIONS], ops)
    again: list[UpdateOne] = []
    for doc in creates:
        conv_id = str(doc["_id"])
        if conv_id not in inserted:
            again += [_advance_op(newest[conv_id], {}), _count_op(conv_id, counts[conv_id])]
    if outcome.matched < len(ops):
        again.extend(_count_op(c, counts[c]) for c in advances)
    if again:
        await bulk_write_chunked(db[CONVERSATIONS], again)


async def write_projections(
    db: AsyncDatabase[Document],
    *,
    newest: Mapping[str, NewestMessage],
    read: Mapping[str, Sequence[str]],
    states: Mapping[str, UnreadState],
    conversation_users: Mapping[str, str],
) -> None:
    """Write conversations and unread documents from the updated states (absolute values).

    `newest`: conversation id -> its newest new message; `read`: conversation id -> the ids
    marked read in it; `conversation_users`: conversation id -> user id of every touched
    conversation; `states`: the users' states after this batch.
    """
    counts = {
        conv_id: states[user_id].conversation_count(conv_id)
        for conv_id, user_id in conversation_users.items()
    }
    read_ops = [
        UpdateOne(
            {"_id": conv_id, "lastMessage.id": {"$in": list(ids)}},
            {"$set": {"lastMessage.status": "read"}},
        )
        for conv_id, ids in read.items()
        if ids and conv_id in counts
    ]
    unread_ops = [
        UpdateOne({"_id": user_id}, {"$set": state.unread_document()}, upsert=True)
        for user_id, state in states.items()
    ]
    await asyncio.gather(
        _write_conversations(db, newest, counts),
        bulk_write_chunked(db[UNREAD], unread_ops),
    )
    await bulk_write_chunked(db[CONVERSATIONS], read_ops)


async def find_conversations(
    db: AsyncDatabase[Document], ids: Iterable[str], fields: Mapping[str, int] | None = None
) -> dict[str, Document]:
    """Conversation id -> its stored document (only `fields`, when given)."""
    wanted = list(ids)
    if not wanted:
        return {}
    cursor = db[CONVERSATIONS].find({"_id": {"$in": wanted}}, fields)
    return {str(doc["_id"]): doc async for doc in cursor}
