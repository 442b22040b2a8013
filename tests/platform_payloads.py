"""Webhook and mail payloads in each platform's real, documented format, with their signatures.

Each builder names the documentation its shape was taken from. Values that the examples
there show (ids, names) are kept where they help recognise the source.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson

from connectors.signatures import hmac_sha256_hex, slack_signature
from hubcore.accounts import Account


def account(platform: str, external_id: str = "ext-1", **credentials: Any) -> Account:
    """An account as the connectors see it (not stored), of user `alice`."""
    return Account(
        id=f"acc_{platform}",
        user_id="alice",
        platform=platform,
        external_id=external_id,
        mode="poll" if platform == "email" else "webhook",
        created_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        credentials=credentials,
    )


def body(payload: Any) -> bytes:
    """The exact bytes a platform would send (what the signature covers)."""
    return orjson.dumps(payload)


def signed_headers(platform: str, raw: bytes, secrets: dict[str, Any]) -> dict[str, str]:
    """The auth headers a platform holding `secrets` (webhook secrets) sends with `raw`."""
    return {
        "telegram": lambda: telegram_headers(secrets.get("webhookSecret", "")),
        "whatsapp": lambda: hub_signature(secrets.get("appSecret", ""), raw),
        "slack": lambda: slack_headers(secrets.get("signingSecret", ""), raw),
        "generic": lambda: hub_signature(secrets.get("secret", ""), raw),
    }[platform]()


def hub_signature(secret: str, raw: bytes) -> dict[str, str]:
    """`X-Hub-Signature-256` as Meta sends it (and as the generic format uses it)."""
    return {"X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, raw)}


# --- Telegram ------------------------------------------------------------------------
# Update and Message objects: https://core.telegram.org/bots/api#update and #message
# (a getUpdates answer is {"ok": true, "result": [Update, ...]}: #getupdates); the
# webhook secret arrives in X-Telegram-Bot-Api-Secret-Token (#setwebhook, secret_token).


def telegram_update(
    update_id: int,
    message_id: int,
    *,
    text: str | None = "Hello bot",
    chat_id: int = 123456789,
    kind: str = "message",
    date: int = 1746268800,
    **extra: Any,
) -> dict[str, Any]:
    """A private-chat message from Jane Smith (the shape of the Bot API docs' examples)."""
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": {
            "id": chat_id,
            "is_bot": False,
            "first_name": "Jane",
            "last_name": "Smith",
            "username": "janesmith",
            "language_code": "en",
        },
        "chat": {
            "id": chat_id,
            "first_name": "Jane",
            "last_name": "Smith",
            "username": "janesmith",
            "type": "private",
        },
        "date": date,
        **extra,
    }
    if text is not None:
        message["text"] = text
    if kind.startswith("edited"):
        message["edit_date"] = date + 60
    return {"update_id": update_id, kind: message}


def telegram_channel_post(update_id: int, message_id: int, text: str) -> dict[str, Any]:
    """A post in a channel: no `from`, the channel speaks as `sender_chat`."""
    channel = {"id": -1001234567890, "title": "Hub News", "type": "channel"}
    return {
        "update_id": update_id,
        "channel_post": {
            "message_id": message_id,
            "sender_chat": channel,
            "chat": channel,
            "date": 1746268900,
            "text": text,
        },
    }


def telegram_callback_query(update_id: int) -> dict[str, Any]:
    """An update that is not a message (a button press): ignored by the hub."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": "4382bfdwdsf43",
            "from": {"id": 123456789, "is_bot": False, "first_name": "Jane"},
            "chat_instance": "-76543210987654321",
            "data": "option_1",
        },
    }


def telegram_headers(secret: str) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": secret}


# --- WhatsApp Cloud API ----------------------------------------------------------------
# Text messages webhook reference:
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/text
# Status messages webhook reference:
#   https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status/
# Signature: X-Hub-Signature-256 = sha256=HMAC-SHA256(app secret, raw body).


def _whatsapp(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def whatsapp_messages(
    phone_number_id: str, messages: list[tuple[str, str, str]], wa_id: str = "16315551234"
) -> dict[str, Any]:
    """Text messages `(wamid, timestamp, body)` from one WhatsApp user (Kerry Fisher)."""
    return _whatsapp(
        phone_number_id,
        {
            "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": timestamp,
                    "type": "text",
                    "text": {"body": text},
                }
                for wamid, timestamp, text in messages
            ],
        },
    )


def whatsapp_image(phone_number_id: str, wamid: str, caption: str | None) -> dict[str, Any]:
    """An image message (Image messages webhook reference), with or without caption."""
    extra = {} if caption is None else {"caption": caption}
    return whatsapp_media(
        phone_number_id, wamid, "image", "2754859441498128", mime_type="image/jpeg", **extra
    )


_MEDIA_SHA256 = "81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be6950b808a90d3"


def whatsapp_media(
    phone_number_id: str, wamid: str, kind: str, media_id: str, **content: Any
) -> dict[str, Any]:
    """An `image`/`audio`/`video`/`document`/`sticker` message: a media id to fetch."""
    return _whatsapp(
        phone_number_id,
        {
            "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551234"}],
            "messages": [
                {
                    "from": "16315551234",
                    "id": wamid,
                    "timestamp": "1603059201",
                    "type": kind,
                    kind: {
                        "sha256": _MEDIA_SHA256,
                        "id": media_id,
                        **content,
                    },
                }
            ],
        },
    )


def whatsapp_status(phone_number_id: str) -> dict[str, Any]:
    """A `delivered` status callback for a message the business sent."""
    return _whatsapp(
        phone_number_id,
        {
            "statuses": [
                {
                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NjA5NTRGNTA2QzVDNUE1MzAA",
                    "status": "delivered",
                    "timestamp": "1750263773",
                    "recipient_id": "16505551234",
                    "conversation": {
                        "id": "6ceb9d929c0e3e2ca2e8ee0ee18a63b4",
                        "origin": {"type": "service"},
                    },
                    "pricing": {
                        "billable": True,
                        "pricing_model": "PMP",
                        "category": "service",
                        "type": "free_customer_service",
                    },
                }
            ]
        },
    )


# --- Slack Events API ------------------------------------------------------------------
# message.channels event with its wrapper: https://docs.slack.dev/reference/events/message.channels
# url_verification: https://api.slack.com/events/url_verification
# Signing: https://api.slack.com/authentication/verifying-requests-from-slack


def slack_message(
    team_id: str,
    *,
    ts: str = "1355517523.000005",
    text: str = "Live long and prospect.",
    event_id: str = "Ev123ABC456",
    **event_extra: Any,
) -> dict[str, Any]:
    """A message posted to a public channel, as the Events API wraps it."""
    return {
        "token": "one-long-verification-token",
        "team_id": team_id,
        "api_app_id": "A123ABC456",
        "event": {
            "type": "message",
            "channel": "C123ABC456",
            "user": "U123ABC456",
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": "channel",
            **event_extra,
        },
        "type": "event_callback",
        "authorizations": [
            {
                "team_id": team_id,
                "user_id": "U123ABC456",
                "is_bot": False,
                "is_enterprise_install": False,
            }
        ],
        "event_id": event_id,
        "event_time": int(float(ts)),
    }


def slack_url_verification(challenge: str) -> dict[str, Any]:
    return {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": challenge,
        "type": "url_verification",
    }


def slack_headers(secret: str, raw: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for `raw`, signed now (or at `timestamp`)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, raw),
    }


# --- generic (the hub's own format, docs/platforms.md) ---------------------------------


def generic_message(message_id: str = "m-1", **overrides: Any) -> dict[str, Any]:
    return {
        "conversationId": "support-42",
        "messageId": message_id,
        "sender": {"id": "cust-7", "name": "Ada"},
        "text": "My order has not arrived",
        "sentAt": "2026-11-25T12:00:00Z",
        "conversationTitle": "Order 42",
        **overrides,
    }


# --- email (RFC 5322 / MIME, as an IMAP server returns BODY[]) -----------------------


def email_source(
    message_id: str | None,
    *,
    subject: str = "Quarterly report",
    text: str | None = "Hi,\r\nthe report is attached.\r\nBob",
    html: str | None = None,
    sender: str = "Bob Example <bob@example.com>",
    references: str | None = None,
    in_reply_to: str | None = None,
    date: datetime | None = None,
) -> bytes:
    """A mail with a text part, an HTML part, or both (multipart/alternative)."""
    headers = [
        f"From: {sender}",
        "To: Alice <alice@example.com>",
        f"Subject: {subject}",
        f"Date: {format_datetime(date or datetime(2026, 11, 25, 9, 30, tzinfo=UTC))}",
        "MIME-Version: 1.0",
    ]
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    if references:
        headers.append(f"References: {references}")
    if in_reply_to:
        headers.append(f"In-Reply-To: {in_reply_to}")
    if text is not None and html is not None:
        boundary = "=_alt_boundary"
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        parts = [
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
            f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n",
            f"--{boundary}--\r\n",
        ]
        content = "".join(parts)
    elif html is not None:
        headers.append("Content-Type: text/html; charset=utf-8")
        content = html + "\r\n"
    else:
        headers.append("Content-Type: text/plain; charset=utf-8")
        content = (text or "") + "\r\n"
    return ("\r\n".join(headers) + "\r\n\r\n" + content).encode()
