"""ASGI middleware of the REST side: body size limit, and one canonical log line and the
security headers per request."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

from gateway.metrics import HTTP_REQUESTS

log = structlog.get_logger("gateway.http")

LOG_FIELDS = "hub.log"  # scope key: fields a route adds to its request's log line


def log_fields(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """The fields of this request's canonical log line that routes may add to."""
    fields: dict[str, Any] = scope.setdefault(LOG_FIELDS, {})
    return fields


Scope = dict[str, Any]
Asgi = Any


class BodyLimit:
    """413 for request bodies over `limit` bytes, declared or streamed."""

    def __init__(
        self, app: Asgi, limit: int, *, uploads: tuple[re.Pattern[str], int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        # POSTs to paths matching the pattern (attachment uploads) may send up to its limit.
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        if self.uploads and scope["method"] == "POST" and self.uploads[0].match(scope["path"]):
            limit = self.uploads[1]
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit)
                return
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    body = f'{{"detail":"request body over {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# Every answer: no MIME sniffing, no Referer carrying a URL elsewhere.
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
# JSON answers hold private messages: nothing renders them, frames them or caches them.
_API = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


def with_security_headers(send: Any) -> Any:
    """`send` adding `_ALWAYS` to the answer's head: for the socket endpoints, which do
    not pass through `RequestLog` (their handshakes, refusals and polling answers)."""
    return _Headed(send)


class _Headed:
    """Not a coroutine function: a frame's send is the server's own awaitable, handed back
    at once (a wrapping coroutine per frame cost Socket.IO's burst 2 us a frame, P5s)."""

    __slots__ = ("_send",)

    def __init__(self, send: Any) -> None:
        self._send = send

    def __call__(self, message: dict[str, Any]) -> Any:
        if message["type"] in _HEADS:
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [(k, v) for k, v in _ALWAYS if k not in present]
            message = {**message, "headers": headers}
        return self._send(message)


_HEADS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})


# Metric labels from a closed set: a method is whatever the client writes (issue 22).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestLog:
    """One log line and one counter increment per REST request, with ids bound; every
    answer gets the security headers above (a route's own, like the page's CSP, win)."""

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _header(scope, b"x-request-id") or secrets.token_hex(8)
        status = 500
        extra = _ALWAYS + _API if scope["path"].startswith("/api/") else _ALWAYS

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            log.info(
                "http_request",
                request_id=request_id,
                method=scope["method"],
                path=scope["path"],
                route=template,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                **scope.get(LOG_FIELDS, {}),
            )


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))[:64]
    return None
