"""The Web Push REST routes against a real uvicorn and FerretDB: subscriptions validated
strictly and under the outbound address policy, capped per user, removed by endpoint;
the switch and mutes only ever the caller's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import CONVERSATIONS, Document
from hubcore.push_store import PUSH_SUBSCRIPTIONS
from hubcore.settings import Settings
from hubcore.webpush import Vapid, b64url_decode, new_vapid_key
from schemas.base import utc_now
from tests.integration.gateway_kit import RunningGateway, running_gateway, token
from tests.push_service import PushService

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        vapid_private_key=new_vapid_key(),
        outbound_allowed_hosts=["127.0.0.1"],
        push_max_subscriptions_per_user=2,
    )


@pytest.fixture
async def gw(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[RunningGateway]:
    now = utc_now()
    await mongo_db[CONVERSATIONS].insert_one(
        {
            "_id": "conv_ann",
            "userId": "ann",
            "platform": "generic",
            "accountId": "a",
            "updatedAt": now,
            "unreadCount": 0,
            "version": 1,
        }
    )
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
def as_user(gw: RunningGateway) -> Callable[[str], httpx.AsyncClient]:
    def client(user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=gw.base_url,
            headers={"Authorization": f"Bearer {token(gw.app.settings, user)}"},
            timeout=15,
        )

    return client


def _subscription(path: str = "a") -> dict[str, Any]:
    service = PushService()
    service.base = "https://127.0.0.1:9443"
    return service.browser().subscription_json() | {"endpoint": f"https://127.0.0.1:9443/{path}"}


async def test_subscribe_replace_cap_and_unsubscribe(
    as_user: Callable[[str], httpx.AsyncClient],
    mongo_db: AsyncDatabase[Document],
    settings: Settings,
) -> None:
    async with as_user("ann") as ann, as_user("bob") as bob:
        config = (await ann.get("/api/vapid-public-key")).json()
        vapid = Vapid.from_settings(settings)
        assert vapid is not None and config["vapidPublicKey"] == vapid.public_key
        assert config["enabled"] is True and config["preview"] is True
        first, second, third = _subscription("a"), _subscription("b"), _subscription("c")
        assert (await ann.post("/api/push-subscriptions", json=first)).status_code == 201
        # The same browser again (new keys) replaces its subscription.
        again = _subscription("a")
        assert (await ann.post("/api/push-subscriptions", json=again)).status_code == 201
        assert (await ann.post("/api/push-subscriptions", json=second)).status_code == 201
        over = await ann.post("/api/push-subscriptions", json=third)
        assert over.status_code == 409 and over.json()["code"] == "too_many_subscriptions"
        stored = await mongo_db[PUSH_SUBSCRIPTIONS].find({"userId": "ann"}).to_list()
        assert sorted(d["endpoint"] for d in stored) == [first["endpoint"], second["endpoint"]]
        assert {d["p256dh"] for d in stored} >= {b64url_decode(again["keys"]["p256dh"])}
        # Only the owner removes it.
        body = {"endpoint": first["endpoint"]}
        gone = await bob.request("DELETE", "/api/push-subscriptions", json=body)
        assert gone.status_code == 404
        assert (
            await ann.request("DELETE", "/api/push-subscriptions", json=body)
        ).status_code == 204
        assert (
            await ann.request("DELETE", "/api/push-subscriptions", json=body)
        ).status_code == 404
        assert (await ann.post("/api/push-subscriptions", json=third)).status_code == 201


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("https://10.1.2.3/push/x", "private"),
        ("https://[::1]:8443/push/x", "loopback"),
        ("http://127.0.0.1/push/x", "plaintext"),
        ("https://no-such-host.invalid/push", "does not resolve"),
        ("javascript:alert(1)", "https URL"),
    ],
)
async def test_endpoints_outside_the_address_policy_are_refused(
    as_user: Callable[[str], httpx.AsyncClient], endpoint: str, why: str
) -> None:
    async with as_user("ann") as ann:
        answer = await ann.post(
            "/api/push-subscriptions", json=_subscription() | {"endpoint": endpoint}
        )
    assert answer.status_code == 422
    assert why in answer.text


async def test_bad_keys_and_unauthenticated_calls(
    as_user: Callable[[str], httpx.AsyncClient], gw: RunningGateway
) -> None:
    good = _subscription()
    async with as_user("ann") as ann:
        for keys in (
            {"p256dh": "AAAA", "auth": good["keys"]["auth"]},
            {"p256dh": good["keys"]["p256dh"]},
            None,
        ):
            answer = await ann.post("/api/push-subscriptions", json=good | {"keys": keys})
            assert answer.status_code == 422, keys
        assert (await ann.post("/api/push-subscriptions", content=b"x" * 10)).status_code == 422
    async with httpx.AsyncClient(base_url=gw.base_url) as anonymous:
        assert (await anonymous.post("/api/push-subscriptions", json=good)).status_code == 401
        assert (await anonymous.get("/api/vapid-public-key")).status_code == 401


async def test_switch_and_mutes_are_the_callers_own(
    as_user: Callable[[str], httpx.AsyncClient],
) -> None:
    async with as_user("ann") as ann, as_user("bob") as bob:
        put = await ann.put("/api/push-settings", json={"enabled": False, "preview": False})
        assert put.status_code == 200
        config = (await ann.get("/api/vapid-public-key")).json()
        assert (config["enabled"], config["preview"]) == (False, False)
        assert (await bob.get("/api/vapid-public-key")).json()["enabled"] is True
        assert (await ann.put("/api/push-settings", json={"enabled": "x"})).status_code == 422

        url = "/api/conversations/conv_ann/mute"
        assert (await ann.get(url)).json() == {"conversationId": "conv_ann", "muted": False}
        assert (await ann.put(url, json={"muted": True})).json()["muted"] is True
        assert (await ann.get(url)).json()["muted"] is True
        assert (await bob.put(url, json={"muted": True})).status_code == 404
        assert (await bob.get(url)).status_code == 404
        assert (
            await ann.put("/api/conversations/nope/mute", json={"muted": True})
        ).status_code == 404
        assert (await ann.put(url, json={"muted": False})).json()["muted"] is False
        assert (await ann.get(url)).json()["muted"] is False
