"""Local stand-ins of where the platforms keep received files, in their real formats.

- Telegram `GET /telegram/bot{token}/getFile?file_id=` answers `{"ok": true, "result":
  {"file_id", "file_unique_id", "file_size", "file_path"}}` (an unknown id: 400 `{"ok":
  false, "description": "Bad Request: invalid file_id"}`); the bytes come from
  `GET /telegram/file/bot{token}/{file_path}`.
- WhatsApp `GET /whatsapp/{media-id}` (Bearer) answers `{"messaging_product", "url",
  "mime_type", "sha256", "file_size", "id"}`; the `url` serves the bytes to the same Bearer
  token only (401 otherwise, as Meta's media host does).
- Slack `GET /slack-files/{path}`: a file's `url_private`, for the bot token (Bearer) only.
- Generic `GET /files/{name}`: a plain URL a generic source names.

`fail` makes a file answer `"404"`, `"403"`, `"500"` or `"hang"` (until `release`);
`downloads` counts the GETs of each file's bytes. A reference starting `demo-photo`,
`demo-voice` or `demo-pdf` serves the demo's sample file of that kind (`DEMO_FILES`), so
`hub simulate` can name new files without registering them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

# The smallest valid files of their types: what the demo's messages carry.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
OGG = b"OggS\x00\x02" + bytes(20) + b"\x01\x1evorbis" + bytes(40)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
DEMO_FILES: dict[str, tuple[bytes, str]] = {
    "photo": (PNG, "image/png"),
    "voice": (OGG, "audio/ogg"),
    "pdf": (PDF, "application/pdf"),
}


def demo_file(ref: str) -> tuple[bytes, str] | None:
    """The sample file a `demo-<kind>...` reference names."""
    for kind, found in DEMO_FILES.items():
        if any(part.startswith(f"demo-{kind}") for part in ref.split("/")):
            return found
    return None


@dataclass
class MediaFiles:
    """Files by the platform's reference (Telegram file_id, WhatsApp media id, a path)."""

    telegram_token: str
    access_token: str
    slack_token: str
    any_token: bool = False
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)
    downloads: Counter[str] = field(default_factory=Counter)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, ref: str, data: bytes, mime_type: str) -> None:
        self.files[ref] = (data, mime_type)

    def file(self, ref: str) -> tuple[bytes, str] | None:
        return self.files.get(ref) or demo_file(ref)

    def release(self) -> None:
        """Let every held ("hang") download answer."""
        self.released.set()

    def _valid(self, given: str | None, expected: str) -> bool:
        return bool(given) if self.any_token else given == expected

    async def _serve(self, ref: str) -> Response:
        self.downloads[ref] += 1
        failure = self.fail.get(ref)
        if failure == "hang":
            await self.released.wait()
        elif failure in ("404", "403", "500"):
            return Response(f"error {failure}", status_code=int(failure))
        found = self.file(ref)
        if found is None:
            return Response("not found", status_code=404)
        return Response(found[0], media_type=found[1])

    async def telegram_get_file(self, request: Request) -> Response:
        if not self._valid(request.path_params["token"], self.telegram_token):
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        file_id = request.query_params.get("file_id", "")
        found = self.file(file_id)
        if found is None and file_id not in self.fail:
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"},
                status_code=400,
            )
        size = len(found[0]) if found else 0
        result = {
            "file_id": file_id,
            "file_unique_id": "u" + hashlib.sha256(file_id.encode()).hexdigest()[:12],
            "file_size": size,
            "file_path": f"documents/{file_id}",
        }
        return JSONResponse({"ok": True, "result": result})

    async def telegram_file(self, request: Request) -> Response:
        if not self._valid(request.path_params["token"], self.telegram_token):
            return Response("Unauthorized", status_code=401)
        return await self._serve(request.path_params["path"].removeprefix("documents/"))

    async def whatsapp_media_url(self, request: Request) -> Response:
        if not self._valid(_bearer(request), self.access_token):
            error = {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}
            return JSONResponse({"error": error}, status_code=401)
        media_id = request.path_params["media_id"]
        found = self.file(media_id)
        if found is None and media_id not in self.fail:
            error = {"message": "Unsupported get request.", "type": "GraphMethodException"}
            return JSONResponse({"error": {**error, "code": 100}}, status_code=400)
        data, mime_type = found or (b"", "application/octet-stream")
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{str(request.base_url).rstrip('/')}/whatsapp-cdn/{media_id}?ext=1",
                "mime_type": mime_type,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": str(len(data)),
                "id": media_id,
            }
        )

    async def whatsapp_download(self, request: Request) -> Response:
        if not self._valid(_bearer(request), self.access_token):
            return Response("Unauthorized", status_code=401)
        return await self._serve(request.path_params["media_id"])

    async def slack_file(self, request: Request) -> Response:
        if not self._valid(_bearer(request), self.slack_token):
            return Response("Forbidden", status_code=403)
        return await self._serve(request.path_params["path"])

    async def generic_file(self, request: Request) -> Response:
        return await self._serve(request.path_params["name"])

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/telegram/bot{token}/getFile", self.telegram_get_file, methods=["GET"]),
            Route("/telegram/file/bot{token}/{path:path}", self.telegram_file, methods=["GET"]),
            Route("/whatsapp/{media_id}", self.whatsapp_media_url, methods=["GET"]),
            Route("/whatsapp-cdn/{media_id}", self.whatsapp_download, methods=["GET"]),
            Route("/slack-files/{path:path}", self.slack_file, methods=["GET"]),
            Route("/files/{name}", self.generic_file, methods=["GET"]),
        ]


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme == "Bearer" else None


# --- the demo's messages with files, in each platform's format -------------------------


def telegram_media(kind: str, message_id: str, caption: str) -> dict[str, Any]:
    """The Message fields of a photo (two sizes), a voice note or a PDF document."""
    ref = f"demo-{kind}-{message_id}"
    if kind == "photo":
        sizes = [
            {"file_id": f"{ref}-s", "file_unique_id": f"{ref}-s", "width": 1, "height": 1,
             "file_size": len(PNG)},
            {"file_id": ref, "file_unique_id": ref, "width": 1, "height": 1, "file_size": len(PNG)},
        ]  # fmt: skip
        return {"photo": sizes, "caption": caption}
    if kind == "voice":
        voice = {"file_id": ref, "file_unique_id": ref, "duration": 2, "mime_type": "audio/ogg"}
        return {"voice": voice}
    document = {"file_id": ref, "file_unique_id": ref, "file_name": "report.pdf",
                "mime_type": "application/pdf", "file_size": len(PDF)}  # fmt: skip
    return {"document": document, "caption": caption}


def whatsapp_media(kind: str, message_id: str, caption: str) -> dict[str, Any]:
    """A Cloud API message's `type` and content: `image`, `audio` (voice) or `document`."""
    ref = f"demo-{kind}-{message_id}"
    if kind == "photo":
        return {"type": "image", "image": {"id": ref, "mime_type": "image/png", "caption": caption}}
    if kind == "voice":
        return {"type": "audio", "audio": {"id": ref, "mime_type": "audio/ogg", "voice": True}}
    content = {"id": ref, "mime_type": "application/pdf", "filename": "report.pdf"}
    return {"type": "document", "document": {**content, "caption": caption}}


_NAMES = {"photo": ("photo.png", "image/png"), "voice": ("voice.ogg", "audio/ogg"),
          "pdf": ("report.pdf", "application/pdf")}  # fmt: skip


def slack_files(kind: str, message_id: str, files_url: str) -> list[dict[str, Any]]:
    """A `file_share` event's `files[]`, its `url_private` at the stand-in."""
    name, mime_type = _NAMES[kind]
    url = f"{files_url}/slack-files/demo-{kind}-{message_id}/{name}"
    data = DEMO_FILES[kind][0]
    return [
        {"id": f"F{message_id}", "name": name, "title": name, "mimetype": mime_type,
         "size": len(data), "url_private": url, "url_private_download": url}
    ]  # fmt: skip


def generic_attachments(kind: str, message_id: str, files_url: str) -> list[dict[str, Any]]:
    """The generic format's `attachments`: URLs at the stand-in."""
    name, mime_type = _NAMES[kind]
    return [{"url": f"{files_url}/files/demo-{kind}-{message_id}", "name": name,
             "mimeType": mime_type}]  # fmt: skip
