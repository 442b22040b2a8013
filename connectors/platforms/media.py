"""Attachments as each platform describes them, normalized into `InboundAttachment`s.

Only metadata is read here (the webhook's path); the bytes are fetched beside it by the
media fetcher (connectors/media). Every platform value is optional and checked: a wrong
type counts as absent, and an attachment without a usable file reference is left out
rather than costing the message.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from hubcore.accounts import Account
from schemas.attachments import (
    MAX_INBOUND_ATTACHMENTS,
    AttachmentKind,
    InboundAttachment,
    attachment_id,
)

# Telegram's Bot API serves bots files up to 20 MB (getFile): a larger photo size could
# never be fetched, so the largest one within it is taken.
TELEGRAM_MAX_FILE_BYTES = 20 * 1024 * 1024
_MAX_NAME = 255


def _int(value: Any) -> int | None:
    """A non-negative count the platform may send as a number or its string form."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _str(value: Any, limit: int = 4096) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def attachment(
    account: Account,
    kind: AttachmentKind,
    source: Any,
    *,
    ref: Any = None,
    mime_type: Any = None,
    size: Any = None,
    name: Any = None,
    width: Any = None,
    height: Any = None,
    duration_ms: int | None = None,
    thumbnail_source: Any = None,
) -> InboundAttachment | None:
    """One attachment; its id comes from (platform, account, `ref` or `source`), so the
    same platform file always has the same id. None when `source` is unusable."""
    source = _str(source)
    if source is None:
        return None
    try:
        return InboundAttachment(
            id=attachment_id(account.platform, account.id, _str(ref) or source),
            kind=kind,
            mime_type=_str(mime_type, 255),
            size=_int(size),
            name=_str(name, _MAX_NAME),
            width=_int(width),
            height=_int(height),
            duration_ms=duration_ms,
            source=source,
            thumbnail_source=_str(thumbnail_source),
        )
    except ValidationError:
        return None


def _seconds_ms(value: Any) -> int | None:
    seconds = _int(value)
    return None if seconds is None else seconds * 1000


def _kept(items: list[InboundAttachment | None]) -> list[InboundAttachment]:
    return [a for a in items if a is not None][:MAX_INBOUND_ATTACHMENTS]


# --- Telegram (Bot API Message) ---------------------------------------------------------

_TELEGRAM_KINDS: dict[str, AttachmentKind] = {
    "document": "document",
    "audio": "audio",
    "voice": "voice",
    "video": "video",
    "animation": "video",
    "video_note": "video",
    "sticker": "sticker",
}


def _thumb_id(obj: dict[str, Any]) -> Any:
    thumb = obj.get("thumbnail", obj.get("thumb"))  # `thumb` before Bot API 6.6
    return thumb.get("file_id") if isinstance(thumb, dict) else None


def telegram(account: Account, message: dict[str, Any]) -> list[InboundAttachment]:
    """`photo` (PhotoSize[]: the largest Telegram serves, the smallest as thumbnail),
    `document`, `audio`, `voice`, `video`, `animation`, `video_note`, `sticker`."""
    found: list[InboundAttachment | None] = []
    photo = message.get("photo")
    if isinstance(photo, list):
        sizes = [p for p in photo if isinstance(p, dict) and _str(p.get("file_id"))]
        within = [p for p in sizes if (_int(p.get("file_size")) or 0) <= TELEGRAM_MAX_FILE_BYTES]
        if within:
            area = lambda p: (_int(p.get("width")) or 0) * (_int(p.get("height")) or 0)  # noqa: E731
            best, smallest = max(within, key=area), min(sizes, key=area)
            found.append(
                attachment(
                    account,
                    "image",
                    best["file_id"],
                    ref=best.get("file_unique_id"),
                    mime_type="image/jpeg",  # Telegram re-encodes photos as JPEG
                    size=best.get("file_size"),
                    width=best.get("width"),
                    height=best.get("height"),
                    thumbnail_source=smallest["file_id"] if smallest is not best else None,
                )
            )
    for key, kind in _TELEGRAM_KINDS.items():
        obj = message.get(key)
        if not isinstance(obj, dict):
            continue
        found.append(
            attachment(
                account,
                kind,
                obj.get("file_id"),
                ref=obj.get("file_unique_id"),
                mime_type=obj.get("mime_type"),
                size=obj.get("file_size"),
                name=obj.get("file_name"),
                width=obj.get("width", obj.get("length")),
                height=obj.get("height", obj.get("length")),
                duration_ms=_seconds_ms(obj.get("duration")),
                thumbnail_source=_thumb_id(obj),
            )
        )
    return _kept(found)


# --- WhatsApp Cloud API -----------------------------------------------------------------

_WHATSAPP_KINDS: dict[str, AttachmentKind] = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "document": "document",
    "sticker": "sticker",
}


def whatsapp(account: Account, message: dict[str, Any], kind: str) -> list[InboundAttachment]:
    """`image`/`audio`/`video`/`document`/`sticker`: a media `id` for the media URL
    endpoint, `mime_type`, `filename` (documents); `audio.voice` marks a voice note."""
    content = message.get(kind)
    if kind not in _WHATSAPP_KINDS or not isinstance(content, dict):
        return []
    ours: AttachmentKind = _WHATSAPP_KINDS[kind]
    if kind == "audio" and content.get("voice") is True:
        ours = "voice"
    return _kept(
        [
            attachment(
                account,
                ours,
                content.get("id"),
                mime_type=content.get("mime_type"),
                name=content.get("filename"),
            )
        ]
    )


# --- Slack (Events API message `files[]`) -----------------------------------------------


def kind_of(mime_type: str | None) -> AttachmentKind:
    """The kind a MIME type suggests (anything else is a document)."""
    top = (mime_type or "").partition("/")[0]
    kinds: dict[str, AttachmentKind] = {"image": "image", "audio": "audio", "video": "video"}
    return kinds.get(top, "document")


def slack(account: Account, event: dict[str, Any]) -> list[InboundAttachment]:
    """`files[]`: `url_private` (fetched with the bot token), `mimetype`, `size`, `name`,
    `original_w`/`original_h`, a `thumb_360` for images."""
    files = event.get("files")
    if not isinstance(files, list):
        return []
    found: list[InboundAttachment | None] = []
    for file in files[:MAX_INBOUND_ATTACHMENTS]:
        if not isinstance(file, dict):
            continue
        mimetype = _str(file.get("mimetype"), 255)
        kind = kind_of(mimetype)
        if file.get("subtype") == "slack_audio":
            kind = "voice"  # a clip recorded in Slack
        found.append(
            attachment(
                account,
                kind,
                file.get("url_private_download") or file.get("url_private"),
                ref=file.get("id"),
                mime_type=mimetype,
                size=file.get("size"),
                name=file.get("name"),
                width=file.get("original_w"),
                height=file.get("original_h"),
                thumbnail_source=file.get("thumb_360"),
            )
        )
    return _kept(found)
