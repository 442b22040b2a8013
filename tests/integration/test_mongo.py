"""The real MongoDB-compatible server through PyMongo's async client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from hubcore.mongo import MESSAGES, Document, bulk_write_chunked, ensure_indexes, mongo_ping
from hubcore.settings import Settings

pytestmark = pytest.mark.integration


async def test_insert_and_find(mongo_db: AsyncDatabase[Document]) -> None:
    when = datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)
    await mongo_db.items.insert_one({"_id": "a", "text": "hello", "at": when})
    found = await mongo_db.items.find_one({"_id": "a"})
    assert found == {"_id": "a", "text": "hello", "at": when}
    assert found["at"].tzinfo is not None


async def test_unique_index_rejects_duplicate(mongo_db: AsyncDatabase[Document]) -> None:
    await mongo_db.people.create_index("email", unique=True)
    await mongo_db.people.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError):
        await mongo_db.people.insert_one({"email": "a@example.com"})
    assert await mongo_db.people.count_documents({}) == 1


async def test_upsert_with_set_on_insert_and_inc(mongo_db: AsyncDatabase[Document]) -> None:
    for _ in range(3):
        await mongo_db.counters.update_one(
            {"_id": "c1"},
            {"$setOnInsert": {"created": "first"}, "$inc": {"n": 1}},
            upsert=True,
        )
    assert await mongo_db.counters.find_one({"_id": "c1"}) == {
        "_id": "c1",
        "created": "first",
        "n": 3,
    }


async def test_bulk_write_reports_upserts(mongo_db: AsyncDatabase[Document]) -> None:
    ops = [UpdateOne({"_id": f"m{i}"}, {"$setOnInsert": {"i": i}}, upsert=True) for i in range(60)]
    first = await mongo_db.bulk.bulk_write(ops, ordered=False)
    assert first.upserted_count == 60
    extra = UpdateOne({"_id": "m60"}, {"$setOnInsert": {"i": 60}}, upsert=True)
    again = await mongo_db.bulk.bulk_write([*ops, extra], ordered=False)
    assert (again.upserted_count, again.matched_count) == (1, 60)
    assert list((again.upserted_ids or {}).values()) == ["m60"]
    assert await mongo_db.bulk.count_documents({}) == 61


async def test_chunked_bulk_write_of_mostly_existing_documents(
    mongo_db: AsyncDatabase[Document],
) -> None:
    # Over 100 statements of which 100+ match: the case FerretDB 1.24 hangs on unchunked.
    ops = [UpdateOne({"_id": f"m{i}"}, {"$setOnInsert": {"i": i}}, upsert=True) for i in range(250)]
    first = await bulk_write_chunked(mongo_db.bulk, ops)
    assert len(first.upserted) == 250
    more = [*ops, UpdateOne({"_id": "new"}, {"$setOnInsert": {"i": -1}}, upsert=True)]
    second = await asyncio.wait_for(bulk_write_chunked(mongo_db.bulk, more), 30)
    assert second.upserted == {"new"}
    assert second.matched == 250
    assert await mongo_db.bulk.count_documents({}) == 251


async def test_chunked_bulk_write_of_modifying_updates(
    mongo_db: AsyncDatabase[Document],
) -> None:
    # 100 updates that all modify a document: FerretDB 1.24 hangs on them in one command.
    await mongo_db.bulk.insert_many([{"_id": f"m{i}", "n": 0} for i in range(150)])
    ops = [UpdateOne({"_id": f"m{i}"}, {"$set": {"n": 1}}) for i in range(150)]
    outcome = await asyncio.wait_for(bulk_write_chunked(mongo_db.bulk, ops), 30)
    assert (outcome.matched, outcome.modified) == (150, 150)
    assert await mongo_db.bulk.count_documents({"n": 1}) == 150


async def test_bulk_insert_duplicate_fails_only_that_document(
    mongo_db: AsyncDatabase[Document],
) -> None:
    await mongo_db.b.insert_one({"_id": "x"})
    with pytest.raises(BulkWriteError) as info:
        await mongo_db.b.bulk_write(
            [InsertOne({"_id": "x"}), InsertOne({"_id": "y"})], ordered=False
        )
    assert info.value.details["nInserted"] == 1
    assert await mongo_db.b.count_documents({}) == 2


async def test_hub_indexes_create(mongo_db: AsyncDatabase[Document]) -> None:
    await ensure_indexes(mongo_db)
    await ensure_indexes(mongo_db)  # idempotent
    names = {ix["name"] async for ix in await mongo_db[MESSAGES].list_indexes()}
    assert len(names) >= 3
    keys = [list(spec["key"]) for spec in (await mongo_db[MESSAGES].index_information()).values()]
    # The status lookup of streams/batch/statuses.py: by account and platform message id.
    assert ["accountId", "platformMessageId"] in [[k for k, _ in key] for key in keys]


async def test_ping_tells_up_from_down(settings: Settings) -> None:
    assert await mongo_ping(settings.mongo_url)
    assert not await mongo_ping("mongodb://127.0.0.1:1", timeout=1)
