"""Socket.IO packets, recovery pids and the long-polling outbox (no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.connection import WsConnection
from gateway.engineio import EngineOptions, EngineServer, EngineSession
from gateway.sio_core import (
    ACK,
    BINARY_EVENT,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
    Packet,
    SocketIOServer,
    emit,
    encode_packet,
    parse_packet,
    send_packet,
)
from gateway.sio_session import PidSigner
from hubcore.settings import Settings, SettingsError, load_settings
from schemas.frames import decode_event
from tests.integration.gateway_kit import new_message


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        ("0", Packet(CONNECT)),
        ('0{"token":"t"}', Packet(CONNECT, data={"token": "t"})),
        ('0/custom,{"a":1}', Packet(CONNECT, "/custom", {"a": 1})),
        ("0/custom", Packet(CONNECT, "/custom")),
        ("1", Packet(DISCONNECT)),
        ('2["authenticate",{"token":"t"}]', Packet(EVENT, data=["authenticate", {"token": "t"}])),
        ('212["authenticate",{}]', Packet(EVENT, data=["authenticate", {}], ack=12)),
        ('2/admin,3["x"]', Packet(EVENT, "/admin", ["x"], 3)),
        ('3456[1,"2"]', Packet(ACK, data=[1, "2"], ack=456)),
        (
            '52-789["m",{"_placeholder":true,"num":0}]',
            Packet(
                BINARY_EVENT, data=["m", {"_placeholder": True, "num": 0}], ack=789, attachments=2
            ),
        ),
    ],
)
def test_packets_are_parsed(data: str, parsed: Packet) -> None:
    assert parse_packet(data) == parsed


@pytest.mark.parametrize(
    "data",
    [
        *("", "9", "2[not json", "x{}", "abc", "2{}", "2[]", '2abc["x"]', '2["connect"]'),
        *("1{}", "4{}", '0"x"', "5[]", '5x-["m"]', "3{}"),
    ],
)
def test_malformed_packets_are_none(data: str) -> None:
    assert parse_packet(data) is None


@pytest.mark.parametrize(
    ("packet", "text", "buffers"),
    [
        ((EVENT, "/", ["auth", {}]), '2["auth",{}]', []),
        ((EVENT, "/custom", ["auth", {}]), '2/custom,["auth",{}]', []),
        ((ACK, "/", [1, b"\x01"], 7), '61-7[1,{"_placeholder":true,"num":0}]', [b"\x01"]),
        ((CONNECT_ERROR, "/x", {"message": "m"}), '4/x,{"message":"m"}', []),
    ],
)
def test_packets_are_encoded_with_attachments_apart(
    packet: tuple[Any, ...], text: str, buffers: list[bytes]
) -> None:
    assert encode_packet(*packet) == (text, buffers)


def test_pids_are_bound_to_their_user_and_shared_by_processes() -> None:
    settings = Settings(jwt_secret="s" * 40)
    signer, other_process = PidSigner(settings), PidSigner(settings)
    alice = signer.issue("alice")
    assert other_process.valid(alice, "alice")
    assert not other_process.valid(alice, "bob")  # a foreign pid is refused
    assert not other_process.valid(alice, None)
    anonymous = signer.issue(None)  # issued before `authenticate`
    assert other_process.valid(anonymous, None) and other_process.valid(anonymous, "bob")
    assert not PidSigner(Settings(jwt_secret="t" * 40)).valid(alice, "alice")
    for forged in ("", "nodot", alice.split(".")[0] + ".AAAA", "x" * 200):
        assert not signer.valid(forged, "alice")
    # Not ASCII: compared as bytes, refused (the str comparison raised, issue 22).
    for forged in (alice[:-2] + "\u00e9\u00e9", "\u00e9.\u00e9", "\ud800.\udc00"):
        assert not signer.valid(forged, "alice") and not signer.valid(forged, None)


def test_a_shared_pid_key_serves_public_key_deployments() -> None:
    key = "k" * 40
    signer = PidSigner(Settings(socketio_pid_key=key))  # no JWT secret (public-key tokens)
    alice = signer.issue("alice")
    assert PidSigner(Settings(socketio_pid_key=key)).valid(alice, "alice")
    assert not PidSigner(Settings()).valid(alice, "alice")  # a process's own random key
    with pytest.raises(SettingsError, match="HUB_SOCKETIO_PID_KEY"):
        load_settings(socketio_pid_key="short")


async def test_polling_takes_everything_queued_then_the_close() -> None:
    conn = WsConnection(None, 8, socketio=True)
    conn.bind("alice")
    waiting = asyncio.create_task(conn.take())
    await asyncio.sleep(0)
    assert not waiting.done()  # a poll waits for something to send
    event = decode_event(0, 7, b"alice", new_message("alice", 1).to_json())
    conn.deliver(event)
    conn.control("2")
    assert await asyncio.wait_for(waiting, 5) == ([event.sio_text, "2"], False)
    assert conn.frames_sent == 1
    conn.control('42["error",{}]')
    conn.close(4401, "unauthorized")
    assert await conn.take() == (['42["error",{}]'], True)


class _Recorder:
    """Namespace handler and session hooks that keep what they were given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_open(self, session: EngineSession) -> None:
        self.calls.append(("open", session.sid))

    def on_close(self, session: EngineSession, reason: str) -> None:
        self.calls.append(("close", reason))

    def on_connect(self, session: EngineSession, namespace: str, auth: dict[str, Any]) -> None:
        self.calls.append(("connect", namespace, auth))

    def on_event(
        self, session: EngineSession, namespace: str, args: list[Any], ack: int | None
    ) -> None:
        self.calls.append(("event", namespace, args, ack))

    def on_disconnect(self, session: EngineSession, namespace: str) -> None:
        self.calls.append(("disconnect", namespace))


def _server(*, binary: bool = True) -> tuple[SocketIOServer, _Recorder, EngineSession]:
    recorder = _Recorder()
    server = SocketIOServer({"/": recorder}, recorder, binary=binary)
    engine = EngineServer(EngineOptions(30, 30, 1000, 16), server)
    session = EngineSession("sid", WsConnection(None, 16, socketio=True), engine)
    engine.sessions["sid"] = session
    return server, recorder, session


async def test_attachments_are_put_back_in_place_before_the_handler_sees_the_event() -> None:
    server, recorder, session = _server()
    server.on_message(session, '51-3["up",{"_placeholder":true,"num":0}]')
    assert recorder.calls == []  # waiting for its attachment
    server.on_binary(session, b"\x01\x02")
    assert recorder.calls == [("event", "/", ["up", b"\x01\x02"], 3)]
    server.on_message(session, '0/nope,{"a":1}')
    assert (await session.conn.take())[0] == ['44/nope,{"message":"Invalid namespace"}']


@pytest.mark.parametrize(
    ("messages", "binary"),
    [
        (['51-["up",{"_placeholder":true,"num":0}]', '2["x"]'], True),  # text while waiting
        (['51-["up",{"_placeholder":true,"num":5}]', b"\x01"], True),  # no such attachment
        ([b"\x01"], True),  # an attachment nobody announced
        (['599-["up"]'], True),  # more attachments than a packet may have
        (['51-["up",{"_placeholder":true,"num":0}]'], False),  # the hub takes no binary
    ],
)
async def test_broken_attachments_close_the_session(
    messages: list[str | bytes], binary: bool
) -> None:
    server, recorder, session = _server(binary=binary)
    for message in messages:
        if isinstance(message, bytes):
            server.on_binary(session, message)
        else:
            server.on_message(session, message)
    assert session.closed and recorder.calls == [("close", "parse error")]
    assert not server._partial


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (
            '51-["a-b",{"_placeholder":true,"num":0}]',
            Packet(BINARY_EVENT, data=["a-b", {"_placeholder": True, "num": 0}], attachments=1),
        ),
        ('2/admin,["a,b"]', Packet(EVENT, "/admin", ["a,b"])),
        ('2/admin,7["x"]', Packet(EVENT, "/admin", ["x"], 7)),
    ],
)
def test_separators_inside_the_payload_are_payload(data: str, parsed: Packet) -> None:
    assert parse_packet(data) == parsed


def test_a_packet_type_outside_the_protocol_is_none() -> None:
    assert parse_packet("X0") is None and parse_packet("7") is None


def test_attachments_nested_in_objects_go_apart_and_come_back() -> None:
    data = ["up", {"file": {"bytes": b"\x01"}, "list": [b"\x02"]}]
    text, buffers = encode_packet(EVENT, "/", data, 4)
    assert text == (
        '52-4["up",{"file":{"bytes":{"_placeholder":true,"num":0}},'
        '"list":[{"_placeholder":true,"num":1}]}]'
    )
    assert buffers == [b"\x01", b"\x02"]
    server, recorder, session = _server()
    server.on_message(session, text)
    for buffer in buffers:
        server.on_binary(session, buffer)
    assert recorder.calls == [("event", "/", data, 4)]


async def test_a_placeholder_past_the_last_attachment_closes_the_session() -> None:
    server, recorder, session = _server()
    server.on_message(session, '52-["up",{"_placeholder":true,"num":2}]')
    server.on_binary(session, b"\x01")
    server.on_binary(session, b"\x02")
    assert recorder.calls == [("close", "parse error")]


def test_a_packet_may_carry_up_to_sixteen_attachments() -> None:
    placeholders = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(16))
    server, recorder, session = _server()
    server.on_message(session, f'516-["up",{placeholders}]')
    for n in range(16):
        server.on_binary(session, bytes([n]))
    assert recorder.calls == [("event", "/", ["up", *(bytes([n]) for n in range(16))], None)]
    assert not session.closed


def test_a_server_takes_attachments_unless_told_not_to() -> None:
    recorder = _Recorder()
    server = SocketIOServer({"/": recorder}, recorder)
    engine = EngineServer(EngineOptions(30, 30, 1000, 16), server)
    session = EngineSession("sid", WsConnection(None, 16, socketio=True), engine)
    server.on_message(session, '51-["up",{"_placeholder":true,"num":0}]')
    server.on_binary(session, b"\x01")
    assert recorder.calls == [("event", "/", ["up", b"\x01"], None)]


class _SessionRecorder(_Recorder):
    """Keeps which session each call was about."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: list[EngineSession] = []

    def on_close(self, session: EngineSession, reason: str) -> None:
        self.sessions.append(session)
        super().on_close(session, reason)

    def on_connect(self, session: EngineSession, namespace: str, auth: dict[str, Any]) -> None:
        self.sessions.append(session)
        super().on_connect(session, namespace, auth)

    def on_event(
        self, session: EngineSession, namespace: str, args: list[Any], ack: int | None
    ) -> None:
        self.sessions.append(session)
        super().on_event(session, namespace, args, ack)

    def on_disconnect(self, session: EngineSession, namespace: str) -> None:
        self.sessions.append(session)
        super().on_disconnect(session, namespace)


def test_handlers_hear_of_their_own_session() -> None:
    recorder = _SessionRecorder()
    server = SocketIOServer({"/": recorder, "/admin": recorder}, recorder)
    engine = EngineServer(EngineOptions(30, 30, 1000, 16), server)
    session = EngineSession("sid", WsConnection(None, 16, socketio=True), engine)
    for text in ("0", "0/admin,", '2["x"]', "1/admin,"):
        server.on_message(session, text)
    server.on_message(session, '51-["b",{"_placeholder":true,"num":0}]')
    server.on_binary(session, b"\x00")
    server.on_close(session, "transport close")
    assert recorder.calls == [
        ("connect", "/", {}),
        ("connect", "/admin", {}),
        ("event", "/", ["x"], None),
        ("disconnect", "/admin"),
        ("event", "/", ["b", b"\x00"], None),
        ("close", "transport close"),
    ]
    assert all(s is session for s in recorder.sessions) and len(recorder.sessions) == 6


async def test_send_packet_queues_the_text_then_each_attachment() -> None:
    _, _, session = _server()
    send_packet(session, ACK, "/", ["ok", b"\x07"], 12)
    assert await session.conn.take() == (
        ['461-12["ok",{"_placeholder":true,"num":0}]', "b" + "Bw=="],
        False,
    )


async def test_emit_sends_an_event_with_its_arguments() -> None:
    _, _, session = _server()
    emit(session, "/custom", "message-back", 1, {"a": "b"})
    assert await session.conn.take() == (['42/custom,["message-back",1,{"a":"b"}]'], False)


def test_session_hooks_hear_of_an_open_session() -> None:
    server, recorder, session = _server()
    server.on_open(session)
    assert recorder.calls == [("open", "sid")]
