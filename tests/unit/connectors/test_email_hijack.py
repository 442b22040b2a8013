"""Issue 22: a stranger's mail cannot take over where a thread's replies go.

The attack, end to end without servers: the thread's mail as the poller normalizes it,
the conversation state streams keeps, the reply streams derives from it and the mail the
SMTP sender composes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import BadPayload, SendError
from connectors.outbound.smtp import compose
from connectors.platforms.email import (
    UNKNOWN_SENDER,
    FetchedMail,
    email_message,
    single_address,
)
from hubcore.store import conversation_from_doc
from schemas import RawMessage
from streams.batch.records import SendInput, SourceRecord
from streams.batch.replies import _reply
from streams.batch.state import ConversationState
from streams.sink.projection import conversation_document
from tests import platform_payloads as p
from tests.streams_helpers import send_command

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ACCOUNT = p.account("email", "me@corp.example")


def received(source: bytes, at: datetime, uid: int) -> RawMessage:
    return email_message(
        ACCOUNT, FetchedMail(uid, source), mailbox="INBOX", uid_validity=1, received_at=at
    )


def reply_to_thread(conv: ConversationState, user: str, conv_id: str) -> tuple[str, str]:
    """(To, In-Reply-To) of the mail the user's next reply in the thread becomes."""
    record = SourceRecord("hub.commands", 0, 1, user.encode(), b"")
    reply = _reply(SendInput(record, send_command(user, conv_id, "c1")), conv, "pending")
    mail = compose(ACCOUNT, reply.outbound, "me@corp.example")
    return str(mail["To"]), str(mail["In-Reply-To"])


def thread(*mails: RawMessage) -> ConversationState:
    conv = ConversationState(external_id=mails[0].external_conversation_id)
    for mail in mails:
        conv.advance(mail.to_message(), mail.conversation_title)
        conv.answer(mail)
    return conv


def test_a_far_future_date_and_a_borrowed_name_do_not_keep_the_replies() -> None:
    root = received(
        p.email_source("root@corp", sender="Alice <alice@corp.example>", date=T0), T0, 1
    )
    hijack = received(
        p.email_source(
            "evil@attacker",
            sender='"Alice" <x@attacker.example>',
            references="<root@corp>",
            date=datetime(2099, 1, 1, tzinfo=UTC),
        ),
        T0 + timedelta(minutes=10),
        2,
    )
    # Alice's next mail arrives after the stranger's, dated earlier (it was in transit).
    answer = received(
        p.email_source(
            "alice-2@corp",
            sender="Alice <alice@corp.example>",
            references="<root@corp>",
            in_reply_to="<root@corp>",
            date=T0 + timedelta(minutes=5),
        ),
        T0 + timedelta(minutes=20),
        3,
    )
    assert hijack.conversation_id == root.conversation_id == answer.conversation_id
    assert hijack.sent_at == T0 + timedelta(minutes=10)  # never later than its receipt
    user, conv_id = root.user_id, root.conversation_id

    # The stranger's mail is the newest for now: the page says where a reply goes.
    joined = thread(root, hijack)
    doc = conversation_from_doc(conversation_document(user, conv_id, joined))
    assert doc.recipient == "x@attacker.example"
    assert doc.to_dict()["recipient"] == "x@attacker.example"

    # Then Alice writes again: the thread's replies are hers, in either order of records.
    for order in ([root, hijack, answer], [answer, hijack, root], [hijack, answer, root]):
        conv = thread(*order)
        assert reply_to_thread(conv, user, conv_id) == ("alice@corp.example", "alice-2@corp")
        assert conv.last is not None and conv.last.id == answer.id


@pytest.mark.parametrize(
    "sender",
    [
        '"boss@corp.example, x@attacker.example" <>',
        "=?utf-8?q?boss=40corp.example=2C_x=40attacker.example?= <>",
        "boss@corp.example, x@attacker.example",
        '"Boss" <boss@corp.example>, x@attacker.example',
        "<a@b@attacker.example>",
        "undisclosed-recipients",
    ],
)
def test_a_from_naming_no_single_address_gives_no_reply_address(sender: str) -> None:
    mail = received(p.email_source("m@x", sender=sender, date=T0), T0, 1)
    assert mail.sender.id == UNKNOWN_SENDER
    conv = thread(mail)
    with pytest.raises(SendError, match="no single reply address"):
        reply_to_thread(conv, mail.user_id, mail.conversation_id)


@pytest.mark.parametrize(
    "recipient", ["boss@corp.example, x@attacker.example", "Boss <b@corp.example>", "a@x\nb@y"]
)
def test_the_sender_puts_one_bare_address_in_to_whatever_the_state_holds(
    recipient: str,
) -> None:
    conv = ConversationState(
        platform="email", account_id="acc", external_id="<r@x>", reply_to="<r@x>"
    )
    conv.recipient = recipient
    with pytest.raises(SendError, match="no single reply address"):
        reply_to_thread(conv, "alice", "conv_1")
    conv.recipient = "Ada@Example.com"
    assert reply_to_thread(conv, "alice", "conv_1")[0] == "ada@example.com"


def test_mails_of_one_poll_are_received_in_uid_order() -> None:
    """Ties in receipt would be broken by ids, which a sender picks through Message-ID."""
    from connectors.pollers.email import EmailPoller

    poller = EmailPoller.__new__(EmailPoller)
    poller.account = ACCOUNT
    poller.mailbox = type("Box", (), {"mailbox": "INBOX"})()
    poller._received = datetime.min.replace(tzinfo=UTC)
    mails = [FetchedMail(uid, p.email_source(f"m{uid}@x")) for uid in (3, 1, 2)]
    records, poison = poller._normalize(mails, 1, {})
    assert not poison
    times = [r.received_at for r in records]
    assert [r.raw["uid"] for r in records] == [1, 2, 3]
    assert times == sorted(times) and len(set(times)) == 3


_HEADER_PARTS = st.sampled_from(
    ['"', "<", ">", ",", "@", ";", ":", "(", ")", "\\", " ", "=?utf-8?q?", "?=", "\t", "x", "é"]
)
_hostile = st.lists(_HEADER_PARTS | st.text(max_size=8), max_size=12).map("".join)


@settings(max_examples=300, deadline=2000, database=None)
@given(
    sender=_hostile,
    date=_hostile | st.sampled_from(["Fri, 1 Jan 2100 00:00:00 +0000", "-0000", ""]),
    references=_hostile,
    junk=st.binary(max_size=200),
)
def test_hostile_headers_give_one_address_or_none_and_no_future(
    sender: str, date: str, references: str, junk: bytes
) -> None:
    """Whatever `From`, `Date` and `References` hold: a record whose sender is one bare
    address or UNKNOWN_SENDER and whose time is not after its receipt, or BadPayload."""
    head = f"From: {sender}\r\nDate: {date}\r\nReferences: {references}\r\n"
    for source in (head.encode() + b"\r\nhi", head.encode("utf-8") + junk):
        try:
            record = received(source, T0, 1)
        except BadPayload:
            continue
        assert record.sent_at <= T0
        assert record.sender.id == UNKNOWN_SENDER or single_address(record.sender.id)
