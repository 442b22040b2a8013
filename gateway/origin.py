"""The `Origin` allow-list of WebSocket and Socket.IO handshakes (CORS does not cover them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from gateway.engineio import respond

log = structlog.get_logger("gateway.origin")


def _same_origin(origin: str, scope: dict[str, Any]) -> bool:
    # The gateway's own page (`/`) connects back to the host that served it; a browser
    # sends that host honestly in `Host`, so Origin == scheme://Host is same-origin.
    host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), None)
    if host is None:
        return False
    secure = scope.get("scheme") in ("https", "wss")
    return origin in (f"{'https' if secure else 'http'}://{host}",)


class OriginPolicy:
    """Browsers send `Origin`; a present one must be listed or be the gateway's own origin
    (the page it serves). Native clients send none and are let through, since their token
    still decides. `*` in the list allows any."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = frozenset(o.rstrip("/") for o in allowed)
        self._any = "*" in self._allowed

    def allows(self, scope: dict[str, Any]) -> bool:
        """True when the handshake in `scope` may proceed."""
        if self._any:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origin = value.decode("latin-1")
                if origin in self._allowed or _same_origin(origin, scope):
                    return True
                log.info("origin_refused", origin=value.decode("latin-1")[:200], path=scope["path"])
                return False
        return True

    async def refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer 403 before any WebSocket is accepted or any Socket.IO session is opened."""
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # the server answers 403
            return
        body = b'{"detail":"origin not allowed"}'
        await respond(send, 403, body, content_type=b"application/json")
