"""Two `hub gateway` processes with clients on both; SIGKILL one while events flow: its
clients reconnect to the other with their cursors, miss nothing and get nothing twice
(each reads up to a last, sentinel event: a duplicate would come before it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import websockets

from hubcore.kafka import ensure_topics
from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    GatewayAddress,
    new_message,
    open_ws,
    produce,
    token,
    two_gateway_processes,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

USERS = 20
ROUNDS = 30  # one event per user per round
KILL_AFTER = 10  # rounds
ROUND_PAUSE = 0.1


class Client:
    """One user's socket: on the primary gateway, then (after it dies) on the fallback,
    resumed from the last cursor it saw."""

    def __init__(self, settings: Settings, user: str) -> None:
        self.settings, self.user = settings, user
        self.got: list[str] = []
        self.cursor: str | None = None
        self.reconnects = 0
        self.ready = asyncio.Event()  # authenticated on the primary: it sees what follows

    async def run(self, primary: GatewayAddress, fallback: GatewayAddress, want: int) -> None:
        jwt = token(self.settings, self.user)
        ws = await open_ws(primary, jwt)
        self.ready.set()
        try:
            while len(self.got) < want:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 30)
                except TimeoutError:
                    raise AssertionError(f"{self.user}: {len(self.got)} of {want} events") from None
                except websockets.ConnectionClosed:
                    assert self.cursor is not None, "killed before the first event"
                    ws = await open_ws(fallback, jwt, resume_from=self.cursor)
                    self.reconnects += 1
                    continue
                frame = orjson.loads(raw)
                assert frame.get("type") == "new_message", frame
                self.got.append(frame["id"])
                self.cursor = frame["cursor"]
        finally:
            await ws.close()


async def test_killed_gateway_clients_resume_on_the_other(
    settings: Settings, tmp_path: Path
) -> None:
    await ensure_topics(settings)
    users = [f"user{n}" for n in range(USERS)]
    async with two_gateway_processes(settings, tmp_path) as (gw1, gw2):
        on_1 = [Client(settings, u) for u in users]
        on_2 = [Client(settings, u) for u in users]
        # Each reads the rounds' events and then the sentinel round's one.
        runs = [asyncio.create_task(c.run(gw1, gw2, ROUNDS + 1)) for c in on_1]
        runs += [asyncio.create_task(c.run(gw2, gw1, ROUNDS + 1)) for c in on_2]
        async with asyncio.timeout(60):
            await asyncio.gather(*(c.ready.wait() for c in on_1 + on_2))
        expected: dict[str, list[str]] = {u: [] for u in users}
        for n in range(ROUNDS + 1):
            events = [new_message(u, n) for u in users]
            await produce(settings, events)
            for event in events:
                expected[event.user_id].append(event.id)
            if n == KILL_AFTER:
                gw1.kill()
            await asyncio.sleep(ROUND_PAUSE)
        await asyncio.gather(*runs)

    for client in on_1 + on_2:
        assert client.got == expected[client.user], client.user
    assert all(c.reconnects == 1 for c in on_1)
    assert all(c.reconnects == 0 for c in on_2)
