"""Local stand-ins of the platforms' send APIs, speaking their request and answer formats,
for tests and `hub up --demo` (loopback only).

- Telegram `POST /bot{token}/sendMessage`: `{"ok": true, "result": {"message_id"}}`; errors
  `{"ok": false, "error_code", "description", "parameters": {"retry_after"}}`.
- WhatsApp Cloud API `POST /{phone-number-id}/messages` (Bearer token): `{"messages":
  [{"id": "wamid..."}]}`; errors `{"error": {"message", "type", "code"}}` (190: bad token).
- Slack `POST /chat.postMessage` (Bearer token): 200 `{"ok": true, "ts"}`, 200 `{"ok":
  false, "error": "invalid_auth"}`, 429 with `Retry-After`.
- Generic callback `POST /callback`: records the body and its signature header.

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
        _, scripted = await self._record("slack", request)
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
                *(self.files.routes() if self.files else []),
            ]
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
