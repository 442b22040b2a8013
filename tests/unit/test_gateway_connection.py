"""The per-connection outbox: order, the resume hand-over, and the slow-reader bound."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from gateway.connection import CLOSE_SLOW_READER, WsConnection
from gateway.registry import Registry
from schemas.frames import Event, decode_event
from tests.integration.gateway_kit import new_message


class Socket:
    """Collects what the writer sends; `stall` holds every send until released."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.open.wait()
        self.sent.append(message)

    def event_ids(self) -> list[str]:
        return [orjson.loads(m["text"])["id"] for m in self.sent if m["type"] == "websocket.send"]


def _event(n: int, offset: int | None = None) -> Event:
    record = new_message("alice", n).to_json()
    return decode_event(0, n if offset is None else offset, b"alice", record)


async def _drain(writer: asyncio.Task[None]) -> None:
    """Let the writer send what is queued (it only ever waits on the queue or the socket)."""
    for _ in range(100):
        await asyncio.sleep(0)
    assert not writer.done()


async def test_live_events_are_sent_in_order() -> None:
    socket = Socket()
    conn = WsConnection(socket.send, limit=16)
    writer = asyncio.create_task(conn.run_writer())
    for n in range(5):
        conn.deliver(_event(n))
    await _drain(writer)
    assert socket.event_ids() == [f"evt_alice_{n}" for n in range(5)]
    assert conn.frames_sent == 5
    writer.cancel()


async def test_replay_then_held_back_live_events_after_the_floor() -> None:
    socket = Socket()
    conn = WsConnection(socket.send, limit=16)
    writer = asyncio.create_task(conn.run_writer())
    conn.start_replay()
    conn.deliver(_event(5))  # live while replaying: held back
    conn.deliver(_event(6))
    await _drain(writer)
    assert socket.event_ids() == []
    for n in (3, 4):
        await conn.put(_event(n))
    await conn.finish_replay((0, 4))
    conn.deliver(_event(7))
    await _drain(writer)
    assert socket.event_ids() == [f"evt_alice_{n}" for n in (3, 4, 5, 6, 7)]
    writer.cancel()


async def test_floor_drops_events_a_resume_already_covered() -> None:
    socket = Socket()
    conn = WsConnection(socket.send, limit=16)
    writer = asyncio.create_task(conn.run_writer())
    conn.start_replay()
    conn.deliver(_event(9))  # the cursor itself arrives live on a lagging gateway
    await conn.finish_replay((0, 9))
    conn.deliver(_event(9))
    conn.deliver(_event(10))
    await _drain(writer)
    assert socket.event_ids() == ["evt_alice_10"]
    writer.cancel()


async def test_slow_reader_is_closed_with_4408_instead_of_buffering() -> None:
    socket = Socket()
    socket.open.clear()  # the client reads nothing
    conn = WsConnection(socket.send, limit=8)
    writer = asyncio.create_task(conn.run_writer())
    for n in range(50):
        conn.deliver(_event(n))
    assert conn.close_code == CLOSE_SLOW_READER
    assert conn.finished.is_set()
    socket.open.set()
    await asyncio.wait_for(writer, 5)
    closes = [m for m in socket.sent if m["type"] == "websocket.close"]
    assert closes == [{"type": "websocket.close", "code": 4408, "reason": "send queue overflow"}]
    assert len(socket.sent) <= 2  # at most the frame in flight, then the close


async def test_error_frame_goes_out_before_the_close() -> None:
    socket = Socket()
    conn = WsConnection(socket.send, limit=8)
    writer = asyncio.create_task(conn.run_writer())
    conn.close(4401, "unauthorized", error='{"type":"error"}')
    await asyncio.wait_for(writer, 5)
    assert [m["type"] for m in socket.sent] == ["websocket.send", "websocket.close"]


def test_registry_counts_distinct_users_over_both_transports() -> None:
    registry = Registry()
    a1, a2 = WsConnection(Socket().send, 8), WsConnection(None, 8, socketio=True)
    b1 = WsConnection(None, 8, socketio=True)
    for conn, user in ((a1, "alice"), (a2, "alice"), (b1, "bob")):
        conn.bind(user)
        registry.add_ws(conn)
    assert registry.authenticated_users() == 2
    registry.remove_ws(a1)
    registry.remove_ws(a2)
    registry.remove_ws(a2)  # twice is harmless
    assert registry.authenticated_users() == 1 and b"alice" not in registry.ws
    registry.remove_ws(b1)
    assert registry.authenticated_users() == 0
