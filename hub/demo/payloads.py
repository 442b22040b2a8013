"""Correctly signed webhook requests in each platform's own format, for `hub simulate`."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.demo import media_files


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP POST to the connectors: path under the base URL, headers and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class FakeMessage:
    """What the simulator wants delivered, independent of the platform's format."""

    chat_id: str
    chat_title: str
    sender_id: str
    sender_name: str
    message_id: str
    text: str
    sent_at: datetime
    # A file the message carries (`photo`, `voice`, `pdf`), served by the stand-ins at
    # `files_url` (hub/demo/media_files.py).
    media: str | None = None
    files_url: str = ""


def _hmac_sha256(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def telegram(
    account_id: str, credentials: dict[str, Any], msg: FakeMessage, update_id: int
) -> WebhookRequest:
    """A Bot API `Update` with a `message` (core.telegram.org/bots/api#update)."""
    return signed_telegram(
        account_id, credentials, {"update_id": update_id, "message": telegram_message(msg)}
    )


def telegram_message(msg: FakeMessage) -> dict[str, Any]:
    """A Bot API `Message` in a group chat."""
    first, _, last = msg.sender_name.partition(" ")
    return {
        "message_id": int(msg.message_id),
        "from": {
            "id": int(msg.sender_id),
            "is_bot": False,
            "first_name": first,
            "last_name": last,
            "language_code": "en",
        },
        "chat": {"id": int(msg.chat_id), "title": msg.chat_title, "type": "group"},
        "date": int(msg.sent_at.timestamp()),
        **(
            media_files.telegram_media(msg.media, msg.message_id, msg.text)
            if msg.media
            else {"text": msg.text}
        ),
    }


def signed_telegram(
    account_id: str, credentials: dict[str, Any], update: dict[str, Any]
) -> WebhookRequest:
    """An `Update` with the secret token Telegram sends in its header."""
    body = orjson.dumps(update)
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": credentials["webhookSecret"],
    }
    return WebhookRequest(f"/webhooks/telegram/{account_id}", headers, body)


def whatsapp(
    account_id: str, external_id: str, credentials: dict[str, Any], msg: FakeMessage
) -> WebhookRequest:
    """A WhatsApp Cloud API `messages` notification, signed with the app secret."""
    value = {
        "contacts": [{"profile": {"name": msg.sender_name}, "wa_id": msg.sender_id}],
        "messages": [
            {
                "from": msg.sender_id,
                "id": f"wamid.{msg.message_id}",
                "timestamp": str(int(msg.sent_at.timestamp())),
                **(
                    media_files.whatsapp_media(msg.media, msg.message_id, msg.text)
                    if msg.media
                    else {"type": "text", "text": {"body": msg.text}}
                ),
            }
        ],
    }
    return _whatsapp_request(account_id, external_id, credentials, value)


def whatsapp_status(
    account_id: str,
    external_id: str,
    credentials: dict[str, Any],
    wamid: str,
    recipient: str,
    status: str,
) -> WebhookRequest:
    """A WhatsApp Cloud API `statuses` notification about a message the business sent."""
    value = {
        "statuses": [
            {
                "id": wamid,
                "status": status,
                "timestamp": str(int(time.time())),
                "recipient_id": recipient,
            }
        ]
    }
    return _whatsapp_request(account_id, external_id, credentials, value)


def _whatsapp_request(
    account_id: str, external_id: str, credentials: dict[str, Any], value: dict[str, Any]
) -> WebhookRequest:
    """One `messages` change of the phone number `external_id` carrying `value`."""
    metadata = {"display_phone_number": "15550783881", "phone_number_id": external_id}
    change = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    entry = {"id": "102290129340398", "changes": [{"field": "messages", "value": change}]}
    body = orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + _hmac_sha256(credentials["appSecret"], body),
    }
    return WebhookRequest(f"/webhooks/whatsapp/{account_id}", headers, body)


def slack(
    account_id: str, external_id: str, credentials: dict[str, Any], msg: FakeMessage
) -> WebhookRequest:
    """An Events API `event_callback` with a `message` event, v0-signed."""
    ts = slack_ts(msg)
    event: dict[str, Any] = {
        "type": "message",
        "channel": msg.chat_id,
        "user": msg.sender_id,
        "text": msg.text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
    }
    if msg.media:
        event["subtype"] = "file_share"
        event["files"] = media_files.slack_files(msg.media, msg.message_id, msg.files_url)
    return signed_slack(account_id, external_id, credentials, event, f"Ev{msg.message_id}")


def slack_ts(msg: FakeMessage) -> str:
    """The message's Slack `ts` (its id within the channel)."""
    return f"{msg.sent_at.timestamp():.6f}"


def signed_slack(
    account_id: str,
    external_id: str,
    credentials: dict[str, Any],
    event: dict[str, Any],
    event_id: str,
) -> WebhookRequest:
    """An Events API `event_callback` carrying `event`, v0-signed."""
    body = orjson.dumps(
        {
            "token": "demo-verification-token",
            "team_id": external_id,
            "api_app_id": "A0DEMO",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    )
    stamp = str(int(time.time()))
    signature = _hmac_sha256(credentials["signingSecret"], f"v0:{stamp}:".encode() + body)
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={signature}",
    }
    return WebhookRequest(f"/webhooks/slack/{account_id}", headers, body)


def generic(account_id: str, credentials: dict[str, Any], msg: FakeMessage) -> WebhookRequest:
    """The hub's own simple JSON format, signed like Meta's (`X-Hub-Signature-256`)."""
    payload: dict[str, Any] = {
        "conversationId": msg.chat_id,
        "conversationTitle": msg.chat_title,
        "messageId": msg.message_id,
        "sender": {"id": msg.sender_id, "name": msg.sender_name},
        "text": msg.text,
        "sentAt": iso(msg.sent_at),
    }
    if msg.media:
        files = media_files.generic_attachments(msg.media, msg.message_id, msg.files_url)
        payload["attachments"] = files
    return signed_generic(account_id, credentials, payload)


def iso(at: datetime) -> str:
    """`at` as the UTC ISO 8601 text the generic format uses."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def signed_generic(
    account_id: str, credentials: dict[str, Any], payload: dict[str, Any]
) -> WebhookRequest:
    """The hub's own JSON format, signed like Meta's (`X-Hub-Signature-256`)."""
    body = orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + _hmac_sha256(credentials["secret"], body),
    }
    return WebhookRequest(f"/webhooks/generic/{account_id}", headers, body)
