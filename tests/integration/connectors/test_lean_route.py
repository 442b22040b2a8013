"""The webhook route answered before FastAPI (`ConnectorsApp`): the rest still reaches
FastAPI, and one account's first concurrent deliveries read the store once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hubcore.accounts import Account
from hubcore.sealing import UnreadableCredentials
from tests import platform_payloads as p
from tests.integration.connectors.harness import SECRETS, Harness, raw_messages

pytestmark = pytest.mark.integration


async def test_concurrent_first_deliveries_read_the_account_once(
    connectors: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await connectors.account("generic", user="carol")
    store = connectors.runtime.accounts.store
    real_get_many = store.get_many
    reads: list[list[str]] = []

    async def counting_get_many(  # the real store, counted
        ids: Sequence[str],
    ) -> dict[str, Account | UnreadableCredentials]:
        reads.append(list(ids))
        return await real_get_many(ids)

    monkeypatch.setattr(store, "get_many", counting_get_many)
    bodies = [p.body(p.generic_message(f"m-{n}")) for n in range(20)]
    answers = await asyncio.gather(
        *(
            connectors.post(
                "generic", account.id, raw, p.hub_signature(SECRETS["generic"]["secret"], raw)
            )
            for raw in bodies
        )
    )
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    assert reads == [[account.id]]
    assert len(await raw_messages(connectors.settings)) == 20


async def test_other_requests_still_reach_fastapi(connectors: Harness) -> None:
    account = await connectors.account("generic")
    path = f"/webhooks/generic/{account.id}"
    assert (await connectors.http.put(path, content=b"{}")).status_code == 405
    assert (await connectors.http.get(path)).status_code == 405
    missing = await connectors.http.post("/webhooks/generic", content=b"{}")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert (await connectors.http.post(f"{path}/extra", content=b"{}")).status_code == 404
    health = await connectors.http.get("/health")
    assert health.json()["services"]["kafka"] == "ok"
    metrics = (await connectors.http.get("/metrics")).text
    assert "hub_connectors_webhook_requests_total" in metrics
    assert await raw_messages(connectors.settings) == []
