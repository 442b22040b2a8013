"""Catching a connection up from a cursor: its history from Kafka, then live, no gap or repeat.

Shared by `/ws` (`resumeFrom`) and Socket.IO (connection state recovery, `resumeFrom`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.connection import WsConnection
from gateway.errors import BadRequest
from gateway.frames import Cursor
from gateway.metrics import RESUMES
from gateway.pump import EventPump
from gateway.registry import Registry
from gateway.resume import INVALID, UNAVAILABLE, ResumeOutcome, ResumeService
from hubcore.kafka import partition_for


@dataclass(frozen=True, slots=True)
class CatchUp:
    """A replay to run: the user's events after `cursor` and before `live_from`."""

    cursor: Cursor
    live_from: int


def begin_catch_up(
    conn: WsConnection, registry: Registry, pump: EventPump, text: str
) -> CatchUp | tuple[str, str]:
    """Register `conn` for live events and fix where they begin, in one step (no await).

    `conn` is registered either way; on a cursor that cannot be served the answer is an
    error (code, message), already counted, and live events flow at once.
    """
    try:
        cursor = Cursor.parse(text)
    except BadRequest as exc:
        registry.add_ws(conn)
        return _failed(INVALID, exc.message)
    live_from = pump.position(cursor.partition)
    if not cursor.anchored and live_from is not None and cursor.partition != _partition(conn, pump):
        # No record to check it by: the partition must be the user's own.
        registry.add_ws(conn)
        return _failed(INVALID, "cursor does not belong to this user")
    if live_from is None:
        registry.add_ws(conn)
        if pump.ready.is_set():
            return _failed(INVALID, "cursor names no partition of the event topic")
        return _failed(UNAVAILABLE, "the event stream is not connected yet")
    conn.start_replay()
    registry.add_ws(conn)
    return CatchUp(cursor, live_from)


def live_cursor(conn: WsConnection, pump: EventPump) -> str | None:
    """Where `conn`'s live events begin, were it registered now: the position cursor of its
    user's partition at the pump's next offset (None before the pump is ready).

    `authenticated` carries it, so a client that drops before its first event resumes from
    it and misses nothing; take it in the same step (no await) as the registration.
    """
    if not pump.partitions:
        return None
    partition = _partition(conn, pump)
    live_from = pump.position(partition)
    return None if live_from is None else str(Cursor.position(partition, live_from))


def _partition(conn: WsConnection, pump: EventPump) -> int:
    """The partition of `hub.user-events` that holds the user's events (the key's)."""
    partitions = pump.partitions
    return partition_for(conn.key, partitions, partitions)


async def hand_over(conn: WsConnection, catch_up: CatchUp, outcome: ResumeOutcome) -> None:
    """Queue the replayed events (when the replay succeeded), then the held-back live ones."""
    floor: tuple[int, int] | None = None
    if outcome.error is None:
        for event in outcome.events:
            await conn.put(event)
        cursor = catch_up.cursor
        floor = (cursor.partition, max(cursor.offset, catch_up.live_from - 1))
    await conn.finish_replay(floor)


async def replay(conn: WsConnection, resume: ResumeService, catch_up: CatchUp) -> ResumeOutcome:
    """The events `catch_up` names for `conn`'s user (read from Kafka, nothing sent yet)."""
    return await resume.replay(conn.key, catch_up.cursor, catch_up.live_from)


def _failed(code: str, message: str) -> tuple[str, str]:
    RESUMES.labels(code).inc()
    return code, message
