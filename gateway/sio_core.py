"""A small Socket.IO v5 server core over Engine.IO: packets, namespaces, acks, attachments.

`SocketIOServer` is the Engine.IO handler; it parses every packet as socket.io-parser
does (a malformed one closes the session), answers a CONNECT to an unknown namespace
with `Invalid namespace`, puts binary attachments back in place, and hands CONNECT,
DISCONNECT and EVENT packets to the `Namespace` registered under their name. What a
session means (authentication, state in `session.state`) belongs to the user of the core:
the gateway's hub namespace (gateway/sio.py) is one. The push path does not come through
here: events go out as frames the pump encoded once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from gateway.engineio import EngineSession

CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)
# Event names a client may not emit (socket.io-parser's RESERVED_EVENTS).
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
MAX_ATTACHMENTS = 16  # per packet: each is a whole Engine.IO message, bounded in size


@dataclass(slots=True)
class Packet:
    """One decoded packet: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`."""

    kind: int
    namespace: str = "/"
    data: Any = None
    ack: int | None = None
    attachments: int = 0


def parse_packet(text: str) -> Packet | None:
    """The packet `text` holds, or None when socket.io-parser would refuse it."""
    if not text or text[0] not in "0123456":
        return None
    packet, i = Packet(int(text[0])), 1
    if packet.kind in (BINARY_EVENT, BINARY_ACK):
        dash = text.find("-", i)
        if dash < 0 or not text[i:dash].isdigit():
            return None
        packet.attachments, i = int(text[i:dash]), dash + 1
    if text.startswith("/", i):
        comma = text.find(",", i)
        end = len(text) if comma < 0 else comma
        packet.namespace, i = text[i:end], end + 1
    start = i
    while i < len(text) and text[i].isdigit():
        i += 1
    if i > start:
        packet.ack = int(text[start:i])
    if i < len(text):
        try:
            packet.data = orjson.loads(text[i:])
        except orjson.JSONDecodeError:
            return None
    return packet if _valid_payload(packet) else None


def _valid_payload(packet: Packet) -> bool:
    data, kind = packet.data, packet.kind
    if kind == CONNECT:
        return data is None or isinstance(data, dict)
    if kind == DISCONNECT:
        return data is None
    if kind in (EVENT, BINARY_EVENT):
        return (
            isinstance(data, list)
            and bool(data)
            and isinstance(data[0], str)
            and data[0] not in RESERVED_EVENTS
        )
    if kind in (ACK, BINARY_ACK):
        return isinstance(data, list)
    return False  # CONNECT_ERROR goes from server to client only


def encode_packet(
    kind: int, namespace: str, data: Any = None, ack: int | None = None
) -> tuple[str, list[bytes]]:
    """The text of a packet and its binary attachments (bytes in `data` become
    placeholders, and an EVENT or ACK becomes its BINARY_ form)."""
    buffers: list[bytes] = []
    if data is not None and kind in (EVENT, ACK):
        data = _deconstruct(data, buffers)
    parts = [str(kind + 3 if buffers else kind)]
    if buffers:
        parts.append(f"{len(buffers)}-")
    if namespace != "/":
        parts.append(namespace + ",")
    if ack is not None:
        parts.append(str(ack))
    if data is not None:
        parts.append(orjson.dumps(data).decode())
    return "".join(parts), buffers


def _deconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, list | tuple):
        return [_deconstruct(item, buffers) for item in value]
    if isinstance(value, dict):
        return {key: _deconstruct(item, buffers) for key, item in value.items()}
    return value


class _BadPlaceholder(ValueError):
    pass


def _reconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, list):
        return [_reconstruct(item, buffers) for item in value]
    if isinstance(value, dict):
        if value.get("_placeholder") is True:
            num = value.get("num")
            if not isinstance(num, int) or not 0 <= num < len(buffers):
                raise _BadPlaceholder(num)
            return buffers[num]
        return {key: _reconstruct(item, buffers) for key, item in value.items()}
    return value


def send_packet(
    session: EngineSession, kind: int, namespace: str, data: Any = None, ack: int | None = None
) -> None:
    """Queue one Socket.IO packet (then its attachments) on the session's outbox."""
    text, buffers = encode_packet(kind, namespace, data, ack)
    session.send("4" + text)
    for buffer in buffers:
        session.send_binary(buffer)


def emit(session: EngineSession, namespace: str, event: str, *args: Any) -> None:
    """Send an EVENT."""
    send_packet(session, EVENT, namespace, [event, *args])


class Namespace(Protocol):
    """A namespace's handler; it keeps its per-session state itself."""

    def on_connect(self, session: EngineSession, namespace: str, auth: dict[str, Any]) -> None:
        """A CONNECT (`auth` is the handshake's payload); answer it, or refuse."""

    def on_event(
        self, session: EngineSession, namespace: str, args: list[Any], ack: int | None
    ) -> None:
        """An EVENT: `args[0]` is its name; answer `ack` with `send_packet(ACK, ...)`."""

    def on_disconnect(self, session: EngineSession, namespace: str) -> None:
        """The client left the namespace (the Engine.IO session may stay open)."""


class SessionHooks(Protocol):
    """Engine.IO session life, for the user of the core."""

    def on_open(self, session: EngineSession) -> None: ...

    def on_close(self, session: EngineSession, reason: str) -> None: ...


class SocketIOServer:
    """Engine.IO handler routing Socket.IO packets to namespace handlers.

    With `binary` False, a packet with attachments closes the session (the hub's
    namespace takes none, and nothing is buffered for it).
    """

    def __init__(
        self, namespaces: Mapping[str, Namespace], hooks: SessionHooks, *, binary: bool = True
    ) -> None:
        self.namespaces = dict(namespaces)
        self.hooks = hooks
        self.binary = binary
        self._partial: dict[EngineSession, tuple[Packet, list[bytes]]] = {}

    def on_open(self, session: EngineSession) -> None:
        self.hooks.on_open(session)

    def on_close(self, session: EngineSession, reason: str) -> None:
        self._partial.pop(session, None)
        self.hooks.on_close(session, reason)

    def on_message(self, session: EngineSession, data: str) -> None:
        packet = parse_packet(data)
        if (
            packet is None
            or session in self._partial  # text while attachments are due
            or (packet.kind in (BINARY_EVENT, BINARY_ACK) and not self.binary)
            or packet.attachments > MAX_ATTACHMENTS
        ):
            session.close("parse error")
        elif packet.attachments:
            self._partial[session] = (packet, [])
        else:
            self._dispatch(session, packet)

    def on_binary(self, session: EngineSession, data: bytes) -> None:
        partial = self._partial.get(session)
        if partial is None:
            if self.binary:
                session.close("parse error")  # an attachment nobody announced
            return
        packet, buffers = partial
        buffers.append(data)
        if len(buffers) < packet.attachments:
            return
        del self._partial[session]
        try:
            packet.data = _reconstruct(packet.data, buffers)
        except _BadPlaceholder:
            session.close("parse error")
            return
        self._dispatch(session, packet)

    def _dispatch(self, session: EngineSession, packet: Packet) -> None:
        handler = self.namespaces.get(packet.namespace)
        if handler is None:
            if packet.kind == CONNECT:
                error = {"message": "Invalid namespace"}
                send_packet(session, CONNECT_ERROR, packet.namespace, error)
            return  # other packets of a namespace nobody joined are dropped (as Node does)
        if packet.kind == CONNECT:
            handler.on_connect(session, packet.namespace, packet.data or {})
        elif packet.kind == DISCONNECT:
            handler.on_disconnect(session, packet.namespace)
        elif packet.kind in (EVENT, BINARY_EVENT):
            handler.on_event(session, packet.namespace, packet.data, packet.ack)
        # ACKs: no namespace here emits with an ack, so a client's ACK answers nothing.
