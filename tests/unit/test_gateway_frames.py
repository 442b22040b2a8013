"""Event frames (encoded once, without schema/userId), cursors and REST page cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from gateway.errors import BadRequest
from gateway.frames import Cursor, authenticated_frame, error_frame, socketio_authenticated
from gateway.inbox import decode_page_cursor, encode_page_cursor
from schemas import UnreadCounts, UnreadCountUpdate, UnreadCountUpdateData
from schemas.base import utc_now
from schemas.frames import InvalidEvent, decode_event


def _record(user: str = "alice") -> bytes:
    event = UnreadCountUpdate(
        id="evt_1",
        user_id=user,
        occurred_at=utc_now(),
        data=UnreadCountUpdateData(unread_counts=UnreadCounts(total=2, by_platform={"slack": 2})),
    )
    return event.to_json()


def test_frame_drops_schema_and_user_and_carries_the_cursor() -> None:
    event = decode_event(2, 41, b"alice", _record())
    frame = orjson.loads(event.text)
    assert list(frame) == ["type", "id", "cursor", "occurredAt", "data"]
    assert frame["type"] == "unread_count_update" and frame["cursor"] == "2-41"
    assert frame["data"]["unreadCounts"]["byPlatform"] == {"slack": 2}
    assert event.socketio_payload() == {**frame["data"], "cursor": "2-41"}
    # Socket.IO: one EVENT packet, the cursor also last (the client's recovery offset).
    assert event.sio_text.startswith("42")
    assert orjson.loads(event.sio_text[2:]) == [frame["type"], event.socketio_payload(), "2-41"]
    assert event.occurred_ts == pytest.approx(datetime.now(UTC).timestamp(), abs=60)
    # The outbox items every socket shares: the frame of its transport, occurredAt beside.
    assert event.ws_item == (event.text, event.occurred_ts)
    assert event.sio_item == (event.sio_text, event.occurred_ts)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"bob", _record("alice"), "userId"),
        (b"alice", b"{not json", "JSON"),
        (b"alice", b"[1]", "object"),
        (b"alice", _record().replace(b"hub.user-event/1", b"hub.user-event/9"), "schema"),
        (b"alice", _record().replace(b"unread_count_update", b"party"), "type"),
    ],
)
def test_records_that_cannot_be_pushed_are_refused(key: bytes, value: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_event(0, 0, key, value)


def test_cursor_round_trip_and_malformed() -> None:
    assert Cursor.parse(str(Cursor(3, 1234))) == Cursor(3, 1234)
    for text in ("", "3", "a-1", "1-2-3", "-1-2", "1-" + "9" * 20):
        with pytest.raises(BadRequest):
            Cursor.parse(text)


def test_position_cursor_round_trip_covers_from_its_offset() -> None:
    position = Cursor.parse("2+0")  # an empty partition: everything from its first record
    assert (position.partition, position.offset, position.anchored) == (2, -1, False)
    assert str(position) == "2+0" and Cursor.parse(str(Cursor.position(2, 17))).offset == 16
    assert Cursor.parse("2-16") != Cursor.parse("2+17")  # an event's cursor is checked


def test_authenticated_frames_carry_the_cursor_only_when_given() -> None:
    frame = orjson.loads(authenticated_frame("u", "conn_1", "0+5"))
    assert frame == {
        "type": "authenticated",
        "cursor": "0+5",
        "data": {"userId": "u", "connectionId": "conn_1"},
    }
    assert "cursor" not in orjson.loads(authenticated_frame("u", "conn_1"))
    sio = orjson.loads(socketio_authenticated("u", "conn_1", "0+5")[2:])
    assert sio == [
        "authenticated",
        {"userId": "u", "connectionId": "conn_1", "cursor": "0+5"},
        "0+5",
    ]
    assert orjson.loads(socketio_authenticated("u", "conn_1")[2:])[-1] == {
        "userId": "u",
        "connectionId": "conn_1",
    }


def test_error_frame_shape() -> None:
    assert orjson.loads(error_frame("resume_unavailable", "reload")) == {
        "type": "error",
        "data": {"code": "resume_unavailable", "message": "reload"},
    }


def test_page_cursor_round_trip_keeps_milliseconds() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert decode_page_cursor(encode_page_cursor(at, "conv_x")) == (at, "conv_x")
    for bad in ("", "!!", "W10", "WzEsMl0"):  # garbage, [] and [1,2]
        with pytest.raises(BadRequest):
            decode_page_cursor(bad)
