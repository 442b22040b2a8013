"""Lookups by `_id` on the store: MongoDB semantics kept, and the `_id` index used.

The hub's FerretDB build carries two source fixes (hub/provision/patches/ferretdb) that
push `_id` equality down to SQLite's `_id` index. These tests hold its answers to MongoDB's
for filters that combine `_id` with other conditions (the part that is pushed down is only
a pre-filter) and, on FerretDB, check the query plan.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document

pytestmark = pytest.mark.integration


async def _seeded(db: AsyncDatabase[Document]) -> Any:
    col = db.items
    await col.insert_many(
        [{"_id": f"id{i}", "n": i, "tags": ["a", "b"] if i % 2 else ["c"]} for i in range(50)]
    )
    return col


async def test_id_with_other_conditions_follows_mongodb(mongo_db: AsyncDatabase[Document]) -> None:
    col = await _seeded(mongo_db)
    assert await col.find_one({"_id": "id3", "n": 4}) is None
    assert (await col.find_one({"_id": "id3", "n": 3}) or {}).get("n") == 3
    # A guard that fails changes nothing; one that holds changes the document.
    missed = await col.update_one({"_id": "id5", "n": {"$gt": 10}}, {"$set": {"x": 1}})
    assert missed.modified_count == 0
    held = await col.update_one({"_id": "id5", "n": {"$lt": 10}}, {"$set": {"x": 1}})
    assert held.modified_count == 1
    upsert = await col.update_one({"_id": "new", "n": 1}, {"$set": {"x": 1}}, upsert=True)
    assert upsert.upserted_id == "new"
    assert await col.find_one({"_id": "new"}) == {"_id": "new", "n": 1, "x": 1}
    assert (await col.delete_one({"_id": "id7", "n": 8})).deleted_count == 0
    assert (await col.delete_one({"_id": "id7", "tags": "a"})).deleted_count == 1
    assert await col.count_documents({"_id": "id9", "$or": [{"n": 1}, {"tags": "b"}]}) == 1
    assert await col.count_documents({"_id": "id9", "$or": [{"n": 1}, {"tags": "c"}]}) == 0
    bumped = await col.find_one_and_update(
        {"_id": "id11", "n": 11}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    assert bumped is not None and bumped["n"] == 12
    pipeline = [{"$match": {"_id": "id13", "n": {"$gte": 13}}}]
    matched = await (await col.aggregate(pipeline)).to_list()
    assert [doc["_id"] for doc in matched] == ["id13"]
    assert await col.count_documents({}) == 50  # 50 seeded + "new" - "id7"


async def test_id_in_lists_follow_mongodb(mongo_db: AsyncDatabase[Document]) -> None:
    col = await _seeded(mongo_db)

    async def ids(query: Document) -> list[str]:
        return sorted([str(doc["_id"]) async for doc in col.find(query)])

    assert await ids({"_id": {"$in": ["id1", "id2", "nope", "id7"]}}) == ["id1", "id2", "id7"]
    assert await ids({"_id": {"$in": ["id1", "id2"]}, "n": 2}) == ["id2"]
    assert await ids({"_id": {"$in": []}}) == []
    assert await ids({"_id": {"$in": ["id3", 5]}}) == ["id3"]
    assert await ids({"_id": {"$in": ["id3"], "$ne": "id3"}}) == []
    changed = await col.update_many({"_id": {"$in": ["id20", "id21"]}}, {"$set": {"y": 1}})
    assert changed.modified_count == 2
    gone = await col.delete_many({"_id": {"$in": ["id22", "id23"]}, "n": 22})
    assert gone.deleted_count == 1
    assert await ids({"_id": {"$in": ["id22", "id23"]}}) == ["id23"]


async def test_lookup_by_id_uses_the_index_on_ferretdb(mongo_db: AsyncDatabase[Document]) -> None:
    col = await _seeded(mongo_db)
    plan = await mongo_db.command("explain", {"find": col.name, "filter": {"_id": "id3"}})
    if "ferretdbVersion" not in plan.get("serverInfo", {}):
        pytest.skip("not FerretDB: MongoDB always finds `_id` through its index")
    # A stock FerretDB 1.24 SQLite build answers "SCAN <table>" to both.
    assert any("USING INDEX" in step for step in plan["queryPlanner"]["Plan"]), plan
    plan = await mongo_db.command(
        "explain", {"find": col.name, "filter": {"_id": {"$in": ["id3", "id4"]}, "n": 3}}
    )
    assert any("USING INDEX" in step for step in plan["queryPlanner"]["Plan"]), plan
