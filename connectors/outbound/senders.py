"""Per-platform senders: each makes the platform's own API call and returns its message id.

Bases are settings (`HUB_TELEGRAM_API_BASE`, `HUB_WHATSAPP_API_BASE`, `HUB_SLACK_API_BASE`)
so tests and the demo point them at local stand-ins. Only the generic callback dedupes
(the receiver gets `messageId`): the others are never called twice for one reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from connectors.errors import SendError
from connectors.outbound.http import json_body, post, status_error
from connectors.outbound.smtp import send_email
from connectors.signatures import hmac_sha256_hex
from hubcore.accounts import Account
from hubcore.errors import InvalidInput
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings
from schemas import OutboundMessage


@dataclass(frozen=True, slots=True)
class SendContext:
    settings: Settings
    http: httpx.AsyncClient


# Of a callback's answer only its `id` is used: a server that streams more is not read on.
CALLBACK_MAX_ANSWER_BYTES = 64 * 1024

SendCall = Callable[[SendContext, Account, OutboundMessage], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class PlatformSender:
    """`idempotent`: the platform recognises a repeated call as the same message."""

    send: SendCall
    idempotent: bool = False


def credential(account: Account, key: str) -> str:
    """A sending credential of the account; a final `SendError` naming it when absent."""
    value = account.credentials.get(key)
    if not isinstance(value, str) or not value:
        raise SendError(
            f"the {account.platform} account has no {key} to send with: connect it with one",
            reason="credentials",
        )
    return value


async def _post_json(
    ctx: SendContext, url: str, what: str, body: dict[str, Any], token: str | None = None
) -> tuple[httpx.Response, dict[str, Any]]:
    """A JSON POST to a platform without idempotency, Bearer-authenticated when `token`."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    timeout = ctx.settings.send_timeout
    response = await post(
        ctx.http, url, what=what, idempotent=False, timeout=timeout, json=body, headers=headers
    )
    return response, json_body(response)


async def _telegram(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    token = credential(account, "botToken")
    body: dict[str, Any] = {"chat_id": msg.external_conversation_id, "text": msg.text}
    if msg.reply_to and msg.reply_to.isdigit():
        body["reply_parameters"] = {
            "message_id": int(msg.reply_to),
            "allow_sending_without_reply": True,
        }
    url = f"{ctx.settings.telegram_api_base.rstrip('/')}/bot{token}/sendMessage"
    what = "Telegram sendMessage"
    response, answer = await _post_json(ctx, url, what, body)
    if response.is_success and answer.get("ok") is True:
        return str(answer["result"]["message_id"])
    parameters = answer.get("parameters") or {}
    description = str(answer.get("description") or response.reason_phrase)
    raise status_error(what, response, description, parameters.get("retry_after"))


async def _whatsapp(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    token = credential(account, "accessToken")
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": msg.external_conversation_id,
        "type": "text",
        "text": {"preview_url": False, "body": msg.text},
    }
    if msg.reply_to:
        body["context"] = {"message_id": msg.reply_to}
    url = f"{ctx.settings.whatsapp_api_base.rstrip('/')}/{account.external_id}/messages"
    what = "WhatsApp messages"
    response, answer = await _post_json(ctx, url, what, body, token)
    messages = answer.get("messages")
    if response.is_success and isinstance(messages, list) and messages:
        return str(messages[0]["id"])
    error = answer.get("error") or {}
    raise status_error(what, response, str(error.get("message") or response.reason_phrase))


async def _slack(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    token = credential(account, "botToken")
    body: dict[str, Any] = {"channel": msg.external_conversation_id, "text": msg.text}
    if msg.reply_to:
        body["thread_ts"] = msg.reply_to
    url = f"{ctx.settings.slack_api_base.rstrip('/')}/chat.postMessage"
    what = "Slack chat.postMessage"
    response, answer = await _post_json(ctx, url, what, body, token)
    if response.is_success and answer.get("ok") is True:
        return str(answer["ts"])
    # Slack answers most errors 200 {"ok": false, "error": "invalid_auth"}: final.
    description = str(answer.get("error") or response.reason_phrase)
    if response.is_success:
        raise SendError(f"{what}: {description}", reason="rejected")
    raise status_error(what, response, description)


def _pinned(settings: Settings, url: str) -> tuple[str, str, str]:
    """(URL to the checked address, Host header, TLS server name) for a user's URL."""
    try:
        return OutboundPolicy.from_settings(settings).pin_url(url)
    except InvalidInput as exc:
        raise SendError(f"generic callback: refused, {exc}", reason="address_refused") from None


async def _generic(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    # Checked again at every send and sent to the address that passed (no DNS rebinding).
    pinned, host_header, server_name = await asyncio.to_thread(
        _pinned, ctx.settings, credential(account, "callbackUrl")
    )
    secret = credential(account, "secret")
    payload = {
        "messageId": msg.message_id,
        "conversationId": msg.external_conversation_id,
        "replyTo": msg.reply_to,
        "text": msg.text,
        "sentAt": msg.issued_at,
    }
    raw = orjson.dumps(payload)
    what = "generic callback"
    response = await post(
        ctx.http,
        pinned,
        what=what,
        idempotent=True,
        timeout=ctx.settings.send_timeout,
        content=raw,
        headers={
            "Host": host_header,
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, raw),
        },
        extensions={"sni_hostname": server_name},
        max_answer_bytes=CALLBACK_MAX_ANSWER_BYTES,
    )
    if response.is_success:
        answer = json_body(response)
        return str(answer.get("id") or msg.message_id)
    raise status_error(what, response, response.reason_phrase)


async def _email(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    return await send_email(ctx.settings, account, msg)


SENDERS: dict[str, PlatformSender] = {
    "telegram": PlatformSender(_telegram),
    "whatsapp": PlatformSender(_whatsapp),
    "slack": PlatformSender(_slack),
    "generic": PlatformSender(_generic, idempotent=True),
    "email": PlatformSender(_email),
}
