"""Webhooks per account: 429 with Retry-After, and the platform's retry then succeeds;
503 (retry) for credentials this process cannot open."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.accounts import AccountStore
from hubcore.mongo import Document
from hubcore.ratelimit import RateLimiter
from hubcore.sealing import new_key
from hubcore.settings import Settings
from tests import platform_payloads as p
from tests.integration.connectors.harness import raw_messages, running_app, signed_delivery

pytestmark = pytest.mark.integration


async def test_webhooks_per_account_are_limited_and_retries_succeed(
    settings_factory: Callable[..., Settings],
    settings: Settings,
    mongo_db: AsyncDatabase[Document],
) -> None:
    limited = settings_factory(
        mongo_db=settings.mongo_db,
        topic_namespace=settings.topic_namespace,
        rate_webhooks_per_account="2/s",
    )
    async with running_app(limited, mongo_db) as connectors:
        # The app's limit on a clock of the test's: the posts of one instant, then later.
        assert connectors.runtime.webhook_limit is not None
        assert connectors.runtime.webhook_limit.spec == "2/s"
        now = [0.0]
        connectors.runtime.webhook_limit = RateLimiter("2/s", clock=lambda: now[0])
        busy = await connectors.account("generic")
        other = await connectors.account("generic", user="bob")
        answers = []
        for n in range(3):
            raw, headers = signed_delivery("generic", busy, n)
            answers.append(await connectors.post("generic", busy.id, raw, headers))
        assert [a.status_code for a in answers] == [200, 200, 429]
        refused = answers[2]
        assert refused.json()["error"] == "rate_limited"
        assert refused.headers["retry-after"] == "1"
        raw, headers = signed_delivery("generic", other, 9)
        assert (await connectors.post("generic", other.id, raw, headers)).status_code == 200
        # Forged deliveries do not use up the account's allowance: they stop at 401.
        forged = await connectors.post("generic", busy.id, raw, {"X-Hub-Signature-256": "x"})
        assert forged.status_code == 401
        now[0] += float(refused.headers["retry-after"])
        raw, headers = signed_delivery("generic", busy, 2)  # the platform's retry
        assert (await connectors.post("generic", busy.id, raw, headers)).status_code == 200
        texts = sorted(r.text for _, r in await raw_messages(limited))
        assert len(texts) == 4


async def test_credentials_sealed_with_an_unknown_key_answer_503(
    settings_factory: Callable[..., Settings],
    settings: Settings,
    mongo_db: AsyncDatabase[Document],
) -> None:
    """The platform retries until the operator puts the key back; nothing is produced."""
    other = settings_factory(mongo_db=settings.mongo_db, credentials_key=new_key())
    account = await AccountStore(mongo_db, other).create("alice", "generic", "crm", {"secret": "s"})
    async with running_app(settings, mongo_db) as connectors:
        raw = p.body(p.generic_message("m-1"))
        answer = await connectors.post("generic", account.id, raw, p.hub_signature("s", raw))
    assert answer.status_code == 503 and answer.json()["error"] == "store_unavailable"
    assert "HUB_CREDENTIALS_KEY" in answer.json()["message"]
