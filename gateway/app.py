"""`create_app(settings)`: one ASGI app serving REST, `GET /ws` and `/socket.io/`."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure

from gateway.api import accounts, attachments, inbox, ops, presence, push, webhooks
from gateway.api.page import mount_page
from gateway.errors import TooManyRequests
from gateway.middleware import BodyLimit, RequestLog, with_security_headers
from gateway.origin import OriginPolicy
from gateway.runtime import Runtime
from hubcore.errors import HttpError, HubError, InvalidField, InvalidInput
from hubcore.ratelimit import retry_after
from hubcore.settings import Settings

log = structlog.get_logger("gateway")

SOCKETIO_PREFIX = "/socket.io"


class GatewayApp:
    """Routes by path before any framework runs: `/ws` to the raw WebSocket handler,
    `/socket.io/` (after the Origin check) to the Socket.IO server, the rest to FastAPI. The
    ASGI lifespan starts and stops the `Runtime`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        self.api = build_api(self.runtime)
        self._http = RequestLog(
            BodyLimit(
                self.api,
                settings.max_body_bytes,
                uploads=(
                    attachments.UPLOAD_PATH,
                    settings.media_max_bytes + attachments.MULTIPART_SLACK,
                ),
            )
        )
        self._origins = OriginPolicy(settings.cors_origins)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        if kind == "websocket" and path == "/ws":
            await self.runtime.websocket(scope, receive, with_security_headers(send))
        elif path == SOCKETIO_PREFIX or path.startswith(SOCKETIO_PREFIX + "/"):
            send = with_security_headers(send)
            if self._origins.allows(scope):
                await self.runtime.socketio.app(scope, receive, send)
            else:
                await self._origins.refuse(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as exc:
                    log.exception("gateway_start_failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                log.info("gateway_started", topics=self.runtime.topics.namespace)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_api(runtime: Runtime) -> FastAPI:
    """The FastAPI app of the REST routes, with CORS and error mapping."""
    api = FastAPI(
        title="hub gateway",
        version="1",
        description=(
            "REST API of the hub. Real-time events: `GET /ws` (JSON WebSocket protocol) and "
            "`/socket.io/`; see docs/protocol.md."
        ),
    )
    api.state.runtime = runtime
    api.add_middleware(
        CORSMiddleware,
        allow_origins=list(runtime.settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID"],
        max_age=600,
    )
    api.include_router(inbox.router)
    api.include_router(accounts.router)
    api.include_router(ops.router)
    api.include_router(push.router)
    api.include_router(attachments.router)
    api.include_router(presence.router)
    api.include_router(webhooks.router)
    mount_page(api)

    @api.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
        if isinstance(exc, HttpError):
            status = exc.status
        elif isinstance(exc, InvalidInput):
            status = 422
        else:
            status = 503 if exc.retriable else 500
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": retry_after(exc.retry_after)}
        body = {"detail": str(exc), "code": exc.code}
        if isinstance(exc, InvalidField):
            body["field"] = exc.field
        return JSONResponse(body, status_code=status, headers=headers)

    @api.exception_handler(ConnectionFailure)
    async def _mongo_down(request: Request, exc: ConnectionFailure) -> JSONResponse:
        log.warning("mongodb_unavailable", error=str(exc)[:200])
        return JSONResponse(
            {"detail": "MongoDB is not reachable; retry later", "code": "service_unavailable"},
            status_code=503,
        )

    return api


def create_app(settings: Settings) -> GatewayApp:
    """The gateway's ASGI app; serve it with `gateway.server` (uvicorn, websockets-sansio)."""
    return GatewayApp(settings)
