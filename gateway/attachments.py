"""Uploaded attachments and the owner-only reads of any attachment: the gateway's side of
the `attachments` collection (docs/media.md)."""

from __future__ import annotations

import mimetypes
import unicodedata
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from pymongo.asynchronous.database import AsyncDatabase

from gateway.errors import NotFound
from hubcore.attachments import ATTACHMENTS, kind_of, ready_doc, user_usage
from hubcore.blobs import BlobRejected, BlobStore
from hubcore.errors import TooLarge, UnsupportedMedia
from hubcore.mongo import Document
from hubcore.settings import Settings
from hubcore.thumbnails import THUMBNAIL_TYPES, make_thumbnail
from schemas.attachments import Attachment, OutboundAttachment

MAX_NAME = 150


class PayloadTooLarge(TooLarge):
    """A file over the size cap, an image over the pixel cap, or past the user's quota."""


class Unsupported(UnsupportedMedia):
    """Bytes the hub does not store."""


def safe_name(name: str | None, mime_type: str) -> str:
    """A display and download name: no directories, no control or bidi-override characters,
    at most MAX_NAME characters; `attachment.<ext>` when nothing is left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    cleaned = cleaned.strip().lstrip(".")[:MAX_NAME]
    if cleaned:
        return cleaned
    return "attachment" + (mimetypes.guess_extension(mime_type, strict=False) or "")


def content_disposition(disposition: str, name: str) -> str:
    """RFC 6266: an ASCII `filename` for old clients and the exact `filename*` (RFC 8187)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%;' else "_" for c in name)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def is_inline_media(mime_type: str) -> bool:
    """Images (not SVG), audio and video: shown in place; everything else is a download
    under a sandbox CSP, so nothing served here ever runs script on the hub's origin."""
    major = mime_type.partition("/")[0]
    return (major == "image" and mime_type != "image/svg+xml") or major in ("audio", "video")


def public_view(doc: Document) -> Attachment:
    """The wire shape of an `attachments` document."""
    return Attachment(
        id=doc["_id"],
        kind=doc["kind"],
        mime_type=doc["mimeType"],
        size=doc.get("size") or 0,
        name=doc.get("name"),
        width=doc.get("width"),
        height=doc.get("height"),
        duration_ms=doc.get("durationMs"),
        status=doc["status"],
        reason=doc.get("reason"),
    )


class AttachmentService:
    """Stores uploads, finds the caller's attachments, resolves those a reply carries."""

    def __init__(self, db: AsyncDatabase[Document], blobs: BlobStore, settings: Settings) -> None:
        self._db = db
        self._docs = db[ATTACHMENTS]
        self.blobs = blobs
        self._settings = settings

    async def owned(self, user_id: str | None, attachment_id: str) -> Document | None:
        """The attachment when it is `user_id`'s (None: any user's, for a signed URL)."""
        query: dict[str, Any] = {"_id": attachment_id}
        if user_id is not None:
            query["userId"] = user_id
        return await self._docs.find_one(query)

    async def lazy_thumbnail(self, doc: Document) -> Document:
        """`doc` with the thumbnail of a received image made now, on its first request:
        the media fetcher leaves images the hub renders itself without one, so that no
        decoding and no second blob write stand beside the text path (docs/media.md). Made
        once: an image Pillow cannot read is marked (`thumbnailTried`) and answers 404."""
        sha = doc.get("sha256")
        if doc.get("status") != "ready" or doc.get("thumbnailSha256") or not sha:
            return doc
        if doc.get("thumbnailTried") or doc.get("mimeType") not in THUMBNAIL_TYPES:
            return doc
        blob = await self.blobs.stat(str(sha))
        if blob is None:
            return doc
        settings = self._settings
        thumbnail = await make_thumbnail(
            self.blobs,
            blob,
            longest=settings.media_thumbnail_px,
            max_pixels=settings.media_max_image_pixels,
        )
        made = thumbnail.sha256 if thumbnail is not None else None
        # Two first requests at once make the same JPEG (one blob); the first write stays.
        await self._docs.update_one(
            {"_id": doc["_id"], "thumbnailSha256": None},
            {"$set": {"thumbnailSha256": made, "thumbnailTried": True}},
        )
        return doc | {"thumbnailSha256": made, "thumbnailTried": True}

    async def upload(
        self,
        user_id: str,
        conversation_id: str,
        name: str | None,
        chunks: AsyncIterator[bytes],
        *,
        voice: bool = False,
    ) -> Attachment:
        """Store an upload to the caller's conversation (ownership checked by the caller)."""
        settings = self._settings
        quota = settings.media_user_quota_bytes
        used = await user_usage(self._db, user_id)
        if used >= quota:
            raise PayloadTooLarge(f"attachment quota of {quota} bytes used")
        try:
            blob = await self.blobs.put_stream(chunks, max_bytes=settings.media_max_bytes)
        except BlobRejected as exc:
            error = PayloadTooLarge if exc.reason == "too_large" else Unsupported
            raise error(f"{exc.reason}: {exc}") from None
        if used + blob.size > quota:
            raise PayloadTooLarge(f"attachment quota of {quota} bytes used")
        thumbnail = await make_thumbnail(
            self.blobs,
            blob,
            longest=settings.media_thumbnail_px,
            max_pixels=settings.media_max_image_pixels,
        )
        kind = kind_of(blob.mime_type)
        doc = ready_doc(
            user_id=user_id,
            conversation_id=conversation_id,
            blob=blob,
            kind="voice" if voice and kind == "audio" else kind,
            name=safe_name(name, blob.mime_type),
            thumbnail_sha256=thumbnail.sha256 if thumbnail else None,
        )
        await self._docs.insert_one(doc)
        return public_view(doc)

    async def for_reply(
        self, user_id: str, conversation_id: str, attachment_ids: list[str]
    ) -> list[OutboundAttachment]:
        """The ready uploads a reply carries, in the order given; 404 naming the first id
        that is not a ready attachment of the caller in this conversation."""
        wanted = list(dict.fromkeys(attachment_ids))
        if not wanted:
            return []
        found = {
            doc["_id"]: doc
            async for doc in self._docs.find(
                {
                    "_id": {"$in": wanted},
                    "userId": user_id,
                    "conversationId": conversation_id,
                    "status": "ready",
                }
            )
        }
        for attachment_id in wanted:
            if attachment_id not in found or not found[attachment_id].get("sha256"):
                raise NotFound(f"no attachment {attachment_id!r} ready in this conversation")
        return [
            OutboundAttachment(**public_view(found[i]).model_dump(), sha256=found[i]["sha256"])
            for i in wanted
        ]

    async def attach(self, attachment_ids: list[str], message_id: str) -> None:
        """Record the message that carries these uploads (first one wins: a retried reply
        is the same message)."""
        if attachment_ids:
            await self._docs.update_many(
                {"_id": {"$in": attachment_ids}, "messageId": None},
                {"$set": {"messageId": message_id}},
            )
