"""A user with 50,000 conversations with unread messages, through a real worker: processed
without a retry loop (no table value grows with the conversations), counts right."""

from __future__ import annotations

import re

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.streams_helpers import Worker, produce, raw_message, wait_for

# Through a worker on two shared cores: minutes, not seconds.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


CONVERSATIONS = 50_000
USER = "busy-user"


async def test_fifty_thousand_conversations(
    module_settings: Settings, worker: Worker, db: AsyncDatabase[Document]
) -> None:
    topics = Topics.from_settings(module_settings)
    raws = [raw_message(USER, n, chat=f"chat-{n}") for n in range(CONVERSATIONS)]
    await produce(
        module_settings, topics.raw_messages, ((USER.encode(), r.to_json()) for r in raws)
    )

    convs = db["conversations"]
    missing = [r.conversation_id for r in raws]

    async def all_projected() -> Document | None:
        # The sink writes a batch's unread document beside its conversation chunks, so the
        # total can be there while the last chunks are still being written. Conversations
        # are looked up by `_id` (the store's index), the missing ones only: a count is a
        # scan of 50,000 documents on FerretDB, minutes on a busy machine.
        nonlocal missing
        unread = await db["unread"].find_one({"_id": USER, "total": CONVERSATIONS})
        if unread is None:
            return None
        still: list[str] = []
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            found = {d["_id"] async for d in convs.find({"_id": {"$in": chunk}}, {"_id": 1})}
            still += [c for c in chunk if c not in found]
        missing = still
        return None if missing else unread

    unread = await wait_for(all_projected, timeout=600, what=f"{CONVERSATIONS} unread")
    assert unread["byPlatform"] == {"telegram": CONVERSATIONS}
    # One scan: the user's conversations by unread count (all of them, each with one).
    by_count = convs.aggregate(
        [{"$match": {"userId": USER}}, {"$group": {"_id": "$unreadCount", "n": {"$sum": 1}}}]
    )
    assert {d["_id"]: d["n"] async for d in await by_count} == {1: CONVERSATIONS}
    assert await db["messages"].count_documents({"userId": USER}) == CONVERSATIONS
    port = worker.env["HUB_STREAMS_WEB_PORT"]
    async with httpx.AsyncClient(timeout=5) as client:
        metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    retries = re.search(r"^hub_streams_batch_retries_total (\S+)$", metrics, re.M)
    assert retries is not None and float(retries.group(1)) == 0, "a batch was retried"
    assert "batch retry" not in worker.output() and "batch failed" not in worker.output()
