"""Issue 22, done when: a flood from one user leaves another user's event latency within
20 % of quiet. The whole hub runs as `hub up` (connectors, streams, gateway); user B's
latency is a signed webhook's POST until its `new_message` on B's socket, measured
quiet, then while user A floods everything a user controls, each up to its limit:
sockets (up to HUB_WS_MAX_PER_USER, and past it), webhooks (as fast as the connectors
answer, past HUB_RATE_WEBHOOKS_PER_ACCOUNT), account creations (up to and past
HUB_MAX_ACCOUNTS_PER_USER) and mail (a mailbox of A's email account filling up)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests import platform_payloads as p
from tests.integration.hub_process import RunningHub, hub_up
from tests.local_servers import Dovecot, dovecot_server
from tests.resources import SessionResources

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES = 20  # of B's latency: quiet before, during the flood, quiet after
FIRST_WAIT = 90.0  # the first record waits for the streams worker's group to form
WAIT = 30.0
SOCKET_CAP = 20
WEBHOOK_RATE = "10/s"  # A's allowance (no burst beyond 10), each fanned out to 20 sockets
# A sends at 1.2 times its allowance (some are refused), creates accounts at the REST
# limit's 10 a second: a user's flood is what the limits let through, plus refusals.
WEBHOOKS_PER_S = 12
ACCOUNTS_PER_S = 10
PACE = 0.25  # seconds between B's samples: 4 a second, within WEBHOOK_RATE
MAILS = 200
# The absolute floor beside the 20 %: a sample's timer and scheduling noise. `.ci/run`
# runs this test alone, at the end: there (2026-12-07) B's p50 was 13 ms quiet, 12 ms
# during the flood, 13 ms quiet again. On a machine shared with other work the quiet
# medians alone moved by up to 40 ms (load average 8-18): run it alone.
FLOOR = 0.010


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with dovecot_server() as server:
        yield server


@pytest.fixture(scope="module")
def hub(
    resources: SessionResources, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHub]:
    env = {
        "HUB_RATE_WEBHOOKS_PER_ACCOUNT": WEBHOOK_RATE,
        "HUB_WS_MAX_PER_USER": str(SOCKET_CAP),
        # The test's Dovecot listens on loopback without TLS.
        "HUB_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "HUB_OUTBOUND_ALLOW_PLAINTEXT": "true",
        "HUB_POLL_INTERVAL": "1",
        "HUB_CONNECTORS_ACCOUNTS_REFRESH": "1",  # A's email account is polled at once
    }
    with hub_up(resources, tmp_path_factory.mktemp("hub-flood"), env) as running:
        yield running


class Generic:
    """A generic account of one user and its signed webhooks."""

    def __init__(self, hub: RunningHub, http: httpx.AsyncClient, account: str, secret: str):
        self.hub, self.http, self.account, self.secret = hub, http, account, secret

    @classmethod
    async def create(cls, hub: RunningHub, http: httpx.AsyncClient, user: str) -> Generic:
        secret = uuid.uuid4().hex
        resp = await create_account(hub, http, user, "generic", f"flood-{user}", {"secret": secret})
        assert resp.status_code == 201, resp.text
        return cls(hub, http, resp.json()["id"], secret)

    async def send(self, message_id: str) -> int:
        body = orjson.dumps(
            {
                "conversationId": "c1",
                "messageId": message_id,
                "sender": {"id": "cust", "name": "Ada"},
                "text": "hello",
                "sentAt": "2026-12-07T12:00:00Z",
            }
        )
        sig = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        resp = await self.http.post(
            f"{self.hub.connectors}/webhooks/generic/{self.account}",
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"},
        )
        return resp.status_code


async def create_account(
    hub: RunningHub,
    http: httpx.AsyncClient,
    user: str,
    platform: str,
    external_id: str,
    credentials: dict[str, Any],
) -> httpx.Response:
    return await http.post(
        f"{hub.gateway}/api/accounts",
        json={"platform": platform, "externalId": external_id, "credentials": credentials},
        headers={"Authorization": f"Bearer {hub.token(user)}"},
    )


async def authenticated(hub: RunningHub, user: str) -> Any:
    ws = await websockets.connect(hub.ws_url, max_queue=None)
    await ws.send(orjson.dumps({"type": "authenticate", "token": hub.token(user)}).decode())
    return ws


async def new_message(ws: Any, message_id: str, timeout: float) -> None:
    """Read B's socket up to the `new_message` of the webhook with `message_id`."""
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == "new_message" and frame["data"]["message"]["text"] == message_id:
                return


async def test_one_users_flood_leaves_anothers_latency_within_20_percent(
    hub: RunningHub, dovecot: Dovecot
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        b = await Generic.create(hub, http, "flood-bob")
        a = await Generic.create(hub, http, "flood-alice")
        bob = await authenticated(hub, "flood-bob")
        assert orjson.loads(await bob.recv())["type"] == "authenticated"

        paced = [0.0]

        async def latency(n: int, timeout: float = WAIT) -> float:
            # B keeps within the same webhook limit as A: a sample every PACE at most.
            await asyncio.sleep(max(0.0, paced[0] + PACE - time.perf_counter()))
            paced[0] = time.perf_counter()
            text = f"bob-{n}-{uuid.uuid4().hex[:6]}"
            started = time.perf_counter()
            body = orjson.dumps(
                {
                    "conversationId": "c1",
                    "messageId": text,
                    "sender": {"id": "cust", "name": "Ada"},
                    "text": text,
                    "sentAt": "2026-12-07T12:00:00Z",
                }
            )
            sig = hmac.new(b.secret.encode(), body, hashlib.sha256).hexdigest()
            resp = await http.post(
                f"{hub.connectors}/webhooks/generic/{b.account}",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": f"sha256={sig}",
                },
            )
            assert resp.status_code == 200, resp.text
            await new_message(bob, text, timeout)
            return time.perf_counter() - started

        await latency(-1, FIRST_WAIT)  # the pipeline is up (group formed, caches warm)
        quiet = [await latency(n) for n in range(SAMPLES)]

        # --- A floods ------------------------------------------------------------------
        stop = asyncio.Event()
        outcome: Counter[str] = Counter()
        sockets: list[Any] = []

        flooding = asyncio.Event()  # A's events reach A's sockets

        async def drain(ws: Any) -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in ws:
                    outcome["a_frames"] += 1
                    flooding.set()

        async def open_sockets() -> None:
            for _ in range(SOCKET_CAP + 5):  # the cap, then five more refused
                ws = await authenticated(hub, "flood-alice")
                first = orjson.loads(await ws.recv())
                if first["type"] == "authenticated":
                    sockets.append(ws)
                    readers.append(asyncio.create_task(drain(ws)))
                else:
                    outcome[f"socket_{first['data']['code']}"] += 1
                    await ws.close()

        async def at_rate(per_second: float, count: int, one: Any) -> None:
            started = time.perf_counter()
            for n in range(count):
                if stop.is_set():
                    return
                await asyncio.sleep(max(0.0, started + n / per_second - time.perf_counter()))
                await one(n)

        async def webhook(n: int) -> None:
            outcome[f"webhook_{await a.send(f'a-{n}')}"] += 1

        async def account(n: int) -> None:
            resp = await create_account(
                hub, http, "flood-alice", "generic", f"extra-{n}", {"secret": "s" * 16}
            )
            outcome[f"account_{resp.status_code}"] += 1

        async def webhooks() -> None:
            await at_rate(WEBHOOKS_PER_S, 10_000, webhook)

        async def accounts() -> None:  # past the cap of 50
            await at_rate(ACCOUNTS_PER_S, 60, account)

        # A's email account exists before the flood (the flood fills its accounts up).
        mailbox = f"Flood{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(dovecot.append, mailbox, p.email_source("flood-0@x"))
        credentials = {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "username": dovecot.username,
            "password": dovecot.password,
            "ssl": False,
            "mailbox": mailbox,
        }
        resp = await create_account(
            hub, http, "flood-alice", "email", "alice@flood.example", credentials
        )
        assert resp.status_code == 201, resp.text

        async def mail() -> None:
            for start in range(1, MAILS, 50):
                if stop.is_set():
                    return
                sources = [p.email_source(f"flood-{i}@x") for i in range(start, start + 50)]
                await asyncio.to_thread(dovecot.append, mailbox, *sources)
                outcome["mails"] += 50

        readers: list[asyncio.Task[None]] = []
        await open_sockets()
        flood = [asyncio.create_task(f()) for f in (webhooks, accounts, mail)]
        try:
            async with asyncio.timeout(WAIT):
                await flooding.wait()
            busy = [await latency(n) for n in range(SAMPLES, 2 * SAMPLES)]
        finally:
            stop.set()
            await asyncio.gather(*flood)
            for ws in sockets:
                await ws.close()
            await asyncio.gather(*readers)
        # Quiet again once A's backlog is through (B's own samples wait for it).
        after = [await latency(n) for n in range(2 * SAMPLES, 3 * SAMPLES)]
        await bob.close()

    q50, b50 = statistics.median(quiet + after), statistics.median(busy)
    ms = [round(statistics.median(x) * 1000) for x in (quiet, busy, after)]
    print(
        f"\nB's webhook->socket latency p50: quiet {ms[0]} ms, during A's flood {ms[1]} ms, "
        f"quiet again {ms[2]} ms (max {max(quiet) * 1000:.0f}, {max(busy) * 1000:.0f}, "
        f"{max(after) * 1000:.0f}); A's flood: {dict(sorted(outcome.items()))}"
    )
    # The flood really pressed every limit.
    assert len(sockets) == SOCKET_CAP and outcome["socket_too_many_connections"] == 5
    assert outcome["webhook_200"] > 0 and outcome["webhook_429"] > 0
    assert outcome["account_409"] > 0
    assert outcome["mails"] > 0
    assert b50 <= q50 * 1.2 + FLOOR, (q50, b50)
