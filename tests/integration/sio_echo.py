"""A test-only Socket.IO app built from the gateway's layer (gateway/engineio.py and
gateway/sio_core.py) with the echo handlers socketio/socket.io-protocol's test-suite
expects of the server under test, served by uvicorn on loopback with the suite's settings.

Its reference server: `pingInterval: 300, pingTimeout: 200, maxPayload: 1000000,
connectTimeout: 1000`; on connection (main namespace and `/custom`) it emits `auth` with
the handshake's auth, echoes `message` as `message-back`, and acks `message-with-ack`
with the same arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from gateway.engineio import EngineOptions, EngineServer, EngineSession, respond
from gateway.sio_core import ACK, CONNECT, SocketIOServer, emit, send_packet
from tests.integration.gateway_kit import serving

PING_INTERVAL, PING_TIMEOUT = 0.3, 0.2
MAX_PAYLOAD = 1_000_000
CONNECT_TIMEOUT = 1.0


@dataclass(eq=False, slots=True)
class _Client:
    deadline: asyncio.TimerHandle
    joined: set[str] = field(default_factory=set)


class EchoHandlers:
    """Session hooks and the echo namespace handler (`/` and `/custom` alike)."""

    def on_open(self, session: EngineSession) -> None:
        # Socket.IO's connectTimeout: no namespace joined in time closes the session.
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(CONNECT_TIMEOUT, self._no_connect, session)
        session.state = _Client(deadline)

    def _no_connect(self, session: EngineSession) -> None:
        client: _Client = session.state
        if not client.joined:
            session.close("connect timeout")

    def on_close(self, session: EngineSession, reason: str) -> None:
        client: _Client = session.state
        client.deadline.cancel()

    def on_connect(self, session: EngineSession, namespace: str, auth: dict[str, Any]) -> None:
        client: _Client = session.state
        client.joined.add(namespace)
        send_packet(session, CONNECT, namespace, {"sid": secrets.token_urlsafe(15)})
        emit(session, namespace, "auth", auth)

    def on_event(
        self, session: EngineSession, namespace: str, args: list[Any], ack: int | None
    ) -> None:
        client: _Client = session.state
        if namespace not in client.joined:
            return
        name, *rest = args
        if name == "message":
            emit(session, namespace, "message-back", *rest)
        elif name == "message-with-ack" and ack is not None:
            send_packet(session, ACK, namespace, rest, ack)

    def on_disconnect(self, session: EngineSession, namespace: str) -> None:
        client: _Client = session.state
        client.joined.discard(namespace)


class EchoApp:
    """ASGI app: `/socket.io/` on the layer, everything else 404."""

    def __init__(self, ping_interval: float = PING_INTERVAL) -> None:
        handlers = EchoHandlers()
        server = SocketIOServer({"/": handlers, "/custom": handlers}, handlers)
        options = EngineOptions(ping_interval, PING_TIMEOUT, MAX_PAYLOAD, send_queue=256)
        self.engine = EngineServer(options, server)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        if scope["path"] != "/socket.io/":
            if scope["type"] == "http":
                await respond(send, 404, b"not found")
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        query = urllib.parse.parse_qs(scope["query_string"].decode("latin-1"))
        await self.engine(scope, receive, send, [], query)


@contextlib.asynccontextmanager
async def running_echo_app(ping_interval: float = PING_INTERVAL) -> AsyncIterator[str]:
    """Serve an `EchoApp` on a free loopback port; yields its base URL. A long
    `ping_interval` keeps the heartbeat from closing a session a test closes otherwise."""
    app = EchoApp(ping_interval)
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        ws_max_size=MAX_PAYLOAD,
        ws_per_message_deflate=False,
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    async with serving(uvicorn.Server(config)) as port:
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await app.engine.close_all()
