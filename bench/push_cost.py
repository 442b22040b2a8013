"""CPU per Web Push notification of the notifier, measured simply (`python -m bench.push_cost`).

The notifier's own path, in this process: `Notifier.handle` of a `new_message` for a user
away with one subscription (four store reads on FerretDB, the payload built, encrypted
per RFC 8291, the VAPID token, the HTTP POST through httpx) against a push service in a
child process that answers `201 Created` at once (its CPU is not counted); then the same
for users with no subscription (the common case: the decision alone); then the
encryption alone. CPU is this process's (`time.process_time`), divided by the messages.
A user's subscriptions are cached for a few seconds (most users have none), so a
decision is measured for a user first seen and again. Not counted: consuming the record
from Kafka (the gateway's pump pays the same per event).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from pymongo.asynchronous.database import AsyncDatabase

from connectors.push.notifier import Notifier
from connectors.push.sender import PushSender
from hubcore.mongo import Document, create_client
from hubcore.push_store import PRESENCE, PushStore
from hubcore.settings import Settings
from hubcore.webpush import Vapid, encrypt, new_vapid_key, public_point
from schemas import Message, NewMessage, NewMessageData, Sender, parse_user_event
from schemas.base import format_utc, utc_now

# A push service that answers every request 201 at once, keep-alive (stdlib only).
_SERVICE = r"""
import asyncio, sys
async def serve(reader, writer):
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return writer.close()
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def _event(user: str, n: int) -> NewMessage:
    now = utc_now()
    message = Message(
        id=f"msg_{user}_{n}",
        platform="slack",
        account_id="acc",
        conversation_id=f"conv_{user}",
        sender=Sender(id="U1", name="Ann"),
        text="Are we still on for lunch tomorrow at noon? " * 2,
        sent_at=now,
        received_at=now,
    )
    return NewMessage(
        id=f"evt_{user}_{n}", user_id=user, occurred_at=now, data=NewMessageData(message=message)
    )


async def _cpu_per(label: str, count: int, run: Coroutine[Any, Any, None]) -> float:
    started = time.process_time()
    await run
    used = (time.process_time() - started) / count * 1e6
    print(f"{label}: {used:.0f} µs CPU each ({count})")
    return used


async def _run(port: int, count: int) -> None:
    settings = Settings(
        mongo_url=os.environ.get("HUB_MONGO_URL", "mongodb://localhost:27017"),
        mongo_db=f"bench_push_{uuid.uuid4().hex[:8]}",
        vapid_private_key=new_vapid_key(),
        outbound_allowed_hosts=["127.0.0.1"],
        outbound_allow_plaintext=True,
        push_interval=0.0,
        push_grace=0.0,
    )
    client = create_client(settings.mongo_url)
    try:
        await _measure(settings, client[settings.mongo_db], port, count)
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()


def main(count: int) -> None:
    service = subprocess.Popen([sys.executable, "-c", _SERVICE], stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        asyncio.run(_run(int(service.stdout.readline()), count))
    finally:
        service.terminate()
        service.wait(5)


async def _measure(settings: Settings, db: AsyncDatabase[Document], port: int, count: int) -> None:
    store = PushStore(db)
    await store.ensure_indexes()
    users = [f"u{n}" for n in range(count)]
    key = ec.generate_private_key(ec.SECP256R1())
    p256dh, auth = public_point(key.public_key()), os.urandom(16)
    away = format_utc(utc_now())
    for user in users:
        await store.subscribe(user, f"http://127.0.0.1:{port}/push/{user}", p256dh, auth)
        await db[PRESENCE].insert_one(
            {"_id": user, "online": False, "devices": [], "lastSeen": away, "version": 1}
        )
    vapid = Vapid.from_settings(settings)
    assert vapid is not None
    async with httpx.AsyncClient() as http:
        sender = PushSender(settings, http, vapid, store)
        notifier = Notifier(settings, store, sender)

        async def notify(first: int) -> None:
            for user in users:
                await notifier.handle(_event(user, first))
            await notifier.idle()

        await notify(0)  # warm-up: connections, the VAPID token, caches
        await _cpu_per("notification sent (decision + push)", count, notify(1))

        async def decide(first: int) -> None:
            for n in range(count):
                await notifier.handle(_event(f"nobody{n}", first))

        await _cpu_per("decision, user without subscription, first seen", count, decide(1))
        await _cpu_per("decision, user without subscription, seen lately", count, decide(2))

        async def parse() -> None:
            raw = _event("u0", 0).to_json()
            for _ in range(count):
                parse_user_event(raw)

        await _cpu_per("parsing the user event", count, parse())

        async def crypto() -> None:
            for _ in range(count):
                encrypt(b"x" * 200, p256dh, auth)

        await _cpu_per("RFC 8291 encryption alone", count, crypto())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    main(parser.parse_args().count)
