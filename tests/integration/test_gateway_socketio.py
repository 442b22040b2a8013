"""`/socket.io/` with the real npm socket.io-client (node) against a real uvicorn and Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import aiohttp
import pytest
import websockets

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    DEADLINE,
    RunningGateway,
    SioClient,
    event_ids,
    eventually,
    flood_until_closed,
    new_message,
    open_ws,
    produce,
    running_gateway,
    sio_client,
    token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(ws_auth_timeout=1.0)


async def test_default_transports_polling_then_upgrade_nothing_lost_or_twice(
    gw: RunningGateway,
) -> None:
    s = gw.app.settings
    async with sio_client(gw.base_url, emitAuth=token(s, "alice")) as alice:
        connected, _ = await alice.until("connect")  # the upgrade may come before or after
        authenticated, _ = await alice.until("authenticated")
        assert authenticated["data"]["userId"] == "alice"
        assert authenticated["data"]["connectionId"] == connected["id"]
        # Produced while the client polls and probes the WebSocket: the upgrade's window.
        cursors = await produce(s, [new_message("alice", n) for n in range(20)])
        seen = await alice.events(20)
        if not any(s["ev"] == "upgrade" for s in alice.seen):
            await alice.until("upgrade")  # from polling (the default's first transport)
        after = await produce(s, [new_message("alice", n) for n in range(20, 30)])
        seen += await alice.events(10)
        assert event_ids(seen) == [f"msg_alice_{n}" for n in range(30)]
        assert [e["data"]["cursor"] for e in seen] == cursors + after
        assert [e["offset"] for e in seen] == cursors + after  # the recovery offset
        assert {e["transport"] for e in seen[20:]} == {"websocket"}
        assert seen[0]["data"]["message"]["text"] == "message 0 for alice"


async def test_websocket_only_with_auth_in_the_handshake(gw: RunningGateway) -> None:
    s = gw.app.settings
    url = gw.base_url
    async with sio_client(url, transports=["websocket"], auth={"token": token(s, "al")}) as al:
        connected = await al.next()
        assert (connected["ev"], connected["transport"]) == ("connect", "websocket")
        assert connected["pid"]  # connection state recovery is announced
        authenticated, _ = await al.until("authenticated")
        cursor = authenticated["data"].pop("cursor")
        assert authenticated["data"] == {"userId": "al", "connectionId": connected["id"]}
        assert authenticated["offset"] == cursor  # the client's recovery offset from now on
        await produce(s, [new_message("al", 1)])
        (event,) = await al.events(1)
        assert event["data"]["message"]["id"] == "msg_al_1"


async def test_two_sockets_of_one_user_and_one_of_another_are_isolated(
    gw: RunningGateway,
) -> None:
    s = gw.app.settings
    ws_only = {"transports": ["websocket"]}
    async with (
        sio_client(gw.base_url, emitAuth=token(s, "ann"), **ws_only) as ann1,
        sio_client(gw.base_url, emitAuth=token(s, "ann")) as ann2,
        sio_client(gw.base_url, emitAuth=token(s, "ben"), **ws_only) as ben,
    ):
        for client in (ann1, ann2, ben):
            await client.until("authenticated")
        await produce(s, [new_message("ann", 1), new_message("ben", 1), new_message("ann", 2)])
        for client in (ann1, ann2):
            assert event_ids(await client.events(2)) == ["msg_ann_1", "msg_ann_2"]
        assert event_ids(await ben.events(1)) == ["msg_ben_1"]
        await produce(s, [new_message("ben", 2)])
        assert event_ids(await ben.events(1)) == ["msg_ben_2"]  # never one of ann's


@pytest.mark.parametrize("transports", [None, ["websocket"]])
async def test_bad_token_gets_error_then_disconnect(
    gw: RunningGateway, transports: list[str] | None
) -> None:
    async with sio_client(gw.base_url, emitAuth="not-a-jwt", transports=transports) as c:
        error, _ = await c.until("error")
        assert error["data"]["code"] == "unauthorized"
        gone, _ = await c.until("disconnect")
        assert gone["reason"] == "io server disconnect"


async def test_no_authenticate_within_the_deadline_disconnects(gw: RunningGateway) -> None:
    async with sio_client(gw.base_url) as c:
        await c.until("connect")
        error, _ = await c.until("error")
        assert error["data"]["code"] == "unauthorized"
        assert "no authenticate" in error["data"]["message"]
        gone, _ = await c.until("disconnect")
        assert gone["reason"] == "io server disconnect"


async def test_foreign_origin_is_refused(gw: RunningGateway) -> None:
    evil = {"Origin": "http://evil.example"}
    s = gw.app.settings
    for transports in (None, ["websocket"]):
        async with sio_client(
            gw.base_url, emitAuth=token(s, "x"), headers=evil, transports=transports
        ) as c:
            refused = await c.next()
            assert refused["ev"] == "connect_error", refused
    async with aiohttp.ClientSession() as http:
        url = f"{gw.base_url}/socket.io/?EIO=4&transport=polling"
        async with http.get(url, headers=evil) as answer:
            assert answer.status == 403
        async with http.get(url, headers={"Origin": "http://localhost:5173"}) as answer:
            assert answer.status == 200
            assert answer.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_health_counts_socketio_sockets_beside_ws(gw: RunningGateway) -> None:
    s = gw.app.settings
    ws = await open_ws(gw, token(s, "hal"))
    async with sio_client(gw.base_url, emitAuth=token(s, "sio-hal")) as c:
        await c.until("authenticated")
        async with aiohttp.ClientSession() as http, http.get(f"{gw.base_url}/health") as answer:
            body = await answer.json()
    await ws.close()
    assert body["services"]["websocket"] == {
        "status": "active",
        "connections": 2,
        "authenticatedUsers": 2,
    }
    assert body["services"]["database"] == "connected"


async def test_a_slow_socketio_reader_is_dropped_and_others_are_not(
    settings_factory: Callable[..., Settings],
) -> None:
    # A queue bound above a round of events (50) and far below what a reader that
    # stopped reading is sent.
    s = settings_factory(ws_send_queue=64, topic_partitions=1)
    async with (
        running_gateway(s) as gw,
        sio_client(gw.base_url, emitAuth=token(s, "alice"), transports=["websocket"]) as fast,
    ):
        await fast.until("authenticated")
        # A Socket.IO client that reads nothing, with a tiny receive buffer.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gw.port))
        url = f"ws://127.0.0.1:{gw.port}/socket.io/?EIO=4&transport=websocket"
        slow = await websockets.connect(url, sock=sock, max_queue=1, max_size=None)
        await slow.send(f'40{{"token":"{token(s, "alice")}"}}')
        registry, pump = gw.app.runtime.registry, gw.app.runtime.pump
        await eventually(lambda: len(registry.ws.get(b"alice", [])) == 2, "both to authenticate")
        fast_id = _id_of(fast)
        conn = next(c for c in registry.ws[b"alice"] if c.id != fast_id)
        sent = await flood_until_closed(s, pump, conn, "alice")
        assert conn.close_code == 4408
        assert len(await fast.events(sent)) == sent  # the fast reader got everything
        _, code = await frames_until_closed_raw(slow)
        assert code == 4408


def _id_of(client: SioClient) -> str:
    connected = next(seen for seen in client.seen if seen["ev"] == "connect")
    return str(connected["id"])


async def frames_until_closed_raw(ws: websockets.ClientConnection) -> tuple[int, int | None]:
    """How many frames a raw WebSocket got until the server closed it, and the code."""
    count = 0
    async with asyncio.timeout(DEADLINE):
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.recv()
                count += 1
    return count, ws.close_code


async def test_connection_limits_per_ip_and_per_user_hold_for_socketio(
    settings_factory: Callable[..., Settings],
) -> None:
    s = settings_factory(rate_ws_per_ip="3/min", rate_ws_per_user="1/min")
    async with (
        running_gateway(s) as gw,
        aiohttp.ClientSession() as http,
        sio_client(gw.base_url, emitAuth=token(s, "lee")) as first,
    ):
        await first.until("authenticated")
        # Another socket of lee: refused like /ws (4429 there), with the same error.
        async with sio_client(gw.base_url, emitAuth=token(s, "lee")) as second:
            error, _ = await second.until("error")
            assert error["data"]["code"] == "rate_limited"
            gone, _ = await second.until("disconnect")
            assert gone["reason"] == "io server disconnect"
        # Only new sessions count against the address (two so far); the third is 429.
        url = f"{gw.base_url}/socket.io/?EIO=4&transport=polling"
        async with http.get(url) as third:
            assert third.status == 200
        async with http.get(url) as fourth:
            assert fourth.status == 429 and fourth.headers["Retry-After"]
        await produce(s, [new_message("lee", 1)])
        assert event_ids(await first.events(1)) == ["msg_lee_1"]  # the first goes on
