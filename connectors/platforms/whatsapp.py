"""WhatsApp Cloud API webhooks: `entry[].changes[].value.messages[]`, names from `contacts[]`.

Conversation = the WhatsApp user (`from`), or the group (`group_id`) for group messages.
Changes for another phone number than the account's (`metadata.phone_number_id`) are
ignored: one app may serve several numbers, and each number is its own hub account.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from connectors.errors import BadPayload
from connectors.platforms import media
from connectors.platforms.base import (
    Ignored,
    Normalized,
    WebhookOutcome,
    raw_message,
    status_report,
)
from connectors.platforms.fields import (
    JsonObject,
    array,
    identifier,
    json_object,
    obj,
    optional_string,
    string,
    unix_time,
)
from connectors.signatures import check_hub_signature, check_secret_token
from hubcore.accounts import Account
from schemas.commands import PlatformStatus

log = structlog.get_logger("connectors.whatsapp")

SIGNATURE_HEADER = "X-Hub-Signature-256"
# Message types that are not a message of their own, or that the hub cannot show.
PLATFORM_STATUSES: dict[str, PlatformStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}
IGNORED_TYPES = frozenset({"reaction", "system", "unsupported", "unknown", "request_welcome"})
# Types whose content is an object that may carry a caption.
CAPTIONED = frozenset({"image", "video", "document", "audio", "sticker"})


def verify(account: Account, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """HMAC-SHA256 of the raw body with the app secret."""
    check_hub_signature(
        str(account.credentials["appSecret"]), headers.get(SIGNATURE_HEADER.lower()), body
    )


def parse(account: Account, body: bytes, received_at: datetime) -> WebhookOutcome:
    """Every message of every change; statuses of sent messages become status reports."""
    data = json_object(body)
    if data.get("object") != "whatsapp_business_account":
        raise BadPayload(f"object is {data.get('object')!r}, not 'whatsapp_business_account'")
    items: list[Normalized] = []
    for i, entry in enumerate(array(data, "entry", "entry")):
        path = f"entry[{i}]"
        if not isinstance(entry, dict):
            items.append(Ignored("not_an_object"))
            continue
        for j, change in enumerate(array(entry, "changes", f"{path}.changes")):
            items += _change(account, change, f"{path}.changes[{j}]", received_at)
    return WebhookOutcome.of(items)


def _status(account: Account, status: Any, path: str) -> Normalized:
    """A delivery status of a message the business sent: for the hub's own replies."""
    if not isinstance(status, dict):
        return Ignored("not_an_object")
    kind = string(status, "status", f"{path}.status")
    if kind not in PLATFORM_STATUSES:
        return Ignored(f"status_{kind}")
    errors = status.get("errors")
    detail = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        detail = f"{first.get('code')}: {first.get('title') or first.get('message') or ''}"
    at = unix_time(status.get("timestamp"), f"{path}.timestamp")
    wamid = string(status, "id", f"{path}.id")
    return status_report(account, wamid, PLATFORM_STATUSES[kind], at, detail)


def _change(account: Account, change: Any, path: str, received_at: datetime) -> list[Normalized]:
    if not isinstance(change, dict):
        return [Ignored("not_an_object")]
    if change.get("field") != "messages":
        return [Ignored(f"field_{change.get('field')}")]
    value = obj(change, "value", f"{path}.value")
    metadata = obj(value, "metadata", f"{path}.value.metadata")
    phone = identifier(metadata, "phone_number_id", f"{path}.value.metadata.phone_number_id")
    if phone != account.external_id:
        log.warning("whatsapp change for another phone number", phone_number_id=phone)
        return [Ignored("other_phone_number")]
    names = _contact_names(value)
    statuses = array(value, "statuses", f"{path}.value.statuses", required=False)
    items: list[Normalized] = [
        _status(account, status, f"{path}.value.statuses[{k}]") for k, status in enumerate(statuses)
    ]
    for k, message in enumerate(array(value, "messages", f"{path}.value.messages", required=False)):
        where = f"{path}.value.messages[{k}]"
        items.append(_message(account, message, where, names, metadata, received_at))
    return items


def _contact_names(value: JsonObject) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in array(value, "contacts", "", required=False):
        if not isinstance(contact, dict):
            continue
        profile = contact.get("profile")
        wa_id = contact.get("wa_id")
        name = optional_string(profile, "name") if isinstance(profile, dict) else None
        if isinstance(wa_id, str) and name:
            names[wa_id] = name
    return names


def _message(
    account: Account,
    message: Any,
    path: str,
    names: dict[str, str],
    metadata: JsonObject,
    received_at: datetime,
) -> Normalized:
    if not isinstance(message, dict):
        raise BadPayload(f"{path} is not an object")
    kind = string(message, "type", f"{path}.type")
    if kind in IGNORED_TYPES:
        return Ignored(kind)
    sender = identifier(message, "from", f"{path}.from")
    msg_id = string(message, "id", f"{path}.id")
    sent_at = unix_time(message.get("timestamp"), f"{path}.timestamp")
    group = optional_string(message, "group_id")
    attachments = media.whatsapp(account, message, kind)
    return raw_message(
        account,
        chat=group or sender,
        message=msg_id,
        sender=(sender, names.get(sender)),
        text=_text(message, kind, bool(attachments)),
        sent_at=sent_at,
        received_at=received_at,
        raw={"metadata": metadata, "contactName": names.get(sender), "message": message},
        title=None if group else names.get(sender) or sender,
        attachments=attachments,
    )


def _text(message: JsonObject, kind: str, has_attachments: bool) -> str:
    content = message.get(kind)
    content = content if isinstance(content, dict) else {}
    if kind == "text":
        return optional_string(content, "body") or ""
    if kind in CAPTIONED:
        placeholder = "" if has_attachments else f"[{kind}]"
        return optional_string(content, "caption") or placeholder
    if kind == "button":
        return optional_string(content, "text") or "[button]"
    if kind == "interactive":
        for reply in ("button_reply", "list_reply"):
            chosen = content.get(reply)
            if isinstance(chosen, dict) and optional_string(chosen, "title"):
                return str(chosen["title"])
        return "[interactive]"
    return f"[{kind}]"


def verify_subscription(account: Account, params: Mapping[str, str]) -> str:
    """Meta's GET handshake: the challenge to echo when mode and verify token are right."""
    check_secret_token(
        str(account.credentials["verifyToken"]), params.get("hub.verify_token"), "hub.verify_token"
    )
    if params.get("hub.mode") != "subscribe":
        raise BadPayload("hub.mode must be 'subscribe'")
    challenge = params.get("hub.challenge")
    if not challenge:
        raise BadPayload("hub.challenge is missing")
    return challenge
