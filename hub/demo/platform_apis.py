"""Local stand-ins of the platforms' send APIs, speaking their request and answer formats,
for tests and `hub up --demo` (loopback only).

- Telegram `POST /bot{token}/sendMessage`: `{"ok": true, "result": {"message_id"}}`; errors
  `{"ok": false, "error_code", "description", "parameters": {"retry_after"}}`.
- WhatsApp Cloud API `POST /{phone-number-id}/messages` (Bearer token): `{"messages":
  [{"id": "wamid..."}]}`; errors `{"error": {"message", "type", "code"}}` (190: bad token).
- Slack `POST /chat.postMessage` (Bearer token): 200 `{"ok": true, "ts"}`, 200 `{"ok":
  false, "error": "invalid_auth"}`, 429 with `Retry-After`.
- Generic callback `POST /callback`: records the body and its signature header.

Media (issue 24), each in the platform's own format, the files kept in `Call.files`:
- Telegram `sendPhoto`/`sendDocument`/`sendVoice`/`sendAudio`/`sendVideo`/`sendSticker`:
  multipart with `chat_id` and the method's file field; 400 `Bad Request: there is no
  photo in the request` without it.
- WhatsApp `POST /{phone-number-id}/media` (multipart `messaging_product`, `type`, `file`)
  → `{"id"}`; a media message naming an id never uploaded answers 400 (#100).
- Slack `files.getUploadURLExternal` (form-encoded only: JSON answers `invalid_arguments`)
  → `{"upload_url", "file_id"}`; the bytes `POST`ed to the upload URL; then
  `files.completeUploadExternal` `{"files": [{"id", "title"}], "channel_id"}` sharing
  only files whose bytes arrived.

`script` queues answers for the next calls (`"429"`, `"500"`, `"hang"`) so a test can put
a rate limit or an outage in front of a success. `any_token` accepts every non-empty
token (the demo's accounts each have their own). A WhatsApp phone number registered with
`report_statuses` gets what Meta sends after a message is accepted: signed `statuses`
webhooks, `delivered` and then `read` a moment later.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import structlog
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.demo import payloads
from hub.demo.media_files import MediaFiles
from hub.demo.serving import serving_app

log = structlog.get_logger("hub.demo")


@dataclass
class Call:
    platform: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float = field(default_factory=time.monotonic)
    # Multipart uploads: field name -> (file name, declared type, bytes).
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusReporter:
    """Where a WhatsApp phone number's `statuses` webhooks go, and the secret signing them."""

    connectors: str
    account_id: str
    phone_number_id: str
    app_secret: str


@dataclass
class PlatformApis:
    """The valid credentials and everything the stand-ins were sent."""

    telegram_token: str = "123456:ABC-DEF1234ghIkl"  # noqa: S105 - a stand-in's own
    access_token: str = "EAAG-wa-token"  # noqa: S105 - a stand-in's own
    slack_token: str = "xoxb-slack-token"  # noqa: S105 - a stand-in's own
    calls: list[Call] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    retry_after: int = 1
    hang_seconds: float = 30.0
    any_token: bool = False
    status_delay: float = 1.5
    files: MediaFiles | None = None  # received files' stand-ins (hub/demo/media_files.py)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _reporters: dict[str, StatusReporter] = field(default_factory=dict)
    # WhatsApp media ids and Slack file ids uploaded: id -> (file name, bytes).
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    slack_reserved: dict[str, tuple[str, int]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.files is None:
            self.files = MediaFiles(
                self.telegram_token, self.access_token, self.slack_token, self.any_token
            )

    def report_statuses(self, phone_number_id: str, reporter: StatusReporter) -> None:
        """Answer sends from this phone number with `statuses` webhooks, as Meta does."""
        self._reporters[phone_number_id] = reporter

    def cancel_reports(self) -> None:
        """Stop the status webhooks still to come."""
        for task in list(self._tasks):
            task.cancel()

    def _valid(self, given: str | None, expected: str) -> bool:
        return bool(given) if self.any_token else given == expected

    def of(self, platform: str) -> list[Call]:
        return [c for c in self.calls if c.platform == platform]

    async def _record(self, platform: str, request: Request) -> tuple[Call, str | None]:
        raw = await request.body()
        files: dict[str, tuple[str, str, bytes]] = {}
        kind = request.headers.get("content-type", "")
        body: Any
        if kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            body = {}
            async with request.form() as form:
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read()
                        files[name] = (value.filename or "", value.content_type or "", data)
                    else:
                        body[name] = value
        else:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None
        call = Call(platform, request.method, request.url.path, dict(request.headers), body, raw)
        call.files = files
        self.calls.append(call)
        scripted = self.script.pop(0) if self.script else None
        if scripted == "hang":
            await asyncio.sleep(self.hang_seconds)
        return call, scripted

    async def telegram(self, request: Request) -> Response:
        call, scripted = await self._record("telegram", request)
        if not self._valid(request.path_params["token"], self.telegram_token):
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        if scripted == "429":
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {self.retry_after}",
                    "parameters": {"retry_after": self.retry_after},
                },
                status_code=429,
            )
        if scripted == "500":
            return JSONResponse(
                {"ok": False, "error_code": 500, "description": "Internal Server Error"},
                status_code=500,
            )
        method = request.path_params.get("method", "sendMessage")
        field_name = TELEGRAM_FILE_FIELDS.get(method)
        if method != "sendMessage" and field_name is None:
            return JSONResponse(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404
            )
        if field_name is not None:
            if not isinstance(call.body, dict) or not call.body.get("chat_id"):
                return _telegram_bad_request("chat_id is empty")
            if field_name not in call.files:
                return _telegram_bad_request(f"there is no {field_name} in the request")
        return JSONResponse({"ok": True, "result": {"message_id": 9000 + next(self._ids)}})

    async def whatsapp(self, request: Request) -> Response:
        _, scripted = await self._record("whatsapp", request)
        if not self._valid(_bearer(request), self.access_token):
            error = {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException",
                "code": 190,
                "fbtrace_id": "Aa1",
            }
            return JSONResponse({"error": error}, status_code=401)
        if scripted == "429":
            error = {
                "message": "(#130429) Rate limit hit",
                "type": "OAuthException",
                "code": 130429,
            }
            return JSONResponse(
                {"error": error}, status_code=429, headers={"Retry-After": str(self.retry_after)}
            )
        if scripted == "500":
            error = {"message": "An unknown error occurred", "type": "OAuthException", "code": 1}
            return JSONResponse({"error": error}, status_code=500)
        body = await request.json()
        kind = body.get("type")
        if kind in ("image", "audio", "video", "document", "sticker"):
            media_id = (body.get(kind) or {}).get("id")
            if media_id not in self.media:
                error = {
                    "message": "(#100) Invalid parameter",
                    "type": "OAuthException",
                    "code": 100,
                }
                return JSONResponse({"error": error}, status_code=400)
        wamid = f"wamid.OUT{next(self._ids)}"
        reporter = self._reporters.get(request.path_params["phone"])
        if reporter is not None:
            task = asyncio.create_task(self._report(reporter, wamid, str(body["to"])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            }
        )

    async def whatsapp_media(self, request: Request) -> Response:
        call, _ = await self._record("whatsapp", request)
        if not self._valid(_bearer(request), self.access_token):
            error = {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}
            return JSONResponse({"error": error}, status_code=401)
        fields = call.body if isinstance(call.body, dict) else {}
        if fields.get("messaging_product") != "whatsapp" or "file" not in call.files:
            error = {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}
            return JSONResponse({"error": error}, status_code=400)
        media_id = f"{1000000 + next(self._ids)}"
        name, _, data = call.files["file"]
        self.media[media_id] = (name, data)
        return JSONResponse({"id": media_id})

    async def _report(self, reporter: StatusReporter, wamid: str, recipient: str) -> None:
        for status in ("delivered", "read"):
            await asyncio.sleep(self.status_delay)
            req = payloads.whatsapp_status(
                reporter.account_id,
                reporter.phone_number_id,
                {"appSecret": reporter.app_secret},
                wamid,
                recipient,
                status,
            )
            try:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    resp = await client.post(
                        reporter.connectors + req.path, content=req.body, headers=req.headers
                    )
                log.info("whatsapp status webhook", status=status, answer=resp.status_code)
            except httpx.HTTPError as exc:
                log.warning("whatsapp status webhook not delivered", error=str(exc))
                return

    async def slack(self, request: Request) -> Response:
        call, scripted = await self._record("slack", request)
        if not self._valid(_bearer(request), self.slack_token):
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if scripted == "429":
            return JSONResponse(
                {"ok": False, "error": "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        if scripted == "500":
            return Response("upstream error", status_code=503)
        method = request.path_params.get("method", "chat.postMessage")
        if method == "files.getUploadURLExternal":
            return self._slack_reserve(request, call)
        body = await request.json()
        if method == "files.completeUploadExternal":
            return self._slack_complete(body)
        if method != "chat.postMessage":
            return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)
        return JSONResponse(
            {"ok": True, "channel": body["channel"], "ts": f"1700000100.{next(self._ids):06d}"}
        )

    def _slack_reserve(self, request: Request, call: Call) -> Response:
        fields = call.body
        form = call.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        if not form or not isinstance(fields, dict):
            # As Slack does: this method reads form fields, a JSON body has none of them.
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        length = str(fields.get("length", ""))
        if not fields.get("filename") or not length.isdigit():
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        file_id = f"F{next(self._ids):08d}"
        self.slack_reserved[file_id] = (str(fields["filename"]), int(length))
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {"ok": True, "upload_url": f"{base}/slack-files/upload/{file_id}", "file_id": file_id}
        )

    async def slack_upload(self, request: Request) -> Response:
        call, _ = await self._record("slack", request)
        file_id = request.path_params["file_id"]
        if file_id not in self.slack_reserved:
            return Response("Not Found", status_code=404)
        name, length = self.slack_reserved[file_id]
        data = next(iter(call.files.values()))[2] if call.files else call.raw
        if len(data) != length:
            return Response("length mismatch", status_code=400)
        self.media[file_id] = (name, data)
        return Response(f"OK - {len(data)}", media_type="text/plain")

    def _slack_complete(self, body: dict[str, Any]) -> Response:
        files = body.get("files")
        if not isinstance(files, list) or not files or not body.get("channel_id"):
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        if any(f.get("id") not in self.media for f in files):
            return JSONResponse({"ok": False, "error": "file_not_found"})
        return JSONResponse(
            {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")} for f in files]}
        )

    async def generic(self, request: Request) -> Response:
        call, scripted = await self._record("generic", request)
        if scripted in ("429", "500"):
            return Response(status_code=int(scripted), headers={"Retry-After": "1"})
        return JSONResponse({"id": f"crm-{call.body['messageId']}"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/telegram/bot{token}/sendMessage", self.telegram, methods=["POST"]),
                Route("/telegram/bot{token}/{method}", self.telegram, methods=["POST"]),
                Route("/whatsapp/{phone}/messages", self.whatsapp, methods=["POST"]),
                Route("/whatsapp/{phone}/media", self.whatsapp_media, methods=["POST"]),
                Route("/slack/chat.postMessage", self.slack, methods=["POST"]),
                Route("/slack/{method}", self.slack, methods=["POST"]),
                Route("/slack-files/upload/{file_id}", self.slack_upload, methods=["POST"]),
                Route("/callback", self.generic, methods=["POST"]),
                *(self.files.routes() if self.files else []),
            ]
        )


TELEGRAM_FILE_FIELDS = {
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendVoice": "voice",
    "sendAudio": "audio",
    "sendVideo": "video",
    "sendSticker": "sticker",
}


def _telegram_bad_request(problem: str) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error_code": 400, "description": f"Bad Request: {problem}"},
        status_code=400,
    )


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme == "Bearer" else None


@asynccontextmanager
async def serving(apis: PlatformApis, port: int = 0) -> AsyncIterator[str]:
    """Serve the stand-ins on loopback; yields the base URL (paths below it per platform)."""
    try:
        async with serving_app(apis.app(), "the platform stand-ins", port=port) as url:
            yield url
    finally:
        apis.cancel_reports()
        if apis.files is not None:
            apis.files.release()


def api_bases(url: str) -> dict[str, str]:
    """The hub's settings that point its senders at the stand-ins served at `url`."""
    return {
        "HUB_TELEGRAM_API_BASE": f"{url}/telegram",
        "HUB_WHATSAPP_API_BASE": f"{url}/whatsapp",
        "HUB_SLACK_API_BASE": f"{url}/slack",
    }
