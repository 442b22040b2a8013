"""Content-addressed attachment bytes: one copy per distinct file, named by its SHA-256.

Two stores behind one interface (`BlobStore`): GridFS in the hub's MongoDB (the default)
and an S3-compatible bucket (`HUB_BLOB_STORE=s3`, see hubcore/s3.py). The type of a blob
is sniffed from its bytes (`sniff_mime`), never taken from a platform or an uploader, and
an image whose header declares more than `HUB_MEDIA_MAX_IMAGE_PIXELS` pixels is refused
before anything decodes it. docs/media.md describes the layout.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, Protocol

from pymongo.errors import BulkWriteError, DuplicateKeyError

from hubcore.mongo import Document

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from hubcore.settings import Settings

# How much of a file's start `sniff_mime` and the image header checks look at: enough for
# a JPEG's EXIF block (at most 64 KiB) before its frame header.
HEAD_BYTES = 128 * 1024
# GridFS's default chunk size (255 KiB): chunks stay well under a document's 16 MiB cap.
CHUNK_BYTES = 255 * 1024
# Chunks written per insert: about 1 MiB in memory at a time.
CHUNKS_PER_WRITE = 4
# put_stream spools to disk past this, so a large upload is never all in memory.
SPOOL_IN_MEMORY = 1024 * 1024
# Seconds a sweep's mark on a blob holds up a put of the same bytes (a sweep takes
# milliseconds per blob; an older mark is a sweeper that died midway).
SWEEP_STALE = 60.0


def aware_utc(at: datetime) -> datetime:
    # PyMongo returns naive UTC datetimes unless the client is tz-aware.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StoredBlob:
    """A stored file: its hash (the key), length and the type sniffed from its bytes."""

    sha256: str
    size: int
    mime_type: str
    # From the image header where the type has one (never decoded to find out).
    width: int | None = None
    height: int | None = None


class BlobRejected(Exception):
    """The bytes are not stored; `reason` is the attachment's `failed` reason."""

    reason = "unsupported"


class BlobTooLarge(BlobRejected):
    """More bytes than the cap allows (or an image declaring too many pixels)."""

    reason = "too_large"


class ImageTooLarge(BlobTooLarge):
    """An image whose header declares more pixels than HUB_MEDIA_MAX_IMAGE_PIXELS: decoding
    it could take gigabytes of memory (a decompression bomb)."""


class BlobNotFound(LookupError):
    """No blob with that hash."""


class BlobStore(Protocol):
    """Where attachment bytes live. Every method is safe to call concurrently, also with
    the same bytes from two processes: a blob is complete before `stat` sees it."""

    async def put(self, data: bytes) -> StoredBlob:
        """Store `data` (idempotent: the same bytes again store nothing new)."""
        ...

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        """Store a stream, raising `BlobTooLarge` as soon as it passes `max_bytes`."""
        ...

    async def put_spooled(self, spooled: Spooled) -> StoredBlob:
        """Store bytes already read by `Spooled.read` (the store's part of `put_stream`)."""
        ...

    async def stat(self, sha256: str) -> StoredBlob | None:
        """The stored blob with that hash, or None."""
        ...

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes `start` up to (not including) `end` (None: the end), in pieces; raises
        `BlobNotFound` when there is no such blob. Use as `async for piece in store.read(h)`."""
        ...

    async def aclose(self) -> None:
        """Release connections the store opened itself (the GridFS store opens none)."""
        ...


def blob_store(settings: Settings, db: AsyncDatabase[Document]) -> BlobStore:
    """The store `HUB_BLOB_STORE` names: GridFS (default; in `HUB_GRIDFS_DATABASE`, beside
    `db`) or the S3 bucket."""
    if settings.blob_store == "s3":
        from hubcore.s3 import S3BlobStore

        return S3BlobStore.from_settings(settings)
    blobs = db.client[settings.gridfs_database or f"{db.name}_blobs"]
    return GridFSBlobStore(
        blobs, bucket=settings.gridfs_bucket, max_image_pixels=settings.media_max_image_pixels
    )


# --- sniffing ---------------------------------------------------------------------------


def _ftyp(head: bytes) -> str | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "audio/mp4"
    if brand == b"qt  ":
        return "video/quicktime"
    if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
        return "image/heic"
    if brand in (b"avif", b"avis"):
        return "image/avif"
    if brand.startswith(b"3gp"):
        return "video/3gpp"
    return "video/mp4"


def _markup(head: bytes) -> str | None:
    """SVG and HTML by their first tag: both are served as downloads only."""
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<?xml") or text.startswith(b"<!--"):
        return "image/svg+xml" if b"<svg" in head[:4096].lower() else "application/xml"
    if text.startswith(b"<svg"):
        return "image/svg+xml"
    for tag in (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe"):
        if text.startswith(tag):
            return "text/html"
    return None


_ZIP_KINDS = (
    (b"word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (b"ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
)


def sniff_mime(head: bytes) -> str:
    """The type of a file from its first bytes (HEAD_BYTES suffice), not from anyone's word
    for it; `application/octet-stream` when nothing matches."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(
            head[8:12], "application/octet-stream"
        )
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "video/ogg" if b"theora" in head[:256] else "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if (kind := _ftyp(head)) is not None:
        return kind
    if head.startswith(b"PK\x03\x04"):
        for marker, kind in _ZIP_KINDS:
            if marker in head:
                return kind
        return "application/zip"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"BM") and len(head) >= 26:
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if (kind := _markup(head)) is not None:
        return kind
    if head and b"\x00" not in head[:4096]:
        try:
            # A multi-byte character cut by the end of the head is still text.
            head[:4096].decode("utf-8", errors="strict")
            return "text/plain"
        except UnicodeDecodeError as exc:
            if exc.start >= min(len(head), 4096) - 3:
                return "text/plain"
    return "application/octet-stream"


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def image_size(head: bytes, mime_type: str) -> tuple[int, int] | None:
    """(width, height) as the image's header declares them, without decoding any pixels;
    None when the type has no header the hub reads or the head is too short."""
    try:
        if mime_type == "image/png" and len(head) >= 24 and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return width, height
        if mime_type == "image/gif" and len(head) >= 10:
            width, height = struct.unpack("<HH", head[6:10])
            return width, height
        if mime_type == "image/jpeg":
            return _jpeg_size(head)
        if mime_type == "image/webp":
            return _webp_size(head)
        if mime_type == "image/bmp":
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
    except struct.error:
        return None
    return None


def inspect_head(head: bytes, *, max_image_pixels: int) -> tuple[str, int | None, int | None]:
    """(mime type, width, height) of a file from its head; raises `ImageTooLarge` for an
    image that declares more than `max_image_pixels` pixels."""
    mime_type = sniff_mime(head)
    size = image_size(head, mime_type) if mime_type.startswith("image/") else None
    if size is None:
        return mime_type, None, None
    width, height = size
    if width * height > max_image_pixels:
        raise ImageTooLarge(f"{width}x{height} pixels is more than {max_image_pixels}")
    return mime_type, width, height


class Spooled:
    """A stream read to its end while hashing it: the bytes spooled (to disk past 1 MiB),
    the head kept for sniffing; `BlobTooLarge` past `max_bytes`."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""

    @classmethod
    async def read(cls, chunks: AsyncIterator[bytes], *, max_bytes: int) -> Spooled:
        spooled = cls()
        try:
            async for piece in chunks:
                spooled.size += len(piece)
                if spooled.size > max_bytes:
                    raise BlobTooLarge(f"more than {max_bytes} bytes")
                if len(spooled.head) < HEAD_BYTES:
                    spooled.head += piece[: HEAD_BYTES - len(spooled.head)]
                spooled.digest.update(piece)
                spooled.file.write(piece)
        except BaseException:
            spooled.close()
            raise
        spooled.file.seek(0)
        return spooled

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def pieces(self, size: int) -> Iterable[bytes]:
        self.file.seek(0)
        while piece := self.file.read(size):
            yield piece

    def close(self) -> None:
        self.file.close()


async def spool_and_put(
    put_spooled: Callable[[Spooled], Awaitable[StoredBlob]],
    chunks: AsyncIterator[bytes],
    *,
    max_bytes: int,
) -> StoredBlob:
    """`put_stream` of any store: the stream read (hashed, capped) first, then stored."""
    spooled = await Spooled.read(chunks, max_bytes=max_bytes)
    try:
        return await put_spooled(spooled)
    finally:
        spooled.close()


class ContentAddressedStore:
    """`put` and `put_stream` over a subclass's `stat` and `_write`: hash, return the blob
    already stored, else check the head and write the pieces."""

    _max_image_pixels: int

    async def stat(self, sha256: str) -> StoredBlob | None:
        raise NotImplementedError

    async def _write(self, blob: StoredBlob, pieces: Iterable[bytes]) -> None:
        raise NotImplementedError

    async def _existing(self, sha256: str) -> StoredBlob | None:
        """The blob a put finds already stored (the GridFS store also marks it used)."""
        return await self.stat(sha256)

    async def put(self, data: bytes) -> StoredBlob:
        sha = hashlib.sha256(data).hexdigest()
        if (known := await self._existing(sha)) is not None:
            return known
        mime_type, width, height = inspect_head(
            data[:HEAD_BYTES], max_image_pixels=self._max_image_pixels
        )
        pieces = (data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES))
        blob = StoredBlob(sha, len(data), mime_type, width, height)
        await self._write(blob, pieces)
        return blob

    async def put_stream(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredBlob:
        return await spool_and_put(self.put_spooled, chunks, max_bytes=max_bytes)

    async def put_spooled(self, spooled: Spooled) -> StoredBlob:
        """Store bytes already read and hashed (`Spooled.read`): the store's part of
        `put_stream`, for a caller that reads the stream and writes at different times."""
        sha = spooled.sha256
        if (known := await self._existing(sha)) is not None:
            return known
        mime_type, width, height = inspect_head(
            spooled.head, max_image_pixels=self._max_image_pixels
        )
        blob = StoredBlob(sha, spooled.size, mime_type, width, height)
        await self._write(blob, spooled.pieces(CHUNK_BYTES))
        return blob


# --- GridFS -----------------------------------------------------------------------------


class GridFSBlobStore(ContentAddressedStore):
    """Blobs in a GridFS bucket of the hub's database, the file's `_id` its SHA-256.

    The layout is GridFS's (`<bucket>.chunks`, then `<bucket>.files`), so any GridFS
    reader, `AsyncGridFSBucket` included, reads these files. The hub reads and writes it by
    hand, though:
    - the bucket aborts a failed upload by deleting every chunk of its file id, so the
      loser of two concurrent uploads of the same bytes would delete the winner's chunks.
      Here chunks are deterministic (same bytes, same chunk size), a duplicate chunk is
      skipped, and the files document, written last, is what makes the blob visible;
    - a chunk's `_id` is `<sha256>:<n>` (GridFS leaves its type open) and reads ask for
      chunks by `_id`: FerretDB 1.24 answers `{"files_id", "n"}` (the bucket's query) by
      scanning every chunk of every file, about 1 s per 64 KiB range of a 5 MB file with
      three files stored, against 70 ms by `_id` (docs/media.md).
    """

    def __init__(
        self, db: AsyncDatabase[Document], *, bucket: str = "blobs", max_image_pixels: int
    ) -> None:
        self._db = db
        self._files: AsyncCollection[Document] = db[f"{bucket}.files"]
        self._chunks: AsyncCollection[Document] = db[f"{bucket}.chunks"]
        # A blob being swept (hubcore/media_gc.py) has a document here meanwhile.
        self._sweeps: AsyncCollection[Document] = db[f"{bucket}.sweeps"]
        self._max_image_pixels = max_image_pixels
        self._indexed = False

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        # The indexes GridFS drivers create; the unique one is what makes a duplicate chunk
        # from a concurrent upload of the same bytes a no-op.
        await self._chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
        await self._files.create_index([("filename", 1), ("uploadDate", 1)])
        self._indexed = True

    @staticmethod
    def _blob(doc: Document) -> StoredBlob:
        meta = doc.get("metadata") or {}
        return StoredBlob(
            sha256=doc["_id"],
            size=int(doc["length"]),
            mime_type=meta.get("mimeType", "application/octet-stream"),
            width=meta.get("width"),
            height=meta.get("height"),
        )

    async def stat(self, sha256: str) -> StoredBlob | None:
        doc = await self._files.find_one({"_id": sha256})
        return None if doc is None else self._blob(doc)

    async def _existing(self, sha256: str) -> StoredBlob | None:
        # Found and marked used in one step: the sweep deletes a files document only if
        # its `touchedAt` is still the old one it saw (hubcore/media_gc.py).
        doc = await self._files.find_one_and_update(
            {"_id": sha256}, {"$set": {"metadata.touchedAt": datetime.now(UTC)}}
        )
        return None if doc is None else self._blob(doc)

    async def _wait_for_sweep(self, sha256: str) -> None:
        """A blob not found may be one a sweep is deleting (its files document gone, its
        chunks going): write it only after the sweep, or the sweep would delete the
        chunks this write skips as duplicates. A sweep's mark older than
        `SWEEP_STALE` (a sweeper killed midway) no longer holds anyone up."""
        for _ in range(int(SWEEP_STALE / 0.05)):
            mark = await self._sweeps.find_one({"_id": sha256})
            if mark is None or datetime.now(UTC) - aware_utc(mark["at"]) > timedelta(
                seconds=SWEEP_STALE
            ):
                return
            await asyncio.sleep(0.05)

    async def _write(self, blob: StoredBlob, pieces: Iterable[bytes]) -> None:
        await self._ensure_indexes()
        await self._wait_for_sweep(blob.sha256)
        batch: list[Document] = []
        for n, piece in enumerate(pieces):
            batch.append(
                {"_id": f"{blob.sha256}:{n}", "files_id": blob.sha256, "n": n, "data": piece}
            )
            if len(batch) == CHUNKS_PER_WRITE:
                await self._insert_chunks(batch)
                batch = []
        if batch:
            await self._insert_chunks(batch)
        now = datetime.now(UTC)
        meta: dict[str, Any] = {"mimeType": blob.mime_type, "touchedAt": now}
        if blob.width is not None:
            meta |= {"width": blob.width, "height": blob.height}
        try:
            await self._files.insert_one(
                {
                    "_id": blob.sha256,
                    "length": blob.size,
                    "chunkSize": CHUNK_BYTES,
                    "uploadDate": now,
                    "filename": blob.sha256,
                    "metadata": meta,
                }
            )
        except DuplicateKeyError:
            pass  # stored by a concurrent put of the same bytes

    async def _insert_chunks(self, batch: list[Document]) -> None:
        try:
            await self._chunks.insert_many(batch, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != 11000 for error in errors):
                raise

    async def listed(self, after: str, limit: int) -> list[Document]:
        """Up to `limit` files documents with `_id` past `after`, in `_id` order (the
        sweep's walk: by `_id`, which every store answers without a scan)."""
        cursor = self._files.find(
            {"_id": {"$gt": after}}, {"length": 1, "chunkSize": 1, "uploadDate": 1, "metadata": 1}
        )
        return await cursor.sort("_id", 1).limit(limit).to_list()

    async def delete_unused(self, doc: Document) -> bool:
        """Delete the blob of files document `doc` (as `listed` gave it) unless a put
        found it since (its `touchedAt` changed) or another sweep has it; True if deleted.
        The files document goes first (the blob is gone for every reader and put at once),
        then the chunks, by `_id`; meanwhile a put of the same bytes waits (`_write`)."""
        sha = str(doc["_id"])
        seen = (doc.get("metadata") or {}).get("touchedAt")
        try:
            await self._sweeps.insert_one({"_id": sha, "at": datetime.now(UTC)})
        except DuplicateKeyError:
            return False  # another sweeper has it
        try:
            gone = await self._files.delete_one({"_id": sha, "metadata.touchedAt": seen})
            if gone.deleted_count != 1:
                return False
            count = -(-int(doc["length"]) // int(doc["chunkSize"]))
            for start in range(0, count, 1000):
                ids = [f"{sha}:{n}" for n in range(start, min(start + 1000, count))]
                await self._chunks.delete_many({"_id": {"$in": ids}})
            return True
        finally:
            await self._sweeps.delete_one({"_id": sha})

    async def read(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        doc = await self._files.find_one({"_id": sha256}, projection={"length": 1, "chunkSize": 1})
        if doc is None:
            raise BlobNotFound(sha256)
        length, size = int(doc["length"]), int(doc["chunkSize"])
        stop = length if end is None else min(end, length)
        if start >= stop:
            return
        first, last = start // size, (stop - 1) // size
        for batch_start in range(first, last + 1, CHUNKS_PER_WRITE):
            numbers = range(batch_start, min(batch_start + CHUNKS_PER_WRITE, last + 1))
            ids = [f"{sha256}:{n}" for n in numbers]
            found = {c["n"]: c["data"] async for c in self._chunks.find({"_id": {"$in": ids}})}
            for n in numbers:
                if n not in found:
                    raise BlobNotFound(f"{sha256}: chunk {n} is missing")
                data: bytes = found[n]
                offset = n * size
                yield data[max(start - offset, 0) : stop - offset]

    async def aclose(self) -> None:
        return None
