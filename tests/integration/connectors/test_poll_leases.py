"""Poller leases in the real store: one holder, take-over after expiry, fenced positions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from connectors.pollers import lease
from connectors.pollers.base import Fenced, PollState
from connectors.pollers.lease import Leases
from hubcore.mongo import Document
from tests.streams_helpers import T0

pytestmark = pytest.mark.integration


async def test_one_holder_then_take_over_with_a_newer_token(
    mongo_db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The leases' clock is the test's: expiry is a step of it, however slow the store.
    now = [T0]
    monkeypatch.setattr(lease, "utc_now", lambda: now[0])
    a, b = Leases(mongo_db, "a", ttl=60.0), Leases(mongo_db, "b", ttl=60.0)
    assert await a.hold("telegram:acc") == 1
    assert await b.hold("telegram:acc") is None  # held, not expired
    now[0] += timedelta(seconds=30)
    assert await a.hold("telegram:acc") == 1  # renewal keeps the token
    now[0] += timedelta(seconds=59)
    assert await b.hold("telegram:acc") is None  # 89 s after the take, 59 s after renewal
    now[0] += timedelta(seconds=2)
    assert await b.hold("telegram:acc") == 2  # expired: taken, token moves on
    assert await a.hold("telegram:acc") is None
    await b.release("telegram:acc")
    assert await a.hold("telegram:acc") == 3  # released: no wait


async def test_an_older_token_cannot_save_a_position(mongo_db: AsyncDatabase[Document]) -> None:
    state = PollState(mongo_db)
    await state.save("telegram:acc", 1, offset=10)
    await state.save("telegram:acc", 2, offset=12)  # the new holder
    with pytest.raises(Fenced):
        await state.save("telegram:acc", 1, offset=11)  # the stalled old holder
    assert (await state.load("telegram:acc"))["offset"] == 12
    await state.save("telegram:acc", None, offset=13)  # unfenced callers still save
    assert (await state.load("telegram:acc"))["offset"] == 13
