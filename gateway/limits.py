"""Connection limits of the real-time endpoints, shared by `/ws` and Socket.IO.

`admit_ip` runs at the handshake (before any accept), `admit_user` once a token has
verified. Both return 0.0 to admit, else the seconds to wait before trying again.
`too_many_open` caps the sockets one user holds open at once (`HUB_WS_MAX_PER_USER`):
a rate alone would let one token gather tens of thousands over a day.
"""

from __future__ import annotations

from typing import Any

from gateway.metrics import RATE_LIMITED
from gateway.registry import Registry
from hubcore.ratelimit import RateLimiter, retry_after
from hubcore.settings import Settings

CLOSE_RATE_LIMITED = 4429  # after authentication: the user opened too many connections
CLOSE_TRY_AGAIN_LATER = 1013  # handshake refused where no HTTP answer can be sent


def client_ip(scope: dict[str, Any]) -> str:
    """The peer address uvicorn reports (its proxy-headers setting decides whether a
    trusted proxy's X-Forwarded-For replaces it)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class ConnectionLimits:
    """Token buckets of new connections per client IP and per user."""

    def __init__(self, settings: Settings) -> None:
        self.per_ip = RateLimiter(settings.rate_ws_per_ip)
        self.per_user = RateLimiter(settings.rate_ws_per_user)
        self.max_open = settings.ws_max_per_user

    def too_many_open(self, registry: Registry, user_id: str, transport: str = "ws") -> str | None:
        """Why one more socket of the user is refused here, or None."""
        open_now = registry.open_for(user_id)
        if open_now < self.max_open:
            return None
        RATE_LIMITED.labels(f"{transport}_open").inc()
        return (
            f"this user has {open_now} sockets open on this gateway, the most allowed "
            "(HUB_WS_MAX_PER_USER); close one first"
        )

    def admit_ip(self, scope: dict[str, Any], transport: str = "ws") -> float:
        wait = self.per_ip.acquire(client_ip(scope))
        if wait:
            RATE_LIMITED.labels(f"{transport}_ip").inc()
        return wait

    def admit_user(self, user_id: str, transport: str = "ws") -> float:
        wait = self.per_user.acquire(user_id)
        if wait:
            RATE_LIMITED.labels(f"{transport}_user").inc()
        return wait


async def refuse_handshake(scope: dict[str, Any], receive: Any, send: Any, wait: float) -> None:
    """429 with Retry-After to a handshake, before any socket or session exists: a
    WebSocket upgrade (`/ws`, Socket.IO's websocket transport) or an HTTP request (the
    first request of Socket.IO's polling transport)."""
    prefix = "http."
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
            return
        prefix = "websocket.http."
    body = b'{"detail":"too many connections from this address","code":"rate_limited"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", retry_after(wait).encode()),
    ]
    await send({"type": prefix + "response.start", "status": 429, "headers": headers})
    await send({"type": prefix + "response.body", "body": body})
