"""`/socket.io/` with python-socketio's own client against a real uvicorn and Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import socketio

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    DEADLINE,
    RunningGateway,
    new_message,
    produce,
    running_gateway,
    token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def gw(settings_factory: Callable[..., Settings]) -> AsyncIterator[RunningGateway]:
    async with running_gateway(settings_factory(ws_auth_timeout=1.0)) as running:
        yield running


class Recorder:
    """A Socket.IO client that keeps what each event delivered, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        for name in ("authenticated", "new_message", "unread_count_update", "error"):
            self.client.on(name, self._keeper(name))
        self.client.on("disconnect", self._gone)

    def _keeper(self, name: str) -> Callable[[Any], Any]:
        async def keep(data: Any) -> None:
            await self.events.put((name, data))

        return keep

    async def _gone(self, *args: Any) -> None:
        self.disconnected.set()

    async def next(self) -> tuple[str, Any]:
        async with asyncio.timeout(DEADLINE):
            return await self.events.get()


async def test_client_authenticates_and_receives_new_message(gw: RunningGateway) -> None:
    s = gw.app.settings
    alice, bob = Recorder(), Recorder()
    for rec, user in ((alice, "alice"), (bob, "bob")):
        await rec.client.connect(gw.base_url, socketio_path="socket.io", wait_timeout=DEADLINE)
        await rec.client.emit("authenticate", {"token": token(s, user)})
        name, data = await rec.next()
        assert name == "authenticated" and data["userId"] == user

    cursors = await produce(s, [new_message("alice", 1), new_message("alice", 2)])
    for n, cursor in zip((1, 2), cursors, strict=True):
        name, d = await alice.next()
        assert name == "new_message"
        assert d["message"]["id"] == f"msg_alice_{n}"  # socket.on('new_message', d => d.message)
        assert d["message"]["text"] == f"message {n} for alice"
        assert d["cursor"] == cursor

    await produce(s, [new_message("bob", 1)])
    name, d = await bob.next()  # bob's first event is his own, never alice's
    assert (name, d["message"]["id"]) == ("new_message", "msg_bob_1")
    await alice.client.disconnect()
    await bob.client.disconnect()


async def test_bad_token_gets_error_and_disconnect(gw: RunningGateway) -> None:
    rec = Recorder()
    await rec.client.connect(gw.base_url, socketio_path="socket.io", wait_timeout=DEADLINE)
    await rec.client.emit("authenticate", {"token": "not-a-jwt"})
    name, data = await rec.next()
    assert name == "error" and data["code"] == "unauthorized"
    async with asyncio.timeout(DEADLINE):
        await rec.disconnected.wait()


async def test_no_authenticate_within_deadline_disconnects(gw: RunningGateway) -> None:
    rec = Recorder()
    await rec.client.connect(gw.base_url, socketio_path="socket.io", wait_timeout=DEADLINE)
    name, data = await rec.next()
    assert name == "error" and data["code"] == "unauthorized"
    async with asyncio.timeout(DEADLINE):
        await rec.disconnected.wait()


async def test_foreign_origin_is_refused(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{gw.base_url}/socket.io/?EIO=4&transport=polling"
        async with http.get(url, headers={"Origin": "http://evil.example"}) as refused:
            assert refused.status == 403
        async with http.get(url, headers={"Origin": "http://localhost:5173"}) as allowed:
            assert allowed.status == 200
