"""`/socket.io/`: the original service's Socket.IO v4 protocol on the `/ws` push path.

Engine.IO (gateway/engineio.py) carries the packets and the Socket.IO core
(gateway/sio_core.py) decodes them; this module is the handler of the hub's only namespace,
the default one: CONNECT (with an optional `auth: {token}`), the `authenticate` event, then the
user's events, each queued as the `42[...]` frame the pump encoded once per event.
Connection state recovery is native: the CONNECT answer carries a `pid`, `authenticated`
and every event carry a cursor as last argument (the client's offset, so it has one before
its first event), and a reconnect with both is caught up from Kafka (gateway/catchup.py),
so it works across gateway processes.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from gateway.auth import Identity, seconds_left
from gateway.catchup import CatchUp, begin_catch_up, hand_over, live_cursor, replay
from gateway.connection import CLOSE_UNAUTHORIZED, WsConnection
from gateway.endpoint import SocketEndpoint
from gateway.engineio import EngineOptions, EngineServer, EngineSession
from gateway.errors import Unauthorized
from gateway.frames import Cursor, error_data, socketio_authenticated
from gateway.limits import CLOSE_RATE_LIMITED, refuse_handshake
from gateway.metrics import AUTH_FAILURES, CONNECTIONS
from gateway.sio_core import SocketIOServer
from gateway.sio_session import PidSigner
from hubcore.ratelimit import retry_after
from schemas.frames import socketio_event

log = structlog.get_logger("gateway.sio")


@dataclass(eq=False, slots=True)
class _Socket:
    """What the gateway keeps of one Socket.IO socket (one per Engine.IO session)."""

    deadline: asyncio.TimerHandle | None  # auth timeout, then token expiry
    started: float = field(default_factory=time.monotonic)
    connected: bool = False  # the CONNECT packet was answered
    identity: Identity | None = None
    pid: str | None = None
    offset: str | None = None  # the client's last offset, when its pid was accepted
    recovered: str | None = None
    tasks: set[asyncio.Task[None]] | None = None  # replays in flight (rare: made on demand)


class SocketIOGateway(SocketEndpoint):
    """Socket.IO server: `authenticate` with `{token}` (or `auth: {token}`), then events."""

    def setup(self) -> None:
        settings = self.settings
        self.pids = PidSigner(settings)
        options = EngineOptions(
            ping_interval=settings.ws_ping_interval,
            ping_timeout=settings.ws_ping_timeout or settings.ws_ping_interval,
            max_payload=settings.ws_max_frame_bytes,
            send_queue=settings.ws_send_queue,
        )
        self.engine = EngineServer(options, SocketIOServer({"/": self}, self, binary=False))

    @property
    def open_sockets(self) -> int:
        """Engine.IO sessions open on this process, authenticated or not."""
        return len(self.engine.sessions)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """ASGI handler of `/socket.io/` (the Origin was checked by the caller); a new
        session (a request without `sid`) counts against the per-IP connection limit."""
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "sid" not in query and (wait := self.limits.admit_ip(scope, "socketio")):
            await refuse_handshake(scope, receive, send, wait)
            return
        await self.engine(scope, receive, send, _cors_headers(scope), query)

    async def close(self) -> None:
        """Disconnect every socket (server shutdown)."""
        await self.engine.close_all()

    # --- Engine.IO events ---------------------------------------------------------------
    def on_open(self, session: EngineSession) -> None:
        timeout = self.settings.ws_auth_timeout
        deadline = asyncio.get_running_loop().call_later(
            timeout, self._refuse, session, "timeout", f"no authenticate within {timeout:g} s"
        )
        session.state = _Socket(deadline)
        CONNECTIONS.labels("socketio").inc()

    def on_close(self, session: EngineSession, reason: str) -> None:
        socket: _Socket = session.state
        CONNECTIONS.labels("socketio").dec()
        if socket.deadline is not None:
            socket.deadline.cancel()
        for task in socket.tasks or ():
            task.cancel()
        self.registry.remove_ws(session.conn)
        log.info(
            "sio_connection",
            connection_id=session.conn.id,
            user_id=socket.identity.user_id if socket.identity else None,
            transport="websocket" if session.websocket else "polling",
            reason=reason,
            events_sent=session.conn.frames_sent,
            recovered=socket.recovered,
            duration_ms=round((time.monotonic() - socket.started) * 1000),
        )

    # --- the hub's namespace (the default one) -----------------------------------------
    def on_connect(self, session: EngineSession, namespace: str, auth: dict[str, Any]) -> None:
        socket: _Socket = session.state
        if not socket.connected:
            self._on_connect(session, socket, auth)

    def on_disconnect(self, session: EngineSession, namespace: str) -> None:
        session.close("client namespace disconnect")  # the hub has no other namespace

    def on_event(
        self, session: EngineSession, namespace: str, args: list[Any], ack: int | None
    ) -> None:
        socket: _Socket = session.state
        if socket.connected and args[0] == "authenticate":
            arg = args[1] if len(args) > 1 else None
            self._authenticate(session, socket, arg if isinstance(arg, dict) else {})

    # --- handshake ----------------------------------------------------------------------
    def _on_connect(self, session: EngineSession, socket: _Socket, auth: dict[str, Any]) -> None:
        socket.connected = True
        pid, offset, token = auth.get("pid"), auth.get("offset"), auth.get("token")
        if not isinstance(token, str):
            # The seed's handshake: the user is known at `authenticate`. An anonymous pid
            # is taken on trust here; the offset is checked against the user there.
            if isinstance(pid, str) and isinstance(offset, str) and self.pids.valid(pid, None):
                socket.pid, socket.offset = pid, offset
            else:
                socket.pid = self.pids.issue(None)
            self._answer_connect(session, socket)
            return
        identity = self._verify(socket, token)
        if not isinstance(identity, Identity):
            self._answer_connect(session, socket, self.pids.issue(None))
            self._refuse(session, *identity)
            return
        user = identity.user_id
        if isinstance(pid, str) and isinstance(offset, str) and self.pids.valid(pid, user):
            socket.pid, socket.offset = pid, offset
            self._start(session, socket, identity, offset, answer_connect=True)
        else:
            socket.pid = self.pids.issue(user)
            self._answer_connect(session, socket)
            self._start(session, socket, identity, None)

    def _answer_connect(
        self, session: EngineSession, socket: _Socket, pid: str | None = None
    ) -> None:
        session.send("40" + _json({"sid": session.conn.id, "pid": pid or socket.pid}))

    def _authenticate(self, session: EngineSession, socket: _Socket, arg: dict[str, Any]) -> None:
        token = arg.get("token")
        if not isinstance(token, str) or not token:
            self._refuse(session, "protocol", 'emit authenticate with {"token": "<jwt>"}')
            return
        identity = self._verify(socket, token)
        if not isinstance(identity, Identity):
            self._refuse(session, *identity)
            return
        resume_from = arg.get("resumeFrom")
        cursor = resume_from if isinstance(resume_from, str) else socket.offset
        self._start(session, socket, identity, cursor, explicit=isinstance(resume_from, str))

    def _verify(self, socket: _Socket, token: str) -> Identity | tuple[str, str]:
        """The token's identity, or why it is refused: (reason, message)."""
        try:
            identity = self.verifier.verify(token)
        except Unauthorized as exc:
            return "token", exc.message
        if socket.identity is not None and socket.identity.user_id != identity.user_id:
            return "token", "a connection cannot change its user"
        return identity

    def _start(
        self,
        session: EngineSession,
        socket: _Socket,
        identity: Identity,
        cursor: str | None,
        *,
        answer_connect: bool = False,
        explicit: bool = False,
    ) -> None:
        """Authenticated: schedule the expiry, then go live (caught up from `cursor`)."""
        first = socket.identity is None
        socket.identity = identity
        if socket.deadline is not None:
            socket.deadline.cancel()
        socket.deadline = asyncio.get_running_loop().call_later(
            max(0.0, seconds_left(identity)),
            self._refuse,
            session,
            "expired",
            "the token expired; reconnect with a fresh one",
        )
        conn = session.conn
        if not first:
            session.send(socketio_authenticated(identity.user_id, conn.id))
            return
        if full := self.limits.too_many_open(self.registry, identity.user_id, "socketio"):
            self._refuse(session, "too_many_connections", full, code=CLOSE_RATE_LIMITED)
            return
        if wait := self.limits.admit_user(identity.user_id, "socketio"):
            message = f"too many connections of this user; retry after {retry_after(wait)} s"
            self._refuse(session, "rate_limited", message, code=CLOSE_RATE_LIMITED)
            return
        conn.bind(identity.user_id)
        if cursor is None:
            # Its cursor is the client's offset from now on: recoverable before any event.
            session.send(self._authenticated(conn, live_cursor(conn, self.pump)))
            self.registry.add_ws(conn)
            return
        begun = begin_catch_up(conn, self.registry, self.pump, cursor)
        if not isinstance(begun, CatchUp):
            self._recovery_failed(session, socket, begun, answer_connect, explicit)
            session.send(self._authenticated(conn, live_cursor(conn, self.pump)))
            return
        task = asyncio.create_task(
            self._recover(session, socket, begun, cursor, answer_connect, explicit)
        )
        if socket.tasks is None:
            socket.tasks = set()
        socket.tasks.add(task)
        task.add_done_callback(socket.tasks.discard)

    async def _recover(
        self,
        session: EngineSession,
        socket: _Socket,
        catch_up: CatchUp,
        cursor: str,
        answer_connect: bool,
        explicit: bool,
    ) -> None:
        outcome = await replay(session.conn, self.resume, catch_up)
        if outcome.error is None:
            if answer_connect:  # the same pid: `socket.recovered` is true on the client
                self._answer_connect(session, socket)
            socket.recovered = f"{len(outcome.events)} events"
        else:
            self._recovery_failed(session, socket, outcome.error, answer_connect, explicit)
            # Live from where the replay would have ended: the held-back events follow.
            cursor = str(Cursor.position(catch_up.cursor.partition, catch_up.live_from))
        session.send(self._authenticated(session.conn, cursor))
        await hand_over(session.conn, catch_up, outcome)

    @staticmethod
    def _authenticated(conn: WsConnection, cursor: str | None) -> str:
        assert conn.user_id is not None
        return socketio_authenticated(conn.user_id, conn.id, cursor)

    def _recovery_failed(
        self,
        session: EngineSession,
        socket: _Socket,
        error: tuple[str, str],
        answer_connect: bool,
        explicit: bool,
    ) -> None:
        socket.recovered = error[0]
        if answer_connect or socket.offset is not None:
            # A new pid, bound to the user: the client sees a fresh session. With the seed's
            # handshake the CONNECT was answered as recovered before the user was known; this
            # second answer turns `socket.recovered` false on the client, and its `connect`
            # handler runs again (an `authenticate` again is answered `authenticated`).
            socket.pid = self.pids.issue(socket.identity.user_id if socket.identity else None)
            socket.offset = None
            self._answer_connect(session, socket)
        if explicit:
            session.send(socketio_event("error", error_data(*error)))

    # --- refusals -----------------------------------------------------------------------
    def _refuse(
        self, session: EngineSession, reason: str, message: str, code: int = CLOSE_UNAUTHORIZED
    ) -> None:
        """`error` with {code, message}, then a Socket.IO and an Engine.IO disconnect."""
        if session.closed:
            return
        if reason in ("rate_limited", "too_many_connections"):  # counted by the limiter
            error = reason
        else:
            AUTH_FAILURES.labels("socketio", reason).inc()
            error = "token_expired" if reason == "expired" else "unauthorized"
        session.send(socketio_event("error", error_data(error, message)))
        session.send("41")
        session.close(error, code, flush=True)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _cors_headers(scope: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """Long-polling from a browser page of an allowed origin is a cross-origin XHR."""
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            return [
                (b"access-control-allow-origin", value),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-methods", b"GET, POST"),
                (b"access-control-allow-headers", b"content-type"),
                (b"vary", b"Origin"),
            ]
    return []
