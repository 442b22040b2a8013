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

from bench.context import Context
from bench.kit import Receiving, receiving, user_event
from bench.report import Result
from connectors.push.notifier import Notifier
from connectors.push.sender import PushSender
from hubcore.push_store import PRESENCE, PushStore
from hubcore.settings import Settings
from hubcore.webpush import Vapid, encrypt, new_vapid_key, public_point
from schemas import NewMessage, parse_user_event
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
    text = "Are we still on for lunch tomorrow at noon? " * 2
    return user_event(user, n, conversation=f"conv_{user}", text=text, platform="slack")


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
    """µs of this process's CPU per message on each path, on a stage of `base`'s store
    (dropped after)."""
    async with (
        receiving(
            base,
            "n1",
            count,
            vapid_private_key=SecretStr(new_vapid_key()),
            push_interval=0.0,
            push_grace=0.0,
        ) as kit,
        _push_service() as port,
    ):
        return await _measure(kit, port, count)


async def _measure(kit: Receiving, port: int, count: int) -> dict[str, float]:
    results: dict[str, float] = {}
    settings, db, users = kit.settings, kit.db, kit.users
    store = PushStore(db)
    await store.ensure_indexes()
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
        raw = _event(users[0], 0).to_json()
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
    figures = await measure(ctx.base, count)
    return {**figures, "messages": count}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    count = parser.parse_args().count
    base = Settings(
        _env_file=None,
        kafka_bootstrap=os.environ.get("HUB_KAFKA_BOOTSTRAP", "localhost:9092"),
        mongo_url=os.environ.get("HUB_MONGO_URL", "mongodb://localhost:27017"),
    )
    for name, value in asyncio.run(measure(base, count)).items():
        print(f"{name}: {value} µs CPU ({count} messages)")
