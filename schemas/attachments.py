"""Attachments: what a message carries besides its text (metadata only, never the bytes:
those are in the blob store, served by `GET /api/attachments/{id}`).

Inbound, a message goes out at once with its attachments `pending`; the connectors' media
fetcher then stores the bytes and reports each one `ready` or `failed` with a command
(`AttachmentResult`, `hub.commands`), which streams applies to the stored message and
announces as `message_updated`. Fetching is asked for on `hub.media-fetch` (`MediaFetch`,
keyed by the hub user id), which only the connectors write: a replay of the history
topics fetches nothing. Outbound, a reply carries uploaded attachments
(`OutboundAttachment`) the connectors send in each platform's way (docs/media.md).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field

from schemas.base import HubModel, Record, UtcDatetime

AttachmentKind = Literal["image", "audio", "video", "document", "sticker", "voice"]
AttachmentStatus = Literal["pending", "ready", "failed"]
FailedReason = Literal["too_large", "not_found", "forbidden", "unsupported", "timeout"]
# A reply carries at most this many attachments (a user-controlled list, so bounded).
MAX_ATTACHMENTS = 10
# A platform message keeps at most this many (Slack sends up to 10 files; a mail more).
MAX_INBOUND_ATTACHMENTS = 20


def attachment_id(platform: str, account_id: str, file_ref: str) -> str:
    """The hub id of one received platform file: the same file seen again (a retry, a
    replay, a restart, another message forwarding it) keeps its id."""
    joined = "\x1f".join(("attachment", platform, account_id, file_ref)).encode()
    return "att_" + hashlib.sha256(joined).hexdigest()[:32]


class Attachment(HubModel):
    """One attachment of a message: `{"id", "kind", "mimeType", "size", "name", "width",
    "height", "durationMs", "status", "reason"}` on the wire. A received file's `mimeType`
    and `size` are the platform's word (possibly unknown) until it is `ready`: then they
    are the stored bytes' (the type sniffed)."""

    id: str = Field(min_length=1, max_length=64)
    kind: AttachmentKind
    mime_type: str | None = Field(default=None, max_length=255)
    size: int | None = Field(default=None, ge=0)
    name: str | None = Field(default=None, max_length=255)
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    duration_ms: int | None = Field(default=None, ge=0)
    status: AttachmentStatus = "pending"
    reason: FailedReason | None = Field(default=None, description="Why it is `failed`.")


class OutboundAttachment(Attachment):
    """An uploaded attachment a reply carries: what the connectors need to send it (the
    blob's hash to read the bytes), resolved and checked by the gateway when the user
    replies."""

    mime_type: str = Field(max_length=255)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def public(self) -> Attachment:
        """The message's view of it (no hash)."""
        return Attachment.model_validate(self.model_dump(exclude={"sha256"}))


class InboundAttachment(Attachment):
    """An attachment of a raw message: the client view plus where the platform keeps it.

    `source`: the platform's reference for fetching (Telegram `file_id`, WhatsApp media id,
    Slack `url_private`, a generic URL, an email part's IMAP place
    `imap:<uidvalidity>:<uid>:<section>:<encoding>`); `thumbnail_source` the
    same for a smaller rendition the platform offers.
    """

    source: str = Field(min_length=1, max_length=4096)
    thumbnail_source: str | None = Field(default=None, max_length=4096)

    def public(self) -> Attachment:
        """The client-facing view (no platform references)."""
        return Attachment.model_validate(self.model_dump(exclude={"source", "thumbnail_source"}))


class MediaFetch(Record):
    """`hub.media-fetch`: fetch one received attachment's bytes (keyed by the hub user id).

    `data` (base64) carries bytes already in hand (an email part), bounded by
    `HUB_MEDIA_INLINE_MAX_BYTES`; `index` is the attachment's position in its message.
    """

    SCHEMA = "hub.media-fetch/1"
    schema_: Literal["hub.media-fetch/1"] = Field(default="hub.media-fetch/1", alias="schema")
    user_id: str = Field(min_length=1, max_length=256)
    platform: str = Field(min_length=1, max_length=32)
    account_id: str = Field(min_length=1, max_length=128)
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128)
    index: int = Field(ge=0, lt=MAX_INBOUND_ATTACHMENTS)
    attachment: InboundAttachment
    data: str | None = Field(default=None, description="base64 of bytes already in hand.")
    too_large: bool = Field(default=False, description="The part was over the inline bound.")
    requested_at: UtcDatetime
