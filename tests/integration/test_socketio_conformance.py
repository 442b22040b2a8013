"""Socket.IO protocol conformance of the gateway's Socket.IO layer, on the wire.

One test per case of the Socket.IO part of socketio/socket.io-protocol's test-suite
(connect, disconnect, message; not on npm, so written here in our own words, see
docs/protocol.md), against the test-only echo app built from the same layer with the
suite's handlers and settings (tests/integration/sio_echo.py). The Engine.IO part runs
against the gateway itself (test_gateway_engineio.py).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.integration.gateway_kit import DEADLINE
from tests.integration.sio_echo import running_echo_app

pytestmark = pytest.mark.integration

PLACEHOLDERS = '{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}'
# The close tests' heartbeat: no ping within any wait of theirs, so a session a test sees
# closed was closed by the behaviour under test, never by an unanswered ping.
QUIET_PING_INTERVAL = 10 * DEADLINE
PARSE_ERROR = (1000, "parse error")  # the layer's close of a malformed packet
UNKNOWN_SID = {"code": 1, "message": "Session ID unknown"}  # Engine.IO's 400 answer


@pytest.fixture
async def host() -> AsyncIterator[str]:
    async with running_echo_app() as address:
        yield address


@pytest.fixture
async def quiet_host() -> AsyncIterator[str]:
    """The echo app with a heartbeat that cannot close a session during a test."""
    async with running_echo_app(QUIET_PING_INTERVAL) as address:
        yield address


def _url(host: str) -> str:
    return f"ws://{host}/socket.io/?EIO=4&transport=websocket"


async def _recv(ws: ClientConnection) -> str | bytes:
    async with asyncio.timeout(DEADLINE):
        return await ws.recv()


async def _closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """The close frame's code and reason, once the server closed the connection."""
    async with asyncio.timeout(DEADLINE):
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


async def _packets(ws: ClientConnection, count: int) -> list[str | bytes]:
    """The next `count` messages, pings left out (the suite's waitForPackets)."""
    packets: list[str | bytes] = []
    while len(packets) < count:
        if (data := await _recv(ws)) != "2":
            packets.append(data)
    return packets


async def _connected(host: str) -> ClientConnection:
    """A WebSocket session joined to the main namespace, its `auth` packet read."""
    ws = await websockets.connect(_url(host))
    await _recv(ws)  # Engine.IO handshake
    await ws.send("40")
    await _recv(ws)  # Socket.IO handshake
    await _recv(ws)  # the "auth" event
    return ws


def _handshake_sid(data: str | bytes, prefix: str) -> None:
    assert isinstance(data, str) and data.startswith(prefix)
    handshake = orjson.loads(data[len(prefix) :])
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)


# --- connect --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sent", "prefix", "auth"),
    [
        ("40", "40", '42["auth",{}]'),
        ('40{"token":"123"}', "40", '42["auth",{"token":"123"}]'),
        ("40/custom,", "40/custom,", '42/custom,["auth",{}]'),
        ('40/custom,{"token":"abc"}', "40/custom,", '42/custom,["auth",{"token":"abc"}]'),
    ],
    ids=["main", "main-with-payload", "custom", "custom-with-payload"],
)
async def test_connect_to_a_namespace_answers_its_sid_then_auth(
    host: str, sent: str, prefix: str, auth: str
) -> None:
    async with websockets.connect(_url(host)) as ws:
        await _recv(ws)
        await ws.send(sent)
        _handshake_sid(await _recv(ws), prefix)
        assert await _recv(ws) == auth


async def test_connect_to_an_unknown_namespace_is_refused(host: str) -> None:
    async with websockets.connect(_url(host)) as ws:
        await _recv(ws)
        await ws.send("40/random")
        assert await _recv(ws) == '44/random,{"message":"Invalid namespace"}'


async def test_an_invalid_handshake_closes_the_connection(quiet_host: str) -> None:
    async with websockets.connect(_url(quiet_host)) as ws:
        await _recv(ws)
        await ws.send("4abc")
        assert await _closed(ws) == PARSE_ERROR


async def test_no_handshake_closes_the_connection(quiet_host: str) -> None:
    async with websockets.connect(_url(quiet_host)) as ws:
        assert await _closed(ws) == (1000, "connect timeout")


# --- disconnect -----------------------------------------------------------------------------
async def test_disconnect_from_the_main_namespace_keeps_the_session(host: str) -> None:
    ws = await _connected(host)
    async with ws:
        await ws.send("41")
        assert await _recv(ws) == "2"  # nothing but the next ping


async def test_disconnect_from_a_custom_namespace_keeps_the_main_one(host: str) -> None:
    ws = await _connected(host)
    async with ws:
        assert await _recv(ws) == "2"
        await ws.send("40/custom")
        await _recv(ws)  # Socket.IO handshake
        await _recv(ws)  # auth
        await ws.send("41/custom")
        await ws.send('42["message","message to main namespace"]')
        assert await _recv(ws) == '42["message-back","message to main namespace"]'


# --- message --------------------------------------------------------------------------------
async def test_a_plain_text_event_is_echoed(host: str) -> None:
    ws = await _connected(host)
    async with ws:
        await ws.send('42["message",1,"2",{"3":[true]}]')
        assert await _recv(ws) == '42["message-back",1,"2",{"3":[true]}]'


async def test_an_event_with_an_ack_is_acked(host: str) -> None:
    ws = await _connected(host)
    async with ws:
        await ws.send('42456["message-with-ack",1,"2",{"3":[false]}]')
        assert await _recv(ws) == '43456[1,"2",{"3":[false]}]'


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        (f'452-["message",{PLACEHOLDERS}]', f'452-["message-back",{PLACEHOLDERS}]'),
        (f'452-789["message-with-ack",{PLACEHOLDERS}]', f"462-789[{PLACEHOLDERS}]"),
    ],
    ids=["event", "event-with-ack"],
)
async def test_binary_attachments_are_echoed_in_place(host: str, sent: str, echoed: str) -> None:
    ws = await _connected(host)
    async with ws:
        await ws.send(sent)
        await ws.send(bytes([1, 2, 3]))
        await ws.send(bytes([4, 5, 6]))
        assert await _packets(ws, 3) == [echoed, bytes([1, 2, 3]), bytes([4, 5, 6])]


@pytest.mark.parametrize(
    "bad",
    ["4abc", "42{}", '42abc["message-with-ack",1,"2",{"3":[false]}]'],
    ids=["unknown-packet-type", "invalid-payload", "invalid-ack-id"],
)
async def test_an_invalid_packet_closes_the_connection(quiet_host: str, bad: str) -> None:
    ws = await _connected(quiet_host)
    async with ws:
        await ws.send(bad)
        assert await _closed(ws) == PARSE_ERROR


# --- beyond the suite -----------------------------------------------------------------------
async def test_binary_attachments_over_long_polling_are_base64(quiet_host: str) -> None:
    url = f"http://{quiet_host}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as http:
        async with http.get(url) as answer:
            sid = orjson.loads((await answer.text())[1:])["sid"]
        url += f"&sid={sid}"
        async with http.post(url, data="40") as push:
            assert push.status == 200
        async with http.get(url) as poll:
            assert (await poll.text()).split("\x1e")[1] == '42["auth",{}]'
        attachment = "b" + base64.b64encode(b"\x00\xff").decode()
        body = '451-["message",{"_placeholder":true,"num":0}]\x1e' + attachment
        async with http.post(url, data=body) as push:
            assert push.status == 200
        async with http.get(url) as poll:
            echoed = (await poll.text()).split("\x1e")
        assert echoed == ['451-["message-back",{"_placeholder":true,"num":0}]', attachment]
        # An attachment nobody announced is a protocol error: the session ends.
        async with http.post(url, data=attachment) as push:
            assert push.status == 200
        async with http.get(url) as poll:  # no poll was pending: the session is gone
            assert (poll.status, await poll.json()) == (400, UNKNOWN_SID)
