"""N1: CPU of the Web Push notifier (docs/push.md) per user event and per notification.

The notifier's own path, in this process: `Notifier.handle` of a `new_message` for a user
away with one subscription (four store reads on FerretDB, the payload built, encrypted
per RFC 8291, the VAPID token, the HTTP POST through httpx) against a push service in a
child process that answers `201 Created` at once (its CPU is not counted); then the same
for users with no subscription, the common case: first seen (one store read) and again
(the notifier caches a user's subscriptions for a few seconds); then parsing a user
event and the encryption alone. CPU is this process's (`time.process_time`) divided by
the messages. Not counted: consuming the records from Kafka (the gateway's pump pays the
same per event). `python -m bench.push_cost` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from bench.context import Context
from bench.report import Result
from bench.stage import stage
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
import asyncio
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
    data = NewMessageData(message=message)
    return NewMessage(id=f"evt_{user}_{n}", user_id=user, occurred_at=now, data=data)


async def _cpu_per(
    results: dict[str, float], key: str, count: int, run: Coroutine[Any, Any, None]
) -> None:
    started = time.process_time()
    await run
    results[key] = round((time.process_time() - started) / count * 1e6, 1)


@contextlib.asynccontextmanager
async def _push_service() -> AsyncIterator[int]:
    """The child process's push service; its port."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SERVICE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        yield int(await child.stdout.readline())
    finally:
        child.terminate()
        await child.wait()


async def measure(base: Settings, count: int) -> dict[str, float]:
    """µs of this process's CPU per message on each path, on `base`'s store and database
    (dropped after)."""
    settings = base.model_copy(
        update={
            "vapid_private_key": SecretStr(new_vapid_key()),
            "outbound_allowed_hosts": ["127.0.0.1"],
            "outbound_allow_plaintext": True,
            "push_interval": 0.0,
            "push_grace": 0.0,
        }
    )
    client = create_client(settings.mongo_url)
    try:
        async with _push_service() as port:
            return await _measure(settings, client[settings.mongo_db], port, count)
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()


async def _measure(
    settings: Settings, db: AsyncDatabase[Document], port: int, count: int
) -> dict[str, float]:
    results: dict[str, float] = {}
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
        notifier = Notifier(settings, store, PushSender(settings, http, vapid, store))

        async def notify(first: int) -> None:
            for user in users:
                await notifier.handle(_event(user, first))
            await notifier.idle()

        await notify(0)  # warm-up: connections, the VAPID token, caches
        await _cpu_per(results, "notification_us", count, notify(1))

        async def decide(first: int) -> None:
            for n in range(count):
                await notifier.handle(_event(f"nobody{n}", first))

        await _cpu_per(results, "event_first_us", count, decide(1))
        await _cpu_per(results, "event_us", count, decide(2))

    async def parse() -> None:
        raw = _event("u0", 0).to_json()
        for _ in range(count):
            parse_user_event(raw)

    await _cpu_per(results, "parse_us", count, parse())

    async def crypto() -> None:
        for _ in range(count):
            encrypt(b"x" * 200, p256dh, auth)

    await _cpu_per(results, "encryption_us", count, crypto())
    return results


async def run(ctx: Context) -> Result:
    """N1 of `hub bench`: `event_us` (a user event for a user without a subscription,
    seen lately), `event_first_us`, `notification_us`, `parse_us`, `encryption_us`."""
    count = ctx.size(500, 100)
    async with stage(ctx.base, "n1") as st:
        figures = await measure(st.settings, count)
    return {**figures, "messages": count}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    count = parser.parse_args().count
    base = Settings(
        _env_file=None,
        mongo_url=os.environ.get("HUB_MONGO_URL", "mongodb://localhost:27017"),
        mongo_db=f"bench_push_{os.getpid()}",
    )
    for name, value in asyncio.run(measure(base, count)).items():
        print(f"{name}: {value} µs CPU ({count} messages)")
