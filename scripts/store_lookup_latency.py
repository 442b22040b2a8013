"""Latency of the inbox's conversation lookups on a MongoDB-compatible server (docs/operations.md,
FerretDB versus MongoDB): a throwaway database of `--conversations` conversations with the
hub's indexes, then `GET /api/unread`'s query by `userId` and a find by `_id`, each timed
`--rounds` times. Loopback servers only; the database is dropped at the end.

    .venv/bin/python scripts/store_lookup_latency.py --url mongodb://127.0.0.1:27017
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from pymongo import AsyncMongoClient
from pymongo.uri_parser import parse_uri

from hubcore.mongo import CONVERSATIONS, ensure_indexes

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


async def main(url: str, conversations: int, users: int, rounds: int) -> None:
    hosts = {host for host, _ in parse_uri(url)["nodelist"]}
    if not hosts <= LOOPBACK:
        raise SystemExit(f"only loopback servers are measured, not {sorted(hosts)}")
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, tz_aware=True)
    db = client[f"latency_{uuid.uuid4().hex[:8]}"]
    try:
        await ensure_indexes(db)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        docs = [
            {
                "_id": f"c{i}",
                "userId": f"u{i % users}",
                "platform": "telegram",
                "accountId": f"a{i % users}",
                "title": f"conversation {i}",
                "lastMessage": {"text": "hello " * 20, "sentAt": start + timedelta(seconds=i)},
                "updatedAt": start + timedelta(seconds=i),
                "unreadCount": i % 4,
                "version": 1,
            }
            for i in range(conversations)
        ]
        for at in range(0, len(docs), 500):
            await db[CONVERSATIONS].insert_many(docs[at : at + 500])

        def by_user(n: int) -> dict[str, object]:
            return {"userId": f"u{n % users}", "unreadCount": {"$gt": 0}}

        def by_id(n: int) -> dict[str, object]:
            return {"_id": f"c{n % conversations}"}

        queries = {"find by userId (GET /api/unread)": by_user, "find by _id": by_id}
        for name, query in queries.items():
            took = []
            for n in range(rounds):
                began = time.perf_counter()
                await db[CONVERSATIONS].find(query(n * 7919)).to_list()
                took.append((time.perf_counter() - began) * 1000)
            took.sort()
            print(
                f"{name}: median {statistics.median(took):.2f} ms, "
                f"p90 {took[int(len(took) * 0.9)]:.2f} ms ({rounds} queries, "
                f"{conversations} conversations)"
            )
    finally:
        await client.drop_database(db.name)
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mongodb://127.0.0.1:27017")
    parser.add_argument("--conversations", type=int, default=3000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.conversations, args.users, args.rounds))
