"""Bodies the REST API takes and returns (camelCase on the wire, like every schema)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from hubcore.account_rules import Mode
from hubcore.accounts import AccountView
from schemas import Conversation, Message
from schemas.attachments import MAX_ATTACHMENTS
from schemas.base import HubModel

MessageId = Annotated[str, Field(min_length=1, max_length=128)]


class ConversationPage(HubModel):
    """Newest first; pass `nextCursor` as `cursor` for the next page (null: no more)."""

    conversations: list[Conversation]
    next_cursor: str | None = None


class MessagePage(HubModel):
    """Newest first; pass `nextCursor` as `before` for older messages (null: no more)."""

    messages: list[Message]
    next_cursor: str | None = None


class MarkMessagesRead(HubModel):
    """`POST /api/messages/read`: the caller's message ids to mark read."""

    message_ids: list[MessageId] = Field(min_length=1, max_length=10_000)


class ReadAccepted(HubModel):
    """202: the commands put on `hub.commands` and the unread message ids they name."""

    command_ids: list[str]
    message_ids: list[str]


class SendReply(HubModel):
    """`POST /api/conversations/{id}/messages`: a reply; the same `clientMessageId` again
    is the same message, never a second send."""

    text: str = Field(default="", max_length=10_000)
    client_message_id: str = Field(min_length=1, max_length=100)
    attachments: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Ids from `POST /api/conversations/{id}/attachments`, sent with the text.",
    )

    @model_validator(mode="after")
    def _text_or_attachments(self) -> SendReply:
        if not self.text and not self.attachments:
            raise ValueError("a reply needs text or attachments")
        return self


class SendAccepted(HubModel):
    """202: the reply's message id (pushed as `new_message`, status `pending`)."""

    id: str


class NewAccount(HubModel):
    """`POST /api/accounts`."""

    platform: str = Field(max_length=32)
    external_id: str = Field(min_length=1, max_length=512)
    credentials: dict[str, Any]
    mode: Mode | None = None


class AccountList(HubModel):
    """`GET /api/accounts`: the caller's accounts, oldest first, without credentials."""

    accounts: list[AccountView]
