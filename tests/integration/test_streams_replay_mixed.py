"""After mixed traffic of several users through a real `hub streams` worker (messages,
mark-reads, replies and their results, edits, deletes), stopped with SIGTERM, `hub replay`
rebuilds the state `hub state-hash` saw before, and in every conversation, before and after,
`unreadCount` equals its unread inbound messages. The digest is shown to see a difference
(a changed field of any derived collection, another database), and a replay that left the
live collections as they were would be caught."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import CONVERSATIONS, DERIVED_COLLECTIONS, Document
from hubcore.settings import Settings
from streams.replay.statehash import state_digest
from tests.streams_helpers import MixedHistory, Worker, produce, run_hub, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 5


async def _unread_by_conversation(db: AsyncDatabase[Document], user: str) -> dict[str, int]:
    """The store's own count: unread inbound messages per conversation of `user`."""
    cursor = await db["messages"].aggregate(
        [
            {"$match": {"userId": user, "status": "unread", "direction": {"$ne": "outbound"}}},
            {"$group": {"_id": "$conversationId", "n": {"$sum": 1}}},
        ]
    )
    return {str(d["_id"]): int(d["n"]) async for d in cursor}


async def _projected(db: AsyncDatabase[Document], user: str) -> dict[str, int]:
    cursor = db[CONVERSATIONS].find({"userId": user})
    return {str(d["_id"]): int(d["unreadCount"]) async for d in cursor if d["unreadCount"]}


async def _consistent(db: AsyncDatabase[Document], users: list[str]) -> bool:
    """Every conversation's unreadCount and every user's total equal the messages."""
    for user in users:
        truth = await _unread_by_conversation(db, user)
        unread = await db["unread"].find_one({"_id": user})
        if await _projected(db, user) != truth or unread is None:
            return False
        if unread["total"] != sum(truth.values()):
            return False
    return True


def _hash(env: dict[str, str], *args: str) -> str:
    done = run_hub(env, "state-hash", *args)
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert len(digest) == 64, done.stdout
    return digest


async def test_mixed_traffic_replays_to_the_same_state(
    module_settings: Settings, worker: Worker, db: AsyncDatabase[Document]
) -> None:
    topics = Topics.from_settings(module_settings)
    history = MixedHistory(4, seed=21, per_round=15)
    produced = 0
    for _ in range(ROUNDS):
        raws, commands = history.round()
        await produce(
            module_settings, topics.raw_messages, [(m.user_id.encode(), m.to_json()) for m in raws]
        )
        produced += len(raws)

        # Commands name messages the user has seen: stored ones.
        async def stored(want: int = produced) -> bool:
            return await db["messages"].count_documents({"direction": {"$ne": "outbound"}}) == want

        await wait_for(stored, what="the round's messages")
        await produce(
            module_settings,
            topics.commands,
            [(cast(Any, c).user_id.encode(), c.to_json()) for c in commands],
        )

    async def settled() -> bool:
        # Every reply's result applied, then the projections caught up with the messages.
        pending = await db["messages"].count_documents({"status": "pending"})
        return pending == 0 and await _consistent(db, history.users)

    await wait_for(settled, timeout=120, what="every conversation's count to settle")
    assert await db["messages"].count_documents({"direction": "outbound"}) > 0
    assert await db["messages"].count_documents({"deleted": True}) > 0
    assert await db["messages"].count_documents({"editedAt": {"$ne": None}}) > 0

    worker.stop()
    env = worker.env
    live = _hash(env)
    assert live == await state_digest(db)

    # A damaged projection changes the digest; the replay rebuilds and swaps it back.
    damaged = await db[CONVERSATIONS].find_one({"unreadCount": {"$gt": 0}})
    assert damaged is not None
    await db[CONVERSATIONS].update_one({"_id": damaged["_id"]}, {"$inc": {"unreadCount": 1}})
    assert _hash(env) != live
    replayed = run_hub(env, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert _hash(env) == live
    assert await _consistent(db, history.users)

    # Into another database: the same digest there, and the live one is left as it is.
    other = module_settings.mongo_db + "_other"
    assert _hash(env, "--database", other) != live  # empty
    replayed = run_hub(env, "replay", "--database", other)
    assert replayed.returncode == 0, replayed.stderr
    assert other in replayed.stdout
    assert _hash(env, "--database", other) == live
    assert _hash(env) == live
    await _assert_digest_sees_every_field(db)


async def _assert_digest_sees_every_field(db: AsyncDatabase[Document]) -> None:
    """Any field of a document of any derived collection changed, or a document added,
    changes the digest; put back, the digest is the same again."""
    before = await state_digest(db)
    for name in DERIVED_COLLECTIONS:
        doc = await db[name].find_one({}, sort=[("_id", -1)])
        assert doc is not None, name
        for field in sorted(doc.keys() - {"_id"}):
            value = doc[field]
            changed = "x" if value is None or not isinstance(value, str) else value + "x"
            await db[name].update_one({"_id": doc["_id"]}, {"$set": {field: changed}})
            assert await state_digest(db) != before, (name, field)
            await db[name].update_one({"_id": doc["_id"]}, {"$set": {field: value}})
            assert await state_digest(db) == before, (name, field)
        await db[name].insert_one({**doc, "_id": str(doc["_id"]) + "-copy"})
        assert await state_digest(db) != before, name
        await db[name].delete_one({"_id": str(doc["_id"]) + "-copy"})
    assert await state_digest(db) == before
