"""Users' replies (`send` commands): stored as outbound messages, announced, handed to the
connectors as `hub.outbound` records.

A reply is stored like an inbound message: an idempotent insert whose `origin` remembers
the command, so a redo of the same record is recognised as new (events and the outbound
record again) and another command with the same derived id as a repeat (nothing), unless
the reply had failed: then it is the user's retry, sent again as attempt n + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import MESSAGES, Document
from schemas import Message, OutboundMessage, Sender
from streams.batch.records import Decoded, Poison, SendInput, SourceRecord
from streams.batch.state import ConversationState, StateStore
from streams.errors import PoisonRecord
from streams.sink.projection import insert_replies


@dataclass(frozen=True, slots=True)
class Reply:
    """A new reply: its command record, the stored message and the record to send."""

    record: SourceRecord
    message: Message
    outbound: OutboundMessage

    @property
    def user_id(self) -> str:
        return self.outbound.user_id


def _target(store: StateStore, decoded: Decoded, send: SendInput) -> ConversationState | None:
    """Where a reply goes: the conversation's state, or, for a conversation whose first
    message is in this very batch, what that message says."""
    cmd = send.command
    conv = store.get_conversation(cmd.user_id, cmd.conversation_id)
    if conv.platform and conv.external_id:
        return conv
    for raw in reversed(decoded.raws):
        msg = raw.message
        if msg.user_id == cmd.user_id and msg.conversation_id == cmd.conversation_id:
            return ConversationState(
                platform=msg.platform,
                account_id=msg.account_id,
                title=msg.conversation_title,
                external_id=msg.external_conversation_id,
                reply_to=msg.external_message_id or None,
                recipient=msg.sender.id,
            )
    return None


def retry_cut(records: Sequence[SourceRecord], decoded: Decoded) -> int:
    """Where the batch must be cut (0: nowhere): before a reply's `send` that follows its
    `failed` result. Replies apply before statuses, so in one batch that retry would be
    taken for a repeat; the live worker never sees both at once (the user retries after
    hearing of the failure), and replay, reading larger batches, must do the same."""
    if not decoded.sends or not decoded.statuses:
        return 0
    index = {record.origin: i for i, record in enumerate(records)}
    failed: dict[str, int] = {}
    for item in decoded.statuses:
        cmd = item.command
        if cmd.status == "failed" and cmd.message_id:
            failed.setdefault(cmd.message_id, index[item.record.origin])
    cuts = [
        at
        for send in decoded.sends
        if (at := index[send.record.origin]) > failed.get(send.command.message_id, at)
    ]
    return min(cuts, default=0)


def _reply(send: SendInput, conv: ConversationState, status: str) -> Reply:
    cmd = send.command
    message = Message(
        id=cmd.message_id,
        platform=conv.platform,
        account_id=conv.account_id,
        conversation_id=cmd.conversation_id,
        sender=Sender(id=cmd.user_id),
        text=cmd.text,
        sent_at=cmd.issued_at,
        received_at=cmd.issued_at,
        status=status,
        direction="outbound",
        attachments=[attachment.public() for attachment in cmd.attachments],
    )
    outbound = OutboundMessage(
        message_id=cmd.message_id,
        client_message_id=cmd.client_message_id,
        user_id=cmd.user_id,
        platform=conv.platform,
        account_id=conv.account_id,
        conversation_id=cmd.conversation_id,
        external_conversation_id=conv.external_id or "",
        recipient=conv.recipient if conv.platform == "email" else None,
        reply_to=conv.reply_to,
        subject=conv.title if conv.platform == "email" else None,
        text=cmd.text,
        issued_at=cmd.issued_at,
        attachments=cmd.attachments,
    )
    return Reply(send.record, message, outbound)


def reply_doc(reply: Reply) -> Document:
    """The `messages` document of a reply (status starts pending)."""
    msg = reply.message
    doc: Document = {
        "_id": msg.id,
        "userId": reply.user_id,
        "platform": msg.platform,
        "accountId": msg.account_id,
        "conversationId": msg.conversation_id,
        "sender": msg.sender.model_dump(by_alias=True),
        "text": msg.text,
        "sentAt": msg.sent_at,
        "receivedAt": msg.received_at,
        "status": "pending",
        "direction": "outbound",
        "clientMessageId": reply.outbound.client_message_id,
        "origin": reply.record.origin,
    }
    if msg.attachments:
        doc["attachments"] = [a.model_dump(by_alias=True) for a in msg.attachments]
    return doc


async def store_replies(
    db: AsyncDatabase[Document], store: StateStore, decoded: Decoded, status: dict[str, str]
) -> list[Reply]:
    """Insert the batch's replies; return the new ones (a reply to an unknown conversation
    becomes poison in `decoded`). Fills `status` with each new reply's current status."""
    firsts: dict[str, Reply] = {}
    for send in decoded.sends:
        conv = _target(store, decoded, send)
        if conv is None:
            problem = f"conversation {send.command.conversation_id!r} of this user is unknown"
            if store.get_conversation(send.command.user_id, send.command.conversation_id).platform:
                # A table value written before replies existed lacks the platform's address.
                problem = (
                    f"conversation {send.command.conversation_id!r} has no platform address "
                    "in its state (written before replies existed: run `hub replay`)"
                )
            error = PoisonRecord(problem, error_type="unknown_conversation")
            decoded.poison.append(Poison(send.record, error))
            continue
        firsts.setdefault(send.command.message_id, _reply(send, conv, "pending"))
    inserted = await insert_replies(db, [reply_doc(r) for r in firsts.values()])
    existing = await _stored_replies(db, [i for i in firsts if i not in inserted])
    out: list[Reply] = []
    for message_id, reply in firsts.items():
        current = "pending"
        if message_id not in inserted:
            doc = existing.get(message_id)
            if doc is None:
                continue
            if doc.get("origin") == reply.record.origin:  # a redo of the command that stored it
                current = str(doc.get("status", "pending"))
                attempt: int | None = int(doc.get("retries", 0))
            else:  # a repeat, or the user's retry of a failed reply
                attempt = await _retry(db, doc, reply.record.origin)
                if attempt is None:
                    continue
            reply = Reply(
                reply.record,
                reply.message.model_copy(update={"status": current}),
                reply.outbound.model_copy(update={"attempt": attempt}),
            )
        status[message_id] = current
        out.append(reply)
    return out


async def _stored_replies(db: AsyncDatabase[Document], ids: list[str]) -> dict[str, Document]:
    """Message id -> what decides between a redo, a repeat and a retry, for those stored."""
    if not ids:
        return {}
    fields = {"_id": 1, "origin": 1, "status": 1, "retries": 1}
    return {str(d["_id"]): d async for d in db[MESSAGES].find({"_id": {"$in": ids}}, fields)}


async def _retry(db: AsyncDatabase[Document], doc: Document, origin: str) -> int | None:
    """The retry's number when the reply `doc` had failed: it is pending again and `origin`
    its command now (so a redo is recognised); None for a repeat of a reply not failed."""
    if doc.get("status") != "failed":
        return None
    retries = int(doc.get("retries", 0)) + 1
    result = await db[MESSAGES].update_one(
        {"_id": doc["_id"], "status": "failed", "origin": doc.get("origin")},
        {"$set": {"status": "pending", "origin": origin, "retries": retries}},
    )
    return retries if result.modified_count == 1 else None
