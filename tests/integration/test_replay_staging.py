"""A live `hub replay` swaps its rebuild in only when complete: a replay that fails half-way
leaves the previous state as it was (and readable), and leaves nothing staged behind."""

from __future__ import annotations

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import DERIVED_COLLECTIONS, Document
from hubcore.settings import Settings
from streams.replay.replay import Replay
from streams.replay.statehash import state_digest
from tests.streams_helpers import produce, raw_message

pytestmark = pytest.mark.integration

MESSAGES = 300


class Interrupted(Exception):
    pass


def _fail_after_first_batch(records: int) -> None:
    raise Interrupted(f"stopped after {records} records")


async def test_a_failed_replay_changes_nothing(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    await ensure_topics(settings)
    topic = Topics.from_settings(settings).raw_messages
    users = ("ann", "ben", "cy")
    messages = [raw_message(users[n % 3], n, chat=f"chat-{n % 7}") for n in range(MESSAGES)]
    await produce(settings, topic, [(m.user_id.encode(), m.to_json()) for m in messages])
    first = await Replay(settings).run()
    assert first.stored == MESSAGES
    digest = await state_digest(mongo_db)

    # More history arrives; a replay then fails after its first batch.
    extra = [raw_message("ann", MESSAGES + n, chat="chat-new") for n in range(50)]
    await produce(settings, topic, [(b"ann", m.to_json()) for m in extra])
    with pytest.raises(Interrupted):
        await Replay(settings, batch_size=100, progress=_fail_after_first_batch).run()
    assert await state_digest(mongo_db) == digest
    assert await mongo_db["messages"].count_documents({}) == MESSAGES
    names = set(await mongo_db.list_collection_names())
    assert not {n for n in names if "__" in n}, names

    # A replay that completes swaps the new state in, with its indexes.
    done = await Replay(settings).run()
    assert done.stored == MESSAGES + 50
    assert await mongo_db["messages"].count_documents({}) == MESSAGES + 50
    assert set(DERIVED_COLLECTIONS) <= set(await mongo_db.list_collection_names())
    indexes = await mongo_db["messages"].index_information()
    assert any("platformMessageId" in str(spec["key"]) for spec in indexes.values())
    assert not {n for n in await mongo_db.list_collection_names() if "__" in n}
