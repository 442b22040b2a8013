"""Resume on `GET /ws`: exactly the missed events, in order, then live; never another's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
import websockets
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from hubcore.kafka import Topics
from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    RunningGateway,
    ids,
    new_message,
    open_ws,
    produce,
    recv_events,
    recv_frame,
    running_gateway,
    token,
)

pytestmark = pytest.mark.integration


def _settings(gw: RunningGateway) -> Settings:
    return gw.app.settings


async def test_resume_delivers_exactly_the_missed_events_in_order_then_live(
    gw: RunningGateway,
) -> None:
    s = _settings(gw)
    alice = token(s, "alice")
    ws = await open_ws(gw, alice)
    await produce(s, [new_message("alice", n) for n in range(3)])
    seen = await recv_events(ws, 3)
    await ws.close()

    # Missed while away, interleaved with another user's events on the same topic.
    await produce(
        s, [e for n in range(3, 6) for e in (new_message("alice", n), new_message("bob", n))]
    )
    ws = await websockets.connect(gw.ws_url, open_timeout=15)
    await ws.send(
        orjson.dumps(
            {"type": "authenticate", "token": alice, "resumeFrom": seen[-1]["cursor"]}
        ).decode()
    )
    # Live events race the replay: they must follow it, with no gap and no repeat.
    live = asyncio.create_task(produce(s, [new_message("alice", n) for n in (6, 7)]))
    assert (await recv_frame(ws))["type"] == "authenticated"
    frames = await recv_events(ws, 5)
    await live
    assert ids(frames) == [f"evt_alice_{n}" for n in range(3, 8)]
    cursors = [tuple(map(int, f["cursor"].split("-"))) for f in frames]
    assert cursors == sorted(cursors)

    await produce(s, [new_message("alice", 8)])
    assert ids(await recv_events(ws, 1)) == ["evt_alice_8"]  # nothing repeated before it
    await ws.close()


async def test_resume_from_the_authenticated_cursor_before_any_event(gw: RunningGateway) -> None:
    s = _settings(gw)
    ws = await websockets.connect(gw.ws_url, open_timeout=15)
    await ws.send(orjson.dumps({"type": "authenticate", "token": token(s, "ann")}).decode())
    authenticated = await recv_frame(ws)
    assert authenticated["type"] == "authenticated"
    cursor = authenticated["cursor"]
    await ws.close()  # gone before its first event
    await produce(s, [e for n in range(3) for e in (new_message("ann", n), new_message("bob", n))])
    ws = await open_ws(gw, token(s, "ann"), resume_from=cursor)
    assert ids(await recv_events(ws, 3)) == [f"evt_ann_{n}" for n in range(3)]
    await produce(s, [new_message("ann", 3)])
    assert ids(await recv_events(ws, 1)) == ["evt_ann_3"]  # nothing repeated before it
    await ws.close()
    # A position names no record to check: on another user's partition it is refused.
    partitions = gw.app.runtime.pump.partitions
    assert len(partitions) > 1, "the test topics have several partitions"
    partition = int(cursor.partition("+")[0])
    foreign = f"{(partition + 1) % len(partitions)}+0"
    ws = await open_ws(gw, token(s, "ann"), resume_from=foreign)
    error = await recv_frame(ws)
    assert error["type"] == "error" and error["data"]["code"] == "invalid_cursor"
    await ws.close()


async def test_resume_from_the_last_event_sends_nothing_old(gw: RunningGateway) -> None:
    s = _settings(gw)
    (cursor,) = await produce(s, [new_message("alice", 0)])
    ws = await open_ws(gw, token(s, "alice"), resume_from=cursor)
    await produce(s, [new_message("alice", 1)])
    assert ids(await recv_events(ws, 1)) == ["evt_alice_1"]
    await ws.close()


async def test_foreign_or_malformed_cursor_gets_an_error_and_leaks_nothing(
    gw: RunningGateway,
) -> None:
    s = _settings(gw)
    alice_cursors = await produce(s, [new_message("alice", n) for n in range(3)])
    for cursor, code in ((alice_cursors[0], "invalid_cursor"), ("garbage", "invalid_cursor")):
        ws = await websockets.connect(gw.ws_url, open_timeout=15)
        frame = {"type": "authenticate", "token": token(s, "bob"), "resumeFrom": cursor}
        await ws.send(orjson.dumps(frame).decode())
        assert (await recv_frame(ws))["type"] == "authenticated"
        error = await recv_frame(ws)
        assert error["type"] == "error" and error["data"]["code"] == code, error
        # Live after the error: bob's own next event is the next frame, nothing of alice's.
        (bob_cursor,) = await produce(s, [new_message("bob", 0)])
        (frame,) = await recv_events(ws, 1)
        assert frame["id"] == "evt_bob_0" and frame["cursor"] == bob_cursor
        await ws.close()


async def test_cursor_older_than_retention_is_resume_unavailable_then_live(
    gw: RunningGateway,
) -> None:
    s = _settings(gw)
    cursors = await produce(s, [new_message("alice", n) for n in range(3)])
    partition, offset = map(int, cursors[-1].split("-"))
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:  # what retention does to old segments: the log now starts after these events
        tp = TopicPartition(Topics.from_settings(s).user_events, partition)
        await admin.delete_records({tp: RecordsToDelete(offset + 1)})
    finally:
        await admin.close()

    ws = await open_ws(gw, token(s, "alice"), resume_from=cursors[0])
    error = await recv_frame(ws)
    assert error["type"] == "error" and error["data"]["code"] == "resume_unavailable"
    await produce(s, [new_message("alice", 9)])
    assert ids(await recv_events(ws, 1)) == ["evt_alice_9"]
    await ws.close()


async def test_resume_beyond_the_replay_bound_is_unavailable(
    settings_factory: Callable[..., Settings],
) -> None:
    s = settings_factory(ws_resume_max_events=2)
    async with running_gateway(s) as gw:
        cursors = await produce(s, [new_message("alice", n) for n in range(4)])
        within = await open_ws(gw, token(s, "alice"), resume_from=cursors[1])
        assert ids(await recv_events(within, 2)) == ["evt_alice_2", "evt_alice_3"]
        beyond = await open_ws(gw, token(s, "alice"), resume_from=cursors[0])
        error = await recv_frame(beyond)
        assert error["type"] == "error" and error["data"]["code"] == "resume_unavailable"
        await produce(s, [new_message("alice", 4)])
        for ws in (within, beyond):
            assert ids(await recv_events(ws, 1)) == ["evt_alice_4"]
            await ws.close()


async def test_a_users_resumes_read_no_more_history_than_its_budget(
    settings_factory: Callable[..., Settings],
) -> None:
    """Issue 22: resuming from an old cursor again and again made every round of resumes
    read up to a million records; a user's resumes now read at most
    HUB_WS_RESUME_SCAN_PER_USER records, then get resume_unavailable (reload from REST)."""
    s = settings_factory(ws_resume_scan_per_user="6/h")
    async with running_gateway(s) as gw:
        cursors = await produce(s, [new_message("mallory", n) for n in range(4)])
        # Resuming from the first event reads the 4 records from it to now: within budget.
        first = await open_ws(gw, token(s, "mallory"), resume_from=cursors[0])
        assert ids(await recv_events(first, 3)) == [f"evt_mallory_{n}" for n in (1, 2, 3)]
        again = await open_ws(gw, token(s, "mallory"), resume_from=cursors[0])
        error = await recv_frame(again)
        assert error["type"] == "error" and error["data"]["code"] == "resume_unavailable"
        assert "too much history" in error["data"]["message"]
        # What is left of the budget still serves a recent cursor, and live events flow.
        recent = await open_ws(gw, token(s, "mallory"), resume_from=cursors[3])
        await produce(s, [new_message("mallory", 4)])
        for ws in (first, again, recent):
            assert ids(await recv_events(ws, 1)) == ["evt_mallory_4"]
            await ws.close()
        # Another user's budget is their own.
        theirs = await produce(s, [new_message("alice", n) for n in range(4)])
        alice = await open_ws(gw, token(s, "alice"), resume_from=theirs[0])
        assert ids(await recv_events(alice, 3)) == [f"evt_alice_{n}" for n in (1, 2, 3)]
        await alice.close()
