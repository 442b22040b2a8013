"""Two `hub gateway` processes at once: each delivers every event to its own clients."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    token,
    two_gateway_processes,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_two_gateway_processes_each_deliver_to_their_own_clients(
    settings: Settings, tmp_path: Path
) -> None:
    async with two_gateway_processes(settings, tmp_path) as (gw1, gw2):
        alice_on_1 = await open_ws(gw1, token(settings, "alice"))
        alice_on_2 = await open_ws(gw2, token(settings, "alice"))
        bob_on_2 = await open_ws(gw2, token(settings, "bob"))

        await produce(settings, [new_message("alice", n) for n in range(3)])
        for ws in (alice_on_1, alice_on_2):
            assert ids(await recv_events(ws, 3)) == [f"evt_alice_{n}" for n in range(3)]
        await produce(settings, [new_message("bob", 0)])
        assert ids(await recv_events(bob_on_2, 1)) == ["evt_bob_0"]

        async with httpx.AsyncClient(base_url=gw2.base_url) as client:
            websocket = (await client.get("/health")).json()["services"]["websocket"]
        assert websocket == {"status": "active", "connections": 2, "authenticatedUsers": 2}
        for ws in (alice_on_1, alice_on_2, bob_on_2):
            await ws.close()
