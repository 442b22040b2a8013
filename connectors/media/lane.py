"""The media fetcher's turns at the store: its store work queues behind the text path's.

The text path (the streams worker's inserts, the projections) and the fetcher share one
MongoDB; on FerretDB (SQLite) the store's CPU is what both wait for. With every fetch
free to write at once (`HUB_MEDIA_FETCH_CONCURRENCY`, 8), bursts of the fetcher's
operations and GridFS chunks stood in front of the worker's inserts (P3m: the worker's
store phase p50 10 -> 68 ms, docs/media.md "Cost"). Downloads still overlap; what touches
the store takes a turn of a small lane (`HUB_MEDIA_STORE_CONCURRENCY`, 4), so at most that
many of the fetcher's operations are ever in the store's queue ahead of a text write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hubcore.blobs import BlobStore, Spooled, StoredBlob, spool_and_put


class LanedBlobStore:
    """A `BlobStore` whose store work takes a turn of `lane`; reading a download into its
    spool (hashing, the size cap) does not, so a slow platform holds no turn."""

    def __init__(self, inner: BlobStore, lane: asyncio.Semaphore) -> None:
        self.inner = inner
        self.lane = lane

    async def put(self, data: bytes) -> StoredBlob:
        async with self.lane:
            return await self.inner.put(data)

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        return await spool_and_put(self.put_spooled, chunks, max_bytes=max_bytes)

    async def put_spooled(self, spooled: Spooled) -> StoredBlob:
        async with self.lane:
            return await self.inner.put_spooled(spooled)

    async def stat(self, sha256: str) -> StoredBlob | None:
        async with self.lane:
            return await self.inner.stat(sha256)

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self.inner.read(sha256, start, end)

    async def aclose(self) -> None:
        await self.inner.aclose()
