"""The `Origin` allow-list of WebSocket and Socket.IO handshakes (CORS does not cover them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger("gateway.origin")


class OriginPolicy:
    """Browsers send `Origin`; a present one must be listed. Native clients send none and
    are let through, since their token still decides. `*` in the list allows any."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = frozenset(o.rstrip("/") for o in allowed)
        self._any = "*" in self._allowed

    def allows(self, scope: dict[str, Any]) -> bool:
        """True when the handshake in `scope` may proceed."""
        if self._any:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                if value.decode("latin-1") in self._allowed:
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
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
