"""REST: conversations, messages, unread counts and mark-read, only ever the caller's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from gateway.api.deps import RuntimeDep, UserId
from gateway.api.models import (
    ConversationPage,
    MarkMessagesRead,
    MessagePage,
    ReadAccepted,
    SendAccepted,
    SendReply,
)
from gateway.errors import NotFound
from gateway.middleware import log_fields
from schemas import MarkRead, Platform, UnreadCounts

router = APIRouter(prefix="/api", tags=["inbox"])

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
PageCursor = Annotated[str | None, Query(max_length=512, description="From the last page.")]
ConversationId = Annotated[str, Path(max_length=128)]


@router.get("/conversations", response_model=ConversationPage)
async def list_conversations(
    user_id: UserId,
    runtime: RuntimeDep,
    platform: Platform | None = None,
    limit: Limit = 50,
    cursor: PageCursor = None,
) -> ConversationPage:
    """The caller's conversations, newest first by `updatedAt`, each with `unreadCount`."""
    items, next_cursor = await runtime.inbox.list_conversations(
        user_id, platform=platform, limit=limit, cursor=cursor
    )
    return ConversationPage(conversations=items, next_cursor=next_cursor)


@router.get("/conversations/{conversation_id}/messages", response_model=MessagePage)
async def list_messages(
    user_id: UserId,
    runtime: RuntimeDep,
    conversation_id: ConversationId,
    limit: Limit = 50,
    before: PageCursor = None,
) -> MessagePage:
    """A conversation's messages, newest first by `sentAt`; 404 unless it is the caller's."""
    if not await runtime.inbox.owns_conversation(user_id, conversation_id):
        raise NotFound(f"no conversation {conversation_id!r}")
    items, next_cursor = await runtime.inbox.list_messages(
        user_id, conversation_id, limit=limit, before=before
    )
    return MessagePage(messages=items, next_cursor=next_cursor)


@router.post(
    "/conversations/{conversation_id}/messages", status_code=202, response_model=SendAccepted
)
async def send_reply(
    request: Request,
    user_id: UserId,
    runtime: RuntimeDep,
    conversation_id: ConversationId,
    body: SendReply,
) -> SendAccepted:
    """Reply in the caller's conversation (202 once the command is in Kafka); 404 unless
    it is the caller's. The same `clientMessageId` again is the same message."""
    attachments = await runtime.attachments.for_reply(user_id, conversation_id, body.attachments)
    command = await runtime.commands.reply(
        user_id, conversation_id, body.text, body.client_message_id, attachments
    )
    await runtime.attachments.attach([a.id for a in attachments], command.message_id)
    fields = log_fields(request.scope)
    fields["command_ids"] = [command.id]
    fields["message_id"] = command.message_id
    return SendAccepted(id=command.message_id)


@router.post("/conversations/{conversation_id}/read", status_code=202, response_model=ReadAccepted)
async def read_conversation(
    request: Request, user_id: UserId, runtime: RuntimeDep, conversation_id: ConversationId
) -> ReadAccepted:
    """Mark the conversation's unread messages read (202 once the command is in Kafka)."""
    commands = await runtime.commands.read_conversation(user_id, conversation_id)
    return _accepted(request, commands)


@router.post("/messages/read", status_code=202, response_model=ReadAccepted)
async def read_messages(
    request: Request, user_id: UserId, runtime: RuntimeDep, body: MarkMessagesRead
) -> ReadAccepted:
    """Mark the caller's messages read; 404 when an id is not one of the caller's messages."""
    return _accepted(request, await runtime.commands.read_messages(user_id, body.message_ids))


@router.get("/unread", response_model=UnreadCounts)
async def unread(user_id: UserId, runtime: RuntimeDep) -> UnreadCounts:
    """`{"total", "byPlatform", "byConversation"}` of the caller."""
    return await runtime.inbox.unread(user_id)


def _accepted(request: Request, commands: list[MarkRead]) -> ReadAccepted:
    accepted = ReadAccepted(
        command_ids=[c.id for c in commands],
        message_ids=[m for c in commands for m in c.message_ids],
    )
    fields = log_fields(request.scope)
    fields["command_ids"] = accepted.command_ids
    fields["messages_marked"] = len(accepted.message_ids)
    return accepted
