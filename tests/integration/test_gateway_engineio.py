"""Engine.IO / Socket.IO protocol conformance of `/socket.io/`, on the wire.

These follow socketio/socket.io-protocol's test-suite (its Engine.IO part, and the
Socket.IO cases that need no echo handler), which is not published on npm; see docs/protocol.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson
import pytest
import websockets

from hubcore.settings import Settings
from tests.integration.gateway_kit import DEADLINE, RunningGateway, running_gateway, token

pytestmark = pytest.mark.integration

PING = 0.3  # the suite's pingInterval and pingTimeout are 300 and 200 ms


@pytest.fixture
async def gw(settings_factory: Callable[..., Settings]) -> AsyncIterator[RunningGateway]:
    settings = settings_factory(ws_ping_interval=PING, ws_auth_timeout=2.0)
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as session:
        yield session


def _eio(gw: RunningGateway, query: str = "EIO=4&transport=polling") -> str:
    return f"{gw.base_url}/socket.io/?{query}"


async def _open_polling(gw: RunningGateway, http: aiohttp.ClientSession) -> str:
    async with http.get(_eio(gw)) as answer:
        assert answer.status == 200
        text = await answer.text()
    assert text.startswith("0")
    opening = orjson.loads(text[1:])
    assert set(opening) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert opening["upgrades"] == ["websocket"] and opening["pingInterval"] == PING * 1000
    sid: str = opening["sid"]
    return sid


async def test_handshake_errors_are_400(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    for query in ("transport=polling", "EIO=abc&transport=polling", "EIO=3&transport=polling"):
        async with http.get(_eio(gw, query)) as answer:
            assert answer.status == 400, query
            assert (await answer.json())["code"] == 5
    for query in ("EIO=4", "EIO=4&transport=abc"):  # unknown transport
        async with http.get(_eio(gw, query)) as answer:
            assert answer.status == 400, query
            assert await answer.json() == {"code": 0, "message": "Transport unknown"}
    for method in ("POST", "PUT"):  # a handshake is a GET
        async with http.request(method, _eio(gw)) as answer:
            assert answer.status == 400, method
            assert (await answer.json())["code"] == 2
    async with http.get(_eio(gw, "EIO=4&transport=polling&sid=nope")) as answer:
        assert answer.status == 400 and (await answer.json())["code"] == 1
    async with http.request(
        "PUT", _eio(gw, f"EIO=4&transport=polling&sid={await _open_polling(gw, http)}")
    ) as answer:
        assert answer.status == 400


async def test_polling_ping_pong_then_ping_timeout(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    sid = await _open_polling(gw, http)
    url = _eio(gw, f"EIO=4&transport=polling&sid={sid}")
    for _ in range(3):
        async with http.get(url) as poll:
            assert (poll.status, await poll.text()) == (200, "2")
        async with http.post(url, data=b"3") as push:
            assert push.status == 200
    await asyncio.sleep(2 * PING + 0.2)  # no pong: the session ends
    async with http.get(url) as poll:
        assert poll.status == 400


async def test_a_client_close_packet_closes_the_session(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    sid = await _open_polling(gw, http)
    url = _eio(gw, f"EIO=4&transport=polling&sid={sid}")
    pending = asyncio.create_task(http.get(url))
    await asyncio.sleep(0.05)
    async with http.post(url, data=b"1") as push:
        assert push.status == 200
    async with await pending as poll:
        assert (poll.status, await poll.text()) == (200, "6")
    async with http.get(url) as poll:
        assert poll.status == 400
    async with websockets.connect(
        _eio(gw, "EIO=4&transport=websocket").replace("http", "ws")
    ) as ws:
        assert str(await ws.recv()).startswith("0")
        await ws.send("1")
        async with asyncio.timeout(DEADLINE):
            await ws.wait_closed()


async def test_upgrade_then_the_sid_serves_no_polling_and_no_second_websocket(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    sid = await _open_polling(gw, http)
    ws_url = _eio(gw, f"EIO=4&transport=websocket&sid={sid}").replace("http", "ws")
    async with websockets.connect(ws_url) as ws:
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        await ws.send("5")
        await asyncio.sleep(0.1)
        async with http.get(_eio(gw, f"EIO=4&transport=polling&sid={sid}")) as poll:
            assert poll.status == 400
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(ws_url)
        await ws.send("40")
        assert str(await ws.recv()).startswith('40{"sid":')


async def test_socketio_namespace_and_malformed_packets(gw: RunningGateway) -> None:
    url = _eio(gw, "EIO=4&transport=websocket").replace("http", "ws")
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send("40/random")
        assert await ws.recv() == '44/random,{"message":"Invalid namespace"}'
    for bad in ("4abc", "42{}", '42abc["message-with-ack",1]'):
        async with websockets.connect(url) as ws:
            await ws.recv()
            await ws.send(f'40{{"token":"{token(gw.app.settings, "pat")}"}}')
            await ws.send(bad)
            async with asyncio.timeout(DEADLINE):
                await ws.wait_closed()
            assert ws.close_code is not None, bad


async def test_websocket_heartbeat_and_no_handshake_closes(gw: RunningGateway) -> None:
    url = _eio(gw, "EIO=4&transport=websocket").replace("http", "ws")
    async with websockets.connect(url) as ws:
        await ws.recv()
        for _ in range(3):
            assert await ws.recv() == "2"
            await ws.send("3")
    async with websockets.connect(url) as ws:  # no pong, no CONNECT: closed by the server
        async with asyncio.timeout(DEADLINE):
            await ws.wait_closed()
    async with aiohttp.ClientSession() as http:  # over the size limit: 413
        sid = await _open_polling(gw, http)
        big = b"4" + b"x" * (gw.app.settings.ws_max_frame_bytes + 1)
        async with http.post(_eio(gw, f"EIO=4&transport=polling&sid={sid}"), data=big) as push:
            assert push.status == 413
