"""Delivery statuses of replies: the connectors' `send_result` and the platforms'
`status_report` commands move a reply's status forward, never backwards.

Each status write is conditional on the current status being an earlier one, and appends
its cause to `statusBy` (a few entries at most: statuses only move forward), so a redo of
the same record finds what it changed (and emits it again), every step of a batch is told
in order, and a late or repeated report changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import BULK_CHUNK, ID_CHUNK, MESSAGES, Document
from schemas import (
    ErrorData,
    ErrorEvent,
    MessageStatusUpdate,
    MessageStatusUpdateData,
    SendResult,
    event_id,
)
from streams.batch.records import StatusInput

_ORDER = ("pending", "sent", "delivered", "read")
_FIELDS = {"_id": 1, "conversationId": 1, "status": 1, "statusBy": 1}


def earlier_than(status: str) -> list[str]:
    """The statuses a reply may move to `status` from (`failed` only before delivery)."""
    if status == "failed":
        return ["pending", "sent"]
    return list(_ORDER[: _ORDER.index(status)])


# Mongo filters and writes: only the server can tell a wrong one, so mutation testing
# skips them (docs/development.md, "Mutation testing"); tests/integration runs them.
# pragma: no mutate start
def _update(item: StatusInput) -> UpdateOne:
    cmd = item.command
    where: Document = {
        "userId": cmd.user_id,
        "direction": "outbound",
        "status": {"$in": earlier_than(cmd.status)},
        # Applied once: a redo of an attempt's `failed` never fails the user's retry.
        "statusBy": {"$ne": item.record.origin},
    }
    change: Document = {"status": cmd.status}
    if isinstance(cmd, SendResult):
        where["_id"] = cmd.message_id
        if cmd.platform_message_id:
            change["platformMessageId"] = cmd.platform_message_id
    elif cmd.message_id:
        where["_id"] = cmd.message_id
    else:
        where["accountId"] = cmd.account_id
        where["platformMessageId"] = cmd.platform_message_id
    return UpdateOne(where, {"$set": change, "$push": {"statusBy": item.record.origin}})


async def apply_statuses(
    db: AsyncDatabase[Document], items: Sequence[StatusInput]
) -> dict[str, Document]:
    """Apply the status commands in order; return command origin -> the reply it moved."""
    if not items:
        return {}
    ops = [_update(item) for item in items]
    for start in range(0, len(ops), BULK_CHUNK):
        # Ordered: several reports of one reply in a batch apply in their order.
        await db[MESSAGES].bulk_write(ops[start : start + BULK_CHUNK], ordered=True)
    origins = {item.record.origin for item in items}
    out: dict[str, Document] = {}
    moved_by = {"statusBy": {"$in": sorted(origins)}}
    for where in _lookups(items):
        async for doc in db[MESSAGES].find({**where, **moved_by}, _FIELDS):
            for origin in doc["statusBy"]:
                if origin in origins:
                    out[str(origin)] = doc
    return out


def _lookups(items: Sequence[StatusInput]) -> list[Document]:
    """Filters that find every reply `items` may have moved, each searching an index on
    FerretDB too (it does for `_id`, an `_id` `$in` list and a string equality, and reads
    every message for anything else, such as a `userId` `$in` list): by the hub's ids,
    and by platform id per account for reports that carry only that."""
    ids: set[str] = set()
    by_account: dict[str, set[str]] = {}
    for item in items:
        cmd = item.command
        if isinstance(cmd, SendResult) or cmd.message_id:
            ids.add(str(cmd.message_id))
        else:
            by_account.setdefault(cmd.account_id, set()).add(cmd.platform_message_id)
    found = sorted(ids)
    return [
        *({"_id": {"$in": found[at : at + ID_CHUNK]}} for at in range(0, len(found), ID_CHUNK)),
        *(
            {"accountId": account, "platformMessageId": {"$in": sorted(platform_ids)}}
            for account, platform_ids in sorted(by_account.items())
        ),
    ]


# pragma: no mutate end


def status_events(item: StatusInput, doc: Document) -> list[MessageStatusUpdate | ErrorEvent]:
    """`message_status_update` of the reply `item` moved, and `error` when it failed."""
    cmd = item.command
    conv_id, message_id = str(doc["conversationId"]), str(doc["_id"])
    out: list[MessageStatusUpdate | ErrorEvent] = [
        MessageStatusUpdate(
            id=event_id("message_status_update", cmd.id, conv_id),
            user_id=cmd.user_id,
            occurred_at=cmd.occurred_at,
            data=MessageStatusUpdateData(
                conversation_id=conv_id, message_ids=[message_id], status=cmd.status
            ),
        )
    ]
    if cmd.status == "failed":
        out.append(
            ErrorEvent(
                id=event_id("error", cmd.id),
                user_id=cmd.user_id,
                occurred_at=cmd.occurred_at,
                data=ErrorData(
                    code="send_failed",
                    message=cmd.detail or "the platform did not accept the message",
                    message_id=message_id,
                ),
            )
        )
    return out


def occurred(item: StatusInput) -> datetime:
    """When the status changed."""
    return item.command.occurred_at
