"""Normalization of each platform's documented payloads into raw-message records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.responses import PlainTextResponse

from connectors.errors import BadPayload
from connectors.platforms import generic, slack, telegram, whatsapp
from connectors.platforms.base import Ignored
from connectors.platforms.email import FetchedMail, email_message
from schemas import (
    DeleteMessage,
    EditMessage,
    RawMessage,
    StatusReport,
    conversation_id,
    message_id,
)
from tests import platform_payloads as p

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


account = p.account


def only(records: list[RawMessage]) -> RawMessage:
    assert len(records) == 1
    return records[0]


# --- telegram --------------------------------------------------------------------------


def test_telegram_message() -> None:
    acc = account("telegram")
    out = telegram.parse(acc, p.body(p.telegram_update(1001, 7, text="hi")), NOW)
    record = only(out.records)
    assert record.id == message_id("telegram", acc.id, "123456789", "7")
    assert record.conversation_id == conversation_id("telegram", acc.id, "123456789")
    assert record.user_id == "alice" and record.account_id == acc.id
    assert (record.sender.id, record.sender.name) == ("123456789", "Jane Smith")
    assert record.conversation_title == "Jane Smith"
    assert record.text == "hi"
    assert record.sent_at == datetime.fromtimestamp(1746268800, UTC)
    assert record.received_at == NOW
    assert record.raw["update_id"] == 1001


def test_telegram_edit_keeps_the_original_id() -> None:
    acc = account("telegram")
    original = only(telegram.parse(acc, p.body(p.telegram_update(1, 7, text="a")), NOW).records)
    edit = p.telegram_update(2, 7, text="a (edited)", kind="edited_message")
    edited = only(telegram.parse(acc, p.body(edit), NOW).records)
    assert edited.id == original.id and edited.text == "a (edited)"
    assert edited.sent_at == original.sent_at  # the message's time, not the edit's


def test_telegram_channel_post_media_and_ignored() -> None:
    acc = account("telegram")
    post = only(telegram.parse(acc, p.body(p.telegram_channel_post(3, 9, "news")), NOW).records)
    assert (post.sender.id, post.sender.name, post.conversation_title) == (
        "-1001234567890",
        "Hub News",
        "Hub News",
    )
    photo = p.telegram_update(4, 10, text=None, photo=[{"file_id": "x", "width": 1, "height": 1}])
    photo_record = only(telegram.parse(acc, p.body(photo), NOW).records)
    # The photo is the message: an attachment, no placeholder text.
    assert (photo_record.text, [a.kind for a in photo_record.attachments]) == ("", ["image"])
    captioned = p.telegram_update(5, 11, text=None, caption="look", photo=[])
    assert only(telegram.parse(acc, p.body(captioned), NOW).records).text == "look"
    service = p.telegram_update(6, 12, text=None, new_chat_members=[{"id": 5}])
    assert telegram.parse(acc, p.body(service), NOW).ignored == [Ignored("service_message")]
    button = telegram.parse(acc, p.body(p.telegram_callback_query(7)), NOW)
    assert button.records == [] and button.ignored == [Ignored("not_a_message")]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "body is not JSON"),
        (b"[1, 2]", "body is a JSON list, not an object"),
        (b'{"message": {}}', "update_id is missing"),
        (b'{"update_id": 1, "message": {"message_id": 1, "date": 1}}', "message.chat is missing"),
        (
            b'{"update_id": 1, "message": {"message_id": 1, "chat": {"id": 5}, "date": "x"}}',
            "message.date is not a Unix time",
        ),
    ],
)
def test_telegram_malformed(payload: bytes, problem: str) -> None:
    with pytest.raises(BadPayload, match=problem):
        telegram.parse(account("telegram"), payload, NOW)


# --- whatsapp --------------------------------------------------------------------------


def test_whatsapp_several_messages_with_contact_names() -> None:
    acc = account("whatsapp", "106540352242922")
    payload = p.whatsapp_messages(
        acc.external_id, [("wamid.A1", "1603059201", "Hi"), ("wamid.A2", "1603059202", "there")]
    )
    out = whatsapp.parse(acc, p.body(payload), NOW)
    assert [r.text for r in out.records] == ["Hi", "there"]
    first = out.records[0]
    assert first.id == message_id("whatsapp", acc.id, "16315551234", "wamid.A1")
    assert first.conversation_id == conversation_id("whatsapp", acc.id, "16315551234")
    assert (first.sender.id, first.sender.name) == ("16315551234", "Kerry Fisher")
    assert first.conversation_title == "Kerry Fisher"
    assert first.raw["message"]["id"] == "wamid.A1"
    assert first.sent_at == datetime.fromtimestamp(1603059201, UTC)


def test_whatsapp_statuses_other_numbers_and_media() -> None:
    acc = account("whatsapp", "106540352242922")
    status = whatsapp.parse(acc, p.body(p.whatsapp_status(acc.external_id)), NOW)
    assert status.records == [] and status.ignored == []
    [report] = status.changes
    assert isinstance(report, StatusReport)
    assert (report.status, report.account_id, report.user_id) == ("delivered", acc.id, "alice")
    assert report.platform_message_id.startswith("wamid.HBgL")
    assert report.occurred_at == datetime.fromtimestamp(1750263773, UTC)
    elsewhere = p.whatsapp_messages("999", [("wamid.B", "1603059201", "x")])
    assert whatsapp.parse(acc, p.body(elsewhere), NOW).ignored == [Ignored("other_phone_number")]
    image = whatsapp.parse(acc, p.body(p.whatsapp_image(acc.external_id, "w1", None)), NOW)
    assert (only(image.records).text, only(image.records).attachments[0].kind) == ("", "image")
    captioned = p.whatsapp_image(acc.external_id, "w2", "This is a caption")
    assert only(whatsapp.parse(acc, p.body(captioned), NOW).records).text == "This is a caption"


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d.update(object="page"), "object is 'page'"),
        (lambda d: d.pop("entry"), "entry is missing"),
        (
            lambda d: d["entry"][0]["changes"][0]["value"]["messages"][0].pop("id"),
            r"entry\[0\].changes\[0\].value.messages\[0\].id is missing",
        ),
        (
            lambda d: d["entry"][0]["changes"][0]["value"]["messages"][0].update(timestamp="x"),
            "timestamp is not a Unix time",
        ),
    ],
)
def test_whatsapp_malformed(mutate: Any, problem: str) -> None:
    acc = account("whatsapp", "1")
    payload = p.whatsapp_messages("1", [("wamid.A", "1603059201", "Hi")])
    mutate(payload)
    with pytest.raises(BadPayload, match=problem):
        whatsapp.parse(acc, p.body(payload), NOW)


def test_whatsapp_subscription() -> None:
    acc = account("whatsapp").model_copy(update={"credentials": {"verifyToken": "vt"}})
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "1158201444"}
    assert whatsapp.verify_subscription(acc, params) == "1158201444"
    with pytest.raises(BadPayload, match=r"hub\.mode"):
        whatsapp.verify_subscription(acc, {**params, "hub.mode": "unsubscribe"})


# --- slack -----------------------------------------------------------------------------


def test_slack_message_and_retry_share_the_id() -> None:
    acc = account("slack", "T123ABC456")
    record = only(slack.parse(acc, p.body(p.slack_message(acc.external_id)), NOW).records)
    assert record.id == message_id("slack", acc.id, "C123ABC456", "1355517523.000005")
    assert record.conversation_id == conversation_id("slack", acc.id, "C123ABC456")
    assert record.sender.id == "U123ABC456" and record.text == "Live long and prospect."
    assert record.sent_at == datetime(2012, 12, 14, 20, 38, 43, tzinfo=UTC)  # ms precision
    assert record.raw["event_id"] == "Ev123ABC456"


def test_slack_ignores_bots_subtypes_other_events_and_teams() -> None:
    acc = account("slack", "T1")
    cases = {
        "bot_message": p.slack_message("T1", bot_id="B01234687"),
        "subtype": p.slack_message("T1", subtype="channel_join"),
        "other_team": p.slack_message("T2"),
    }
    for reason, payload in cases.items():
        assert slack.parse(acc, p.body(payload), NOW).ignored == [Ignored(reason)], reason
    mention = p.slack_message("T1")
    mention["event"]["type"] = "app_mention"
    assert slack.parse(acc, p.body(mention), NOW).ignored == [Ignored("event_app_mention")]
    thread = p.slack_message("T1", subtype="thread_broadcast")
    assert len(slack.parse(acc, p.body(thread), NOW).records) == 1


def test_slack_url_verification_replies_with_the_challenge() -> None:
    out = slack.parse(account("slack"), p.body(p.slack_url_verification("3eZbrw1aBm")), NOW)
    assert isinstance(out.reply, PlainTextResponse) and out.reply.body == b"3eZbrw1aBm"
    with pytest.raises(BadPayload, match=r"event\.channel is missing"):
        bad = p.slack_message("ext-1")
        del bad["event"]["channel"]
        slack.parse(account("slack"), p.body(bad), NOW)


# --- generic ---------------------------------------------------------------------------


def test_generic() -> None:
    acc = account("generic")
    record = only(generic.parse(acc, p.body(p.generic_message()), NOW).records)
    assert record.id == message_id("generic", acc.id, "support-42", "m-1")
    assert record.conversation_title == "Order 42" and record.sender.name == "Ada"
    assert record.sent_at == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert record.raw == p.generic_message()
    with pytest.raises(BadPayload, match=r"sender\.id"):
        generic.parse(acc, p.body(p.generic_message(sender={"name": "x"})), NOW)
    with pytest.raises(BadPayload, match="sentAt"):
        generic.parse(acc, p.body(p.generic_message(sentAt="2026-11-25T12:00:00")), NOW)
    with pytest.raises(BadPayload, match="body: Invalid JSON"):
        generic.parse(acc, b"{", NOW)


# --- email -----------------------------------------------------------------------------


def mail(source: bytes, uid: int = 1) -> RawMessage:
    return email_message(
        account("email", "alice@example.com"),
        FetchedMail(uid, source, NOW),
        mailbox="INBOX",
        uid_validity=77,
        received_at=NOW,
    )


def test_email_plain_text_thread_and_ids() -> None:
    first = mail(p.email_source("root@example.com"))
    assert first.text == "Hi,\nthe report is attached.\nBob"
    assert first.id == message_id("email", "acc_email", "root@example.com", "root@example.com")
    assert (first.sender.id, first.sender.name) == ("bob@example.com", "Bob Example")
    assert first.conversation_title == "Quarterly report"
    assert first.sent_at == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert first.raw["uid"] == 1 and first.raw["uidValidity"] == 77
    assert "Message-ID: <root@example.com>" in first.raw["source"]
    reply = mail(
        p.email_source(
            "reply@example.com",
            subject="Re: Quarterly report",
            references="<root@example.com> <mid@example.com>",
            in_reply_to="<mid@example.com>",
        )
    )
    assert reply.conversation_id == first.conversation_id
    assert reply.conversation_title == "Quarterly report"
    only_in_reply_to = mail(p.email_source("r2@example.com", in_reply_to="<root@example.com>"))
    assert only_in_reply_to.conversation_id == first.conversation_id


def test_email_html_fallback_alternative_and_missing_id() -> None:
    html_only = mail(p.email_source("h@x", text=None, html="<p>Hello <b>Alice</b></p><p>Bye</p>"))
    assert html_only.text == "Hello Alice\n\nBye"
    both = mail(p.email_source("b@x", text="plain wins", html="<p>html</p>"))
    assert both.text == "plain wins"
    source = p.email_source(None)
    assert mail(source).id == mail(source, uid=99).id  # same mail, same id, whatever the UID
    assert mail(source).id != mail(p.email_source(None, text="other")).id


def test_edits_and_deletes_become_commands_of_the_original() -> None:
    tg = account("telegram")
    edit = p.telegram_update(2, 7, text="a (edited)", kind="edited_message")
    edit["edited_message"]["edit_date"] = 1746268900
    outcome = telegram.parse(tg, p.body(edit), NOW)
    [change] = outcome.changes
    assert isinstance(change, EditMessage)
    assert change.message_id == only(outcome.records).id
    assert change.text == "a (edited)"
    assert change.edited_at == datetime.fromtimestamp(1746268900, UTC)
    plain = telegram.parse(tg, p.body(p.telegram_update(1, 7, text="a")), NOW)
    assert plain.changes == []

    sl = account("slack", "T123ABC456")
    original = only(
        slack.parse(sl, p.body(p.slack_message(sl.external_id, ts="1.000001")), NOW).records
    )
    changed = p.slack_message(
        sl.external_id,
        ts="2.000002",
        subtype="message_changed",
        hidden=True,
        message={"type": "message", "user": "U1", "text": "better", "ts": "1.000001"},
    )
    [edited] = slack.parse(sl, p.body(changed), NOW).changes
    assert isinstance(edited, EditMessage)
    assert (edited.message_id, edited.text) == (original.id, "better")
    gone = p.slack_message(
        sl.external_id, ts="3.000003", subtype="message_deleted", deleted_ts="1.000001"
    )
    [removed] = slack.parse(sl, p.body(gone), NOW).changes
    assert isinstance(removed, DeleteMessage)
    assert removed.message_id == original.id
    assert removed.conversation_id == original.conversation_id

    gen = account("generic")
    msg = only(generic.parse(gen, p.body(p.generic_message("m-1")), NOW).records)
    body = {"conversationId": msg.external_conversation_id, "messageId": "m-1"}
    at = "2026-11-25T12:05:00Z"
    [g_edit] = generic.parse(
        gen, p.body({"type": "edit", **body, "text": "x", "editedAt": at}), NOW
    ).changes
    [g_del] = generic.parse(gen, p.body({"type": "delete", **body, "deletedAt": at}), NOW).changes
    assert isinstance(g_edit, EditMessage) and isinstance(g_del, DeleteMessage)
    assert g_edit.message_id == g_del.message_id == msg.id
    with pytest.raises(BadPayload, match="text"):
        generic.parse(gen, p.body({"type": "edit", **body, "editedAt": at}), NOW)
