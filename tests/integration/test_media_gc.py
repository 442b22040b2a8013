"""The media sweep (hubcore/media_gc.py) on GridFS in the store the hub runs: unnamed blobs
and abandoned uploads go, named and recently used ones stay, a put racing the sweep
for the same bytes keeps a whole blob."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.attachments import ATTACHMENTS
from hubcore.blobs import GridFSBlobStore, StoredBlob
from hubcore.media_gc import sweep
from hubcore.mongo import Document

pytestmark = pytest.mark.integration

LATER = datetime.now(UTC) + timedelta(hours=2)  # the sweep's clock: every blob is old
GRACE = 3600.0
SWEPT_AT = LATER + timedelta(minutes=30)  # cutoff: half an hour before LATER


@pytest.fixture
def store(mongo_db: AsyncDatabase[Document]) -> GridFSBlobStore:
    return GridFSBlobStore(mongo_db, max_image_pixels=50_000_000)


async def _bytes(store: GridFSBlobStore, sha: str) -> bytes:
    return b"".join([piece async for piece in store.read(sha)])


async def _attachment(
    db: AsyncDatabase[Document], att_id: str, blob: StoredBlob, *, message_id: str | None
) -> None:
    await db[ATTACHMENTS].insert_one(
        {
            "_id": att_id,
            "userId": "u1",
            "messageId": message_id,
            "status": "ready",
            "sha256": blob.sha256,
            "thumbnailSha256": None,
            "createdAt": datetime.now(UTC),
        }
    )


async def test_sweep_deletes_only_unnamed_old_blobs(
    store: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    named = await store.put(os.urandom(300_000))  # two chunks
    thumb = await store.put(os.urandom(5_000))
    unnamed = await store.put(os.urandom(600_000))  # three chunks
    upload = await store.put(os.urandom(1_000))
    recent = await store.put(os.urandom(2_000))
    await _attachment(mongo_db, "att_named", named, message_id="m1")
    await mongo_db[ATTACHMENTS].update_one(
        {"_id": "att_named"}, {"$set": {"thumbnailSha256": thumb.sha256}}
    )
    await _attachment(mongo_db, "att_upload", upload, message_id=None)  # never sent
    # Used again after the sweep's cutoff.
    await mongo_db["blobs.files"].update_one(
        {"_id": recent.sha256}, {"$set": {"metadata.touchedAt": LATER}}
    )

    done = await sweep(mongo_db, store, batch=2, grace=GRACE, now=SWEPT_AT)
    # A batch of two blobs: the walk goes on where it stopped.
    assert done.blobs_looked_at == 2 and done.after is not None
    assert done.uploads_dropped == 1
    total = done.blobs_deleted
    while done.after is not None:
        done = await sweep(mongo_db, store, batch=2, grace=GRACE, after=done.after, now=SWEPT_AT)
        total += done.blobs_deleted
    assert total == 2
    assert await store.stat(unnamed.sha256) is None
    assert await store.stat(upload.sha256) is None
    assert await mongo_db[ATTACHMENTS].find_one({"_id": "att_upload"}) is None
    left = {doc["_id"] async for doc in mongo_db["blobs.chunks"].find({}, {"_id": 1})}
    assert not any(key.startswith((unnamed.sha256, upload.sha256)) for key in left)
    for kept in (named, thumb, recent):
        assert await store.stat(kept.sha256) is not None
        assert len(await _bytes(store, kept.sha256)) == kept.size
    # Idempotent: a second walk finds nothing more.
    again = await sweep(mongo_db, store, batch=100, grace=GRACE, now=SWEPT_AT)
    assert (again.blobs_deleted, again.uploads_dropped, again.blobs_looked_at) == (0, 0, 3)


async def test_a_sent_upload_and_a_fresh_one_are_kept(
    store: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    blob = await store.put(os.urandom(1_000))
    await _attachment(mongo_db, "att_fresh", blob, message_id=None)
    # Within the grace the upload may still be sent, and its blob is named.
    done = await sweep(mongo_db, store, batch=10, grace=GRACE)
    assert (done.uploads_dropped, done.blobs_deleted) == (0, 0)
    assert await store.stat(blob.sha256) is not None


async def test_a_put_that_finds_the_blob_first_keeps_it(
    store: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    data = os.urandom(400_000)
    blob = await store.put(data)
    [listed] = await store.listed("", 10)  # the sweep saw it unnamed and old...
    again = await store.put(data)  # ...then a fetch of the same bytes found it
    assert again.sha256 == blob.sha256
    assert not await store.delete_unused(listed)
    assert await _bytes(store, blob.sha256) == data


async def test_a_put_during_the_sweep_writes_the_blob_whole(
    store: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    data = os.urandom(600_000)  # three chunks
    blob = await store.put(data)
    files, chunks = mongo_db["blobs.files"], mongo_db["blobs.chunks"]
    # A sweep midway: its mark set, the files document deleted, the chunks not yet.
    await mongo_db["blobs.sweeps"].insert_one({"_id": blob.sha256, "at": datetime.now(UTC)})
    await files.delete_one({"_id": blob.sha256})
    put = asyncio.create_task(store.put(data))
    await asyncio.sleep(0.3)  # the put finds the blob gone and waits for the mark
    assert not put.done()
    # The sweep ends: the chunks go, then the mark.
    await chunks.delete_many({"_id": {"$in": [f"{blob.sha256}:{n}" for n in range(3)]}})
    await mongo_db["blobs.sweeps"].delete_one({"_id": blob.sha256})
    stored = await asyncio.wait_for(put, 30)
    assert stored.sha256 == blob.sha256
    assert await _bytes(store, blob.sha256) == data


async def test_a_stale_sweep_mark_holds_no_put(
    store: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    data = os.urandom(1_000)
    sha = (await store.put(data)).sha256
    await mongo_db["blobs.files"].delete_one({"_id": sha})
    old = datetime.now(UTC) - timedelta(minutes=5)  # a sweeper killed midway
    await mongo_db["blobs.sweeps"].insert_one({"_id": sha, "at": old})
    stored = await asyncio.wait_for(store.put(data), 5)
    assert await _bytes(store, stored.sha256) == data
