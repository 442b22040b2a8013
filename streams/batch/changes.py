"""Edits and deletes from the platforms: a stored message's text changes, or it becomes a
tombstone (`deleted`, no text) that no longer counts as unread.

Each write remembers its cause in `changedBy`, so a redo of the same record finds what it
changed (and emits it again); an older edit than the stored one, or a change to a deleted
message, changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import BULK_CHUNK, MESSAGES, Document
from hubcore.store import message_from_doc
from schemas import (
    AttachmentResult,
    DeleteMessage,
    MessageDeleted,
    MessageDeletedData,
    MessageUpdated,
    MessageUpdatedData,
    event_id,
)
from streams.batch.records import ChangeInput, Decoded, SourceRecord


# Mongo filters and writes: only the server can tell a wrong one, so mutation testing
# skips them (docs/development.md, "Mutation testing"); tests/integration runs them.
# pragma: no mutate start
def _updates(item: ChangeInput) -> list[UpdateOne]:
    cmd, origin = item.command, item.record.origin
    where: Document = {
        "_id": cmd.message_id,
        "userId": cmd.user_id,
        "conversationId": cmd.conversation_id,
        "deleted": {"$ne": True},
    }
    if isinstance(cmd, DeleteMessage):
        tombstone: Document = {"deleted": True, "text": "", "changedBy": origin}
        return [
            # An unread message leaves the counts: `wasUnread` tells the batch to count it.
            UpdateOne(
                {**where, "status": "unread"},
                {"$set": {**tombstone, "status": "read", "wasUnread": True}},
            ),
            UpdateOne(where, {"$set": tombstone}),
        ]
    if isinstance(cmd, AttachmentResult):
        return [_attachment_update(where, cmd, origin)]
    newer = {"$or": [{"editedAt": None}, {"editedAt": {"$lt": cmd.edited_at}}]}
    change = {"text": cmd.text, "editedAt": cmd.edited_at, "changedBy": origin}
    return [UpdateOne({**where, **newer}, {"$set": change})]


def _attachment_update(where: Document, cmd: AttachmentResult, origin: str) -> UpdateOne:
    # By position, checked by id: FerretDB has no array filters. A result repeated (a
    # refetch, a redo) sets the same values again.
    at = f"attachments.{cmd.index}"
    fields: dict[str, object] = {"status": cmd.status, "reason": cmd.reason}
    fields.update(
        {k: v for k, v in (("mimeType", cmd.mime_type), ("size", cmd.size)) if v is not None}
    )
    fields.update({k: v for k, v in (("width", cmd.width), ("height", cmd.height)) if v})
    change: Document = {f"{at}.{k}": v for k, v in fields.items()}
    return UpdateOne(
        {**where, f"{at}.id": cmd.attachment_id}, {"$set": {**change, "changedBy": origin}}
    )


async def apply_changes(
    db: AsyncDatabase[Document], items: Sequence[ChangeInput]
) -> dict[str, Document]:
    """Apply edits, deletes and attachment results in order; return command origin -> the
    message it changed."""
    if not items:
        return {}
    ops = [op for item in items for op in _updates(item)]
    for start in range(0, len(ops), BULK_CHUNK):
        # Ordered: an edit and a delete of one message in a batch apply in their order.
        await db[MESSAGES].bulk_write(ops[start : start + BULK_CHUNK], ordered=True)
    origins = {item.record.origin for item in items}
    # By `_id`: FerretDB reads every message for a filter on other fields (with files in
    # the mix, one attachment result a batch made the store phase take seconds, P3m).
    ids = sorted({item.command.message_id for item in items})
    cursor = db[MESSAGES].find({"_id": {"$in": ids}})
    return {str(doc["changedBy"]): doc async for doc in cursor if doc.get("changedBy") in origins}


# pragma: no mutate end


def read_change_cut(records: Sequence[SourceRecord], decoded: Decoded) -> int:
    """Where the batch must be cut (0: nowhere): before an edit or delete of a message that
    an earlier mark-read of the batch names. Changes apply before mark-reads, so in one batch
    a delete would find the message still unread (`wasUnread`, no `readBy`) and an edit's
    document the status from before the read: what live processing, seeing the read first,
    never stores. Replay reads large batches and must store the same."""
    if not decoded.changes or not decoded.commands:
        return 0
    index = {record.origin: i for i, record in enumerate(records)}
    read: dict[str, int] = {}
    for command in decoded.commands:
        at = index[command.record.origin]
        for message_id in command.command.message_ids:
            read.setdefault(message_id, at)
    cuts = [
        at
        for change in decoded.changes
        if (at := index[change.record.origin]) > read.get(change.command.message_id, at)
    ]
    return min(cuts, default=0)


def change_event(item: ChangeInput, doc: Document) -> MessageUpdated | MessageDeleted:
    """`message_updated` with the message as stored now, or `message_deleted`."""
    cmd = item.command
    if isinstance(cmd, DeleteMessage):
        return MessageDeleted(
            id=event_id("message_deleted", cmd.id),
            user_id=cmd.user_id,
            occurred_at=cmd.deleted_at,
            data=MessageDeletedData(conversation_id=cmd.conversation_id, message_id=cmd.message_id),
        )
    return MessageUpdated(
        id=event_id("message_updated", cmd.id),
        user_id=cmd.user_id,
        occurred_at=cmd.occurred_at if isinstance(cmd, AttachmentResult) else cmd.edited_at,
        data=MessageUpdatedData(message=message_from_doc(doc)),
    )
