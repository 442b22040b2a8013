"""Isolation under load: 1,000 users with 3 sockets each, spread over 2 `hub gateway`
processes, while webhooks to random users and mark-reads arrive for 60 s. No socket ever
sees an event of another user, each gets all of its user's messages, and each socket's
last unread counts equal `GET /api/unread` of its user.

The shared broker and store (own topics and database), the connectors app in-process, a
`hub streams` worker and two gateways as real processes; the clients in this process.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from websockets.asyncio.client import ClientConnection

from hubcore.accounts import Account
from hubcore.kafka import ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from hubcore.store import unread_from_doc
from schemas import conversation_id
from tests import platform_payloads as p
from tests.integration.connectors.harness import SECRETS, Harness, running_app
from tests.integration.gateway_kit import GatewayAddress, open_ws, token, two_gateway_processes
from tests.streams_helpers import Worker, wait_for, wait_ready, worker_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.faults,
    pytest.mark.timeout(420),
]

USERS = 1000
SOCKETS = 3  # per user, alternating between the gateways
CHATS = 3  # conversations per user
SECONDS = 60  # of traffic
WEBHOOKS, READS = 15, 3  # a second
SETTLE = 90.0  # seconds for the last events to reach every socket


@dataclass
class User:
    name: str
    account: Account
    conversations: set[str]
    acked: set[str] = field(default_factory=set)  # message ids answered 200


class Socket:
    """One client socket: checks every frame belongs to its user, keeps the message ids and
    the unread counts as the events built them (`byConversation` merged)."""

    def __init__(self, user: User, gateway: GatewayAddress, ws: ClientConnection) -> None:
        self.user, self.gateway, self.ws = user, gateway, ws
        self.messages: set[str] = set()
        self.conversations: set[str] = set()  # of the messages it got
        self.status_ids: set[str] = set()  # checked at the end: an ack may trail its event
        self.unread: dict[str, Any] = {"total": 0, "byPlatform": {}, "byConversation": {}}
        self.foreign: list[dict[str, Any]] = []
        self.last_frame = time.monotonic()

    async def read(self) -> None:
        async for raw in self.ws:
            self.last_frame = time.monotonic()
            frame = orjson.loads(raw)
            if not self._mine(frame):
                self.foreign.append(frame)

    def _mine(self, frame: dict[str, Any]) -> bool:
        data, convs = frame.get("data", {}), self.user.conversations
        match frame["type"]:
            case "new_message":
                message = data["message"]
                self.messages.add(message["id"])
                self.conversations.add(message["conversationId"])
                return bool(
                    message["accountId"] == self.user.account.id
                    and message["conversationId"] in convs
                )
            case "message_status_update":
                self.status_ids.update(data["messageIds"])
                return bool(data["conversationId"] in convs)
            case "conversation_update":
                return bool(data["conversation"]["id"] in convs)
            case "unread_count_update":
                counts = data["unreadCounts"]
                self.unread["total"] = counts["total"]
                self.unread["byPlatform"] = counts["byPlatform"]
                self.unread["byConversation"].update(counts["byConversation"])
                return set(counts["byConversation"]) <= convs
            case "presence_update":  # the user's own sockets (issue 25): nothing to tell apart
                return True
        return False  # an error, or a type no client of this test caused

    def view(self) -> dict[str, Any]:
        """The counts as compared (conversations and platforms at 0 left out)."""
        return {
            "total": self.unread["total"],
            "byPlatform": {k: v for k, v in self.unread["byPlatform"].items() if v},
            "byConversation": {k: v for k, v in self.unread["byConversation"].items() if v},
        }


async def _users(app: Harness) -> list[User]:
    gate = asyncio.Semaphore(20)

    async def one(n: int) -> User:
        async with gate:
            account = await app.account("generic", user=f"user{n}")
        convs = {conversation_id("generic", account.id, f"chat-{c}") for c in range(CHATS)}
        return User(f"user{n}", account, convs)

    return await asyncio.gather(*(one(n) for n in range(USERS)))


async def _connect(
    settings: Settings, users: list[User], gws: list[GatewayAddress]
) -> list[Socket]:
    gate = asyncio.Semaphore(50)

    async def one(user: User, k: int) -> Socket:
        gateway = gws[k % 2]
        async with gate:
            return Socket(user, gateway, await open_ws(gateway, token(settings, user.name)))

    return await asyncio.gather(
        *(one(u, n * SOCKETS + k) for n, u in enumerate(users) for k in range(SOCKETS))
    )


async def _webhook(app: Harness, user: User, rng: random.Random, n: int) -> None:
    payload = p.generic_message(f"m-{n}", conversationId=f"chat-{rng.randrange(CHATS)}")
    raw = p.body(payload)
    headers = p.hub_signature(SECRETS["generic"]["secret"], raw)
    response = await app.post("generic", user.account.id, raw, headers)
    assert response.status_code == 200, response.text
    user.acked.update(response.json()["messageIds"])


async def _mark_read(
    http: httpx.AsyncClient, settings: Settings, user: User, conv: str, statuses: Counter[int]
) -> None:
    auth = {"Authorization": f"Bearer {token(settings, user.name)}"}
    response = await http.post(f"/api/conversations/{conv}/read", headers=auth)
    # The conversation's events were seen, so it is the user's even before its projection.
    assert response.status_code == 202, response.text
    statuses[response.status_code] += 1


async def _traffic(
    app: Harness, settings: Settings, sockets: list[Socket], gws: list[GatewayAddress]
) -> Counter[int]:
    """Webhooks and mark-reads (of conversations the users' sockets have seen) at their
    rates for SECONDS; the mark-reads' statuses."""
    rng = random.Random(13)
    tasks: list[asyncio.Task[None]] = []
    clients = [httpx.AsyncClient(base_url=g.base_url, timeout=30) for g in gws]
    users = sorted({s.user.name: s.user for s in sockets}.values(), key=lambda u: u.name)
    statuses: Counter[int] = Counter()
    started, n, reads = time.monotonic(), 0, 0
    try:
        while (elapsed := time.monotonic() - started) < SECONDS:
            while n < elapsed * WEBHOOKS:
                tasks.append(asyncio.create_task(_webhook(app, rng.choice(users), rng, n)))
                n += 1
            while reads < elapsed * READS:
                if seen := [s for s in sockets if s.conversations]:
                    socket = rng.choice(seen)
                    conv = rng.choice(sorted(socket.conversations))
                    http = rng.choice(clients)
                    mark = _mark_read(http, settings, socket.user, conv, statuses)
                    tasks.append(asyncio.create_task(mark))
                reads += 1
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
    finally:
        for client in clients:
            await client.aclose()
    return statuses


def _clean(counts: dict[str, Any]) -> dict[str, Any]:
    """Counts as compared: platforms at 0 left out (conversations at 0 already are)."""
    return {**counts, "byPlatform": {k: v for k, v in counts["byPlatform"].items() if v}}


async def _store_counts(db: AsyncDatabase[Document]) -> dict[str, dict[str, Any]]:
    """Every user's counts as `GET /api/unread` builds them (`unread_from_doc` over the same
    documents), read in two queries (the sockets are compared again after a pause, and a
    request per user and pause would add up)."""
    docs = {d["_id"]: d async for d in db["unread"].find({})}
    convs: dict[str, dict[str, int]] = {}
    async for d in db["conversations"].find({"unreadCount": {"$gt": 0}}):
        convs.setdefault(d["userId"], {})[d["_id"]] = d["unreadCount"]
    users = set(docs) | set(convs)
    return {
        u: _clean(unread_from_doc(docs.get(u), convs.get(u, {})).model_dump(by_alias=True))
        for u in users
    }


async def _mismatches(db: AsyncDatabase[Document], sockets: list[Socket]) -> dict[str, str]:
    """User -> how one of its sockets' counts differs from the store's."""
    truth = await _store_counts(db)
    zero = {"total": 0, "byPlatform": {}, "byConversation": {}}
    return {
        s.user.name: f"{s.view()} != {truth.get(s.user.name, zero)}"
        for s in sockets
        if s.view() != truth.get(s.user.name, zero)
    }


async def _assert_api_agrees(
    settings: Settings, db: AsyncDatabase[Document], users: list[User], gws: list[GatewayAddress]
) -> None:
    """`GET /api/unread` of `users` (alternating gateways) equals the store's counts."""
    truth = await _store_counts(db)
    zero = {"total": 0, "byPlatform": {}, "byConversation": {}}
    gate = asyncio.Semaphore(32)  # all 1,000 users are asked: keep the step short

    async def check(user: User, http: httpx.AsyncClient) -> None:
        async with gate:
            auth = {"Authorization": f"Bearer {token(settings, user.name)}"}
            response = await http.get("/api/unread", headers=auth)
        assert response.status_code == 200, response.text
        assert _clean(response.json()) == truth.get(user.name, zero), user.name

    clients = [httpx.AsyncClient(base_url=g.base_url, timeout=60) for g in gws]
    try:
        await asyncio.gather(*(check(u, clients[n % 2]) for n, u in enumerate(users)))
    finally:
        for client in clients:
            await client.aclose()


async def _settled(sockets: list[Socket], quiet: float) -> bool:
    """Every socket has all of its user's messages and none got a frame for `quiet` s."""
    now = time.monotonic()
    return all(s.messages >= s.user.acked and now - s.last_frame > quiet for s in sockets)


async def test_no_foreign_events_and_counts_match_under_load(
    settings: Settings, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> None:
    await ensure_topics(settings)
    worker = Worker(worker_env(settings, tmp_path), tmp_path / "worker.log")
    worker.start()
    limits = {"HUB_RATE_WS_PER_IP": "100000/min"}  # every client comes from 127.0.0.1
    try:
        async with (
            two_gateway_processes(settings, tmp_path, **limits) as gws,
            running_app(settings, mongo_db) as app,
        ):
            await wait_ready(worker, timeout=120)
            began = time.monotonic()
            users = await _users(app)
            sockets = await _connect(settings, users, list(gws))
            took = time.monotonic() - began
            print(f"isolation: accounts and sockets ready in {took:.1f}s", flush=True)
            readers = [asyncio.create_task(s.read()) for s in sockets]
            try:
                started = time.monotonic()
                reads = await _traffic(app, settings, sockets, list(gws))
                sent = sum(len(u.acked) for u in users)
                took = time.monotonic() - started
                print(f"isolation: {sent} webhooks, mark-reads {dict(reads)} in {took:.1f}s")
                assert reads[202] >= 0.9 * reads.total(), reads

                await wait_for(
                    lambda: _settled(sockets, 3.0), timeout=SETTLE, what="the sockets to settle"
                )
                took = time.monotonic() - started - SECONDS
                print(f"isolation: sockets quiet {took:.1f}s after the traffic", flush=True)
                mismatched = await _mismatches(mongo_db, sockets)
                took = time.monotonic() - started - SECONDS
                print(f"isolation: {len(mismatched)} users differ at {took:.1f}s", flush=True)
                for _ in range(5):  # a straggling event may still be on its way
                    if not mismatched:
                        break
                    await asyncio.sleep(2)
                    late = [s for s in sockets if s.user.name in mismatched]
                    mismatched = await _mismatches(mongo_db, late)
                assert not mismatched, list(mismatched.items())[:10]
                asked = time.monotonic()
                await _assert_api_agrees(settings, mongo_db, users, list(gws))
                took = time.monotonic() - asked
                print(f"isolation: GET /api/unread of {len(users)} users in {took:.1f}s")
                closed = [
                    s.user.name for s, task in zip(sockets, readers, strict=True) if task.done()
                ]
                assert not closed, f"sockets closed under load: {closed[:10]}"
                took = time.monotonic() - started - SECONDS
                print(f"isolation: settled {took:.1f}s after the traffic")
            finally:
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await asyncio.gather(*(s.ws.close() for s in sockets), return_exceptions=True)
        foreign = [(s.user.name, f) for s in sockets for f in s.foreign]
        assert not foreign, foreign[:5]
        assert all(s.messages == s.user.acked for s in sockets)
        assert all(s.status_ids <= s.user.acked for s in sockets)
        assert await mongo_db["messages"].count_documents({}) == sent
    finally:
        worker.stop()
