"""The blob stores on real servers: GridFS on the store the hub runs (FerretDB in
development), and the S3 store against an S3-compatible stand-in that checks signatures."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from hub.demo import media_samples
from hub.demo.serving import serving_app
from hubcore.blobs import BlobNotFound, BlobStore, BlobTooLarge, GridFSBlobStore, ImageTooLarge
from hubcore.mongo import Document
from hubcore.s3 import S3BlobStore
from tests.fake_s3 import FakeS3

pytestmark = pytest.mark.integration


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _all(store: BlobStore, sha: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in store.read(sha, start, end)])


@pytest.fixture
def gridfs(mongo_db: AsyncDatabase[Document]) -> GridFSBlobStore:
    return GridFSBlobStore(mongo_db, max_image_pixels=50_000_000)


@pytest.fixture
async def s3() -> AsyncIterator[tuple[S3BlobStore, FakeS3]]:
    fake = FakeS3("AKIDTEST", "secret-test-key", "media")
    async with serving_app(fake.app, "fake S3") as url:
        store = S3BlobStore(
            endpoint=url,
            bucket="media",
            region="eu-west-1",
            access_key="AKIDTEST",
            secret_key="secret-test-key",
            max_image_pixels=50_000_000,
        )
        yield store, fake
        await store.aclose()


async def test_gridfs_put_twice_stores_one_copy(
    gridfs: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    data = os.urandom(600_000)  # three GridFS chunks
    first = await gridfs.put(data)
    again = await gridfs.put(data)
    streamed = await gridfs.put_stream(_pieces(data, 7_000), max_bytes=1_000_000)
    assert first == again == streamed
    assert (first.size, first.mime_type) == (600_000, "application/octet-stream")
    assert await mongo_db["blobs.files"].count_documents({}) == 1
    assert await mongo_db["blobs.chunks"].count_documents({"files_id": first.sha256}) == 3
    assert await _all(gridfs, first.sha256) == data


async def test_gridfs_files_are_standard_gridfs(
    gridfs: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    """Any GridFS reader (here PyMongo's own bucket) reads what the store wrote."""
    data = os.urandom(400_000)
    blob = await gridfs.put(data)
    bucket = AsyncGridFSBucket(mongo_db, bucket_name="blobs")
    stream = await bucket.open_download_stream(blob.sha256)
    assert await stream.read() == data
    assert stream.metadata is not None
    assert stream.metadata["mimeType"] == "application/octet-stream"
    assert isinstance(stream.metadata["touchedAt"], datetime)  # for the sweep


async def test_gridfs_concurrent_puts_of_the_same_bytes(
    gridfs: GridFSBlobStore, mongo_db: AsyncDatabase[Document]
) -> None:
    data = os.urandom(300_000)
    blobs = await asyncio.gather(*(gridfs.put(data) for _ in range(4)))
    assert len(set(blobs)) == 1
    assert await mongo_db["blobs.chunks"].count_documents({}) == 2
    assert await _all(gridfs, blobs[0].sha256) == data


async def test_gridfs_ranges_across_chunks(gridfs: GridFSBlobStore) -> None:
    data = os.urandom(700_000)
    blob = await gridfs.put(data)
    assert await _all(gridfs, blob.sha256, 260_000, 530_001) == data[260_000:530_001]
    assert await _all(gridfs, blob.sha256, 699_990) == data[699_990:]
    assert await _all(gridfs, blob.sha256, 5, 5) == b""


async def test_gridfs_sniffs_and_refuses(gridfs: GridFSBlobStore) -> None:
    photo = await gridfs.put(media_samples.png(3, 2))
    assert (photo.mime_type, photo.width, photo.height) == ("image/png", 3, 2)
    assert await gridfs.stat(photo.sha256) == photo
    with pytest.raises(BlobTooLarge):
        await gridfs.put_stream(_pieces(b"x" * 5000, 1000), max_bytes=4096)
    with pytest.raises(ImageTooLarge):
        await gridfs.put(media_samples.png_header(70_000, 70_000))
    assert await gridfs.stat("0" * 64) is None
    with pytest.raises(BlobNotFound):
        await _all(gridfs, "0" * 64)


async def test_s3_round_trip_signed(s3: tuple[S3BlobStore, FakeS3]) -> None:
    store, fake = s3
    data = media_samples.png(5, 4) + os.urandom(400_000)
    blob = await store.put(data)
    assert (blob.mime_type, blob.width, blob.height, blob.size) == ("image/png", 5, 4, len(data))
    assert await store.put_stream(_pieces(data, 9_000), max_bytes=1_000_000) == blob
    assert fake.puts == 1
    assert await store.stat(blob.sha256) == blob
    assert await _all(store, blob.sha256) == data
    assert await _all(store, blob.sha256, 100, 300_000) == data[100:300_000]
    assert await store.stat("1" * 64) is None
    with pytest.raises(BlobNotFound):
        await _all(store, "1" * 64)


async def test_s3_wrong_secret_is_refused(s3: tuple[S3BlobStore, FakeS3]) -> None:
    _, fake = s3
    fake.secret_key = "another"
    store, _ = s3
    with pytest.raises(Exception, match="HTTP 403"):
        await store.put(b"signed with the wrong key")
