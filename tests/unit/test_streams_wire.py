"""The worker's model-free event builders give exactly the bytes of the events' models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from schemas import RawMessage, Sender, parse_user_event
from schemas.attachments import InboundAttachment
from streams.batch import events, wire
from streams.batch.state import ConversationState, UserState
from streams.sink.projection import conversation_document

TEXTS = [
    "Hi! My order #3 has not arrived yet",
    "",
    'quotes " and \\ backslashes / slashes',
    "control \x00\x01\x1f\x7f tab\t newline\n return\r",
    "unicode é ü 中文 😀 \u2028\u2029 \ufeff",
    "x" * 5000,
]


def _raw(
    text: str, *, name: str | None = "Ada", micros: int = 3000, tz: timezone = UTC
) -> RawMessage:
    sent = datetime(2026, 11, 25, 12, 0, 0, micros, tzinfo=tz)
    return RawMessage(
        id="msg_1",
        user_id="u-1",
        platform="telegram",
        account_id="acc_1",
        conversation_id="conv_1",
        external_conversation_id="c",
        external_message_id="m",
        sender=Sender(id="cust-1", name=name),
        text=text,
        sent_at=sent,
        received_at=sent + timedelta(milliseconds=40),
        raw={"ignored": True},
    )


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("status", ["unread", "read"])
@pytest.mark.parametrize("name", ["Ada", None, 'Zoë "Z"'])
def test_new_message_bytes_equal_the_models(text: str, status: str, name: str | None) -> None:
    raw = _raw(text, name=name)
    model = events.new_message("u-1", raw.to_message(status=status))  # type: ignore[arg-type]
    fast = wire.new_message("u-1", raw, status)
    assert fast == model.to_json()
    assert parse_user_event(fast) == model


@pytest.mark.parametrize("micros", [0, 3000, 3999, 999999])
@pytest.mark.parametrize("tz", [UTC, timezone(timedelta(hours=5, minutes=30))])
def test_new_message_times_as_the_model_writes_them(micros: int, tz: timezone) -> None:
    # A validated record's times are UTC milliseconds already; any other is normalized alike.
    raw = _raw("t", micros=micros, tz=tz).model_copy(
        update={"sent_at": datetime(2026, 1, 2, 3, 4, 5, micros, tzinfo=tz)}
    )
    model = events.new_message("u-1", raw.to_message())
    assert wire.new_message("u-1", raw, "unread") == model.to_json()


@pytest.mark.parametrize(
    ("total", "by_platform", "changed", "applied"),
    [
        (0, {}, {}, {}),
        (3, {"telegram": 2, "slack": 1}, {"conv_b": 1, "conv_a": 2}, {"raw:0": 7, "cmd:1": 2}),
        # Counts dipping below zero while a crash is recovered are clamped, zeros dropped
        # from byPlatform but kept in byConversation, as the model's view does.
        (-1, {"telegram": -1, "email": 0, "slack": 4}, {"conv_z": -2, "conv_y": 0}, {"raw:3": 0}),
        (9, {"é": 9}, {"conv_ü": 9}, {}),
    ],
)
def test_unread_count_update_bytes_equal_the_models(
    total: int, by_platform: dict[str, int], changed: dict[str, int], applied: dict[str, int]
) -> None:
    state = UserState(total=total, by_platform=by_platform, applied=applied)
    at = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
    model = events.unread_count_update("u-1", state, changed, "raw:0:7|cmd:1:2", at)
    fast = wire.unread_count_update("u-1", state, changed, "raw:0:7|cmd:1:2", at)
    assert fast == model.to_json()
    assert orjson.loads(fast)["data"]["version"] == state.version


def _state(text: str, **message: object) -> ConversationState:
    raw = _raw(text)
    state = ConversationState(platform="telegram", account_id="acc_1", title='Zoë\'s "chat"')
    state.advance(raw.to_message().model_copy(update=message), state.title)
    return state


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(
    "message",
    [
        {},
        {"status": "read", "sender": Sender(id="s", name=None)},
        {"edited_at": datetime(2026, 11, 26, 1, 2, 3, 456000, tzinfo=UTC), "deleted": True},
        {"direction": "outbound", "status": "pending"},
    ],
)
def test_conversation_update_bytes_equal_the_models(text: str, message: dict[str, object]) -> None:
    state = _state(text, **message)
    state.unread = -1  # clamped, as the model's view does
    state.applied = {"raw:0": 41}
    doc = conversation_document("u-1", "conv_1", state)
    at = datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)
    model = events.conversation_update("u-1", doc, at)
    fast = wire.conversation_update("u-1", doc, at)
    assert fast == model.to_json()
    assert parse_user_event(fast) == model


def test_conversation_update_of_another_shape_is_the_models_to_judge() -> None:
    doc = conversation_document("u-1", "conv_1", _state("t"))
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    naive = {**doc, "updatedAt": at.replace(tzinfo=None)}
    with pytest.raises(ValueError, match="timezone"):
        wire.conversation_update("u-1", naive, at)
    no_title = {k: v for k, v in doc.items() if k != "title"}
    assert wire.conversation_update("u-1", no_title, at) == (
        events.conversation_update("u-1", no_title, at).to_json()
    )


def test_a_message_with_attachments_and_an_email_recipient_are_as_the_models_write_them() -> None:
    # Attachments (optional fields) go through the model; a conversation's `recipient` is
    # written by the fast path: both must give the model's bytes.
    photo = InboundAttachment(id="att_1", kind="image", mime_type="image/jpeg", source="f1")
    raw = _raw("caption").model_copy(update={"attachments": [photo]})
    model = events.new_message("u-1", raw.to_message())
    assert wire.new_message("u-1", raw, "unread") == model.to_json()
    assert orjson.loads(model.to_json())["data"]["message"]["attachments"][0]["id"] == "att_1"
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    doc = conversation_document("u-1", "conv_1", _state("t"))
    for extra in ({"recipient": "ada@example.com"}, {"recipient": None}):
        shaped = {**doc, **extra}
        fast = wire.conversation_update("u-1", shaped, at)
        assert fast == events.conversation_update("u-1", shaped, at).to_json()
    last = {**doc["lastMessage"], "attachments": [photo.public().model_dump(by_alias=True)]}
    with_files = {**doc, "lastMessage": last}
    assert wire.conversation_update("u-1", with_files, at) == (
        events.conversation_update("u-1", with_files, at).to_json()
    )
