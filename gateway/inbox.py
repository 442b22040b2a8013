"""Reads of the derived Mongo documents for REST, always filtered by the caller's user id."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from gateway.errors import BadRequest
from gateway.fresh import FreshViews
from hubcore.mongo import CONVERSATIONS, MESSAGES, UNREAD, Document
from hubcore.store import conversation_from_doc, message_from_doc, unread_from_doc
from schemas import Conversation, Message, UnreadCounts

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_page_cursor(at: datetime, doc_id: str) -> str:
    """Opaque keyset cursor: the sort time (ms) and _id of the last item of a page."""
    raw = orjson.dumps([(at - _EPOCH) // timedelta(milliseconds=1), doc_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_cursor(text: str) -> tuple[datetime, str]:
    """The (time, _id) in a cursor from `encode_page_cursor`; `BadRequest` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        millis, doc_id = orjson.loads(raw)
        if not isinstance(millis, int) or not isinstance(doc_id, str):
            raise ValueError
        return datetime.fromtimestamp(millis / 1000, UTC), doc_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest(
            "malformed cursor: pass back the nextCursor of the previous page"
        ) from None


async def _page(
    collection: AsyncCollection[Document],
    query: dict[str, Any],
    field: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[Document], str | None]:
    """One newest-first page by (`field`, _id), and the cursor of the next (None at the end).

    Keyset pagination: a page is what sorts strictly after the cursor's item, so inserts
    between requests neither repeat nor skip items.
    """
    if cursor is not None:
        at, doc_id = decode_page_cursor(cursor)
        query = {**query, "$or": [{field: {"$lt": at}}, {field: at, "_id": {"$lt": doc_id}}]}
    docs = await (
        collection.find(query)
        .sort([(field, DESCENDING), ("_id", DESCENDING)])
        .limit(limit + 1)
        .to_list()
    )
    page = docs[:limit]
    if len(docs) <= limit:
        return page, None
    return page, encode_page_cursor(page[-1][field], page[-1]["_id"])


class Inbox:
    """The caller's conversations, messages and unread counts: the projections, or what
    this process pushed where that is newer (read-your-writes, `gateway/fresh.py`)."""

    def __init__(self, db: AsyncDatabase[Document], fresh: FreshViews | None = None) -> None:
        self.conversations = db[CONVERSATIONS]
        self.messages = db[MESSAGES]
        self.unread_counts = db[UNREAD]
        self.fresh = fresh

    async def _fresher(
        self, user_id: str, platform: str | None, projected: dict[str, int]
    ) -> dict[str, Conversation]:
        """The conversations to answer instead of (or besides) the projected ones read
        (`projected`: id -> version): those pushed to `user_id` in a newer version, and
        those pushed whose projection was written only after the caller's read."""
        if self.fresh is None:
            return {}
        pushed = self.fresh.conversations(user_id)
        if platform is not None:
            pushed = {k: v for k, v in pushed.items() if v[1].platform == platform}
        out = {cid: conv for cid, (v, conv) in pushed.items() if v > projected.get(cid, -1)}
        if missing := [cid for cid in pushed if cid not in projected]:
            cursor = self.conversations.find({"_id": {"$in": missing}, "userId": user_id})
            async for doc in cursor:
                cid, version = str(doc["_id"]), int(doc.get("version", 0))
                projected[cid] = version
                if version >= pushed[cid][0]:
                    out[cid] = conversation_from_doc(doc)  # the newer of the two
        self.fresh.settled(user_id, projected)
        return out

    async def list_conversations(
        self, user_id: str, *, platform: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Conversation], str | None]:
        """Newest first by updatedAt; the second value is the next page's cursor."""
        query: dict[str, Any] = {"userId": user_id}
        if platform is not None:
            query["platform"] = platform
        page, next_cursor = await _page(self.conversations, query, "updatedAt", limit, cursor)
        projected = {str(d["_id"]): int(d.get("version", 0)) for d in page}
        newer = await self._fresher(user_id, platform, projected)
        items = [conversation_from_doc(d) for d in page if d["_id"] not in newer]
        if not newer:
            return items, next_cursor
        # A pushed conversation goes where its new time sorts: on this page if it falls
        # between the previous page's last item and this page's last (when more follow).
        upper = decode_page_cursor(cursor) if cursor is not None else None
        lower = (page[-1]["updatedAt"], page[-1]["_id"]) if next_cursor is not None else None
        for conv in newer.values():
            at = (conv.updated_at, conv.id)
            if (upper is None or at < upper) and (lower is None or at >= lower):
                items.append(conv)
        items.sort(key=lambda c: (c.updated_at, c.id), reverse=True)
        if len(items) > limit:
            items = items[:limit]
            next_cursor = encode_page_cursor(items[-1].updated_at, items[-1].id)
        return items, next_cursor

    async def owns_conversation(self, user_id: str, conversation_id: str) -> bool:
        """True when the conversation exists and is the caller's.

        Its projection may trail the events (streams write messages first, projections
        beside): a conversation whose first message a client was just told of has its
        messages stored already, so those answer until the projection is there.
        """
        doc = await self.conversations.find_one(
            {"_id": conversation_id, "userId": user_id}, projection={"_id": 1}
        )
        if doc is not None:
            return True
        message = await self.messages.find_one(
            {"userId": user_id, "conversationId": conversation_id}, projection={"_id": 1}
        )
        return message is not None

    async def list_messages(
        self, user_id: str, conversation_id: str, *, limit: int, before: str | None
    ) -> tuple[list[Message], str | None]:
        """A conversation's messages, newest first by sentAt; then the next page's cursor."""
        query = {"userId": user_id, "conversationId": conversation_id}
        page, next_cursor = await _page(self.messages, query, "sentAt", limit, before)
        return [message_from_doc(d) for d in page], next_cursor

    async def unread(self, user_id: str) -> UnreadCounts:
        """The caller's unread counts (zero when nothing was ever counted)."""
        doc = await self.unread_counts.find_one({"_id": user_id})
        cursor = self.conversations.find(
            {"userId": user_id, "unreadCount": {"$gt": 0}},
            projection={"unreadCount": 1, "version": 1},
        )
        found = [d async for d in cursor]
        counts = {str(d["_id"]): int(d["unreadCount"]) for d in found}
        projected = {str(d["_id"]): int(d.get("version", 0)) for d in found}
        for conv_id, conv in (await self._fresher(user_id, None, projected)).items():
            counts[conv_id] = conv.unread_count
        pushed = self.fresh.unread(user_id) if self.fresh is not None else None
        if pushed is not None and pushed[0] > int((doc or {}).get("version", -1)):
            doc = {
                "total": pushed[1].get("total", 0),
                "byPlatform": pushed[1].get("byPlatform", {}),
            }
        return unread_from_doc(doc, counts)

    async def unread_in_conversation(self, user_id: str, conversation_id: str) -> list[str]:
        """Ids of the caller's unread messages in one conversation, oldest first."""
        cursor = self.messages.find(
            {"userId": user_id, "conversationId": conversation_id, "status": "unread"},
            projection={"_id": 1},
        ).sort([("sentAt", 1), ("_id", 1)])
        return [doc["_id"] async for doc in cursor]

    async def owned_messages(self, user_id: str, message_ids: list[str]) -> list[Document]:
        """The caller's messages among `message_ids` (another user's are simply absent)."""
        cursor = self.messages.find(
            {"_id": {"$in": message_ids}, "userId": user_id},
            projection={"_id": 1, "conversationId": 1, "status": 1},
        )
        return [doc async for doc in cursor]
