"""The fetcher's store lane (connectors/media/lane.py): downloads overlap, store work takes
turns."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from connectors.media.lane import LanedBlobStore
from hubcore.blobs import Spooled, StoredBlob


class _Inner:
    """Counts how many store calls run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def put_spooled(self, spooled: Spooled) -> StoredBlob:
        self.running += 1
        self.most = max(self.most, self.running)
        self.entered.set()
        await self.release.wait()
        self.running -= 1
        return StoredBlob(spooled.sha256, spooled.size, "application/octet-stream")


async def _stream(data: bytes, started: asyncio.Event) -> AsyncIterator[bytes]:
    started.set()
    yield data


async def test_downloads_overlap_and_store_work_takes_turns() -> None:
    inner = _Inner()
    laned = LanedBlobStore(inner, asyncio.Semaphore(1))  # type: ignore[arg-type]
    starts = [asyncio.Event() for _ in range(3)]
    puts = [
        asyncio.create_task(laned.put_stream(_stream(bytes([i]) * 10, starts[i]), max_bytes=100))
        for i in range(3)
    ]
    # Every download is read while the first one's store work holds the lane.
    for started in starts:
        await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(inner.entered.wait(), 5)
    await asyncio.sleep(0.05)  # the others, spooled, are at the lane: still one inside
    assert inner.running == 1
    inner.release.set()
    blobs = await asyncio.wait_for(asyncio.gather(*puts), 5)
    assert inner.most == 1
    assert [b.sha256 for b in blobs] == [
        hashlib.sha256(bytes([i]) * 10).hexdigest() for i in range(3)
    ]
