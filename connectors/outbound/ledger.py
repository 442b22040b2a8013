"""The send ledger: where each reply stands, written before every platform call.

States: `new` (accepted, never called; or again, for the user's retry `round` of a
failed send), `calling` (a call is under way or its answer was
lost with the process), `waiting` (the platform refused for now; nothing was delivered),
`sent`, `failed`. Only `calling` found after a restart is ambiguous.

One process at a time works on a reply: it holds a lease (`owner`, `leaseUntil`),
renewed at every step. Another process (after a rebalance) waits for the lease to end
before it looks, so a sender sleeping out a `Retry-After` is never overtaken.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hubcore.mongo import SEND_LEDGER, Document
from schemas import OutboundMessage
from schemas.base import utc_now

State = Literal["new", "calling", "waiting", "sent", "failed"]
FINAL: frozenset[str] = frozenset({"sent", "failed"})


class SendLedger:
    """One document per outbound message id."""

    def __init__(self, db: AsyncDatabase[Document], lease: float = 60.0) -> None:
        self.collection = db[SEND_LEDGER]
        self.owner = uuid.uuid4().hex
        self.lease = timedelta(seconds=lease)

    async def claim(self, message_id: str) -> Document | None:
        """Take (or renew) the reply's lease; its entry, or None while another holds it."""
        now = utc_now()
        free = [{"owner": self.owner}, {"owner": None}, {"leaseUntil": {"$lt": now}}]
        found = await self.collection.find_one_and_update(
            {"_id": message_id, "$or": free},
            {"$set": {"owner": self.owner, "leaseUntil": now + self.lease}},
            return_document=ReturnDocument.AFTER,
        )
        return dict(found) if found else None

    async def open(self, msg: OutboundMessage) -> Document:
        """The message's entry, created as `new` when this is its first sight."""
        entry: Document = {
            "_id": msg.message_id,
            "state": "new",
            "attempts": 0,
            "userId": msg.user_id,
            "accountId": msg.account_id,
            "platform": msg.platform,
            "clientMessageId": msg.client_message_id,
            "owner": None,
            "updatedAt": utc_now(),
        }
        try:
            await self.collection.insert_one(entry)
        except DuplicateKeyError:
            found = await self.collection.find_one({"_id": msg.message_id})
            if found is not None:
                return await self._reopen(dict(found), msg.attempt)
        return entry

    async def _reopen(self, entry: Document, attempt: int) -> Document:
        """The entry, back to `new` for the user's retry `attempt` of a failed send; one
        that may have reached the platform (`ambiguous`) stays failed: no second copy."""
        if attempt <= entry.get("round", 0) or entry["state"] != "failed" or entry.get("ambiguous"):
            return entry
        reopened = await self.collection.find_one_and_update(
            {"_id": entry["_id"], "state": "failed", "round": entry.get("round")},
            {
                "$set": {"state": "new", "round": attempt, "owner": None, "updatedAt": utc_now()},
                "$unset": {"detail": "", "ambiguous": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        return dict(reopened) if reopened else await self.get(entry["_id"]) or entry

    async def mark(self, message_id: str, state: State, **fields: Any) -> None:
        """Move the entry to `state`; `calling` also counts an attempt."""
        now = utc_now()
        values = {"state": state, "updatedAt": now, "leaseUntil": now + self.lease, **fields}
        update: dict[str, Any] = {"$set": values}
        if state == "calling":
            update["$inc"] = {"attempts": 1}
        await self.collection.update_one({"_id": message_id}, update)

    async def get(self, message_id: str) -> Document | None:
        found = await self.collection.find_one({"_id": message_id})
        return dict(found) if found else None
