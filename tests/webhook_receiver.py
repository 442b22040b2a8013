"""A webhook receiver on loopback for the delivery tests: records every request per path
and answers as each path is scripted (status codes in turn, or never)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.demo.serving import serving_app

HANG = -1  # a scripted answer: hold the request until the receiver stops


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # monotonic
    status: int  # what the receiver answered (HANG: none)

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """`script[path]`: statuses answered in turn, the last one repeated (default 200);
    `delay`: seconds before each answer; `retry_after[path]`: the header sent with 429/503."""

    script: dict[str, list[int]] = field(default_factory=dict)
    delay: float = 0.0
    retry_after: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _seen: dict[str, int] = field(default_factory=dict)

    def at(self, path: str, *, ok_only: bool = False) -> list[Received]:
        return [
            r for r in self.requests if r.path == path and (not ok_only or 200 <= r.status < 300)
        ]

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        seen = self._seen.get(path, 0)
        self._seen[path] = seen + 1
        statuses = self.script.get(path, [200])
        status = statuses[min(seen, len(statuses) - 1)]
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Received(path, headers, body, time.monotonic(), status))
        if status == HANG:
            await self._release.wait()
            return Response(status_code=504)
        if self.delay:
            await asyncio.sleep(self.delay)
        extra = {"Retry-After": self.retry_after[path]} if path in self.retry_after else {}
        return Response(b"ok", status_code=status, headers=extra)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        async with serving_app(app, "the webhook receiver", on_exit=self._release.set) as url:
            yield url
