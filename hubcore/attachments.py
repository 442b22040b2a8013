"""The `attachments` collection: one document per attachment, inbound or uploaded.

The agreed shape (docs/media.md): `{_id: "att_…", userId, conversationId, messageId, kind,
mimeType, size, name, width, height, durationMs, status, reason, sha256, thumbnailSha256,
createdAt}`. Inbound attachments are written by the connectors' media fetcher, uploaded
ones by the gateway; the bytes live in the blob store (hubcore/blobs.py) under `sha256`.
"""

from __future__ import annotations

import secrets
from typing import Literal

ATTACHMENTS = "attachments"

AttachmentKind = Literal["image", "audio", "video", "document", "sticker", "voice"]
AttachmentStatus = Literal["pending", "ready", "failed"]
FailedReason = Literal["too_large", "not_found", "forbidden", "unsupported", "timeout"]


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
