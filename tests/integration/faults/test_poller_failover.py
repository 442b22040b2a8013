"""Two connectors processes, one account: one polls at a time; SIGKILL it mid-stream and
the other takes over from the saved position - nothing lost, no second reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.accounts import AccountStore
from hubcore.kafka import ensure_topics
from hubcore.mongo import POLL_LEASES, POLL_STATE, Document
from hubcore.settings import Settings
from schemas import message_id
from tests import platform_payloads as p
from tests.fake_telegram import FakeTelegram, serving
from tests.integration.connectors.harness import EXTERNAL_IDS, SECRETS, eventually, raw_messages
from tests.integration.gateway_kit import gateway_env
from tests.local_servers import free_port, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

TOKEN = SECRETS["telegram"]["botToken"]
UPDATES = 30
LEASE_TTL = 5.0  # renewed every 1.7 s: a busy machine does not lose it by a stall


@contextmanager
def connectors_process(
    settings: Settings, api: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = gateway_env(
        settings,
        free_port(),
        HUB_CONNECTORS_PORT=str(free_port()),
        HUB_TELEGRAM_API_BASE=api,
        HUB_TELEGRAM_LONG_POLL="1",
        HUB_POLL_INTERVAL="0.2",
        HUB_POLL_LEASE_TTL=str(LEASE_TTL),
        HUB_CONNECTORS_ACCOUNTS_REFRESH="0.5",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "connectors"], env=env, stdout=out, stderr=out
        )
    try:
        yield proc
    finally:
        stop_process(proc)


async def test_one_poller_at_a_time_and_failover_on_kill(
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
    tmp_path: Path,
) -> None:
    s = settings_factory(mongo_db=settings.mongo_db)
    await ensure_topics(s)
    account = await AccountStore(mongo_db, s).create(
        "alice", "telegram", EXTERNAL_IDS["telegram"], SECRETS["telegram"], "poll"
    )
    key = f"telegram:{account.id}"
    fake = FakeTelegram(TOKEN, page=2)
    fake.add(*(p.telegram_update(100 + i, 10 + i, text=f"update {i}") for i in range(UPDATES)))
    fake.release(up_to=109)

    async def saved() -> int:
        doc = await mongo_db[POLL_STATE].find_one({"_id": key})
        return int(doc["offset"]) if doc else 0

    async with serving(fake) as api:
        with ExitStack() as stack:
            procs = [
                stack.enter_context(connectors_process(s, api, tmp_path / f"c{n}.log"))
                for n in (1, 2)
            ]
            await eventually(lambda: _at(saved, 110), timeout=60, what="first 10 committed")
            lease = await mongo_db[POLL_LEASES].find_one({"_id": key})
            assert lease is not None
            token = int(lease["token"])
            leader = next(pr for pr in procs if f":{pr.pid}:" in lease["owner"])
            # Mid-stream: more arrives while the leader long-polls; it dies once it asks
            # for what follows its first page of it.
            fake.release(up_to=119)
            await eventually(
                lambda: fake.offsets_seen[-1] > 110, timeout=30, what="the leader mid-stream"
            )
            os.kill(leader.pid, signal.SIGKILL)
            killed = time.monotonic()
            leader.wait(10)
            fake.release()

            async def taken_over() -> bool:
                lease = await mongo_db[POLL_LEASES].find_one({"_id": key})
                return lease is not None and lease["token"] > token

            await eventually(taken_over, timeout=30, what="the lease taken over")
            print(
                f"poller failover: lease taken over {time.monotonic() - killed:.1f}s after the kill"
            )
            await eventually(
                lambda: _at(saved, 100 + UPDATES), timeout=60, what="the other took over"
            )
            lease = await mongo_db[POLL_LEASES].find_one({"_id": key})
            assert lease is not None and lease["token"] == token + 1
            assert f":{leader.pid}:" not in lease["owner"]
            survivor = next(pr for pr in procs if pr is not leader)
            assert survivor.poll() is None

    assert fake.max_in_flight == 1, "two processes read the bot at once"
    produced = await raw_messages(s)
    expected = [
        message_id("telegram", account.id, "123456789", str(10 + i)) for i in range(UPDATES)
    ]
    ids = [r.id for _, r in produced]
    assert set(ids) == set(expected), "a message was lost"
    # At most the page in flight when the leader died is produced again (same ids: the
    # store keeps one); everything else exactly once.
    assert len(ids) - len(set(ids)) <= 2


async def _at(saved: Callable[[], Awaitable[int]], offset: int) -> bool:
    return await saved() >= offset
