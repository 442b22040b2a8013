"""The `attachments` collection: one document per attachment, inbound or uploaded.

The agreed shape (docs/media.md): `{_id: "att_…", userId, conversationId, messageId, kind,
mimeType, size, name, width, height, durationMs, status, reason, sha256, thumbnailSha256,
createdAt}`. Inbound attachments are written by the connectors' media fetcher, uploaded
ones by the gateway; the bytes live in the blob store (hubcore/blobs.py) under `sha256`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pymongo import ASCENDING

from hubcore.mongo import Document
from schemas.attachments import AttachmentKind

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from hubcore.blobs import StoredBlob

ATTACHMENTS = "attachments"


def new_attachment_id() -> str:
    """A fresh, unguessable attachment id (ids are never derived from content: two users
    with the same file have two attachments over one blob)."""
    return "att_" + secrets.token_hex(12)


def kind_of(mime_type: str) -> AttachmentKind:
    """The kind an uploaded file is shown as, from its sniffed type."""
    major = mime_type.partition("/")[0]
    if major == "image" and mime_type != "image/svg+xml":
        return "image"
    if major == "audio":
        return "audio"
    if major == "video":
        return "video"
    return "document"


def ready_doc(
    *,
    user_id: str,
    conversation_id: str,
    blob: StoredBlob,
    kind: AttachmentKind,
    name: str | None,
    message_id: str | None = None,
    thumbnail_sha256: str | None = None,
    duration_ms: int | None = None,
) -> Document:
    """A new `attachments` document whose bytes are stored (status `ready`)."""
    return {
        "_id": new_attachment_id(),
        "userId": user_id,
        "conversationId": conversation_id,
        "messageId": message_id,
        "kind": kind,
        "mimeType": blob.mime_type,
        "size": blob.size,
        "name": name,
        "width": blob.width,
        "height": blob.height,
        "durationMs": duration_ms,
        "status": "ready",
        "reason": None,
        "sha256": blob.sha256,
        "thumbnailSha256": thumbnail_sha256,
        "createdAt": datetime.now(UTC),
    }


async def ensure_attachment_indexes(db: AsyncDatabase[Document]) -> None:
    """The indexes of the owner's reads and the quota's sum (idempotent)."""
    await db[ATTACHMENTS].create_index([("userId", ASCENDING), ("status", ASCENDING)])
    await db[ATTACHMENTS].create_index([("messageId", ASCENDING)])


async def user_usage(db: AsyncDatabase[Document], user_id: str) -> int:
    """Bytes of the user's stored attachments, as counted against HUB_MEDIA_USER_QUOTA_BYTES
    (per attachment: the same file twice counts twice, though stored once)."""
    pipeline: list[Document] = [
        {"$match": {"userId": user_id, "status": "ready"}},
        {"$group": {"_id": None, "bytes": {"$sum": "$size"}}},
    ]
    async for row in await db[ATTACHMENTS].aggregate(pipeline):
        return int(row["bytes"])
    return 0
