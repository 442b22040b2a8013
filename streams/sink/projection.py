"""The MongoDB side: idempotent message writes of a batch, and versioned projections."""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pymongo import UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from hubcore.mongo import (
    CONVERSATIONS,
    ID_CHUNK,
    MESSAGES,
    UNREAD,
    Document,
    bulk_write_chunked,
)
from hubcore.store import message_doc
from streams.batch.records import CommandInput, RawInput
from streams.batch.state import ConversationState, UserState

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


async def insert_replies(db: AsyncDatabase[Document], docs: list[Document]) -> set[str]:
    """Insert the reply documents not stored yet (as `insert_messages`)."""
    return await _insert_missing(db[MESSAGES], docs)


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
                # In parts that FerretDB looks up by the `_id` index (ID_CHUNK).
                "_id": {"$in": c.command.message_ids[start : start + ID_CHUNK]},
                "userId": c.command.user_id,
                "status": "unread",
            },
            {"$set": {"status": "read", "readBy": c.record.origin}},
        )
        for c in commands
        for start in range(0, len(c.command.message_ids), ID_CHUNK)
    ]
    if not ops:
        return {}
    await bulk_write_chunked(db[MESSAGES], ops)
    origins = [c.record.origin for c in commands]
    out: dict[str, list[Document]] = {}
    # Looked up by the commands' message ids: FerretDB reads every message for a filter on
    # `readBy` alone (it searches an index only for `_id`, an `_id` `$in` list, or a string
    # equality), and a message a command transitioned is one it names.
    ids = sorted({i for c in commands for i in c.command.message_ids})
    for start in range(0, len(ids), ID_CHUNK):
        where = {"_id": {"$in": ids[start : start + ID_CHUNK]}, "readBy": {"$in": origins}}
        async for doc in db[MESSAGES].find(where, _TRANSITION_FIELDS):
            out.setdefault(str(doc["readBy"]), []).append(doc)
    for docs in out.values():
        docs.sort(key=lambda d: str(d["_id"]))
    return out


def conversation_document(user_id: str, conversation_id: str, state: ConversationState) -> Document:
    """The `conversations` document of a conversation state (with its version)."""
    last = state.last.model_dump(by_alias=True) if state.last else None
    at = state.last.sent_at if state.last else None
    doc: Document = {
        "_id": conversation_id,
        "userId": user_id,
        "platform": state.platform,
        "accountId": state.account_id,
        "title": state.title,
        "lastMessage": last,
        "lastMessageAt": at,
        "updatedAt": at,
        "unreadCount": state.count,
        "version": state.version,
    }
    if state.platform == "email":  # who a reply goes to, for the page to show
        doc["recipient"] = state.recipient
    return doc


@dataclass(frozen=True, slots=True)
class UnreadUpdate:
    """A user's `unread` document: totals only (the per-conversation counts are the
    conversations' `unreadCount`; a document listing them all would grow with the user's
    conversations, and FerretDB rewrites a whole document on every update)."""

    user_id: str
    version: int
    total: int
    by_platform: dict[str, int]

    @classmethod
    def of(cls, user_id: str, state: UserState) -> UnreadUpdate:
        """The document of a user's state."""
        view = state.counts({})
        return cls(user_id, state.version, view.total, view.by_platform)

    def document(self) -> Document:
        """The whole document."""
        return {
            "_id": self.user_id,
            "total": self.total,
            "byPlatform": self.by_platform,
            "version": self.version,
        }


def _older_than(doc_id: str, version: int) -> dict[str, Any]:
    # A document written before versions existed counts as older than any.
    return {
        "_id": doc_id,
        "$or": [{"version": {"$lt": version}}, {"version": {"$exists": False}}],
    }


def _guarded_update(doc_id: str, doc: Document) -> UpdateOne:
    return UpdateOne(
        _older_than(doc_id, int(doc["version"])),
        {"$set": {k: v for k, v in doc.items() if k != "_id"}},
    )


async def _write_versioned(
    collection: AsyncCollection[Document], docs: Mapping[str, Document], *, stored: bool
) -> int:
    """Insert the documents not stored yet (one insert command: FerretDB commits it once),
    and replace the fields of the others whose stored version is older, one guarded
    statement each. Returns the documents written. A statement whose guard fails (another
    writer got in between with a newer version) leaves the newer document: the point.

    `stored`: the documents are most likely stored already (the live sink rewriting
    conversations): try the guarded updates first, and only when not all of them applied
    look the versions up and insert the new ones (the updates are then repeated, and a
    repeat changes nothing). Saves the lookup's round trip on the common path."""
    if not docs:
        return 0
    updated = 0
    if stored:
        ops = [_guarded_update(doc_id, doc) for doc_id, doc in docs.items()]
        updated = (await bulk_write_chunked(collection, ops)).matched
        if updated == len(ops):
            return updated
    ids = list(docs)
    versions: dict[str, int] = {}
    for start in range(0, len(ids), ID_CHUNK):
        cursor = collection.find({"_id": {"$in": ids[start : start + ID_CHUNK]}}, {"version": 1})
        versions.update({str(d["_id"]): int(d.get("version", -1)) async for d in cursor})
    creates = [doc for doc_id, doc in docs.items() if doc_id not in versions]
    inserted = await _insert_missing(collection, creates)
    ops = [
        _guarded_update(doc_id, doc)
        for doc_id, doc in docs.items()
        if doc_id not in inserted and versions.get(doc_id, -1) < int(doc["version"])
    ]
    await bulk_write_chunked(collection, ops)
    # What the first updates wrote now has its own version stored: not in `ops` again.
    return updated + len(inserted) + len(ops)


async def write_projections(
    db: AsyncDatabase[Document],
    conversations: Mapping[str, Document],
    unread: Mapping[str, UnreadUpdate],
    *,
    stored: bool = False,
) -> int:
    """Write conversation documents and unread documents, each guarded by its version so
    that an older state (a stale worker, a redelivery) never overwrites a newer one.
    Returns the documents written (with `stored`, those whose guard let them in)."""
    # One after the other: both collections live in one database, whose writers FerretDB's
    # SQLite backend lets in one at a time (a blocked one sleeps before it retries).
    written = await _write_versioned(db[CONVERSATIONS], conversations, stored=stored)
    unread_docs = {user_id: u.document() for user_id, u in unread.items()}
    return written + await _write_versioned(db[UNREAD], unread_docs, stored=stored)


@dataclass(slots=True)
class Projections:
    """The store documents a batch changed, for the projection sink: conversation documents
    by id, unread updates by user id. Newer ones fold over older ones."""

    conversations: dict[str, Document] = field(default_factory=dict)
    unread: dict[str, UnreadUpdate] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.conversations) + len(self.unread)

    def ids(self) -> Iterator[str]:
        """The documents' ids (conversation ids, then user ids)."""
        yield from self.conversations
        yield from self.unread

    def split(self, known: Container[str]) -> tuple[Projections, Projections]:
        """(the documents whose id is in `known`, the others)."""
        out, rest = Projections(), Projections()
        for conv_id, doc in self.conversations.items():
            (out if conv_id in known else rest).conversations[conv_id] = doc
        for user_id, update in self.unread.items():
            (out if user_id in known else rest).unread[user_id] = update
        return out, rest

    def take(self, size: int) -> Projections:
        """Remove and return at most `size` documents (conversations first)."""
        out = Projections()
        for conv_id in list(islice(self.conversations, size)):
            out.conversations[conv_id] = self.conversations.pop(conv_id)
        for user_id in list(islice(self.unread, size - len(out.conversations))):
            out.unread[user_id] = self.unread.pop(user_id)
        return out

    def refresh(self, later: Projections) -> None:
        """Take over the documents of `later` that are also here (removed from `later`):
        a write about to start writes the newest state it knows, once, not an older one
        that the next write must overwrite."""
        for conv_id in self.conversations.keys() & later.conversations.keys():
            doc = later.conversations.pop(conv_id)
            if int(doc["version"]) >= int(self.conversations[conv_id]["version"]):
                self.conversations[conv_id] = doc
        for user_id in self.unread.keys() & later.unread.keys():
            update = later.unread.pop(user_id)
            if update.version >= self.unread[user_id].version:
                self.unread[user_id] = update

    def merge(self, newer: Projections) -> None:
        """Fold the documents of a later batch in."""
        for conv_id, doc in newer.conversations.items():
            old = self.conversations.get(conv_id)
            if old is None or int(doc["version"]) >= int(old["version"]):
                self.conversations[conv_id] = doc
        for user_id, update in newer.unread.items():
            old_update = self.unread.get(user_id)
            if old_update is None or update.version >= old_update.version:
                self.unread[user_id] = update
