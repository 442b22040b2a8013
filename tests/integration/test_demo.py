"""`hub up --demo` replies through its own platform stand-ins: a WhatsApp reply is sent,
then delivered and read by the stand-in's signed `statuses` webhooks; `hub simulate` also
edits and deletes messages through the real webhooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hub.demo import payloads
from hub.demo.simulate import simulate
from hubcore.accounts import Account, AccountStore
from hubcore.mongo import MESSAGES, Document, create_client, database
from tests.integration.hub_process import RunningHub, hub_up
from tests.resources import SessionResources

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WAIT = 90.0


@pytest.fixture(scope="module")
def hub(
    resources: SessionResources, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHub]:
    with hub_up(resources, tmp_path_factory.mktemp("hub-up-demo"), args=["--demo"]) as running:
        yield running


@pytest.fixture
async def db(hub: RunningHub) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(hub.settings.mongo_url)
    try:
        yield database(client, hub.settings)
    finally:
        await client.close()


async def _demo_accounts(hub: RunningHub, db: AsyncDatabase[Document]) -> list[Account]:
    """demo-1's accounts once the demo has seeded them with their sending credentials."""
    store = AccountStore(db, hub.settings)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        accounts = await store.list("demo-1")
        if len(accounts) == 4 and all(
            a.credentials.get("accessToken") for a in accounts if a.platform == "whatsapp"
        ):
            return accounts
        await asyncio.sleep(0.5)
    raise AssertionError(f"no demo accounts seeded:\n{hub.log_tail()}")


async def test_a_demo_reply_is_sent_then_delivered_then_read(
    hub: RunningHub, db: AsyncDatabase[Document]
) -> None:
    [wa] = [a for a in await _demo_accounts(hub, db) if a.platform == "whatsapp"]
    inbound = payloads.FakeMessage(
        "491701234567", "", "491701234567", "Lena Park", "demo-t1", "Hi!", datetime.now(UTC)
    )
    request = payloads.whatsapp(wa.id, wa.external_id, wa.credentials, inbound)
    assert (await asyncio.to_thread(hub.post_webhook, request)).status_code == 200
    auth = {"Authorization": f"Bearer {hub.token('demo-1')}"}
    async with httpx.AsyncClient(base_url=hub.gateway, headers=auth, timeout=10) as client:
        conversation = None
        deadline = time.monotonic() + WAIT
        while conversation is None and time.monotonic() < deadline:
            page = (await client.get("/api/conversations?limit=100")).json()
            conversation = next(
                (c for c in page["conversations"] if c["lastMessage"]["text"] == "Hi!"), None
            )
            await asyncio.sleep(0.3)
        assert conversation is not None, hub.log_tail()
        path = f"/api/conversations/{conversation['id']}/messages"
        sent = await client.post(path, json={"text": "Hello Lena", "clientMessageId": "t-1"})
        assert sent.status_code == 202, sent.text
        reply_id = sent.json()["id"]

        seen: list[str] = []
        while time.monotonic() < deadline and (not seen or seen[-1] != "read"):
            messages = (await client.get(f"{path}?limit=10")).json()["messages"]
            status = next((m["status"] for m in messages if m["id"] == reply_id), None)
            if status is not None and (not seen or seen[-1] != status):
                seen.append(status)
            await asyncio.sleep(0.2)
    assert seen[-1] == "read", f"{seen}\n{hub.log_tail()}"
    assert "failed" not in seen
    order = ["pending", "sent", "delivered", "read"]
    assert seen == sorted(seen, key=order.index)  # never backwards
    assert "delivered" in seen  # read came a moment after delivered
    doc = await db[MESSAGES].find_one({"_id": reply_id})
    assert doc is not None and str(doc["platformMessageId"]).startswith("wamid.")


async def test_simulate_edits_and_deletes_through_the_webhooks(
    hub: RunningHub, db: AsyncDatabase[Document]
) -> None:
    accounts = await _demo_accounts(hub, db)
    # Changes only pick messages already answered 200, so how many there are depends on the
    # answers' latency: a loaded machine gets few. Send rounds until both kinds went out.
    edits = deletes = 0
    for seed in range(7, 12):
        summary = await simulate(
            hub.connectors, accounts, rate=40, duration=2, seed=seed, changes=0.4
        )
        assert summary.failed == summary.rejected == 0, summary.line()
        edits, deletes = edits + summary.edits, deletes + summary.deletes
        if edits and deletes:
            break
    assert edits > 0 and deletes > 0, summary.line()
    ids = [a.id for a in accounts]
    deadline = time.monotonic() + WAIT
    edited = deleted = 0
    while time.monotonic() < deadline and not (edited and deleted):
        edited = await db[MESSAGES].count_documents(
            {"accountId": {"$in": ids}, "editedAt": {"$ne": None}}
        )
        deleted = await db[MESSAGES].count_documents({"accountId": {"$in": ids}, "deleted": True})
        await asyncio.sleep(0.5)
    assert edited and deleted, hub.log_tail()
