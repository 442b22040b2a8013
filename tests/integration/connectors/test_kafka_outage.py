"""With Kafka stopped, webhooks answer 503 within the request timeout; after it is back, 200;
the consumers go on through the outage.

Runs against a private broker this module starts (never the shared one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from structlog.testing import capture_logs

from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.connectors.harness import (
    eventually,
    raw_messages,
    running_app,
    signed_delivery,
)
from tests.integration.connectors.sending_rig import outbound, sending_rig
from tests.local_servers import PrivateKafka, private_kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLATFORMS = ("telegram", "whatsapp", "slack", "generic")


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    with private_kafka(Path(tmp_path_factory.mktemp("kafka"))) as broker:
        yield broker


async def test_kafka_down_is_503_then_recovers(
    kafka: PrivateKafka,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    private = settings_factory(
        kafka_bootstrap=kafka.bootstrap, mongo_db=settings.mongo_db, kafka_request_timeout=2.0
    )
    acked: set[str] = set()
    async with running_app(private, mongo_db) as app:
        accounts = {name: await app.account(name) for name in PLATFORMS}
        for name, account in accounts.items():
            raw, headers = signed_delivery(name, account, 1)
            response = await app.post(name, account.id, raw, headers)
            assert response.status_code == 200
            acked.update(response.json()["messageIds"])

        await asyncio.to_thread(kafka.stop)
        for name, account in accounts.items():
            raw, headers = signed_delivery(name, account, 2)
            response = await app.post(name, account.id, raw, headers)
            assert response.status_code == 503, (name, response.text)
            assert response.json()["error"] == "kafka_unavailable"
        health = await app.http.get("/health")
        assert health.status_code == 503
        assert health.json()["services"] == {"kafka": "unavailable", "mongodb": "ok", "pollers": 0}

        await asyncio.to_thread(kafka.start)
        # The platforms retry what got 503; once the producer has reconnected they get 200.
        for name, account in accounts.items():
            raw, headers = signed_delivery(name, account, 2)

            async def retried(
                name: str = name, raw: bytes = raw, h: dict[str, str] = headers
            ) -> bool:
                response = await app.post(name, accounts[name].id, raw, h)
                if response.status_code != 200:
                    return False
                acked.update(response.json()["messageIds"])
                return True

            await eventually(retried, timeout=60, what=f"{name} accepted after the restart")
        assert (await app.http.get("/health")).status_code == 200

    # Everything acked is there; nothing else (a 503'd send may also have been delivered
    # late by the producer: the same id, which downstream dedupes).
    assert len(acked) == 2 * len(PLATFORMS)
    assert {r.id for _, r in await raw_messages(private)} == acked


# The platform answers the reply this late: the broker is stopped meanwhile, so the
# result cannot be published and the outbound consumer drops its batch.
HANG = 15.0


async def test_the_consumers_outlive_an_outage_and_resume_from_their_offsets(
    kafka: PrivateKafka,
    settings_factory: Callable[..., Settings],
    mongo_client: AsyncMongoClient[Document],
) -> None:
    """The reconnect loop (hubcore.kafka.consume_forever) through a broker restart: the
    outbound consumer fails, backs off, and reads its uncommitted reply again from the
    committed offsets (the ledger knows it was sent: published, not sent again); no
    consumer task ends."""

    def private(**overrides: Any) -> Settings:
        return settings_factory(
            **{**overrides, "send_timeout": 2 * HANG},
            kafka_bootstrap=kafka.bootstrap,
            kafka_request_timeout=2.0,
        )

    consumers = {"outbound-consumer", "media-consumer", "webhook-consumer"}
    async with sending_rig(private, mongo_client) as rig:
        account = await rig.account("telegram")
        rig.fake.hang_seconds = HANG
        rig.fake.script = ["hang"]
        with capture_logs() as logs:
            await rig.produce(outbound(account))
            await eventually(lambda: rig.fake.of("telegram"), 30, "the platform called")
            called = time.monotonic()
            await asyncio.to_thread(kafka.stop)
            assert time.monotonic() - called < HANG, "stopped after the call ended: no outage"

            def dropped() -> bool:
                return any(e["event"] == "outbound consumer failed" for e in logs)

            await eventually(dropped, timeout=2 * HANG, what="the outbound consumer dropped")
            await asyncio.to_thread(kafka.start)
            [result] = await rig.results(1, timeout=90)
        assert result.status == "sent", result.detail
        assert len(rig.fake.of("telegram")) == 1  # read again, not sent again
        alive = {t.get_name() for t in asyncio.all_tasks() if t.get_name() in consumers}
        assert alive == consumers
