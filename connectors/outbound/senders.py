"""Per-platform senders: each makes the platform's own API call and returns its message id.

Bases are settings (`HUB_TELEGRAM_API_BASE`, `HUB_WHATSAPP_API_BASE`, `HUB_SLACK_API_BASE`)
so tests and the demo point them at local stand-ins. Only the generic callback dedupes
(the receiver gets `messageId`): the others are never called twice for one reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import orjson
from pymongo.errors import PyMongoError

from connectors.errors import SendError
from connectors.outbound.http import json_body, post, status_error
from connectors.outbound.smtp import send_email
from connectors.signatures import hmac_sha256_hex
from hubcore.accounts import Account
from hubcore.blobs import BlobNotFound, BlobStore
from hubcore.errors import InvalidInput, ServiceUnavailable
from hubcore.media_urls import signed_url
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings, SettingsError
from schemas import OutboundMessage
from schemas.attachments import OutboundAttachment


@dataclass(frozen=True, slots=True)
class SendContext:
    settings: Settings
    http: httpx.AsyncClient
    # Where uploaded attachments' bytes are read from (None: replies carry none).
    blobs: BlobStore | None = None


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


async def _call(
    ctx: SendContext,
    url: str,
    what: str,
    *,
    token: str | None = None,
    idempotent: bool = False,
    **request: Any,
) -> tuple[httpx.Response, dict[str, Any]]:
    """A POST to a platform (`request`: json, data, files), Bearer-authenticated when
    `token`; the answer and its JSON object."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    timeout = ctx.settings.send_timeout
    response = await post(
        ctx.http, url, what=what, idempotent=idempotent, timeout=timeout, headers=headers, **request
    )
    return response, json_body(response)


Loaded = list[tuple[OutboundAttachment, bytes]]


async def load_attachments(ctx: SendContext, msg: OutboundMessage) -> Loaded:
    """Every attachment's bytes, read before any platform call: a store that cannot answer
    now is retried with nothing sent yet."""
    if not msg.attachments:
        return []
    if ctx.blobs is None:
        raise SendError("this connectors process has no blob store to read attachments from")
    loaded: Loaded = []
    for attachment in msg.attachments:
        try:
            pieces = [piece async for piece in ctx.blobs.read(attachment.sha256)]
        except BlobNotFound:
            raise SendError(f"attachment {attachment.id} is no longer stored") from None
        except (OSError, ServiceUnavailable, PyMongoError, httpx.HTTPError) as exc:
            raise SendError(
                f"attachment {attachment.id} could not be read ({type(exc).__name__})",
                retriable=True,
            ) from None
        loaded.append((attachment, b"".join(pieces)))
    return loaded


def _file_name(attachment: OutboundAttachment) -> str:
    return attachment.name or "attachment"


async def in_parts(calls: list[Callable[[], Awaitable[str]]]) -> str:
    """Run a reply's platform calls in order; the last one's id is the reply's. Once one
    part is in the chat, a later failure is final (a retry would repeat the first parts)."""
    last = ""
    for done, call in enumerate(calls):
        try:
            last = await call()
        except SendError as exc:
            if done == 0:
                raise
            raise SendError(
                f"{exc.message} (after {done} of {len(calls)} parts were sent)",
                ambiguous=exc.ambiguous,
            ) from None
    return last


# --- Telegram -------------------------------------------------------------------------

TELEGRAM_CAPTION = 1024  # the Bot API's caption limit, in characters


def telegram_method(attachment: OutboundAttachment) -> tuple[str, str]:
    """(Bot API method, its file field) for an attachment, by kind and sniffed type."""
    kind, mime = attachment.kind, attachment.mime_type
    if kind == "sticker" and mime == "image/webp":
        return "sendSticker", "sticker"
    if kind == "image" and mime in ("image/jpeg", "image/png", "image/webp"):
        return "sendPhoto", "photo"
    if kind == "voice" and mime in ("audio/ogg", "audio/mpeg", "audio/mp4"):
        return "sendVoice", "voice"
    if kind in ("audio", "voice") and mime in ("audio/mpeg", "audio/mp4"):
        return "sendAudio", "audio"
    if kind == "video" and mime == "video/mp4":
        return "sendVideo", "video"
    return "sendDocument", "document"


async def _telegram_call(ctx: SendContext, token: str, method: str, **request: Any) -> str:
    url = f"{ctx.settings.telegram_api_base.rstrip('/')}/bot{token}/{method}"
    what = f"Telegram {method}"
    response, answer = await _call(ctx, url, what, **request)
    if response.is_success and answer.get("ok") is True:
        return str(answer["result"]["message_id"])
    parameters = answer.get("parameters") or {}
    description = str(answer.get("description") or response.reason_phrase)
    raise status_error(what, response, description, parameters.get("retry_after"))


async def _telegram(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    token = credential(account, "botToken")
    chat = msg.external_conversation_id
    reply: dict[str, Any] | None = None
    if msg.reply_to and msg.reply_to.isdigit():
        reply = {"message_id": int(msg.reply_to), "allow_sending_without_reply": True}
    if not msg.attachments:
        body: dict[str, Any] = {"chat_id": chat, "text": msg.text}
        if reply:
            body["reply_parameters"] = reply
        return await _telegram_call(ctx, token, "sendMessage", json=body)
    loaded = await load_attachments(ctx, msg)
    calls: list[Callable[[], Awaitable[str]]] = []
    caption = msg.text
    first_method = telegram_method(loaded[0][0])[0]
    if caption and (len(caption) > TELEGRAM_CAPTION or first_method == "sendSticker"):
        text_body: dict[str, Any] = {"chat_id": chat, "text": caption}
        if reply:
            text_body["reply_parameters"] = reply
        calls.append(lambda: _telegram_call(ctx, token, "sendMessage", json=text_body))
        caption, reply = "", None
    for attachment, data in loaded:
        method, field = telegram_method(attachment)
        form = {"chat_id": chat}
        if caption:
            form["caption"] = caption
            caption = ""
        if reply:
            form["reply_parameters"] = orjson.dumps(reply).decode()
            reply = None
        upload = {field: (_file_name(attachment), data, attachment.mime_type)}
        calls.append(partial(_telegram_call, ctx, token, method, data=form, files=upload))
    return await in_parts(calls)


# --- WhatsApp -------------------------------------------------------------------------

WHATSAPP_CAPTION = 1024  # characters


def whatsapp_type(attachment: OutboundAttachment) -> str:
    """The Cloud API message type an attachment goes as (its supported media types)."""
    kind, mime = attachment.kind, attachment.mime_type
    if kind == "sticker" and mime == "image/webp":
        return "sticker"
    if kind == "image" and mime in ("image/jpeg", "image/png"):
        return "image"
    if kind in ("audio", "voice") and mime in (
        "audio/aac",
        "audio/amr",
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
    ):
        return "audio"
    if kind == "video" and mime in ("video/mp4", "video/3gpp"):
        return "video"
    return "document"


async def _whatsapp_message(
    ctx: SendContext, account: Account, token: str, body: dict[str, Any]
) -> str:
    url = f"{ctx.settings.whatsapp_api_base.rstrip('/')}/{account.external_id}/messages"
    what = "WhatsApp messages"
    response, answer = await _call(ctx, url, what, token=token, json=body)
    messages = answer.get("messages")
    if response.is_success and isinstance(messages, list) and messages:
        return str(messages[0]["id"])
    raise _whatsapp_error(what, response, answer)


def _whatsapp_error(what: str, response: httpx.Response, answer: dict[str, Any]) -> SendError:
    error = answer.get("error") or {}
    return status_error(what, response, str(error.get("message") or response.reason_phrase))


async def _whatsapp_upload(
    ctx: SendContext, account: Account, token: str, attachment: OutboundAttachment, data: bytes
) -> str:
    """`POST /{phone-number-id}/media` (multipart): the media id a message then names."""
    url = f"{ctx.settings.whatsapp_api_base.rstrip('/')}/{account.external_id}/media"
    what = "WhatsApp media upload"
    response, answer = await _call(
        ctx,
        url,
        what,
        token=token,
        idempotent=True,  # an upload shows nothing to anyone: repeating it is harmless
        data={"messaging_product": "whatsapp", "type": attachment.mime_type},
        files={"file": (_file_name(attachment), data, attachment.mime_type)},
    )
    if response.is_success and answer.get("id"):
        return str(answer["id"])
    raise _whatsapp_error(what, response, answer)


async def _whatsapp(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    token = credential(account, "accessToken")
    base: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": msg.external_conversation_id,
    }
    context = {"context": {"message_id": msg.reply_to}} if msg.reply_to else {}
    text_body = {**base, "type": "text", "text": {"preview_url": False, "body": msg.text}}
    if not msg.attachments:
        return await _whatsapp_message(ctx, account, token, {**text_body, **context})
    loaded = await load_attachments(ctx, msg)
    # Uploads first: until a message names them, nothing is in the chat.
    media = [await _whatsapp_upload(ctx, account, token, a, data) for a, data in loaded]
    calls: list[Callable[[], Awaitable[str]]] = []
    caption = msg.text
    if caption and (
        len(caption) > WHATSAPP_CAPTION
        or whatsapp_type(loaded[0][0]) not in ("image", "video", "document")
    ):
        first = {**text_body, **context}
        calls.append(lambda: _whatsapp_message(ctx, account, token, first))
        caption, context = "", {}
    for (attachment, _), media_id in zip(loaded, media, strict=True):
        kind = whatsapp_type(attachment)
        part: dict[str, Any] = {"id": media_id}
        if caption:
            part["caption"] = caption
            caption = ""
        if kind == "document":
            part["filename"] = _file_name(attachment)
        body = {**base, "type": kind, kind: part, **context}
        context = {}
        calls.append(partial(_whatsapp_message, ctx, account, token, body))
    return await in_parts(calls)


# --- Slack ----------------------------------------------------------------------------


async def _slack_api(ctx: SendContext, token: str, method: str, **request: Any) -> dict[str, Any]:
    url = f"{ctx.settings.slack_api_base.rstrip('/')}/{method}"
    what = f"Slack {method}"
    response, answer = await _call(ctx, url, what, token=token, **request)
    if response.is_success and answer.get("ok") is True:
        return answer
    # Slack answers most errors 200 {"ok": false, "error": "invalid_auth"}: final.
    description = str(answer.get("error") or response.reason_phrase)
    if response.is_success:
        raise SendError(f"{what}: {description}", reason="rejected")
    raise status_error(what, response, description)


async def _slack_file(
    ctx: SendContext, token: str, attachment: OutboundAttachment, data: bytes
) -> str:
    """Steps 1 and 2 of Slack's external upload: reserve an upload URL (form-encoded: the
    method refuses JSON), then send the bytes there. Returns the file id."""
    name = _file_name(attachment)
    ticket = await _slack_api(
        ctx, token, "files.getUploadURLExternal", data={"filename": name, "length": str(len(data))}
    )
    what = "Slack file upload"
    response, _ = await _call(
        ctx,
        str(ticket["upload_url"]),
        what,
        idempotent=True,  # an upload not completed shows nothing
        files={"filename": (name, data, attachment.mime_type)},
    )
    if not response.is_success:
        raise status_error(what, response, response.reason_phrase)
    return str(ticket["file_id"])


async def _slack(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    token = credential(account, "botToken")
    if not msg.attachments:
        body: dict[str, Any] = {"channel": msg.external_conversation_id, "text": msg.text}
        if msg.reply_to:
            body["thread_ts"] = msg.reply_to
        return str((await _slack_api(ctx, token, "chat.postMessage", json=body))["ts"])
    loaded = await load_attachments(ctx, msg)
    files = [
        {"id": await _slack_file(ctx, token, a, data), "title": _file_name(a)} for a, data in loaded
    ]
    # Step 3 shares every file in one message, the text as its comment.
    complete: dict[str, Any] = {"files": files, "channel_id": msg.external_conversation_id}
    if msg.text:
        complete["initial_comment"] = msg.text
    if msg.reply_to:
        complete["thread_ts"] = msg.reply_to
    answer = await _slack_api(ctx, token, "files.completeUploadExternal", json=complete)
    shared = answer.get("files") or files
    return str(shared[0]["id"])


def pinned_url(settings: Settings, url: str) -> tuple[str, str, str]:
    """(URL to the checked address, Host header, TLS server name) for a user's URL."""
    try:
        return OutboundPolicy.from_settings(settings).pin_url(url)
    except InvalidInput as exc:
        raise SendError(f"generic callback: refused, {exc}", reason="address_refused") from None


async def _generic(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    # Checked again at every send and sent to the address that passed (no DNS rebinding).
    pinned, host_header, server_name = await asyncio.to_thread(
        pinned_url, ctx.settings, credential(account, "callbackUrl")
    )
    secret = credential(account, "secret")
    payload: dict[str, Any] = {
        "messageId": msg.message_id,
        "conversationId": msg.external_conversation_id,
        "replyTo": msg.reply_to,
        "text": msg.text,
        "sentAt": msg.issued_at,
    }
    if msg.attachments:
        payload["attachments"] = _callback_attachments(ctx.settings, msg)
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


def _callback_attachments(settings: Settings, msg: OutboundMessage) -> list[dict[str, Any]]:
    """The attachments' metadata, each with a signed URL the receiver fetches the bytes
    from (valid for HUB_MEDIA_URL_TTL, no token needed)."""
    try:
        return [
            {
                **a.public().model_dump(by_alias=True, exclude={"status", "reason"}),
                "url": signed_url(settings, a.id),
            }
            for a in msg.attachments
        ]
    except SettingsError as exc:
        raise SendError(f"generic callback: cannot sign attachment URLs ({exc})") from None


async def _email(ctx: SendContext, account: Account, msg: OutboundMessage) -> str:
    return await send_email(ctx.settings, account, msg, await load_attachments(ctx, msg))


SENDERS: dict[str, PlatformSender] = {
    "telegram": PlatformSender(_telegram),
    "whatsapp": PlatformSender(_whatsapp),
    "slack": PlatformSender(_slack),
    "generic": PlatformSender(_generic, idempotent=True),
    "email": PlatformSender(_email),
}
