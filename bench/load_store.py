"""The store's raw insert rate (P2's baseline): the worker's message documents, bulk-inserted.

The same documents the streams worker stores for P2's records (`hubcore.store.message_doc`),
into a collection with the same indexes, in batches of the worker's size, unordered,
through the same client (PyMongo's async API).
"""

from __future__ import annotations

import time
from typing import Any

from pymongo import ASCENDING

from bench.data import raw_message
from bench.stats import rate
from hubcore.mongo import MESSAGES, create_client, ensure_indexes
from hubcore.store import message_doc


async def run(
    url: str, db_name: str, messages: int, users: int, conversations: int, batch: int
) -> dict[str, Any]:
    """Insert `messages` documents `batch` at a time into `db_name`.messages."""
    docs = [
        message_doc(raw_message(n, users, conversations), f"bench:{n % 6}:{n}")
        for n in range(messages)
    ]
    client = create_client(url)
    try:
        db = client[db_name]
        await ensure_indexes(db)
        await db[MESSAGES].create_index([("readBy", ASCENDING)])  # as the worker has it
        collection = db[MESSAGES]
        started = time.perf_counter()
        for first in range(0, messages, batch):
            await collection.insert_many(docs[first : first + batch], ordered=False)
        elapsed = time.perf_counter() - started
        stored = await collection.count_documents({})
    finally:
        await client.close()
    if stored != messages:
        raise RuntimeError(f"stored {stored} of {messages} documents")
    return {
        "messages": messages,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "per_s": round(rate(messages, elapsed), 1),
    }
