"""Local stand-ins of the platforms' send APIs, speaking their request and answer formats.

- Telegram `POST /bot{token}/sendMessage`: `{"ok": true, "result": {"message_id"}}`; errors
  `{"ok": false, "error_code", "description", "parameters": {"retry_after"}}`.
- WhatsApp Cloud API `POST /{phone-number-id}/messages` (Bearer token): `{"messages":
  [{"id": "wamid..."}]}`; errors `{"error": {"message", "type", "code"}}` (190: bad token).
- Slack `POST /chat.postMessage` (Bearer token): 200 `{"ok": true, "ts"}`, 200 `{"ok":
  false, "error": "invalid_auth"}`, 429 with `Retry-After`.
- Generic callback `POST /callback`: records the body and its signature header.

`script` queues answers for the next calls (`"429"`, `"500"`, `"hang"`) so a test can put
a rate limit or an outage in front of a success.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.local_servers import serving_app


@dataclass
class Call:
    platform: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class PlatformApis:
    """The valid credentials and everything the stand-ins were sent."""

    telegram_token: str = "123456:ABC-DEF1234ghIkl"
    access_token: str = "EAAG-wa-token"
    slack_token: str = "xoxb-slack-token"
    calls: list[Call] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    retry_after: int = 1
    hang_seconds: float = 30.0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def of(self, platform: str) -> list[Call]:
        return [c for c in self.calls if c.platform == platform]

    async def _record(self, platform: str, request: Request) -> tuple[Call, str | None]:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        call = Call(platform, request.method, request.url.path, dict(request.headers), body, raw)
        self.calls.append(call)
        scripted = self.script.pop(0) if self.script else None
        if scripted == "hang":
            await asyncio.sleep(self.hang_seconds)
        return call, scripted

    async def telegram(self, request: Request) -> Response:
        _, scripted = await self._record("telegram", request)
        if request.path_params["token"] != self.telegram_token:
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
        return JSONResponse({"ok": True, "result": {"message_id": 9000 + next(self._ids)}})

    async def whatsapp(self, request: Request) -> Response:
        _, scripted = await self._record("whatsapp", request)
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
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
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.OUT{next(self._ids)}"}],
            }
        )

    async def slack(self, request: Request) -> Response:
        _, scripted = await self._record("slack", request)
        if request.headers.get("authorization") != f"Bearer {self.slack_token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if scripted == "429":
            return JSONResponse(
                {"ok": False, "error": "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        if scripted == "500":
            return Response("upstream error", status_code=503)
        body = await request.json()
        return JSONResponse(
            {"ok": True, "channel": body["channel"], "ts": f"1700000100.{next(self._ids):06d}"}
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
                Route("/whatsapp/{phone}/messages", self.whatsapp, methods=["POST"]),
                Route("/slack/chat.postMessage", self.slack, methods=["POST"]),
                Route("/callback", self.generic, methods=["POST"]),
            ]
        )


def serving(apis: PlatformApis) -> AbstractAsyncContextManager[str]:
    """Serve the stand-ins on a free loopback port; yields the base URL."""
    return serving_app(apis.app(), "the platform stand-ins")
