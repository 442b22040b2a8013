"""With Kafka stopped, webhooks answer 503 within the request timeout; after it is back, 200.

Runs against a private broker this module starts (never the shared one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.connectors.harness import (
    eventually,
    raw_messages,
    running_app,
    signed_delivery,
)
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
