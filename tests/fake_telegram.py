"""A small HTTP server that speaks the Bot API's getUpdates, for the Telegram poller's tests.

Semantics as documented (https://core.telegram.org/bots/api#getupdates): `offset` confirms
every update below it (they are never returned again), `limit` caps the answer, `timeout`
long-polls until an update arrives. `page` caps answers further and `release_up_to` holds
back later updates, so a test can stop a poller in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.demo.serving import serving_app


class FakeTelegram:
    """The updates of one bot."""

    def __init__(self, token: str, page: int = 100) -> None:
        self.token = token
        self.page = page
        self.release_up_to = 2**62
        self.updates: list[dict[str, Any]] = []
        self.offsets_seen: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0  # more than 1: two readers of one bot at once
        self._changed = asyncio.Event()

    def add(self, *updates: dict[str, Any]) -> None:
        self.updates += updates
        self._changed.set()

    def release(self, up_to: int = 2**62) -> None:
        self.release_up_to = up_to
        self._changed.set()

    async def get_updates(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: Request) -> JSONResponse:
        query = request.query_params
        offset = int(query.get("offset", 0))
        limit = min(int(query.get("limit", 100)), self.page)
        deadline = time.monotonic() + float(query.get("timeout", 0))
        self.offsets_seen.append(offset)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed
        while True:
            ready = [u for u in self.updates if u["update_id"] <= self.release_up_to][:limit]
            left = deadline - time.monotonic()
            if ready or left <= 0:
                return JSONResponse({"ok": True, "result": ready})
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/getUpdates", self.get_updates)])


def serving(fake: FakeTelegram) -> AbstractAsyncContextManager[str]:
    """Serve `fake` on a free loopback port; yields its base URL."""
    return serving_app(fake.app(), "the fake Telegram server", fake.release)
