"""`/socket.io/`: the original service's Socket.IO protocol over python-socketio (ASGI)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import socketio
import structlog

from gateway.auth import Identity, TokenVerifier, seconds_left
from gateway.errors import Unauthorized
from gateway.frames import Event, error_data
from gateway.metrics import AUTH_FAILURES, CONNECTIONS, EVENTS_PUSHED
from gateway.registry import Registry
from hubcore.settings import Settings

log = structlog.get_logger("gateway.sio")


@dataclass(eq=False)
class _Socket:
    """What the gateway keeps of one Socket.IO socket."""

    deadline: asyncio.TimerHandle | None  # auth timeout, then token expiry
    identity: Identity | None = None


def room_of(key: bytes) -> str:
    """The room of a user's sockets (prefixed so it never meets a socket id)."""
    return "user:" + key.decode()


class SocketIOGateway:
    """Socket.IO server: `authenticate` with `{token}`, then the user's events by name.

    Each event is emitted once to the user's room; python-socketio encodes the packet once
    for all sockets in it. Events reach the room in topic order through one emitter task.
    Clients may also pass the token in the connect `auth` payload (Socket.IO v4 style).
    """

    def __init__(self, settings: Settings, verifier: TokenVerifier, registry: Registry) -> None:
        self.settings = settings
        self.verifier = verifier
        self.registry = registry
        self.server = socketio.AsyncServer(
            async_mode="asgi",
            # Engine.IO spells "any origin" as the string "*", not a list holding it.
            cors_allowed_origins="*" if "*" in settings.cors_origins else settings.cors_origins,
            max_http_buffer_size=settings.ws_max_frame_bytes,
            ping_interval=settings.ws_ping_interval,
            logger=False,
            engineio_logger=False,
        )
        self.app = socketio.ASGIApp(self.server, socketio_path="socket.io")
        self.sockets: dict[str, _Socket] = {}
        self._refusals: set[asyncio.Task[None]] = set()  # held so they are not collected
        self._out: asyncio.Queue[tuple[bytes, Event]] = asyncio.Queue()
        self._pushed = EVENTS_PUSHED.labels("socketio")
        self.server.on("connect", self._on_connect)
        self.server.on("disconnect", self._on_disconnect)
        self.server.on("authenticate", self._on_authenticate)

    def route(self, key: bytes, event: Event) -> None:
        """Queue an event for user `key`'s sockets (called by the pump, never awaits)."""
        self._out.put_nowait((key, event))

    async def run_emitter(self) -> None:
        """Emit queued events in order until cancelled."""
        while True:
            key, event = await self._out.get()
            sockets = self.registry.sio.get(key, 0)
            if not sockets:
                continue
            try:
                await self.server.emit(event.type, event.socketio_payload(), room=room_of(key))
                self._pushed.inc(sockets)
            except Exception:
                log.exception("sio_emit_failed", event_type=event.type)

    async def close(self) -> None:
        """Disconnect every socket (server shutdown)."""
        for socket in self.sockets.values():
            if socket.deadline is not None:
                socket.deadline.cancel()
        with contextlib.suppress(Exception):
            await self.server.shutdown()

    # --- handlers ---------------------------------------------------------------------
    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.settings.ws_auth_timeout
        deadline = loop.call_later(
            timeout, self._spawn_refuse, sid, "timeout", f"no authenticate within {timeout:g} s"
        )
        self.sockets[sid] = _Socket(deadline)
        CONNECTIONS.labels("socketio").inc()
        if isinstance(auth, dict) and "token" in auth:
            await self._on_authenticate(sid, auth)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        socket = self.sockets.pop(sid, None)
        if socket is None:
            return
        CONNECTIONS.labels("socketio").dec()
        if socket.deadline is not None:
            socket.deadline.cancel()
        if socket.identity is not None:
            self.registry.remove_sio(socket.identity.user_id.encode())
        log.info(
            "sio_connection",
            connection_id=sid,
            user_id=socket.identity.user_id if socket.identity else None,
            reason=str(reason),
        )

    async def _on_authenticate(self, sid: str, data: Any = None) -> None:
        socket = self.sockets.get(sid)
        if socket is None:
            return
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            await self._refuse(sid, "protocol", 'emit authenticate with {"token": "<jwt>"}')
            return
        try:
            identity = self.verifier.verify(token)
        except Unauthorized as exc:
            await self._refuse(sid, "token", exc.message)
            return
        first = socket.identity is None
        if not first and socket.identity and socket.identity.user_id != identity.user_id:
            await self._refuse(sid, "token", "a connection cannot change its user")
            return
        socket.identity = identity
        if socket.deadline is not None:
            socket.deadline.cancel()
        socket.deadline = asyncio.get_running_loop().call_later(
            max(0.0, seconds_left(identity)),
            self._spawn_refuse,
            sid,
            "expired",
            "the token expired; reconnect with a fresh one",
        )
        await self.server.emit(
            "authenticated", {"userId": identity.user_id, "connectionId": sid}, to=sid
        )
        if first:
            key = identity.user_id.encode()
            await self.server.enter_room(sid, room_of(key))
            self.registry.add_sio(key)

    def _spawn_refuse(self, sid: str, reason: str, message: str) -> None:
        task = asyncio.get_running_loop().create_task(self._refuse(sid, reason, message))
        self._refusals.add(task)
        task.add_done_callback(self._refusals.discard)

    async def _refuse(self, sid: str, reason: str, message: str) -> None:
        AUTH_FAILURES.labels("socketio", reason).inc()
        code = "token_expired" if reason == "expired" else "unauthorized"
        with contextlib.suppress(Exception):
            await self.server.emit("error", error_data(code, message), to=sid)
        await self.server.disconnect(sid)
