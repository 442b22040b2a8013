"""Engine.IO protocol conformance of the gateway's `/socket.io/`, on the wire.

One test per case of the Engine.IO part of socketio/socket.io-protocol's test-suite
(handshake, heartbeat, close, upgrade; not on npm, so written here in our own words, see
docs/protocol.md), against the gateway itself configured as the suite expects: ping
interval 300 ms, ping timeout 200 ms, maxPayload 1,000,000, connect timeout 1 s. A test of
another close runs with a heartbeat that cannot close first (`quiet_gw`) and checks the
close code and reason. The Socket.IO part runs against the echo app of the same layer
(test_socketio_conformance.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import websockets
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection

from gateway.engineio import EngineSession
from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    DEADLINE,
    RunningGateway,
    eventually,
    running_gateway,
    token,
)

pytestmark = pytest.mark.integration

PING_INTERVAL, PING_TIMEOUT = 0.3, 0.2  # the suite's settings
MAX_PAYLOAD = 1_000_000
OPENING_KEYS = {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
# The close tests' heartbeat: no ping within any wait of theirs, so a session a test sees
# closed was closed by the behaviour under test, never by an unanswered ping.
QUIET_PING_INTERVAL = 10 * DEADLINE
PARSE_ERROR = (1000, "parse error")  # the layer's close of a malformed packet


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        ws_ping_interval=PING_INTERVAL,
        ws_ping_timeout=PING_TIMEOUT,
        ws_max_frame_bytes=MAX_PAYLOAD,
        # Far beyond the heartbeat tests' few ping cycles, even on a loaded machine: here
        # only the heartbeat closes a session that never authenticates.
        ws_auth_timeout=10.0,
    )


@pytest.fixture
async def quiet_gw(settings_factory: Callable[..., Settings]) -> AsyncIterator[RunningGateway]:
    """A gateway whose heartbeat and auth timeout cannot close a session during a test."""
    quiet = settings_factory(
        ws_ping_interval=QUIET_PING_INTERVAL,
        ws_max_frame_bytes=MAX_PAYLOAD,
        ws_auth_timeout=QUIET_PING_INTERVAL,
    )
    async with running_gateway(quiet) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as session:
        yield session


def _eio(gw: RunningGateway, query: str = "EIO=4&transport=polling") -> str:
    return f"{gw.base_url}/socket.io/?{query}"


def _ws(gw: RunningGateway, query: str = "EIO=4&transport=websocket") -> str:
    return _eio(gw, query).replace("http", "ws", 1)


def _check_opening(gw: RunningGateway, text: str, upgrades: list[str]) -> str:
    assert text.startswith("0")
    opening: dict[str, Any] = orjson.loads(text[1:])
    assert set(opening) == OPENING_KEYS
    assert isinstance(opening["sid"], str) and opening["upgrades"] == upgrades
    quiet = gw.app.settings.ws_ping_interval == QUIET_PING_INTERVAL
    heartbeat = (QUIET_PING_INTERVAL * 1000,) * 2 if quiet else (300, 200)
    assert (opening["pingInterval"], opening["pingTimeout"]) == heartbeat
    assert opening["maxPayload"] == MAX_PAYLOAD
    sid: str = opening["sid"]
    return sid


async def _open_polling(gw: RunningGateway, http: aiohttp.ClientSession) -> str:
    async with http.get(_eio(gw)) as answer:
        assert answer.status == 200
        return _check_opening(gw, await answer.text(), ["websocket"])


def _session(gw: RunningGateway, sid: str) -> EngineSession:
    return gw.app.runtime.socketio.engine.sessions[sid]


async def _closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """The close frame's code and reason, once the server closed the connection."""
    async with asyncio.timeout(DEADLINE):
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


def _connect_packet(gw: RunningGateway) -> str:
    """A CONNECT authenticated with a valid token: the auth timeout is off the table."""
    return f'40{{"token":"{token(gw.app.settings, "pat")}"}}'


async def _refused(url: str) -> None:
    with pytest.raises(websockets.InvalidStatus):
        async with asyncio.timeout(DEADLINE):
            await websockets.connect(url)


# --- handshake ------------------------------------------------------------------------------
async def test_polling_handshake_opens_a_session(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    await _open_polling(gw, http)


async def test_polling_handshake_errors_are_400(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    for query in ("transport=polling", "EIO=abc&transport=polling", "EIO=3&transport=polling"):
        async with http.get(_eio(gw, query)) as answer:  # invalid EIO
            assert answer.status == 400, query
            assert (await answer.json())["code"] == 5
    for query in ("EIO=4", "EIO=4&transport=abc"):  # invalid transport
        async with http.get(_eio(gw, query)) as answer:
            assert answer.status == 400, query
            assert await answer.json() == {"code": 0, "message": "Transport unknown"}
    for method in ("POST", "PUT"):  # invalid method: a handshake is a GET
        async with http.request(method, _eio(gw)) as answer:
            assert answer.status == 400, method
            assert (await answer.json())["code"] == 2
    async with http.get(_eio(gw, "EIO=4&transport=polling&sid=nope")) as answer:
        assert answer.status == 400 and (await answer.json())["code"] == 1
    sid = await _open_polling(gw, http)
    async with http.request("PUT", _eio(gw, f"EIO=4&transport=polling&sid={sid}")) as answer:
        assert answer.status == 400


async def test_websocket_handshake_opens_a_session(gw: RunningGateway) -> None:
    async with websockets.connect(_ws(gw)) as ws:
        _check_opening(gw, str(await ws.recv()), [])


async def test_websocket_handshake_with_bad_eio_or_transport_is_refused(
    gw: RunningGateway,
) -> None:
    for query in ("transport=websocket", "EIO=abc&transport=websocket"):
        await _refused(_ws(gw, query))
    for query in ("EIO=4", "EIO=4&transport=abc"):
        await _refused(_ws(gw, query))


# --- heartbeat ------------------------------------------------------------------------------
async def test_polling_ping_pong(gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    url = _eio(gw, f"EIO=4&transport=polling&sid={await _open_polling(gw, http)}")
    for _ in range(3):
        async with http.get(url) as poll:
            assert (poll.status, await poll.text()) == (200, "2")
        async with http.post(url, data=b"3") as push:
            assert push.status == 200


async def test_polling_ping_timeout_closes_the_session(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = _eio(gw, f"EIO=4&transport=polling&sid={await _open_polling(gw, http)}")
    with capture_logs() as logs:
        async with http.post(url, data=_connect_packet(gw)) as push:
            assert push.status == 200
        # Polls until the close packet: the CONNECT's answer, a ping left unanswered, then
        # the poll pending meanwhile ends with the close (no sleep guesses the moment).
        received: list[str] = []
        while "1" not in received:
            async with http.get(url) as poll:
                assert poll.status == 200
                received += (await poll.text()).split("\x1e")
    assert received[0].startswith('40{"sid":') and received[-2:] == ["2", "1"]
    async with http.get(url) as poll:
        assert poll.status == 400
    closes = [entry["reason"] for entry in logs if entry["event"] == "sio_connection"]
    assert closes == ["ping timeout"]


async def test_websocket_ping_pong(gw: RunningGateway) -> None:
    async with websockets.connect(_ws(gw)) as ws:
        await ws.recv()
        for _ in range(3):
            assert await ws.recv() == "2"
            await ws.send("3")


async def test_websocket_ping_timeout_closes_the_session(gw: RunningGateway) -> None:
    async with websockets.connect(_ws(gw)) as ws:  # authenticated, then no pong
        await ws.recv()
        await ws.send(_connect_packet(gw))
        assert str(await ws.recv()).startswith('40{"sid":')
        assert await _closed(ws) == (1001, "ping timeout")


# --- close ----------------------------------------------------------------------------------
async def test_polling_client_close_packet_closes_the_session(
    quiet_gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    gw = quiet_gw
    sid = await _open_polling(gw, http)
    url = _eio(gw, f"EIO=4&transport=polling&sid={sid}")
    pending = asyncio.create_task(http.get(url))
    await eventually(lambda: _session(gw, sid).polling, "the poll waiting on the server")
    async with http.post(url, data=b"1") as push:
        assert push.status == 200
    async with await pending as poll:
        assert (poll.status, await poll.text()) == (200, "6")
    async with http.get(url) as poll:
        assert poll.status == 400


async def test_websocket_client_close_packet_closes_the_session(
    quiet_gw: RunningGateway,
) -> None:
    async with websockets.connect(_ws(quiet_gw)) as ws:
        assert str(await ws.recv()).startswith("0")
        await ws.send("1")
        assert await _closed(ws) == (1000, "client close")


# --- upgrade --------------------------------------------------------------------------------
async def test_upgrade_from_polling_to_websocket(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    sid = await _open_polling(gw, http)
    async with websockets.connect(_ws(gw, f"EIO=4&transport=websocket&sid={sid}")) as ws:
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        await ws.send("5")
        await ws.send("40")  # the session now speaks on the WebSocket
        assert str(await ws.recv()).startswith('40{"sid":')


@pytest.mark.parametrize("second", ["polling", "websocket"])
async def test_after_upgrade_the_sid_serves_no_other_transport(
    gw: RunningGateway, http: aiohttp.ClientSession, second: str
) -> None:
    sid = await _open_polling(gw, http)
    url = _ws(gw, f"EIO=4&transport=websocket&sid={sid}")
    async with websockets.connect(url) as ws:
        await ws.send("2probe")
        await ws.send("5")
        await ws.send(_connect_packet(gw))
        assert await ws.recv() == "3probe"
        # The CONNECT answered on the WebSocket: the server has read the `5` before it.
        assert str(await ws.recv()).startswith('40{"sid":')
        if second == "websocket":  # accepted, then closed at once
            async with websockets.connect(url) as ws2:
                assert (await _closed(ws2))[0] == 1008
            return
        async with http.get(_eio(gw, f"EIO=4&transport=polling&sid={sid}")) as poll:
            assert poll.status == 400


# --- beyond the suite -----------------------------------------------------------------------
async def test_hub_namespace_refuses_others_and_malformed_packets_close(
    quiet_gw: RunningGateway,
) -> None:
    gw = quiet_gw
    async with websockets.connect(_ws(gw)) as ws:
        await ws.recv()
        await ws.send("40/random")
        assert await ws.recv() == '44/random,{"message":"Invalid namespace"}'
    for bad in ("4abc", "42{}", '42abc["message-with-ack",1]', '451-["x",1]'):
        async with websockets.connect(_ws(gw)) as ws:
            await ws.recv()
            await ws.send(_connect_packet(gw))
            await ws.send(bad)
            assert await _closed(ws) == PARSE_ERROR, bad


async def test_polling_body_over_max_payload_is_413(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    sid = await _open_polling(gw, http)
    big = b"4" + b"x" * (MAX_PAYLOAD + 1)
    async with http.post(_eio(gw, f"EIO=4&transport=polling&sid={sid}"), data=big) as push:
        assert push.status == 413
