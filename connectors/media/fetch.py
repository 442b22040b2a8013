"""Where each platform keeps a file, and its bytes streamed into the blob store.

Telegram: `getFile` gives a `file_path`, downloaded from `{api}/file/bot<token>/<path>`.
WhatsApp: `GET {api}/<media id>` (Bearer access token) gives a short-lived `url`, downloaded
with the same token. Slack: `url_private` with the bot token. Generic: the URL itself,
under the outbound address policy (hubcore/outbound.py: checked, then connected to the
address that passed). Email parts come inside the job and are stored as they are.

Failures carry the attachment's `failed` reason; `retriable` ones (5xx, 429, timeouts,
connection errors) are tried again by the caller (hubcore/retry.py), the others are final.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson

from connectors.outbound.http import retry_after
from hubcore.accounts import Account
from hubcore.blobs import BlobRejected, BlobStore, StoredBlob
from hubcore.errors import InvalidInput
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings
from schemas.attachments import FailedReason

# A platform's JSON answer about a file (getFile, the media URL) is small.
_MAX_META_BYTES = 64 * 1024


class FetchFailed(Exception):
    """The file was not stored; `reason` is the attachment's `failed` reason."""

    def __init__(
        self,
        reason: FailedReason,
        detail: str,
        *,
        retriable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason: FailedReason = reason
        self.retriable = retriable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Download:
    """One GET that yields the file's bytes."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def status_failure(what: str, response: httpx.Response, detail: str = "") -> FetchFailed:
    """The failure an HTTP answer means: 401/403 forbidden, 404/410 not found, 413 too
    large, 408/429/5xx retriable (a timeout once attempts run out), other 4xx unsupported."""
    code = response.status_code
    text = f"{what}: HTTP {code} {detail or response.reason_phrase}".strip()
    if code in (401, 403):
        return FetchFailed("forbidden", text)
    if code in (404, 410):
        return FetchFailed("not_found", text)
    if code == 413:
        return FetchFailed("too_large", text)
    if code in (408, 429) or code >= 500:
        return FetchFailed("timeout", text, retriable=True, retry_after=retry_after(response))
    return FetchFailed("unsupported", text)


def _credential(account: Account, key: str) -> str:
    value = account.credentials.get(key)
    if not isinstance(value, str) or not value:
        raise FetchFailed("forbidden", f"the {account.platform} account has no {key}")
    return value


async def _json(http: httpx.AsyncClient, what: str, download: Download, timeout: float) -> Any:
    """A platform's small JSON answer about a file (an error answer raises)."""
    try:
        response = await http.get(download.url, headers=download.headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise FetchFailed("timeout", f"{what}: {type(exc).__name__}", retriable=True) from None
    try:
        answer = orjson.loads(response.content[:_MAX_META_BYTES])
    except orjson.JSONDecodeError:
        answer = None
    if not response.is_success:
        detail = ""
        if isinstance(answer, dict):
            error = answer.get("error")
            detail = str(answer.get("description") or (error or {}).get("message") or "")
        # Telegram answers 400 for a file over its bots' 20 MB and for an unknown id.
        if response.status_code == 400 and "too big" in detail:
            raise FetchFailed("too_large", f"{what}: {detail}")
        if response.status_code == 400:
            raise FetchFailed("not_found", f"{what}: {detail or 'bad request'}")
        raise status_failure(what, response, detail)
    return answer


async def locate(
    settings: Settings, http: httpx.AsyncClient, account: Account, source: str
) -> Download:
    """The GET that downloads `source` (the platform's reference for the file)."""
    timeout = settings.media_fetch_timeout
    if account.platform == "telegram":
        token = _credential(account, "botToken")
        base = settings.telegram_api_base.rstrip("/")
        ask = Download(f"{base}/bot{token}/getFile?file_id={quote(source, safe='')}")
        answer = await _json(http, "Telegram getFile", ask, timeout)
        result = answer.get("result") if isinstance(answer, dict) else None
        path = result.get("file_path") if isinstance(result, dict) else None
        if not isinstance(path, str) or not path:
            raise FetchFailed("not_found", "Telegram getFile: no file_path")
        return Download(f"{base}/file/bot{token}/{quote(path, safe='/')}")
    if account.platform == "whatsapp":
        bearer = {"Authorization": f"Bearer {_credential(account, 'accessToken')}"}
        base = settings.whatsapp_api_base.rstrip("/")
        ask = Download(f"{base}/{quote(source, safe='')}", bearer)
        answer = await _json(http, "WhatsApp media URL", ask, timeout)
        url = answer.get("url") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise FetchFailed("not_found", "WhatsApp media URL: no url")
        return Download(url, bearer)
    if account.platform == "slack":
        # The bot token goes to Slack's file hosts only (or to the operator's API base).
        host = (urlsplit(source).hostname or "").lower()
        api_host = (urlsplit(settings.slack_api_base).hostname or "").lower()
        if not (host == "slack.com" or host.endswith(".slack.com") or host == api_host):
            raise FetchFailed("forbidden", f"url_private is not on a Slack host: {host[:100]}")
        return Download(source, {"Authorization": f"Bearer {_credential(account, 'botToken')}"})
    if account.platform == "generic":
        return await asyncio.to_thread(_pinned, settings, source)
    raise FetchFailed("unsupported", f"{account.platform}: no file to fetch")


def _pinned(settings: Settings, url: str) -> Download:
    """A user's URL, sent to the address the outbound policy checked (no DNS rebinding)."""
    parts = urlsplit(url)
    try:
        address = OutboundPolicy.from_settings(settings).url_address(url, "attachments.url")
    except InvalidInput as exc:
        raise FetchFailed("forbidden", f"attachment URL refused: {exc}") from None
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    return Download(
        urlunsplit(parts._replace(netloc=netloc)),
        {"Host": parts.netloc.rpartition("@")[2]},
        {"sni_hostname": parts.hostname or ""},
    )


async def download(
    http: httpx.AsyncClient,
    store: BlobStore,
    target: Download,
    *,
    max_bytes: int,
    timeout: float,
) -> StoredBlob:
    """Stream `target` into the store, within `timeout` and `max_bytes`."""
    try:
        async with asyncio.timeout(timeout):
            async with http.stream(
                "GET",
                target.url,
                headers=target.headers,
                extensions=target.extensions,
                timeout=timeout,
            ) as response:
                if not response.is_success:
                    raise status_failure("download", response)
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise FetchFailed("too_large", f"{length} bytes, over {max_bytes}")
                return await store.put_stream(response.aiter_bytes(), max_bytes=max_bytes)
    except BlobRejected as exc:
        raise FetchFailed(exc.reason, str(exc) or type(exc).__name__) from None  # type: ignore[arg-type]
    except TimeoutError:
        raise FetchFailed("timeout", f"no file within {timeout:g}s", retriable=True) from None
    except httpx.HTTPError as exc:
        raise FetchFailed("timeout", f"download: {type(exc).__name__}", retriable=True) from None
