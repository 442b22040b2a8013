"""Correctly signed webhook requests in each platform's own format, for `hub simulate`."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


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


def _hmac_sha256(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def telegram(
    account_id: str, credentials: dict[str, Any], msg: FakeMessage, update_id: int
) -> WebhookRequest:
    """A Bot API `Update` with a `message` (core.telegram.org/bots/api#update)."""
    first, _, last = msg.sender_name.partition(" ")
    body = orjson.dumps(
        {
            "update_id": update_id,
            "message": {
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
                "text": msg.text,
            },
        }
    )
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": credentials["webhookSecret"],
    }
    return WebhookRequest(f"/webhooks/telegram/{account_id}", headers, body)


def whatsapp(
    account_id: str, external_id: str, credentials: dict[str, Any], msg: FakeMessage
) -> WebhookRequest:
    """A WhatsApp Cloud API `messages` notification, signed with the app secret."""
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": external_id,
                                },
                                "contacts": [
                                    {"profile": {"name": msg.sender_name}, "wa_id": msg.sender_id}
                                ],
                                "messages": [
                                    {
                                        "from": msg.sender_id,
                                        "id": f"wamid.{msg.message_id}",
                                        "timestamp": str(int(msg.sent_at.timestamp())),
                                        "type": "text",
                                        "text": {"body": msg.text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    )
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + _hmac_sha256(credentials["appSecret"], body),
    }
    return WebhookRequest(f"/webhooks/whatsapp/{account_id}", headers, body)


def slack(
    account_id: str, external_id: str, credentials: dict[str, Any], msg: FakeMessage
) -> WebhookRequest:
    """An Events API `event_callback` with a `message` event, v0-signed."""
    ts = f"{msg.sent_at.timestamp():.6f}"
    body = orjson.dumps(
        {
            "token": "demo-verification-token",
            "team_id": external_id,
            "api_app_id": "A0DEMO",
            "type": "event_callback",
            "event_id": f"Ev{msg.message_id}",
            "event_time": int(msg.sent_at.timestamp()),
            "event": {
                "type": "message",
                "channel": msg.chat_id,
                "user": msg.sender_id,
                "text": msg.text,
                "ts": ts,
                "event_ts": ts,
                "channel_type": "channel",
            },
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
    body = orjson.dumps(
        {
            "conversationId": msg.chat_id,
            "conversationTitle": msg.chat_title,
            "messageId": msg.message_id,
            "sender": {"id": msg.sender_id, "name": msg.sender_name},
            "text": msg.text,
            "sentAt": msg.sent_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
    )
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + _hmac_sha256(credentials["secret"], body),
    }
    return WebhookRequest(f"/webhooks/generic/{account_id}", headers, body)
