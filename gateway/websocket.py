"""`GET /ws`: the JSON protocol (authenticate, resume, ping) on top of a `WsConnection`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from pydantic import ValidationError

from gateway.auth import Identity, seconds_left
from gateway.catchup import CatchUp, begin_catch_up, hand_over, live_cursor, replay
from gateway.connection import (
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHORIZED,
    AsgiSend,
    WsConnection,
)
from gateway.endpoint import SocketEndpoint
from gateway.errors import Unauthorized
from gateway.frames import PONG_FRAME, authenticated_frame, error_frame
from gateway.limits import CLOSE_RATE_LIMITED, refuse_handshake
from gateway.metrics import AUTH_FAILURES, CONNECTIONS
from gateway.origin import OriginPolicy
from hubcore.ratelimit import retry_after
from schemas.ws import CLIENT_FRAME_ADAPTER, Authenticate, Ping

log = structlog.get_logger("gateway.ws")

CLOSE_GRACE_SECONDS = 5.0  # how long a server-side close may wait for a stuck reader


class WebSocketEndpoint(SocketEndpoint):
    """The raw ASGI handler of `/ws` (no framework on the per-frame path)."""

    def setup(self) -> None:
        self.origins = OriginPolicy(self.settings.cors_origins)
        self.open_connections = 0  # accepted sockets, authenticated or not

    async def __call__(self, scope: dict[str, Any], receive: Any, send: AsgiSend) -> None:
        if not self.origins.allows(scope):
            await self.origins.refuse(scope, receive, send)
            return
        if wait := self.limits.admit_ip(scope):
            await refuse_handshake(scope, receive, send, wait)
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await _Session(self, receive, send).run()


class _Session:
    """One accepted socket: authentication, then frames until either side closes."""

    def __init__(self, endpoint: WebSocketEndpoint, receive: Any, send: AsgiSend) -> None:
        self.endpoint = endpoint
        self.settings = endpoint.settings
        self.receive = receive
        self.conn = WsConnection(send, self.settings.ws_send_queue)
        self.identity: Identity | None = None
        self.resumed: str | None = None
        self.client_close_code: int | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        started = time.monotonic()
        CONNECTIONS.labels("ws").inc()
        self.endpoint.open_connections += 1
        writer = asyncio.create_task(self.conn.run_writer())
        try:
            text = await self._first_frame()
            if text is not None and self._authenticate(text, first=True):
                self._tasks.append(asyncio.create_task(self._read_loop()))
            await self.conn.finished.wait()
            if self.conn.close_code is not None:
                # Let the error frame and close go out, but never wait on a stuck reader.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), CLOSE_GRACE_SECONDS)
        finally:
            self.endpoint.registry.remove_ws(self.conn)
            if self._expiry is not None:
                self._expiry.cancel()
            for task in [*self._tasks, writer]:
                task.cancel()
            await asyncio.gather(*self._tasks, writer, return_exceptions=True)
            CONNECTIONS.labels("ws").dec()
            self.endpoint.open_connections -= 1
            log.info(
                "ws_connection",
                connection_id=self.conn.id,
                user_id=self.conn.user_id,
                close_code=self.conn.close_code or self.client_close_code,
                events_sent=self.conn.frames_sent,
                resumed=self.resumed,
                duration_ms=round((time.monotonic() - started) * 1000),
            )

    # --- frames in --------------------------------------------------------------------
    async def _first_frame(self) -> str | None:
        try:
            message = await asyncio.wait_for(self.receive(), self.settings.ws_auth_timeout)
        except TimeoutError:
            self._refuse(
                "timeout", f"no authenticate frame within {self.settings.ws_auth_timeout:g} s"
            )
            return None
        return self._text_of(message, first=True)

    async def _read_loop(self) -> None:
        while True:
            text = self._text_of(await self.receive(), first=False)
            if self.conn.finished.is_set():
                return
            if text is None:
                continue
            try:
                frame = CLIENT_FRAME_ADAPTER.validate_json(text)
            except ValidationError:
                self.conn.control(
                    error_frame("invalid_frame", 'expected {"type": "ping"} or "authenticate"')
                )
                continue
            if isinstance(frame, Ping):
                self.conn.control(PONG_FRAME)
            else:
                self._authenticate(text, first=False, frame=frame)

    def _text_of(self, message: dict[str, Any], *, first: bool) -> str | None:
        """The text of a received frame; None when there is none to act on."""
        if message["type"] == "websocket.disconnect":
            self.client_close_code = message.get("code")
            self.conn.client_gone()
            return None
        text = message.get("text")
        if text is None:
            if first:
                self._refuse("protocol", "the first frame must be a JSON authenticate frame")
            else:
                self.conn.control(error_frame("invalid_frame", "frames must be JSON text"))
            return None
        # uvicorn enforces the limit in bytes already; this guards other servers.
        if len(text) > self.settings.ws_max_frame_bytes:
            self.conn.close(CLOSE_TOO_BIG, "frame too large")
            return None
        return str(text)

    # --- authentication ---------------------------------------------------------------
    def _authenticate(self, text: str, *, first: bool, frame: Any = None) -> bool:
        if frame is None:
            try:
                frame = CLIENT_FRAME_ADAPTER.validate_json(text)
            except ValidationError:
                frame = None
        if not isinstance(frame, Authenticate):
            self._refuse("protocol", "the first frame must be an authenticate frame with a token")
            return False
        try:
            identity = self.endpoint.verifier.verify(frame.token)
        except Unauthorized as exc:
            self._refuse("token", exc.message)
            return False
        if self.identity is not None and identity.user_id != self.identity.user_id:
            self._refuse("token", "a connection cannot change its user")
            return False
        limits = self.endpoint.limits
        if first and (full := limits.too_many_open(self.endpoint.registry, identity.user_id)):
            self.conn.close(
                CLOSE_RATE_LIMITED,
                "too many connections",
                error=error_frame("too_many_connections", full),
            )
            return False
        if first and (wait := limits.admit_user(identity.user_id)):
            self.conn.close(
                CLOSE_RATE_LIMITED,
                "rate limited",
                error=error_frame(
                    "rate_limited",
                    f"too many connections of this user; retry after {retry_after(wait)} s",
                ),
            )
            return False
        self.identity = identity
        self._schedule_expiry(identity)
        if not first:
            self.conn.control(authenticated_frame(identity.user_id, self.conn.id))
            return True
        self.conn.bind(identity.user_id)
        if frame.resume_from is None:
            # The cursor where its live events begin: a resume from it misses nothing.
            cursor = live_cursor(self.conn, self.endpoint.pump)
            self.conn.control(authenticated_frame(identity.user_id, self.conn.id, cursor))
            self.endpoint.registry.add_ws(self.conn)
        else:
            self._begin_resume(identity, frame.resume_from)
        return True

    def _refuse(self, reason: str, message: str) -> None:
        AUTH_FAILURES.labels("ws", reason).inc()
        self.conn.close(
            CLOSE_UNAUTHORIZED, "unauthorized", error=error_frame("unauthorized", message)
        )

    def _schedule_expiry(self, identity: Identity) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, seconds_left(identity)), self._expired)

    def _expired(self) -> None:
        self.conn.close(
            CLOSE_UNAUTHORIZED,
            "token expired",
            error=error_frame("token_expired", "the token expired; reconnect with a fresh one"),
        )

    # --- resume -----------------------------------------------------------------------
    def _begin_resume(self, identity: Identity, text: str) -> None:
        registry, pump = self.endpoint.registry, self.endpoint.pump
        begun = begin_catch_up(self.conn, registry, pump, text)
        # `authenticated` names where the events that follow it begin: the resume's cursor,
        # or (refused) the live position.
        cursor = str(begun.cursor) if isinstance(begun, CatchUp) else live_cursor(self.conn, pump)
        self.conn.control(authenticated_frame(identity.user_id, self.conn.id, cursor))
        if isinstance(begun, CatchUp):
            self._tasks.append(asyncio.create_task(self._replay(begun)))
        else:
            self._resume_failed(*begun)

    async def _replay(self, catch_up: CatchUp) -> None:
        outcome = await replay(self.conn, self.endpoint.resume, catch_up)
        if outcome.error is not None:
            self._resume_failed(*outcome.error)
        else:
            self.resumed = f"{len(outcome.events)} events"
        await hand_over(self.conn, catch_up, outcome)

    def _resume_failed(self, code: str, message: str) -> None:
        self.resumed = code
        self.conn.control(error_frame(code, message))
