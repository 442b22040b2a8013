"""`GET /ws` against a real uvicorn, Kafka and FerretDB: routing, auth, limits, slow readers."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import orjson
import pytest
import websockets

from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    RunningGateway,
    eventually,
    flood_until_closed,
    frames_until_closed,
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    recv_frame,
    running_gateway,
    token,
)
from tests.resources import TEST_JWT_ISSUER, TEST_JWT_SECRET

pytestmark = pytest.mark.integration

AUDIENCE = "hub-tests"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(ws_auth_timeout=1.0, jwt_audience=AUDIENCE, jwt_leeway=0)


def _settings(gw: RunningGateway) -> Settings:
    return gw.app.settings


async def test_event_reaches_every_socket_of_its_user_and_no_other(gw: RunningGateway) -> None:
    s = _settings(gw)
    a1 = await open_ws(gw, token(s, "alice"))
    a2 = await open_ws(gw, token(s, "alice"))
    b = await open_ws(gw, token(s, "bob"))
    cursors = await produce(s, [new_message("alice", n) for n in range(5)])

    for ws in (a1, a2):
        frames = await recv_events(ws, 5)
        assert ids(frames) == [f"evt_alice_{n}" for n in range(5)]
        assert [f["cursor"] for f in frames] == cursors
        assert frames[0]["type"] == "new_message"
        assert frames[0]["data"]["message"]["text"] == "message 0 for alice"
        assert "userId" not in frames[0] and "schema" not in frames[0]

    # Alice's events were dispatched to every socket before Bob's was produced, so Bob's
    # first frame must be his own: had he been sent Alice's, it would come first.
    await produce(s, [new_message("bob", 0)])
    (frame,) = await recv_events(b, 1)
    assert frame["id"] == "evt_bob_0"
    for ws in (a1, a2, b):
        await ws.close()


async def test_ping_pong_and_invalid_frames_keep_the_socket(gw: RunningGateway) -> None:
    ws = await open_ws(gw, token(_settings(gw), "alice"))
    await ws.send('{"type": "ping"}')
    assert await recv_frame(ws) == {"type": "pong"}
    await ws.send("not json")
    error = await recv_frame(ws)
    assert error["type"] == "error" and error["data"]["code"] == "invalid_frame"
    await ws.send('{"type": "ping"}')
    assert await recv_frame(ws) == {"type": "pong"}
    await ws.close()


def _claims(user: str, **extra: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims = {"sub": user, "aud": AUDIENCE, "iss": TEST_JWT_ISSUER, "iat": now}
    return {**claims, "exp": now + timedelta(minutes=5), **extra}


def _none_token() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")

    claims = {"sub": "alice", "aud": AUDIENCE, "exp": int(time.time()) + 300}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_TOKENS: dict[str, Callable[[], str | None]] = {
    "no_frame_within_deadline": lambda: None,
    "bad_signature": lambda: jwt.encode(_claims("alice"), "another-secret-" + "y" * 40, "HS256"),
    "alg_none": _none_token,
    "expired": lambda: jwt.encode(
        _claims("alice", exp=datetime.now(UTC) - timedelta(minutes=1)), TEST_JWT_SECRET, "HS256"
    ),
    "wrong_audience": lambda: jwt.encode(_claims("alice", aud="other"), TEST_JWT_SECRET, "HS256"),
    "missing_sub": lambda: jwt.encode(
        {k: v for k, v in _claims("alice").items() if k != "sub"}, TEST_JWT_SECRET, "HS256"
    ),
    "missing_issuer": lambda: jwt.encode(
        {k: v for k, v in _claims("alice").items() if k != "iss"}, TEST_JWT_SECRET, "HS256"
    ),
    "over_max_lifetime": lambda: jwt.encode(
        _claims("alice", exp=datetime.now(UTC) + timedelta(days=400)), TEST_JWT_SECRET, "HS256"
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_auth_failure_sends_error_then_4401_and_no_events(
    gw: RunningGateway, case: str
) -> None:
    s = _settings(gw)
    watcher = await open_ws(gw, token(s, "alice"))  # proves alice's events do flow
    ws = await open_ws(gw)
    bad = BAD_TOKENS[case]()
    if bad is not None:
        await ws.send(orjson.dumps({"type": "authenticate", "token": bad}).decode())
    await produce(s, [new_message("alice", 1)])
    assert ids(await recv_events(watcher, 1)) == ["evt_alice_1"]

    frames, code = await frames_until_closed(ws)
    assert code == 4401
    assert [f["type"] for f in frames] == ["error"]
    assert frames[0]["data"]["code"] == "unauthorized"
    await watcher.close()


async def test_foreign_origin_is_refused_listed_and_absent_are_not(gw: RunningGateway) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await open_ws(gw, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    listed = await open_ws(gw, token(_settings(gw), "alice"), origin="http://localhost:5173")
    absent = await open_ws(gw, token(_settings(gw), "alice"))
    await listed.close()
    await absent.close()


async def test_oversized_frame_closes_with_1009(gw: RunningGateway) -> None:
    ws = await open_ws(gw, token(_settings(gw), "alice"))
    await ws.send('{"type": "ping", "pad": "' + "x" * (64 * 1024) + '"}')
    frames, code = await frames_until_closed(ws)
    assert code == 1009
    assert frames == []


async def test_token_expiry_closes_4401_unless_refreshed(gw: RunningGateway) -> None:
    s = _settings(gw)
    short = jwt.encode(
        _claims("alice", exp=datetime.now(UTC) + timedelta(seconds=2)), TEST_JWT_SECRET, "HS256"
    )
    expiring = await open_ws(gw, short)
    refreshed = await open_ws(gw, short)
    await refreshed.send(
        orjson.dumps({"type": "authenticate", "token": token(s, "alice")}).decode()
    )
    assert (await recv_frame(refreshed))["type"] == "authenticated"

    frames, code = await frames_until_closed(expiring)
    assert code == 4401
    assert [f["data"]["code"] for f in frames] == ["token_expired"]
    # The refreshed socket outlived the first token and still gets events.
    await produce(s, [new_message("alice", 7)])
    assert ids(await recv_events(refreshed, 1)) == ["evt_alice_7"]
    await refreshed.close()


async def test_reauthenticating_as_another_user_is_refused(gw: RunningGateway) -> None:
    s = _settings(gw)
    ws = await open_ws(gw, token(s, "alice"))
    await ws.send(orjson.dumps({"type": "authenticate", "token": token(s, "bob")}).decode())
    frames, code = await frames_until_closed(ws)
    assert code == 4401
    assert [f["type"] for f in frames] == ["error"]


async def test_slow_reader_is_closed_with_4408(
    settings_factory: Callable[..., Settings],
) -> None:
    s = settings_factory(ws_send_queue=8, topic_partitions=1)
    async with running_gateway(s) as gw:
        # A client that reads nothing, with a tiny receive buffer so the kernel fills fast.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gw.port))
        ws = await websockets.connect(gw.ws_url, sock=sock, max_queue=1, max_size=None)
        await ws.send(orjson.dumps({"type": "authenticate", "token": token(s, "alice")}).decode())
        registry, pump = gw.app.runtime.registry, gw.app.runtime.pump
        await eventually(lambda: b"alice" in registry.ws, "alice to authenticate")
        conn = registry.ws[b"alice"][0]
        sent = await flood_until_closed(s, pump, conn, "alice")
        assert conn.close_code == 4408
        frames, code = await frames_until_closed(ws)
        assert code == 4408
        assert 0 < len(frames) < sent  # what fit in the buffers, then the close
