"""MongoDB access through PyMongo's async API: client factory, collections, indexes, ping."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from hubcore.settings import Settings

Document = dict[str, Any]

# Collection names: one place, so every process and `hub replay` agree.
ACCOUNTS = "accounts"
MESSAGES = "messages"
CONVERSATIONS = "conversations"
UNREAD = "unread"
POLL_STATE = "poll_state"
# The connectors' send ledger: one document per outbound message id, written before
# each platform call, so a restart never sends a reply twice.
SEND_LEDGER = "send_ledger"
POLL_LEASES = "poll_leases"
PRESENCE = "presence"  # users' live devices, projected by the streams worker

# Collections derived from the Kafka history; `hub replay` wipes and rebuilds exactly these.
DERIVED_COLLECTIONS = (MESSAGES, CONVERSATIONS, UNREAD)


# FerretDB 1.24 (SQLite) never answers a bulk write of more than 100 statements when 100 or
# more of them match existing documents, nor one of exactly 100 updates that all modify a
# document; 50 at a time stays well clear of both and costs little.
BULK_CHUNK = 50
# Ids per `_id` `$in` lookup (the patched FerretDB searches the `_id` index for `$in` lists
# of up to 1,000 strings, and reads the whole collection for longer ones).
ID_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """The parts of a bulk write's result the hub uses, merged over chunks."""

    # The _ids of documents the write inserted. By _id, not statement index: FerretDB
    # numbers upserts among themselves where MongoDB gives the statement's index.
    upserted: set[Any]
    matched: int
    modified: int


async def bulk_write_chunked(
    collection: AsyncCollection[Document], ops: Sequence[Any], *, chunk: int = BULK_CHUNK
) -> BulkOutcome:
    """`bulk_write(ordered=False)` in chunks of at most `chunk` statements, results merged."""
    upserted: set[Any] = set()
    matched = modified = 0
    for start in range(0, len(ops), chunk):
        result = await collection.bulk_write(list(ops[start : start + chunk]), ordered=False)
        upserted.update((result.upserted_ids or {}).values())
        matched += result.matched_count
        modified += result.modified_count
    return BulkOutcome(upserted, matched, modified)


def create_client(url: str, *, timeout: float = 5.0) -> AsyncMongoClient[Document]:
    """An async client that fails fast (seconds, not the driver's default 30 s) when down."""
    ms = int(timeout * 1000)
    return AsyncMongoClient(
        url,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        tz_aware=True,
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    """The hub's database named by `HUB_MONGO_DB`."""
    return client[settings.mongo_db]


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    """Create the indexes every query of the hub relies on (idempotent)."""
    await db[ACCOUNTS].create_index([("userId", ASCENDING)])
    await db[MESSAGES].create_index(
        [("userId", ASCENDING), ("conversationId", ASCENDING), ("sentAt", DESCENDING)]
    )
    await db[MESSAGES].create_index([("userId", ASCENDING), ("status", ASCENDING)])
    # A platform's delivery status names only its own message id (WhatsApp `statuses`).
    await db[MESSAGES].create_index([("accountId", ASCENDING), ("platformMessageId", ASCENDING)])
    await db[CONVERSATIONS].create_index([("userId", ASCENDING), ("updatedAt", DESCENDING)])


async def mongo_ping(url: str, timeout: float = 3.0) -> bool:
    """True when the server at `url` answers `ping` within `timeout` seconds."""
    client = create_client(url, timeout=timeout)
    try:
        await asyncio.wait_for(client.admin.command("ping"), timeout + 1)
        return True
    except (PyMongoError, OSError, TimeoutError):
        return False
    finally:
        await client.close()
