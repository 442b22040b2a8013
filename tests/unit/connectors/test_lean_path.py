"""The cheap versions of the webhook path's parts answer exactly as the ones they replace."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError
from pymongo.errors import ServerSelectionTimeoutError
from structlog.processors import JSONRenderer, TimeStamper

from connectors.errors import BadPayload, StoreUnavailable
from connectors.platforms import generic
from connectors.platforms.base import invalid
from connectors.runtime import AccountCache
from hubcore.accounts import Account, AccountStore
from hubcore.kafka import partition_for
from hubcore.logging import UtcStamper, render_json
from hubcore.sealing import UnreadableCredentials
from schemas.base import _to_utc_millis, format_utc
from tests import platform_payloads as p

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACCOUNT = Account(
    id="acc_generic",
    user_id="alice",
    platform="generic",
    external_id="ext-1",
    mode="webhook",
    created_at=NOW,
    credentials={},
)


def test_partitioner_places_keys_as_kafkas_default() -> None:
    default = DefaultPartitioner()
    for n in range(300):
        key = os.urandom(n % 40)
        for count in (1, 3, 8, 12):
            partitions = list(range(count))
            assert partition_for(key, partitions, []) == default(key, partitions, [])
    assert partition_for(None, [0, 1, 2], [1]) == 1  # no key: an available partition


def test_log_line_is_what_structlog_rendered() -> None:
    event: dict[str, Any] = {
        "event": "webhook",
        "status": 200,
        "ms": 1.5,
        "ignored": [],
        "text": 'é\n"quoted"',
        "when": NOW,
        "error": ValueError("boom"),
    }
    assert render_json(None, "info", dict(event)) == JSONRenderer()(None, "info", dict(event))
    ours = UtcStamper()(None, "info", {})["timestamp"]
    theirs = TimeStamper(fmt="iso", utc=True)(None, "info", {})["timestamp"]
    pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert re.fullmatch(pattern, ours) and re.fullmatch(pattern, theirs)
    gap = datetime.fromisoformat(theirs) - datetime.fromisoformat(ours)
    assert abs(gap.total_seconds()) < 1


def test_generic_parses_once_and_answers_as_before() -> None:
    raw = p.body(p.generic_message("m-9"))
    record = generic.parse(ACCOUNT, raw, NOW).records[0]
    assert record.raw == json.loads(raw)
    for body in (b"[1, 2]", b"not json", b'{"conversationId": "c"}'):
        with pytest.raises(ValidationError) as pydantic_says:
            generic.GenericMessage.model_validate_json(body)
        with pytest.raises(BadPayload) as ours:
            generic.parse(ACCOUNT, body, NOW)
        assert str(ours.value) == str(invalid(pydantic_says.value))
    # JSON that pydantic reads but is not strict JSON: refused as before, naming why.
    nan = raw.replace(b'"text":"My order has not arrived"', b'"text":"x","n":NaN')
    with pytest.raises(BadPayload, match="not JSON"):
        generic.parse(ACCOUNT, nan, NOW)


class SlowFailingStore(AccountStore):
    """A store that answers, once `answer` is set, by failing (no database behind it)."""

    def __init__(self) -> None:
        self.reads = 0
        self.reading = asyncio.Event()  # a read is waiting for its answer
        self.answer = asyncio.Event()

    async def get_many(self, ids: Sequence[str]) -> dict[str, Account | UnreadableCredentials]:
        self.reads += 1
        self.reading.set()
        await self.answer.wait()
        raise ServerSelectionTimeoutError("no server")


async def test_one_read_per_account_whose_failure_reaches_every_waiter() -> None:
    store = SlowFailingStore()
    cache = AccountCache(store, ttl=2.0)
    waiters = [asyncio.create_task(cache.get("acc_1")) for _ in range(5)]
    await store.reading.wait()
    waiters[0].cancel()  # a client hanging up does not cancel the others' read
    await asyncio.sleep(0)  # the cancellation delivered before the read's answer
    store.answer.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, StoreUnavailable) for r in results[1:])
    assert store.reads == 1
    with pytest.raises(StoreUnavailable):  # a failure is not cached
        await cache.get("acc_1")
    assert store.reads == 2


class CountingStore(AccountStore):
    """Accounts `acc_0`..`acc_9` of a dict (no database behind it); records each read."""

    def __init__(self) -> None:
        self.accounts = {
            f"acc_{n}": ACCOUNT.model_copy(update={"id": f"acc_{n}"}) for n in range(10)
        }
        self.reads: list[list[str]] = []

    async def get_many(self, ids: Sequence[str]) -> dict[str, Account | UnreadableCredentials]:
        self.reads.append(sorted(ids))
        return {i: self.accounts[i] for i in ids if i in self.accounts}


async def test_a_read_takes_along_the_accounts_in_use_that_expire_soon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    store = CountingStore()
    cache = AccountCache(store, ttl=2.0)
    for n in range(4):  # read one by one, 0.4 s apart
        assert await cache.get(f"acc_{n}") == store.accounts[f"acc_{n}"]
        clock[0] += 0.4
    assert store.reads == [["acc_0"], ["acc_1"], ["acc_2"], ["acc_3"]]
    for n in (1, 2, 3):  # in use; acc_0 is not asked for again
        await cache.get(f"acc_{n}")
    clock[0] = 1002.3  # acc_0 expired; acc_1..acc_3 expire within a second
    assert await cache.get("acc_7") == store.accounts["acc_7"]
    assert store.reads[-1] == ["acc_1", "acc_2", "acc_3", "acc_7"]
    del store.accounts["acc_2"]  # deleted: gone at its next read, as before
    clock[0] = 1004.4
    assert await cache.get("acc_2") is None
    assert await cache.get("missing_9") is None  # an unknown id is cached as unknown
    reads = len(store.reads)
    assert await cache.get("missing_9") is None
    assert len(store.reads) == reads


async def test_an_account_whose_credentials_cannot_be_opened_fails_alone() -> None:
    store = CountingStore()
    store.accounts["acc_1"] = UnreadableCredentials("sealed with key k9, which is not configured")  # type: ignore[assignment]
    cache = AccountCache(store, ttl=2.0)
    assert await cache.get("acc_0") is not None
    with pytest.raises(StoreUnavailable, match="k9"):
        await cache.get("acc_1")
    with pytest.raises(StoreUnavailable):  # not cached: asked again
        await cache.get("acc_1")
    assert store.reads[-2:] == [["acc_1"], ["acc_1"]]


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 2, 3, 456000, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_utc_times_normalize_and_format_as_before(value: datetime) -> None:
    in_utc = value.astimezone(UTC)
    before = in_utc.replace(microsecond=in_utc.microsecond // 1000 * 1000)
    ours = _to_utc_millis(value)
    assert ours == before and ours.tzinfo is UTC
    for v in (value, ours):
        wire = v.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert format_utc(v) == wire
