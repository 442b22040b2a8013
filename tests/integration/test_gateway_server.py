"""The gateway's uvicorn server ticks once a second, yet stops as soon as it is told to and
still dates its answers."""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
import uvicorn

from gateway.server import GatewayServer
from tests.integration.gateway_kit import serving

pytestmark = pytest.mark.integration


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_an_exit_ends_the_tick_at_once_and_answers_carry_a_date() -> None:
    server = GatewayServer(uvicorn.Config(_ok, lifespan="off", log_config=None))
    async with serving(server) as port:
        await asyncio.sleep(GatewayServer.TICK_SECONDS / 2)  # well inside a tick
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/")
        assert answer.status_code == 200
        dated = parsedate_to_datetime(answer.headers["date"]).timestamp()
        assert abs(dated - time.time()) < 3
        asked = time.monotonic()
    # Leaving `serving` set `should_exit` and waited for the server to stop. uvicorn's
    # own tick notices within 0.1 s; waiting out this one would take about half a second.
    assert time.monotonic() - asked < GatewayServer.TICK_SECONDS / 4
