"""Lookups by a string field on the store: MongoDB's answers, and the field's index used.

The hub's FerretDB build pushes a top-level string equality on any field down to SQLite
(hub/provision/patches/ferretdb/0004-string-equality-pushdown.patch) as a pre-filter
that keeps every document whose field is that string or an array (MongoDB's {f: "s"} also
matches an array holding "s"); the handler filters again. These tests hold the answers to
MongoDB's for arrays, look-alike values and compound filters, and on FerretDB check that the
plan searches the field's index where it used to scan the collection.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document

pytestmark = pytest.mark.integration

# Strings whose JSON spelling differs from their text, or that sort near '[' and '\'.
ODD = ["a<b&c>", "é 日本 😀", 'q"uote', "back\\slash", "line\u2028sep", "\x01", "", "[", "\\"]


async def _seeded(db: AsyncDatabase[Document]) -> Any:
    col = db.people
    docs: list[Document] = [
        {"_id": "s1", "userId": "u1", "status": "unread", "n": 1},
        {"_id": "s2", "userId": "u1", "status": "read", "n": 2},
        {"_id": "s3", "userId": "u2", "status": "unread", "n": 3},
        {"_id": "a1", "userId": ["u1", "u3"], "status": "unread", "n": 4},
        {"_id": "a2", "userId": ["u3"], "status": ["unread", "x"], "n": 5},
        {"_id": "a4", "userId": [], "n": 7},
        {"_id": "d1", "userId": {"id": "u1"}, "n": 8},
        {"_id": "x1", "userId": None, "n": 9},
        {"_id": "x2", "n": 10},
        {"_id": "x3", "userId": 1, "n": 11},
        {"_id": "x4", "userId": "U1", "n": 12},
        *({"_id": f"o{i}", "userId": s, "n": 100 + i} for i, s in enumerate(ODD)),
    ]
    await col.insert_many(docs)
    await col.create_index([("userId", ASCENDING), ("n", DESCENDING)])
    await col.create_index([("status", ASCENDING)])
    return col


async def _ids(col: Any, query: Document) -> list[str]:
    return sorted([str(doc["_id"]) async for doc in col.find(query)])


async def test_string_equality_follows_mongodb(mongo_db: AsyncDatabase[Document]) -> None:
    col = await _seeded(mongo_db)
    assert await _ids(col, {"userId": "u1"}) == ["a1", "s1", "s2"]
    assert await _ids(col, {"userId": "u3"}) == ["a1", "a2"]
    assert await _ids(col, {"userId": "nobody"}) == []
    assert await _ids(col, {"userId": "1"}) == []  # the number 1 is not the string "1"
    for i, odd in enumerate(ODD):
        assert await _ids(col, {"userId": odd}) == [f"o{i}"], repr(odd)
    # Values the build leaves to the handler, for comparison.
    assert await _ids(col, {"userId": 1}) == ["x3"]
    assert await _ids(col, {"userId": None}) == ["x1", "x2"]
    assert await _ids(col, {"userId": ["u3"]}) == ["a2"]
    assert await _ids(col, {"userId.id": "u1"}) == ["d1"]


async def test_compound_filters_follow_mongodb(mongo_db: AsyncDatabase[Document]) -> None:
    col = await _seeded(mongo_db)
    assert await _ids(col, {"userId": "u1", "status": "unread"}) == ["a1", "s1"]
    assert await _ids(col, {"userId": "u3", "status": "unread"}) == ["a1", "a2"]
    assert await _ids(col, {"userId": "u1", "n": {"$gt": 1}}) == ["a1", "s2"]
    assert await _ids(col, {"userId": "u1", "n": {"$gt": 100}}) == []
    assert await _ids(col, {"userId": "u1", "_id": "s2"}) == ["s2"]
    assert await _ids(col, {"userId": "u1", "_id": {"$in": ["s1", "s3", "a1"]}}) == ["a1", "s1"]
    assert await _ids(col, {"userId": "u1", "$or": [{"n": 1}, {"status": "read"}]}) == [
        "s1",
        "s2",
    ]
    assert await col.count_documents({"userId": "u1", "status": {"$ne": "read"}}) == 2
    # Writes take the same path: a guard that fails changes nothing.
    assert (
        await col.update_many({"userId": "u1", "n": {"$gt": 50}}, {"$set": {"y": 1}})
    ).matched_count == 0
    changed = await col.update_many({"userId": "u3", "status": "unread"}, {"$set": {"y": 1}})
    assert changed.modified_count == 2
    assert await _ids(col, {"y": 1}) == ["a1", "a2"]
    gone = await col.delete_many({"userId": "u1", "status": "read"})
    assert gone.deleted_count == 1
    assert await _ids(col, {"userId": "u1"}) == ["a1", "s1"]
    pipeline = [{"$match": {"userId": "u3", "n": {"$gte": 5}}}]
    matched = await (await col.aggregate(pipeline)).to_list()
    assert [doc["_id"] for doc in matched] == ["a2"]


def _plan(explained: Document) -> list[str]:
    return [str(step) for step in explained["queryPlanner"]["Plan"]]


async def test_lookup_by_field_uses_its_index_on_ferretdb(
    mongo_db: AsyncDatabase[Document],
) -> None:
    col = mongo_db.conversations
    await col.create_index([("userId", ASCENDING), ("updatedAt", DESCENDING)])
    await col.insert_many(
        [{"_id": f"c{i}", "userId": f"u{i % 1000}", "unreadCount": i % 3} for i in range(3000)]
    )

    async def explain(query: Document) -> list[str]:
        explained = await mongo_db.command("explain", {"find": col.name, "filter": query})
        if "ferretdbVersion" not in explained.get("serverInfo", {}):
            pytest.skip("not FerretDB: MongoDB plans with its indexes itself")
        assert explained["filterPushdown"] is False  # a pre-filter only: arrays pass it
        return _plan(explained)

    # GET /api/unread's query: both terms (the string, and any array) search the index.
    plan = await explain({"userId": "u7", "unreadCount": {"$gt": 0}})
    searches = [step for step in plan if "USING INDEX conversations_" in step]
    stale = "a FerretDB built before patch 0004? `hub services down` and `up` rebuild it"
    assert len(searches) == 2 and "MULTI-INDEX OR" in " ".join(plan), (stale, plan)
    assert not any("SCAN" in step for step in plan), plan
    # Not pushed down (the handler reads every document): numbers, paths, operators.
    for query in ({"unreadCount": 1}, {"userId.x": "u7"}, {"userId": {"$eq": "u7"}}):
        assert any("SCAN" in step for step in await explain(query)), query
    assert len(await col.find({"userId": "u7"}).to_list()) == 3
