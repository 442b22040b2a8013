"""Telegram Bot API: Update objects, from the webhook or from getUpdates.

An edit (`edited_message`, `edited_channel_post`) carries the original's `message_id`, so it
gets the original's hub id: it is not a second message. It yields the record (for an
original the hub never saw; downstream keeps the first version it stored) and an `edit`
command with the new text at `edit_date`, which updates the stored message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.errors import BadPayload
from connectors.platforms import media
from connectors.platforms.base import Ignored, Normalized, WebhookOutcome, edited, raw_message
from connectors.platforms.fields import (
    JsonObject,
    identifier,
    json_object,
    obj,
    optional_string,
    unix_time,
)
from connectors.signatures import check_secret_token
from hubcore.accounts import Account

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")
# Messages without text or caption still reach the inbox: files as attachments with no
# text (connectors/platforms/media.py), the others as a placeholder naming the kind.
MEDIA_KINDS = (
    "photo",
    "video",
    "animation",
    "document",
    "audio",
    "voice",
    "video_note",
    "sticker",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
)


def verify(account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """The secret token given to setWebhook comes back verbatim in a header."""
    check_secret_token(
        str(account.credentials["webhookSecret"]), headers.get(SECRET_HEADER.lower()), SECRET_HEADER
    )


def parse(account: Account, body: bytes, received_at: datetime) -> WebhookOutcome:
    """One Update per webhook request."""
    return WebhookOutcome.of(normalize_update(account, json_object(body), received_at))


def normalize_update(account: Account, update: Any, received_at: datetime) -> list[Normalized]:
    """The record of one Update (and its edit command), `Ignored` for other updates."""
    if not isinstance(update, dict):
        raise BadPayload("update is not a JSON object")
    update_id = update.get("update_id")
    if isinstance(update_id, bool) or not isinstance(update_id, int):
        raise BadPayload("update_id is missing or not an integer")
    kind = next((k for k in MESSAGE_KINDS if k in update), None)
    if kind is None:
        return [Ignored("not_a_message")]
    message = obj(update, kind, kind)
    chat = obj(message, "chat", f"{kind}.chat")
    chat_id = identifier(chat, "id", f"{kind}.chat.id")
    msg_id = identifier(message, "message_id", f"{kind}.message_id")
    sent_at = unix_time(message.get("date"), f"{kind}.date")
    attachments = media.telegram(account, message)
    text = _text(message, bool(attachments))
    if text is None:
        return [Ignored("service_message")]
    record = raw_message(
        account,
        chat=chat_id,
        message=msg_id,
        sender=_sender(message, chat, kind),
        text=text,
        sent_at=sent_at,
        received_at=received_at,
        raw=update,
        title=optional_string(chat, "title") or _full_name(chat),
        attachments=attachments,
    )
    if not kind.startswith("edited_"):
        return [record]
    at = unix_time(message.get("edit_date", message.get("date")), f"{kind}.edit_date")
    return [record, edited(account, chat=chat_id, message=msg_id, text=text, at=at)]


def _text(message: JsonObject, has_attachments: bool) -> str | None:
    for key in ("text", "caption"):
        value = message.get(key)
        if isinstance(value, str):
            return value
    if has_attachments:  # the attachment is the message: no placeholder text
        return ""
    kind = next((k for k in MEDIA_KINDS if k in message), None)
    return f"[{kind.replace('_', ' ')}]" if kind else None


def _sender(message: JsonObject, chat: JsonObject, kind: str) -> tuple[str, str | None]:
    user = message.get("from")
    if isinstance(user, dict):
        return identifier(user, "id", f"{kind}.from.id"), _full_name(user)
    # Channel posts and anonymous admins speak as a chat.
    speaker = message.get("sender_chat")
    source = speaker if isinstance(speaker, dict) else chat
    return identifier(source, "id", f"{kind}.sender_chat.id"), optional_string(
        source, "title"
    ) or _full_name(source)


def _full_name(entity: JsonObject) -> str | None:
    parts = [optional_string(entity, "first_name"), optional_string(entity, "last_name")]
    name = " ".join(p for p in parts if p)
    return name or optional_string(entity, "username")
