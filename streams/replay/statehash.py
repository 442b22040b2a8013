"""A stable digest of all derived state: what `hub state-hash` prints."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import DERIVED_COLLECTIONS, Document
from schemas.base import format_utc


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value)
    return str(value)


def canonical(doc: Document) -> bytes:
    """Canonical JSON: sorted keys at every level, UTC times with milliseconds."""
    return orjson.dumps(
        doc, default=_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
    )


async def state_digest(db: AsyncDatabase[Document]) -> str:
    """SHA-256 over every derived collection, documents in `_id` order."""
    digest = hashlib.sha256()
    for name in DERIVED_COLLECTIONS:
        digest.update(f"collection {name}\n".encode())
        async for doc in db[name].find({}).sort("_id", 1):
            digest.update(canonical(doc))
            digest.update(b"\n")
    return digest.hexdigest()
