"""Engine.IO v4, server side: HTTP long-polling, WebSocket, the upgrade between them, pings.

Every session's outgoing packets go through one `WsConnection` outbox: a poll request
takes what is queued, and once the session is on a WebSocket the outbox's writer sends
each packet as one text frame, exactly as `/ws` does. Socket.IO (gateway/sio.py) sits on
top through `Handler`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from gateway.connection import AsgiSend, WsConnection

PROTOCOL = "4"
SEPARATOR = "\x1e"  # between packets of one long-polling payload
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_GRACE_SECONDS = 5.0  # how long a server-side close may wait for a stuck reader

# Engine.IO's error answers to bad requests (engine.io/lib/server.ts, `Server.errorMessages`).
UNKNOWN_TRANSPORT = (0, "Transport unknown")
UNKNOWN_SID = (1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")
UNSUPPORTED_PROTOCOL = (5, "Unsupported protocol version")


class Handler(Protocol):
    """What the layer above (Socket.IO) gets from a session."""

    def on_open(self, session: EngineSession) -> None: ...

    def on_message(self, session: EngineSession, data: str) -> None: ...

    def on_binary(self, session: EngineSession, data: bytes) -> None: ...

    def on_close(self, session: EngineSession, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineOptions:
    ping_interval: float
    ping_timeout: float
    max_payload: int
    send_queue: int


@dataclass(eq=False, slots=True)
class EngineSession:
    """One Engine.IO session; `conn` is its outbox whatever the transport."""

    sid: str
    conn: WsConnection
    engine: EngineServer
    websocket: bool = False  # on the WebSocket transport (from the start or upgraded)
    upgrading: bool = False
    probed: bool = False  # upgrading, `3probe` sent: a poll now ends at once
    polling: bool = False  # a GET is waiting for packets
    closed: bool = False
    closing: bool = False  # closed, the next poll answers the close packet
    client_closed: bool = False  # the client sent the close packet
    state: Any = None  # the layer above's own object
    _ping: asyncio.TimerHandle | None = field(default=None, repr=False)
    _timeout: asyncio.TimerHandle | None = field(default=None, repr=False)

    def send(self, packet: str) -> None:
        """Queue an Engine.IO packet (`4...` for a message) behind what is queued."""
        self.conn.control(packet)

    def send_binary(self, data: bytes) -> None:
        """Queue a binary message (a Socket.IO attachment)."""
        self.conn.binary(data)

    def close(self, reason: str, code: int = CLOSE_NORMAL, *, flush: bool = False) -> None:
        """Close after what is queued has gone out; with `flush`, a long-polling client
        may still fetch it (an `error` and the disconnect of a refusal)."""
        self.conn.close(code, reason)
        self.engine.drop(self, reason, flush=flush)

    # --- heartbeat ----------------------------------------------------------------------
    def schedule_ping(self) -> None:
        loop = asyncio.get_running_loop()
        self._ping = loop.call_later(self.engine.options.ping_interval, self._send_ping)

    def _send_ping(self) -> None:
        self.send("2")
        loop = asyncio.get_running_loop()
        self._timeout = loop.call_later(self.engine.options.ping_timeout, self._ping_timeout)

    def _ping_timeout(self) -> None:
        self.close("ping timeout", CLOSE_GOING_AWAY)

    def pong(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
            self.schedule_ping()

    def stop_timers(self) -> None:
        for timer in (self._ping, self._timeout):
            if timer is not None:
                timer.cancel()


class EngineServer:
    """The sessions of one process and the ASGI handling of `/socket.io/` requests."""

    def __init__(self, options: EngineOptions, handler: Handler) -> None:
        self.options = options
        self.handler = handler
        self.sessions: dict[str, EngineSession] = {}

    def drop(self, session: EngineSession, reason: str, *, flush: bool = False) -> None:
        """Forget a session (idempotent); the handler hears of it once."""
        if session.closed:
            return
        session.closed = True
        session.stop_timers()
        if not session.polling and (session.websocket or not flush):
            self.sessions.pop(session.sid, None)
        else:
            # A long-polling client still has to fetch the last packets (an `error`, the
            # disconnect): the next poll or upgrade takes them, or they go after a grace.
            asyncio.get_running_loop().call_later(
                self.options.ping_timeout, self.sessions.pop, session.sid, None
            )
        self.handler.on_close(session, reason)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            session.send("1")
            session.close("server shutting down", CLOSE_GOING_AWAY)

    # --- requests -----------------------------------------------------------------------
    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: AsgiSend,
        headers: list[Any],
        query: dict[str, list[str]],
    ) -> None:
        """Serve one request; `query` is its parsed query string."""
        transport = query.get("transport", [""])[0]
        sid = query.get("sid", [None])[0]
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, query, sid, transport)
            return
        method = scope["method"]
        if method == "OPTIONS":  # CORS preflight of a cross-origin poll
            await respond(send, 204, b"", headers)
            return
        if query.get("EIO", [""])[0] != PROTOCOL:
            await respond_error(send, UNSUPPORTED_PROTOCOL, headers)
        elif transport != "polling":
            await respond_error(send, UNKNOWN_TRANSPORT, headers)
        elif sid is None:
            if method != "GET":
                await respond_error(send, BAD_HANDSHAKE_METHOD, headers)
            else:
                opened = self._open(websocket=False)
                await respond(send, 200, self._open_packet(opened, ["websocket"]), headers)
        elif (session := self.sessions.get(sid)) is None or session.websocket:
            await respond_error(send, UNKNOWN_SID, headers)
        elif method == "GET":
            await self._poll(session, send, headers)
        elif method == "POST":
            await self._post(session, receive, send, headers)
        else:
            await respond_error(send, BAD_REQUEST, headers)

    def _open(self, *, websocket: bool) -> EngineSession:
        sid = secrets.token_urlsafe(15)
        conn = WsConnection(None, self.options.send_queue, socketio=True)
        session = EngineSession(sid, conn, self, websocket=websocket)
        self.sessions[sid] = session
        session.schedule_ping()
        return session

    def _open_packet(self, session: EngineSession, upgrades: list[str]) -> bytes:
        opening = {
            "sid": session.sid,
            "upgrades": upgrades,
            "pingInterval": round(self.options.ping_interval * 1000),
            "pingTimeout": round(self.options.ping_timeout * 1000),
            "maxPayload": self.options.max_payload,
        }
        packet = b"0" + orjson.dumps(opening)
        self.handler.on_open(session)
        return packet

    async def _poll(self, session: EngineSession, send: AsgiSend, headers: list[Any]) -> None:
        if session.polling:  # two concurrent polls: a broken client (engine.io does the same)
            session.close("overlapping polls")
            await respond_error(send, BAD_REQUEST, headers)
            return
        if session.closing:  # the last packets went out with the previous poll
            self.sessions.pop(session.sid, None)
            await respond(send, 200, b"1", headers)
            return
        if session.closed and not session.conn.pending:
            self.sessions.pop(session.sid, None)
            await respond_error(send, UNKNOWN_SID, headers)
            return
        session.polling = True
        if session.probed:
            # The client's poll left before the probe's answer reached it: it pauses
            # polling only once that poll ends, so end it now (else a ping interval).
            session.send("6")
        try:
            texts, closing = await session.conn.take()
        finally:
            session.polling = False
        if closing and (session.client_closed or not texts):
            # The client's own close ends its pending poll with a noop; else the close.
            self.drop(session, "server close")
            self.sessions.pop(session.sid, None)
            texts = texts or ["6" if session.client_closed else "1"]
        elif closing:
            # The close packet goes alone in the next poll: socket.io-client handles a
            # payload's close before the (deferred) Socket.IO packets beside it.
            session.closing = True
            self.drop(session, "server close")
        await respond(send, 200, SEPARATOR.join(texts).encode(), headers)

    async def _post(
        self, session: EngineSession, receive: Any, send: AsgiSend, headers: list[Any]
    ) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.options.max_payload:
                session.close("payload too large")
                await respond(send, 413, b"payload too large", headers)
                return
            if not message.get("more_body"):
                break
        await respond(send, 200, b"ok", headers)
        for packet in body.decode("utf-8", "replace").split(SEPARATOR):
            if self._packet(session, packet) is False:
                return

    def _packet(self, session: EngineSession, packet: str) -> bool:
        """Act on one packet from the client; False when the session is over."""
        if session.closed:
            return False
        kind = packet[:1]
        if kind == "4":
            self.handler.on_message(session, packet[1:])
        elif kind == "3":
            session.pong()
        elif kind == "b":  # a binary message on long-polling
            try:
                data = base64.b64decode(packet[1:], validate=True)
            except ValueError:
                session.close("parse error")
                return False
            self.handler.on_binary(session, data)
        elif kind == "1":
            session.client_closed = True
            session.close("client close")
            return False
        elif kind not in ("6", "5", "2"):
            session.close("parse error")
            return False
        return True

    # --- WebSocket ----------------------------------------------------------------------
    # The WebSocket transport is not mutated (docs/development.md, "Mutation testing"):
    # socket.io's own protocol suite runs it on a real server
    # (tests/integration/test_socketio_conformance.py).
    # pragma: no mutate start
    async def _websocket(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: AsgiSend,
        query: dict[str, list[str]],
        sid: str | None,
        transport: str,
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if query.get("EIO", [""])[0] != PROTOCOL or transport != "websocket":
            await send({"type": "websocket.close", "code": 1008})  # answered 403
            return
        session = self.sessions.get(sid) if sid is not None else None
        if sid is not None and session is None:
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        if session is not None and (session.websocket or session.upgrading):
            # The sid is on a WebSocket already: accepted, then closed (as engine.io does).
            await send({"type": "websocket.close", "code": 1008})
            return
        if session is None:
            session = self._open(websocket=True)
            session.conn.attach(send)
            session.send(self._open_packet(session, []).decode())
        elif not await self._upgrade(session, receive, send):
            return
        writer = asyncio.create_task(session.conn.run_writer())
        try:
            await self._read(session, receive)
        finally:
            self.drop(session, "transport close")
            if session.conn.close_code is not None:  # let the last packets and the close out
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), CLOSE_GRACE_SECONDS)
            session.conn.client_gone()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _upgrade(self, session: EngineSession, receive: Any, send: AsgiSend) -> bool:
        """Probe (`2probe` -> `3probe`), pause the poll with a noop, then `5` switches."""
        session.upgrading = True
        try:
            async with asyncio.timeout(self.options.ping_timeout + self.options.ping_interval):
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return False
                if message.get("text") != "2probe":
                    await send({"type": "websocket.close", "code": 1008})
                    return False
                await send({"type": "websocket.send", "text": "3probe"})
                session.probed = True
                if session.polling:
                    session.send("6")
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        return False
                    text = message.get("text")
                    if text == "5":
                        break
                    if text == "2probe":
                        await send({"type": "websocket.send", "text": "3probe"})
        except TimeoutError:
            await send({"type": "websocket.close", "code": CLOSE_NORMAL})
            return False
        finally:
            session.upgrading = session.probed = False
        # Closed meanwhile: the writer still sends what was queued, the close last.
        session.websocket = True
        session.conn.attach(send)  # the writer starts with what the last poll left queued
        return True

    async def _read(self, session: EngineSession, receive: Any) -> None:
        while not session.closed:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self.handler.on_binary(session, message.get("bytes") or b"")
            elif not self._packet(session, text):
                return

    # pragma: no mutate end


async def respond(
    send: AsgiSend,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    content_type: bytes = b"text/plain; charset=UTF-8",
) -> None:
    """A complete HTTP answer (Engine.IO's are text/plain)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: AsgiSend, error: tuple[int, str], headers: list[Any]) -> None:
    """Engine.IO's 400 answer: `{"code", "message"}` as JSON."""
    code, message = error
    body = orjson.dumps({"code": code, "message": message})
    await respond(send, 400, body, headers, b"application/json")
