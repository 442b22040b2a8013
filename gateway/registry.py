"""Who listens on this gateway: `/ws` connections and Socket.IO sockets, by user key."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from gateway.connection import WsConnection
from gateway.fresh import FreshViews
from gateway.metrics import AUTHENTICATED_USERS


class Registry:
    """Routing table of the pump, keyed by the record key (the user id as bytes).

    Keys are bytes so the pump looks a record up without decoding anything; a user with
    no listener here costs one dict lookup per record. A Socket.IO socket is a
    `WsConnection` too (its frames are Socket.IO's), so both kinds share one table.
    """

    def __init__(self) -> None:
        self.ws: dict[bytes, list[WsConnection]] = {}
        # Told when a connection starts (True) or stops (False) getting its user's events:
        # the presence publisher (gateway/presence.py).
        self.observer: Callable[[WsConnection, bool], None] | None = None
        self._listeners: dict[bytes, int] = {}  # connections per user
        # What was pushed to the users listening here, for REST (read-your-writes).
        self.fresh = FreshViews()

    def add_ws(self, conn: WsConnection) -> None:
        """Route the user's events to `conn` from now on."""
        self.ws.setdefault(conn.key, []).append(conn)
        self._count(conn.key, +1)
        if self.observer is not None:
            self.observer(conn, True)

    def remove_ws(self, conn: WsConnection) -> None:
        """Stop routing to `conn` (no-op when it never registered)."""
        conns = self.ws.get(conn.key)
        if conns is None or conn not in conns:
            return
        conns.remove(conn)
        if not conns:
            del self.ws[conn.key]
            self.fresh.forget(conn.key)
        self._count(conn.key, -1)
        if self.observer is not None:
            self.observer(conn, False)

    def connections(self) -> Iterator[WsConnection]:
        """Every connection registered here."""
        for conns in self.ws.values():
            yield from conns

    def open_for(self, user_id: str) -> int:
        """The user's connections registered here."""
        return self._listeners.get(user_id.encode(), 0)

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
