"""One `/ws` client as the push path sees it: a bounded outbox drained by one writer task."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.metrics import DISCONNECTS, EVENTS_PUSHED, PUSH_LATENCY
from schemas.frames import Event

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]

# Close codes of `/ws` (docs/protocol.md): 4401 authentication, 4408 slow reader, 1009 size.
CLOSE_UNAUTHORIZED = 4401
CLOSE_SLOW_READER = 4408
CLOSE_TOO_BIG = 1009


class Directive:
    """An outbox item that is not a text frame; the writer tests for this one class only."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CloseRequest(Directive):
    """Queued behind the frames that must still go out (an error frame), then closes."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class BinaryFrame(Directive):
    """A binary Engine.IO message (a Socket.IO attachment): `b<base64>` on long-polling."""

    data: bytes


Item = tuple[str, float] | Directive  # (frame text, occurredAt epoch or 0 for control)


def new_connection_id() -> str:
    """An unguessable id naming one connection in frames and logs."""
    return "conn_" + secrets.token_hex(8)


class WsConnection:
    """Outbox of one WebSocket.

    The pump calls `deliver` synchronously for every event of the connection's user: it
    appends the already-encoded frame to a bounded deque and wakes the writer, so one slow
    socket never holds up the others. Overflow closes the socket with 4408 instead of
    growing memory. While a resume replays history, live events wait in `pending`.
    """

    # Slots: one of these per socket, 10,000 per process (P4/P4s measure RSS per socket).
    __slots__ = (
        "_floor",
        "_items",
        "_limit",
        "_pending",
        "_ready",
        "_send",
        "_space",
        "close_code",
        "finished",
        "frames_sent",
        "id",
        "key",
        "socketio",
        "user_id",
    )

    def __init__(
        self,
        send: AsgiSend | None,
        limit: int,
        connection_id: str | None = None,
        *,
        socketio: bool = False,
    ) -> None:
        self.id = connection_id or new_connection_id()
        self.socketio = socketio  # frames are Engine.IO packets; events use `Event.sio_item`
        self.user_id: str | None = None
        self.key = b""
        self.frames_sent = 0
        self.close_code: int | None = None  # set once the server decided to close
        self.finished = asyncio.Event()  # server close requested, or the client went away
        self._send = send  # None while a Socket.IO session is on HTTP long-polling
        self._limit = limit
        self._items: deque[Item] = deque()
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._pending: deque[Event] | None = None
        self._floor: tuple[int, int] | None = None  # (partition, offset) already delivered

    def bind(self, user_id: str) -> None:
        """Attach the authenticated user; the pump routes by `key`."""
        self.user_id = user_id
        self.key = user_id.encode()

    # --- producers of frames -----------------------------------------------------------
    def deliver(self, event: Event) -> None:
        """Queue a live event (called by the pump, never awaits)."""
        if self.close_code is not None:
            return
        pending = self._pending
        if pending is not None:
            if len(pending) >= self._limit:
                self.close(CLOSE_SLOW_READER, "send queue overflow", drop_queued=True)
            else:
                pending.append(event)
            return
        floor = self._floor
        if floor is not None and event.partition == floor[0] and event.offset <= floor[1]:
            return  # delivered already (resume ran ahead of this gateway's live position)
        if len(self._items) >= self._limit:
            self.close(CLOSE_SLOW_READER, "send queue overflow", drop_queued=True)
            return
        self._items.append(event.sio_item if self.socketio else event.ws_item)
        self._ready.set()

    def control(self, text: str) -> None:
        """Queue a control frame (authenticated, pong, error) under the same bound."""
        self._enqueue((text, 0.0))

    def binary(self, data: bytes) -> None:
        """Queue a binary frame (Socket.IO attachments; never on the push path)."""
        self._enqueue(BinaryFrame(data))

    def _enqueue(self, item: Item) -> None:
        if self.close_code is not None:
            return
        if len(self._items) >= self._limit:
            self.close(CLOSE_SLOW_READER, "send queue overflow", drop_queued=True)
            return
        self._items.append(item)
        self._ready.set()

    async def put(self, event: Event) -> None:
        """Queue a replayed event, waiting for room: history is sent at the reader's pace."""
        while len(self._items) >= self._limit and self.close_code is None:
            self._space.clear()
            await self._space.wait()
        if self.close_code is None:
            self._items.append(event.sio_item if self.socketio else event.ws_item)
            self._ready.set()

    # --- resume hand-over -------------------------------------------------------------
    def start_replay(self) -> None:
        """From now until `finish_replay`, live events are held back in order."""
        self._pending = deque()

    async def finish_replay(self, floor: tuple[int, int] | None) -> None:
        """Send the held-back live events after `floor` (the last replayed record), then go
        live. The final emptiness check and the switch happen without an await between."""
        self._floor = floor
        pending = self._pending
        while pending:
            event = pending.popleft()
            if floor is None or event.partition != floor[0] or event.offset > floor[1]:
                await self.put(event)
        self._pending = None

    # --- closing ----------------------------------------------------------------------
    def close(
        self, code: int, reason: str, *, error: str | None = None, drop_queued: bool = False
    ) -> None:
        """Close from the server side: optionally an error frame first, then the close."""
        if self.close_code is not None:
            return
        self.close_code = code
        DISCONNECTS.labels(str(code)).inc()
        if drop_queued:
            self._items.clear()
        self._pending = None
        if error is not None:
            self._items.append((error, 0.0))
        self._items.append(CloseRequest(code, reason))
        self._ready.set()
        self._space.set()
        self.finished.set()

    def client_gone(self) -> None:
        """The client closed or the connection dropped."""
        self._pending = None
        self._space.set()
        self.finished.set()

    # --- HTTP long-polling (Socket.IO before its upgrade) --------------------------------
    async def take(self) -> tuple[list[str], bool]:
        """Wait for frames, then everything queued: (texts, True when a close follows)."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        texts: list[str] = []
        events = 0
        closing = False
        while self._items:
            item = self._items.popleft()
            if isinstance(item, Directive):
                if isinstance(item, BinaryFrame):
                    texts.append("b" + base64.b64encode(item.data).decode())
                    continue
                closing = True
                break
            texts.append(item[0])
            events += item[1] != 0.0
        self._space.set()
        if events:
            EVENTS_PUSHED.labels("socketio").inc(events)
            self.frames_sent += events
        return texts, closing

    @property
    def pending(self) -> bool:
        """Frames (or the close) are still queued."""
        return bool(self._items)

    def attach(self, send: AsgiSend) -> None:
        """From now on frames go to the WebSocket `send` (Socket.IO's upgrade)."""
        self._send = send

    # --- the writer -------------------------------------------------------------------
    async def run_writer(self) -> None:
        """Drain the outbox into the socket until a close is sent or the client is gone."""
        items, ready, space, send = self._items, self._ready, self._space, self._send
        assert send is not None, "attach a WebSocket first"
        pushed = EVENTS_PUSHED.labels("socketio" if self.socketio else "ws")
        observe = PUSH_LATENCY.observe
        # Metrics are settled once per drained run, not per frame: a histogram observation
        # and a counter increment cost about a tenth of a frame's CPU in a broadcast burst.
        # The counter stays exact; the latency histogram gets one observation per
        # connection and run: its last frame's.
        sent, last = 0, 0.0

        def settle(frames: int) -> None:
            pushed.inc(frames)
            self.frames_sent += frames

        try:
            while True:
                if not items:
                    if sent:
                        settle(sent)
                        observe(time.time() - last)
                        sent = 0
                    ready.clear()
                    await ready.wait()
                    continue
                item = items.popleft()
                space.set()
                if isinstance(item, Directive):
                    if isinstance(item, BinaryFrame):
                        await send({"type": "websocket.send", "bytes": item.data})
                        continue
                    assert isinstance(item, CloseRequest)
                    await send(
                        {"type": "websocket.close", "code": item.code, "reason": item.reason}
                    )
                    return
                text, occurred = item
                await send({"type": "websocket.send", "text": text})
                if occurred:
                    sent += 1
                    last = occurred
        except OSError:  # uvicorn's ClientDisconnected
            self.client_gone()
        finally:
            if sent:
                settle(sent)
