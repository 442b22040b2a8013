"""Attachment metadata as it travels on messages, commands and outbound records (never the
bytes: those are in the blob store, served by `GET /api/attachments/{id}`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import HubModel

AttachmentKind = Literal["image", "audio", "video", "document", "sticker", "voice"]
AttachmentStatus = Literal["pending", "ready", "failed"]
FailedReason = Literal["too_large", "not_found", "forbidden", "unsupported", "timeout"]
# A reply carries at most this many attachments (a user-controlled list, so bounded).
MAX_ATTACHMENTS = 10


class Attachment(HubModel):
    """One attachment of a message: `{"id", "kind", "mimeType", "size", "name", "width",
    "height", "durationMs", "status", "reason"}` on the wire."""

    id: str = Field(min_length=1, max_length=64)
    kind: AttachmentKind
    mime_type: str = Field(max_length=255)
    size: int = Field(ge=0)
    name: str | None = Field(default=None, max_length=255)
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    duration_ms: int | None = Field(default=None, ge=0)
    status: AttachmentStatus = "pending"
    reason: FailedReason | None = None


class OutboundAttachment(Attachment):
    """An uploaded attachment a reply carries: what the connectors need to send it (the
    blob's hash to read the bytes), resolved and checked by the gateway when the user
    replies."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def public(self) -> Attachment:
        """The message's view of it (no hash)."""
        return Attachment.model_validate(self.model_dump(exclude={"sha256"}))
