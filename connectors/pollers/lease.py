"""Poller leadership: a lease per account in the store, with a fencing token.

One connectors process at a time holds an account's lease and polls it; the others wait
for it to expire (its holder died) or be released (its holder stopped). Each take-over
increments the lease's token, and a poller saves its position only while no newer token
has saved one (`PollState.save(fence=...)`): a holder that stalled past its lease cannot
move the position back after a newer holder moved it on. What it produced meanwhile
carries the same message ids as the newer holder's, and the store keeps one of each.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hubcore.mongo import POLL_LEASES, Document
from schemas.base import utc_now


def owner_id() -> str:
    """Who holds a lease: host, pid and a random part (a restarted pid is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """Acquire, renew and release the leases of one process (`owner`)."""

    def __init__(self, db: AsyncDatabase[Document], owner: str, ttl: float) -> None:
        self.collection = db[POLL_LEASES]
        self.owner = owner
        self.ttl = timedelta(seconds=ttl)

    async def hold(self, key: str) -> int | None:
        """Renew or take the lease of `key`; its fencing token while held, else None."""
        now = utc_now()
        expires = now + self.ttl
        mine = await self.collection.find_one_and_update(
            {"_id": key, "owner": self.owner},
            {"$set": {"expiresAt": expires}},
            return_document=ReturnDocument.AFTER,
        )
        if mine is not None:
            return int(mine["token"])
        taken = await self.collection.find_one_and_update(
            {"_id": key, "expiresAt": {"$lt": now}},
            {"$set": {"owner": self.owner, "expiresAt": expires}, "$inc": {"token": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return int(taken["token"])
        try:
            await self.collection.insert_one(
                {"_id": key, "owner": self.owner, "token": 1, "expiresAt": expires}
            )
        except DuplicateKeyError:
            return None  # held by another process, and not expired
        return 1

    async def release(self, key: str) -> None:
        """Let another process take `key` at once (a clean stop)."""
        await self.collection.update_one(
            {"_id": key, "owner": self.owner}, {"$set": {"expiresAt": utc_now() - self.ttl}}
        )
