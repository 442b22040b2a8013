"""The REST API against a real uvicorn, FerretDB and Kafka: only ever the caller's data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.kafka import Topics
from hubcore.mongo import CONVERSATIONS, MESSAGES, UNREAD, Document
from hubcore.settings import Settings
from hubcore.store import last_message_value, message_doc
from schemas import MarkRead, RawMessage, Sender, SendMessage, parse_command
from schemas.base import utc_now
from tests.integration.connectors.harness import read_topic
from tests.integration.gateway_kit import (
    RunningGateway,
    running_gateway,
    user_client,
)

pytestmark = pytest.mark.integration

T0 = utc_now() - timedelta(hours=1)


@pytest.fixture
async def gw(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[RunningGateway]:
    await _seed(mongo_db)
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
def as_user(gw: RunningGateway) -> Callable[[str], httpx.AsyncClient]:
    return lambda user: user_client(gw, gw.app.settings, user)


def _raw(user: str, conv: str, n: int, platform: str = "generic") -> RawMessage:
    at = T0 + timedelta(minutes=n)
    return RawMessage(
        id=f"msg_{conv}_{n}",
        user_id=user,
        platform=platform,
        account_id=f"acc_{user}",
        conversation_id=conv,
        external_conversation_id=conv,
        external_message_id=str(n),
        sender=Sender(id="s", name="S"),
        text=f"{conv} #{n}",
        sent_at=at,
        received_at=at,
    )


# alice: a_generic (3 messages, 2 unread), a_slack (1 read), a_old (1 unread); bob: b_conv.
CONVERSATION_LAYOUT = {
    "a_generic": ("alice", "generic", [(0, "read"), (1, "unread"), (2, "unread")]),
    "a_slack": ("alice", "slack", [(3, "read")]),
    "a_old": ("alice", "generic", [(-30, "unread")]),
    "b_conv": ("bob", "generic", [(4, "unread")]),
}


async def _seed(db: AsyncDatabase[Document]) -> None:
    for conv, (user, platform, messages) in CONVERSATION_LAYOUT.items():
        docs = []
        for n, status in messages:
            doc = message_doc(_raw(user, conv, n, platform), origin=f"t:0:{n}")
            doc["status"] = status
            docs.append(doc)
        await db[MESSAGES].insert_many(docs)
        last = max(docs, key=lambda d: d["sentAt"])
        await db[CONVERSATIONS].insert_one(
            {
                "_id": conv,
                "userId": user,
                "platform": platform,
                "accountId": f"acc_{user}",
                "title": conv,
                "lastMessage": last_message_value(last),
                "lastMessageAt": last["sentAt"],
                "unreadCount": sum(1 for d in docs if d["status"] == "unread"),
                "updatedAt": last["sentAt"],
            }
        )
    await db[UNREAD].insert_many(
        [
            {
                "_id": "alice",
                "total": 3,
                "byPlatform": {"generic": 3},
            },
            {
                "_id": "bob",
                "total": 1,
                "byPlatform": {"generic": 1},
            },
        ]
    )


async def _commands(settings: Settings) -> list[tuple[bytes, MarkRead]]:
    """Every record on the commands topic (read to its end)."""
    records = await read_topic(settings, Topics.from_settings(settings).commands)
    return [(r.key, MarkRead.from_json(r.value)) for r in records]


async def test_conversations_are_the_callers_newest_first_paginated(
    as_user: Callable[[str], httpx.AsyncClient],
) -> None:
    async with as_user("alice") as alice:
        first = (await alice.get("/api/conversations", params={"limit": 2})).json()
        assert [c["id"] for c in first["conversations"]] == ["a_slack", "a_generic"]
        assert first["conversations"][1]["unreadCount"] == 2
        assert first["conversations"][1]["lastMessage"]["id"] == "msg_a_generic_2"
        second = (
            await alice.get(
                "/api/conversations", params={"limit": 2, "cursor": first["nextCursor"]}
            )
        ).json()
        assert [c["id"] for c in second["conversations"]] == ["a_old"]
        assert second["nextCursor"] is None
        slack = (await alice.get("/api/conversations", params={"platform": "slack"})).json()
        assert [c["id"] for c in slack["conversations"]] == ["a_slack"]
        bad = await alice.get("/api/conversations", params={"cursor": "!!"})
        assert bad.status_code == 400
    async with as_user("bob") as bob:
        body = (await bob.get("/api/conversations")).json()
        assert [c["id"] for c in body["conversations"]] == ["b_conv"]


async def test_messages_are_the_callers_and_another_users_conversation_is_404(
    as_user: Callable[[str], httpx.AsyncClient],
) -> None:
    async with as_user("alice") as alice:
        page = (
            await alice.get("/api/conversations/a_generic/messages", params={"limit": 2})
        ).json()
        assert [m["id"] for m in page["messages"]] == ["msg_a_generic_2", "msg_a_generic_1"]
        assert page["messages"][0]["status"] == "unread"
        older = (
            await alice.get(
                "/api/conversations/a_generic/messages",
                params={"limit": 2, "before": page["nextCursor"]},
            )
        ).json()
        assert [m["id"] for m in older["messages"]] == ["msg_a_generic_0"]
        assert older["nextCursor"] is None
        foreign = await alice.get("/api/conversations/b_conv/messages")
        assert foreign.status_code == 404


async def test_unread_is_the_callers(as_user: Callable[[str], httpx.AsyncClient]) -> None:
    async with as_user("alice") as alice:
        assert (await alice.get("/api/unread")).json() == {
            "total": 3,
            "byPlatform": {"generic": 3},
            "byConversation": {"a_generic": 2, "a_old": 1},
        }
    async with as_user("carol") as carol:
        assert (await carol.get("/api/unread")).json() == {
            "total": 0,
            "byPlatform": {},
            "byConversation": {},
        }


async def test_mark_read_answers_202_and_puts_one_command_per_request(
    gw: RunningGateway, as_user: Callable[[str], httpx.AsyncClient]
) -> None:
    async with as_user("alice") as alice, as_user("bob") as bob:
        conv = await alice.post("/api/conversations/a_generic/read")
        assert conv.status_code == 202
        assert conv.json()["messageIds"] == ["msg_a_generic_1", "msg_a_generic_2"]
        ids = await alice.post(
            "/api/messages/read", json={"messageIds": ["msg_a_old_-30", "msg_a_slack_3"]}
        )
        assert ids.status_code == 202
        assert ids.json()["messageIds"] == ["msg_a_old_-30"]  # the read one needs nothing
        nothing = await alice.post("/api/conversations/a_slack/read")
        assert nothing.status_code == 202 and nothing.json()["commandIds"] == []
        # Another user's conversation or message is not found, and commands nothing.
        assert (await bob.post("/api/conversations/a_generic/read")).status_code == 404
        foreign = await bob.post("/api/messages/read", json={"messageIds": ["msg_a_generic_1"]})
        assert foreign.status_code == 404
        assert (await alice.post("/api/messages/read", json={"messageIds": []})).status_code == 422

    commands = await _commands(gw.app.settings)
    assert [key for key, _ in commands] == [b"alice", b"alice"]
    (_, by_conv), (_, by_ids) = commands
    assert by_conv.id == conv.json()["commandIds"][0]
    assert by_conv.user_id == "alice" and by_conv.conversation_id == "a_generic"
    assert by_conv.message_ids == ["msg_a_generic_1", "msg_a_generic_2"]
    assert by_ids.message_ids == ["msg_a_old_-30"] and by_ids.conversation_id == "a_old"


async def test_a_conversation_announced_before_its_projection_is_the_owners(
    gw: RunningGateway,
    as_user: Callable[[str], httpx.AsyncClient],
    mongo_db: AsyncDatabase[Document],
) -> None:
    # Streams store a message and announce it before the projection sink writes its
    # conversation: a client acting on the event must not get 404 meanwhile.
    doc = message_doc(_raw("alice", "a_fresh", 9), origin="t:0:9")
    doc["status"] = "unread"
    await mongo_db[MESSAGES].insert_one(doc)
    async with as_user("alice") as alice, as_user("bob") as bob:
        listed = await alice.get("/api/conversations/a_fresh/messages")
        assert listed.status_code == 200
        assert [m["id"] for m in listed.json()["messages"]] == ["msg_a_fresh_9"]
        read = await alice.post("/api/conversations/a_fresh/read")
        assert read.status_code == 202 and read.json()["messageIds"] == ["msg_a_fresh_9"]
        assert (await bob.post("/api/conversations/a_fresh/read")).status_code == 404
        assert (await bob.get("/api/conversations/a_fresh/messages")).status_code == 404


async def test_accounts_are_per_user_and_never_show_credentials(
    as_user: Callable[[str], httpx.AsyncClient],
) -> None:
    async with as_user("alice") as alice, as_user("bob") as bob:
        created = await alice.post(
            "/api/accounts",
            json={
                "platform": "slack",
                "externalId": "T123",
                "credentials": {"signingSecret": "s3"},
            },
        )
        assert created.status_code == 201
        account: dict[str, Any] = created.json()
        assert account["platform"] == "slack" and account["externalId"] == "T123"
        assert "credentials" not in account and "s3" not in created.text
        listed = (await alice.get("/api/accounts")).json()["accounts"]
        assert [a["id"] for a in listed] == [account["id"]] and "s3" not in str(listed)
        assert (await bob.get("/api/accounts")).json() == {"accounts": []}
        assert (await bob.delete(f"/api/accounts/{account['id']}")).status_code == 404
        missing = await alice.post(
            "/api/accounts", json={"platform": "slack", "externalId": "T9", "credentials": {}}
        )
        assert missing.status_code == 422 and "signingSecret" in missing.json()["detail"]
        assert missing.json()["field"] == "credentials.signingSecret"
        unknown = await alice.post(
            "/api/accounts", json={"platform": "fax", "externalId": "1", "credentials": {}}
        )
        assert unknown.status_code == 422 and "unknown platform" in unknown.json()["detail"]
        assert (await alice.delete(f"/api/accounts/{account['id']}")).status_code == 204
        assert (await alice.get("/api/accounts")).json() == {"accounts": []}


async def test_api_needs_a_valid_bearer_token(gw: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as anonymous:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
            answer = await anonymous.get("/api/conversations", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"


async def test_health_has_the_contract_shape(gw: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as client:
        answer = await client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"status", "timestamp", "services"}
    assert body["status"] == "ok" and body["timestamp"].endswith("Z")
    assert set(body["services"]) == {"kafka", "mongodb", "database", "websocket"}
    assert body["services"]["kafka"]["status"] == "ok"
    assert body["services"]["mongodb"]["status"] == "ok"
    assert body["services"]["database"] == "connected"  # the seed's field and values
    assert body["services"]["websocket"] == {
        "status": "active",
        "connections": 0,
        "authenticatedUsers": 0,
    }


async def test_metrics_cors_docs_and_body_limit(gw: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as client:
        metrics = (await client.get("/metrics")).text
        for name in (
            "hub_gateway_connections",
            "hub_gateway_events_pushed_total",
            "hub_gateway_push_latency_seconds_bucket",
        ):
            assert name in metrics
        preflight = await client.options(
            "/api/conversations",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert (await client.get("/docs")).status_code == 200
        assert "/api/conversations" in (await client.get("/openapi.json")).json()["paths"]
        big = await client.post("/api/messages/read", content=b"x" * (2 * 1024 * 1024))
        assert big.status_code == 413


async def test_a_reply_answers_202_with_its_id_and_puts_one_send_command(
    gw: RunningGateway, as_user: Callable[[str], httpx.AsyncClient]
) -> None:
    url = "/api/conversations/a_generic/messages"
    async with as_user("alice") as alice, as_user("bob") as bob:
        first = await alice.post(url, json={"text": "On its way", "clientMessageId": "c-1"})
        again = await alice.post(url, json={"text": "On its way", "clientMessageId": "c-1"})
        other = await alice.post(url, json={"text": "Also", "clientMessageId": "c-2"})
        assert (first.status_code, again.status_code, other.status_code) == (202, 202, 202)
        assert first.json() == again.json() != other.json()
        assert first.json()["id"].startswith("msg_")
        foreign = await bob.post(url, json={"text": "x", "clientMessageId": "c-1"})
        assert foreign.status_code == 404
        for body, field in (
            ({"text": "x", "clientMessageId": "c" * 101}, "clientMessageId"),
            ({"text": "x", "clientMessageId": ""}, "clientMessageId"),
            ({"text": "", "clientMessageId": "c-3"}, "text"),
            ({"clientMessageId": "c-3"}, "text"),
        ):
            bad = await alice.post(url, json=body)
            assert bad.status_code == 422, body
            assert field in bad.text, bad.text

    topic = Topics.from_settings(gw.app.settings).commands
    sent = [parse_command(r.value) for r in await read_topic(gw.app.settings, topic)]
    assert len(sent) == 3
    assert all(isinstance(c, SendMessage) and c.user_id == "alice" for c in sent)
    assert [c.message_id for c in sent if isinstance(c, SendMessage)] == [
        first.json()["id"],
        first.json()["id"],
        other.json()["id"],
    ]
    assert sent[0].id == sent[1].id  # the same reply is recognisably the same command
