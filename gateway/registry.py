"""Who listens on this gateway: WebSocket connections and Socket.IO sockets by user key."""

from __future__ import annotations

from gateway.connection import WsConnection
from gateway.metrics import AUTHENTICATED_USERS


class Registry:
    """Routing table of the pump, keyed by the record key (the user id as bytes).

    Keys are bytes so the pump looks a record up without decoding anything; a user with
    no listener here costs one dict lookup per record.
    """

    def __init__(self) -> None:
        self.ws: dict[bytes, list[WsConnection]] = {}
        self.sio: dict[bytes, int] = {}  # authenticated Socket.IO sockets per user
        self._listeners: dict[bytes, int] = {}  # both kinds, for the distinct-user count

    def add_ws(self, conn: WsConnection) -> None:
        """Route the user's events to `conn` from now on."""
        self.ws.setdefault(conn.key, []).append(conn)
        self._count(conn.key, +1)

    def remove_ws(self, conn: WsConnection) -> None:
        """Stop routing to `conn` (no-op when it never registered)."""
        conns = self.ws.get(conn.key)
        if conns is None or conn not in conns:
            return
        conns.remove(conn)
        if not conns:
            del self.ws[conn.key]
        self._count(conn.key, -1)

    def add_sio(self, key: bytes) -> None:
        """One more authenticated Socket.IO socket of user `key`."""
        self.sio[key] = self.sio.get(key, 0) + 1
        self._count(key, +1)

    def remove_sio(self, key: bytes) -> None:
        """One Socket.IO socket of user `key` fewer."""
        if key not in self.sio:
            return
        self.sio[key] -= 1
        if not self.sio[key]:
            del self.sio[key]
        self._count(key, -1)

    def authenticated_users(self) -> int:
        """Distinct users with at least one authenticated connection here."""
        return len(self._listeners)

    def _count(self, key: bytes, delta: int) -> None:
        left = self._listeners.get(key, 0) + delta
        if left > 0:
            self._listeners[key] = left
        else:
            self._listeners.pop(key, None)
        AUTHENTICATED_USERS.set(len(self._listeners))
