"""Where each poller is in its source (`POLL_STATE`), written only after Kafka's ack."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import POLL_STATE, Document
from schemas.base import utc_now


class PollState:
    """One document per poller, `_id` = `<platform>:<account id>`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[POLL_STATE]

    async def load(self, key: str) -> Document:
        """The saved position (empty when the poller never committed one)."""
        doc = await self.collection.find_one({"_id": key})
        return dict(doc) if doc else {}

    async def save(self, key: str, **values: Any) -> None:
        """Record a new position."""
        await self.collection.update_one(
            {"_id": key}, {"$set": {**values, "updatedAt": utc_now()}}, upsert=True
        )
