"""Presence drives Web Push, end to end (issue 25): a gateway process, a streams worker
process projecting presence, a connectors process running the notifier, and the push
service stand-in that decrypts every payload. Each side is tested alone elsewhere
(test_presence.py, test_push.py); here the notifier reads what the projection wrote."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from connectors.platforms import generic
from connectors.publisher import Publisher
from hubcore.accounts import Account, AccountStore
from hubcore.kafka import ensure_topics
from hubcore.push_store import PushStore
from hubcore.settings import Settings
from hubcore.webpush import new_vapid_key
from schemas.base import utc_now
from tests import platform_payloads as p
from tests.integration.connectors.harness import SECRETS, hub_env, killable_connectors
from tests.integration.gateway_kit import (
    frames_until,
    gateway_process,
    healthy,
    sio_client,
    token,
)
from tests.integration.test_presence import (
    HEARTBEAT,
    LEASE,
    PRESENCE_ENV,
    connect,
    devices_become,
    store,
    streams_worker,
)
from tests.local_servers import free_port
from tests.push_service import push_service
from tests.streams_helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Seconds without a device before a push; longer than the notifier's PRESENCE_SETTLE, so
# a message after the grace never joins a held one.
GRACE = 4.0
USER = "pia"


async def _decisions(http: httpx.AsyncClient) -> dict[str, float]:
    """The notifier's `hub_push_decisions_total` by decision, from the process's /metrics."""
    text = (await http.get("/metrics")).text
    found = re.findall(r'^hub_push_decisions_total\{decision="(\w+)"\} (\S+)$', text, re.M)
    return {name: float(value) for name, value in found}


async def _send(publisher: Publisher, account: Account, ref: str, conversation: str) -> str:
    """A message produced as the generic webhook would; its message id."""
    body = p.body(p.generic_message(ref, conversationId=conversation, text=f"hello {ref}"))
    [record] = generic.parse(account, body, utc_now()).records
    await publisher.publish([record], source="webhook")
    return record.id


async def test_a_live_device_holds_pushes_back_and_a_closed_one_lets_one_through(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    vapid = new_vapid_key()
    async with push_service() as service:
        s = settings_factory(
            presence_heartbeat_s=HEARTBEAT,
            presence_lease_s=LEASE,
            vapid_private_key=vapid,
            push_grace=GRACE,
            push_interval=1.0,
            outbound_allowed_hosts=["127.0.0.1"],
            outbound_allow_plaintext=True,
        )
        await ensure_topics(s)
        port = free_port()
        env = hub_env(
            s,
            HUB_CONNECTORS_POLLERS="false",
            HUB_CONNECTORS_PORT=str(port),
            HUB_VAPID_PRIVATE_KEY=vapid,
            HUB_PUSH_GRACE=str(GRACE),
            HUB_PUSH_INTERVAL="1",
        )
        async with streams_worker(s, tmp_path), store(s) as db:
            account = await AccountStore(db, s).create(USER, "generic", "crm", SECRETS["generic"])
            browser = service.browser()
            await PushStore(db).subscribe(USER, browser.endpoint, browser.p256dh, browser.auth)
            publisher = Publisher(s)
            await publisher.start()
            try:
                with (
                    gateway_process(s, tmp_path / "gw.log", **PRESENCE_ENV) as gw,
                    killable_connectors(env, tmp_path, "connectors"),
                ):
                    await healthy(gw, gw.log)
                    async with httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{port}", timeout=5
                    ) as http:

                        async def decided(name: str, count: float) -> bool:
                            try:
                                return (await _decisions(http)).get(name, 0) >= count
                            except httpx.TransportError:
                                return False  # not listening yet

                        # 1. A live /ws: the message reaches it, and no push goes out.
                        ws, conn = await connect(gw, s, USER)
                        await devices_become(db, USER, {conn})
                        first = await _send(publisher, account, "m-1", "conv-a")
                        await frames_until(
                            ws,
                            lambda fs: any(
                                f["type"] == "new_message" and f["data"]["message"]["id"] == first
                                for f in fs
                            ),
                        )
                        await wait_for(lambda: decided("online", 1), timeout=60, what="held")
                        # Looked at again a moment later (the projection may lag): still
                        # online, so never pushed.
                        await wait_for(lambda: decided("online", 2), timeout=60, what="rechecked")

                        # 2. Closed: a message right after waits out the grace (from the
                        # projected lastSeen), then is pushed once, the user still away.
                        await ws.close()
                        early = await _send(publisher, account, "m-2", "conv-b")
                        doc = await devices_become(db, USER, set())
                        assert doc["online"] is False
                        last_seen = datetime.fromisoformat(doc["lastSeen"])
                        [held] = await service.wait_for(browser, 1, timeout=60)
                        assert held.payload["messageId"] == early
                        assert held.payload["count"] == 1
                        assert "hello m-2" in held.payload["body"]
                        assert held.payload["platform"] == "generic"
                        assert await _after(last_seen, GRACE)  # not before the grace
                        # Judged `online` (the projection not written yet: held, then
                        # pushed since the device had left before it) or `deferred`.
                        counts = await _decisions(http)
                        assert counts.get("online", 0) + counts.get("deferred", 0) == 3

                        # 3. The grace over: a new message is pushed at once, exactly once.
                        later = await _send(publisher, account, "m-3", "conv-c")
                        [_, receipt] = await service.wait_for(browser, 2, timeout=60)
                        assert receipt.payload["messageId"] == later
                        assert "hello m-3" in receipt.payload["body"]
                        await wait_for(lambda: decided("sent", 2), timeout=30, what="sent")

                        # 4. A Socket.IO socket is a live device too.
                        online = (await _decisions(http)).get("online", 0)
                        auth = {"token": token(s, USER)}
                        async with sio_client(
                            gw.base_url, auth=auth, transports=["websocket"]
                        ) as sio:
                            authenticated, _ = await sio.until("authenticated")
                            sid = authenticated["data"]["connectionId"]
                            doc = await devices_become(db, USER, {sid})
                            assert doc["devices"][0]["clientKind"] == "socketio"
                            await _send(publisher, account, "m-4", "conv-d")
                            await wait_for(
                                lambda: decided("online", online + 2),
                                timeout=60,
                                what="held and rechecked",
                            )
                        # m-4 was shown live and is never pushed; the next message after
                        # the socket closed and the grace is, alone.
                        doc = await devices_become(db, USER, set())
                        last_seen = datetime.fromisoformat(doc["lastSeen"])
                        await wait_for(
                            lambda: _after(last_seen, GRACE), timeout=30, what="the grace"
                        )
                        last = await _send(publisher, account, "m-5", "conv-d")
                        *_, final = await service.wait_for(browser, 3, timeout=60)
                        assert (final.payload["messageId"], final.payload["count"]) == (last, 1)
                        assert (await _decisions(http)).get("sent") == 3
                        assert not service.refusals
            finally:
                await publisher.stop()


async def _after(moment: datetime, seconds: float) -> bool:
    return (utc_now() - moment).total_seconds() > seconds
