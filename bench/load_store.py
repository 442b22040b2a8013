"""The store's raw write rates (P2's baselines): the worker's message documents, written in
bulk as upserts (the issue's baseline) and as inserts (how the worker stores messages).

The same documents the streams worker stores for P2's records (`hubcore.store.message_doc`),
each way into a fresh database with the worker's indexes, in batches of the worker's size,
unordered (upserts through `bulk_write_chunked`, as the hub writes them), through the same
client (PyMongo's async API).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from bench.data import raw_message
from bench.stats import rate
from hubcore.mongo import MESSAGES, Document, bulk_write_chunked, create_client, ensure_indexes
from hubcore.store import message_doc

Write = Callable[[AsyncCollection[Document], list[Document]], Awaitable[Any]]


async def _insert(collection: AsyncCollection[Document], docs: list[Document]) -> None:
    await collection.insert_many(docs, ordered=False)


async def _upsert(collection: AsyncCollection[Document], docs: list[Document]) -> None:
    ops = [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in docs]
    await bulk_write_chunked(collection, ops)


async def _timed(
    client: AsyncMongoClient[Document], db_name: str, docs: list[Document], batch: int, write: Write
) -> float:
    """Seconds to write `docs` in batches of `batch`; checks that all were stored."""
    db = client[db_name]
    await ensure_indexes(db)
    collection = db[MESSAGES]
    started = time.perf_counter()
    for first in range(0, len(docs), batch):
        await write(collection, docs[first : first + batch])
    elapsed = time.perf_counter() - started
    stored = await collection.count_documents({})
    if stored != len(docs):
        raise RuntimeError(f"stored {stored} of {len(docs)} documents in {db_name}")
    return elapsed


async def run(
    url: str,
    insert_db: str,
    upsert_db: str,
    messages: int,
    users: int,
    conversations: int,
    batch: int,
) -> dict[str, Any]:
    """Write `messages` documents `batch` at a time, inserted and upserted."""
    docs = [
        message_doc(raw_message(n, users, conversations), f"bench:{n % 6}:{n}")
        for n in range(messages)
    ]
    client = create_client(url)
    try:
        upserted = await _timed(client, upsert_db, docs, batch, _upsert)
        inserted = await _timed(client, insert_db, docs, batch, _insert)
    finally:
        await client.close()
    return {
        "messages": messages,
        "batch": batch,
        "upsert_seconds": round(upserted, 3),
        "upsert_per_s": round(rate(messages, upserted), 1),
        "insert_seconds": round(inserted, 3),
        "insert_per_s": round(rate(messages, inserted), 1),
    }
