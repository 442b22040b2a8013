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
`downloads` counts the GETs of each file's bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route


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
        if ref not in self.files:
            return Response("not found", status_code=404)
        data, mime_type = self.files[ref]
        return Response(data, media_type=mime_type)

    async def telegram_get_file(self, request: Request) -> Response:
        if not self._valid(request.path_params["token"], self.telegram_token):
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        file_id = request.query_params.get("file_id", "")
        if file_id not in self.files and file_id not in self.fail:
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"},
                status_code=400,
            )
        size = len(self.files.get(file_id, (b"", ""))[0])
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
        if media_id not in self.files and media_id not in self.fail:
            error = {"message": "Unsupported get request.", "type": "GraphMethodException"}
            return JSONResponse({"error": {**error, "code": 100}}, status_code=400)
        data, mime_type = self.files.get(media_id, (b"", "application/octet-stream"))
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
