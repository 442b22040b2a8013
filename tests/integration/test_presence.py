"""Presence across gateway processes: a real streams worker, real gateways, Kafka, FerretDB."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from websockets.asyncio.client import ClientConnection

from hubcore.kafka import ensure_topics
from hubcore.mongo import PRESENCE, Document, create_client, database
from hubcore.settings import Settings
from tests.integration.gateway_kit import (
    GatewayAddress,
    frames_until,
    gateway_process,
    healthy,
    open_ws,
    recv_frame,
    running_gateway,
    sio_client,
    token,
)
from tests.streams_helpers import Worker, wait_for, wait_ready, worker_env

pytestmark = pytest.mark.integration

HEARTBEAT, LEASE = 0.5, 3.0
PRESENCE_ENV = {"HUB_PRESENCE_HEARTBEAT_S": str(HEARTBEAT), "HUB_PRESENCE_LEASE_S": str(LEASE)}


@pytest.fixture
def presence_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(presence_heartbeat_s=HEARTBEAT, presence_lease_s=LEASE)


@contextlib.asynccontextmanager
async def streams_worker(settings: Settings, tmp: Path) -> AsyncIterator[Worker]:
    await ensure_topics(settings)
    worker = Worker(worker_env(settings, tmp, **PRESENCE_ENV), tmp / "worker.log")
    worker.start()
    try:
        await wait_ready(worker)
        yield worker
    finally:
        worker.stop()


@contextlib.asynccontextmanager
async def store(settings: Settings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(settings.mongo_url)
    try:
        yield database(client, settings)
    finally:
        await client.close()


async def connect(
    gateway: GatewayAddress, settings: Settings, user: str
) -> tuple[ClientConnection, str]:
    """An authenticated `/ws` of `user`, and its connection id."""
    ws = await open_ws(gateway)
    await ws.send(f'{{"type": "authenticate", "token": "{token(settings, user)}"}}')
    frame = await recv_frame(ws)
    assert frame["type"] == "authenticated", frame
    return ws, str(frame["data"]["connectionId"])


async def devices_become(
    db: AsyncDatabase[Document], user: str, expected: set[str], timeout: float = 60
) -> dict[str, Any]:
    """The user's presence document once its devices are exactly `expected`."""
    found: dict[str, Any] = {}

    async def settled() -> bool:
        doc = await db[PRESENCE].find_one({"_id": user})
        found.clear()
        found.update(doc or {})
        return doc is not None and {d["connectionId"] for d in doc["devices"]} == expected

    await wait_for(settled, timeout=timeout, what=f"{user}'s devices to be {sorted(expected)}")
    return found


def presence_updates(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["data"] for f in frames if f["type"] == "presence_update"]


async def test_a_killed_gateways_devices_expire_within_the_lease(
    presence_settings: Settings, tmp_path: Path
) -> None:
    s = presence_settings
    async with streams_worker(s, tmp_path), store(s) as db:
        with (
            gateway_process(s, tmp_path / "gw1.log", **PRESENCE_ENV) as gw1,
            gateway_process(s, tmp_path / "gw2.log", **PRESENCE_ENV) as gw2,
        ):
            await healthy(gw1, gw1.log)
            await healthy(gw2, gw2.log)
            _doomed, on_gw1 = await connect(gw1, s, "ann")
            ann, on_gw2 = await connect(gw2, s, "ann")
            bob, bobs = await connect(gw2, s, "bob")
            doc = await devices_become(db, "ann", {on_gw1, on_gw2})
            assert doc["online"] is True and doc["version"] >= 2
            assert len({d["gatewayId"] for d in doc["devices"]}) == 2
            assert {d["clientKind"] for d in doc["devices"]} == {"ws"}
            # The user's other devices hear of it: the device count across gateways.
            seen = await frames_until(
                ann, lambda fs: any(u["devices"] == 2 for u in presence_updates(fs))
            )
            assert presence_updates(seen)[-1]["online"] is True

            # REST: the caller's own devices only, whichever gateway answers.
            async with httpx.AsyncClient(base_url=gw2.base_url, timeout=10) as http:
                mine = await http.get("/api/presence", headers=_auth(s, "ann"))
                assert mine.status_code == 200
                body = mine.json()
                assert body["online"] is True and body["lastSeen"]
                assert {d["connectionId"] for d in body["devices"]} == {on_gw1, on_gw2}
                assert {d["clientKind"] for d in body["devices"]} == {"ws"}
                theirs = (await http.get("/api/presence", headers=_auth(s, "bob"))).json()
                assert [d["connectionId"] for d in theirs["devices"]] == [bobs]
                nobody = (await http.get("/api/presence", headers=_auth(s, "cid"))).json()
                assert nobody == {"online": False, "devices": [], "lastSeen": None}
                assert (await http.get("/api/presence")).status_code == 401

            killed = time.monotonic()
            gw1.kill()  # no goodbye: its devices go when its lease runs out
            doc = await devices_become(db, "ann", {on_gw2}, timeout=LEASE + 30)
            took = time.monotonic() - killed
            # The lease, a tick interval, and the batch and store write on a busy machine.
            assert took <= LEASE + 2 * HEARTBEAT + 5, took
            seen = await frames_until(
                ann, lambda fs: any(u["devices"] == 1 for u in presence_updates(fs))
            )
            assert presence_updates(seen)[-1]["online"] is True
            assert (await db[PRESENCE].find_one({"_id": "bob"}) or {})["online"] is True

            (last,) = doc["devices"]
            await ann.close()  # a clean goodbye: gone at once, last seen now
            doc = await devices_become(db, "ann", set())
            assert doc["online"] is False and doc["lastSeen"] >= last["since"]
            await bob.close()


async def test_presence_is_exact_after_a_worker_restart(
    presence_settings: Settings, tmp_path: Path
) -> None:
    s = presence_settings
    async with running_gateway(s) as gw, store(s) as db:
        await ensure_topics(s)
        worker = Worker(worker_env(s, tmp_path, **PRESENCE_ENV), tmp_path / "worker.log")
        worker.start()
        try:
            await wait_ready(worker)
            carl = [await connect(gw, s, "carl") for _ in range(3)]
            dora, doras = await connect(gw, s, "dora")
            await devices_become(db, "carl", {c for _, c in carl})
            await devices_become(db, "dora", {doras})

            worker.kill()  # SIGKILL: no commit, no flush
            await carl[0][0].close()
            eve, eves = await connect(gw, s, "eve")
            worker.start()
            await wait_ready(worker)
            await devices_become(db, "carl", {c for _, c in carl[1:]})
            await devices_become(db, "eve", {eves})
            # The table came back from its changelog: what happened before the crash counts.
            await carl[1][0].close()
            doc = await devices_become(db, "carl", {carl[2][1]})
            assert doc["online"] is True
            await dora.close()
            doc = await devices_become(db, "dora", set())
            assert doc["online"] is False
            assert (await db[PRESENCE].find_one({"_id": "eve"}) or {})["devices"][0][
                "clientKind"
            ] == "ws"
            # A Socket.IO socket is a device too, of its own kind.
            auth = {"token": token(s, "eve")}
            async with sio_client(gw.base_url, auth=auth, transports=["websocket"]) as sio:
                authenticated, _ = await sio.until("authenticated")
                sid = authenticated["data"]["connectionId"]
                doc = await devices_become(db, "eve", {eves, sid})
                kinds = {d["connectionId"]: d["clientKind"] for d in doc["devices"]}
                assert kinds == {eves: "ws", sid: "socketio"}
            await devices_become(db, "eve", {eves})
            await eve.close()
            await carl[2][0].close()
        finally:
            worker.stop()


def _auth(settings: Settings, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(settings, user)}"}
