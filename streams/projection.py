"""The MongoDB side of a batch: idempotent bulk writes in the layout of `hubcore.store`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateMany, UpdateOne
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
    `$setOnInsert` does, at a fraction of the cost on FerretDB (whose updates scan the
    collection once per modified document).
    """
    docs = [message_doc(r.message, r.record.origin) for r in raws]
    if not docs:
        return set()
    wanted = {str(d["_id"]) for d in docs}
    try:
        await db[MESSAGES].insert_many(docs, ordered=False)
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


def _conversation_ops(newest: NewestMessage, unread: int) -> list[UpdateOne]:
    msg = newest.raw.message
    last = last_message_value(message_doc(msg, newest.raw.record.origin))
    last["status"] = newest.status
    at = msg.sent_at
    create = UpdateOne(
        {"_id": msg.conversation_id},
        {
            "$setOnInsert": {
                "userId": msg.user_id,
                "platform": msg.platform,
                "accountId": msg.account_id,
                "title": msg.conversation_title,
                "lastMessage": last,
                "lastMessageAt": at,
                "updatedAt": at,
            },
            "$set": {"unreadCount": unread},
        },
        upsert=True,
    )
    newer: dict[str, Any] = {"lastMessage": last, "lastMessageAt": at, "updatedAt": at}
    if msg.conversation_title is not None:
        newer["title"] = msg.conversation_title
    # Matches only when this message is newer than the stored one, so the order in which
    # batches (or a replay) deliver messages does not change the outcome.
    advance = UpdateOne(
        {
            "_id": msg.conversation_id,
            "$or": [
                {"lastMessageAt": {"$lt": at}},
                {"lastMessageAt": at, "lastMessage.id": {"$lt": msg.id}},
            ],
        },
        {"$set": newer},
    )
    return [create, advance]


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
    ops: list[UpdateOne] = []
    for conv_id, user_id in conversation_users.items():
        unread = states[user_id].conversation_count(conv_id)
        if conv_id in newest:
            ops.extend(_conversation_ops(newest[conv_id], unread))
        else:
            ops.append(UpdateOne({"_id": conv_id}, {"$set": {"unreadCount": unread}}))
        if read.get(conv_id):
            ops.append(
                UpdateOne(
                    {"_id": conv_id, "lastMessage.id": {"$in": list(read[conv_id])}},
                    {"$set": {"lastMessage.status": "read"}},
                )
            )
    unread_ops = [
        UpdateOne({"_id": user_id}, {"$set": state.unread_document()}, upsert=True)
        for user_id, state in states.items()
    ]
    await asyncio.gather(
        bulk_write_chunked(db[CONVERSATIONS], ops),
        bulk_write_chunked(db[UNREAD], unread_ops),
    )


async def find_conversations(
    db: AsyncDatabase[Document], ids: Iterable[str]
) -> dict[str, Document]:
    """Conversation id -> its stored document."""
    wanted = list(ids)
    if not wanted:
        return {}
    cursor = db[CONVERSATIONS].find({"_id": {"$in": wanted}})
    return {str(doc["_id"]): doc async for doc in cursor}
