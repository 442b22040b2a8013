"""The media sweep: blobs no attachment names any more are deleted, a batch at a time.

A blob is named by an `attachments` document (`sha256`, `thumbnailSha256`); an upload no
reply carried (`messageId` null) past `HUB_MEDIA_GC_GRACE` is dropped first, so its
bytes go too. Received files are not dropped with a deleted message: their id is the
platform's file id, and another message may show the same file.

Safe to run any time, in several processes at once, beside fetches and uploads
(docs/media.md, "Collecting unused blobs"):
- a blob stored or found again by a put (its `touchedAt`, hubcore/blobs.py) within the
  grace is left: a fetch or upload names its blob only after storing it;
- the files document is deleted only if its `touchedAt` is still the one the sweep saw
  (a put that found it meanwhile keeps it), and a put of the same bytes that finds it gone
  waits until the sweep has deleted the chunks, then writes the blob anew;
- every step is idempotent: a sweep killed midway leaves at worst chunks without their
  files document (unreachable; a later put of the same bytes reuses them, being the
  same bytes).

Only the GridFS store is swept (an S3 bucket's lifecycle rules are the operator's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from hubcore.attachments import ATTACHMENTS
from hubcore.blobs import GridFSBlobStore, aware_utc
from hubcore.mongo import Document


@dataclass(slots=True)
class SweepPass:
    """What one pass did; `after` is where the next pass goes on (None: the walk ended)."""

    uploads_dropped: int = 0
    blobs_looked_at: int = 0
    blobs_deleted: int = 0
    bytes_deleted: int = 0
    after: str | None = None


async def sweep(
    db: AsyncDatabase[Document],
    store: GridFSBlobStore,
    *,
    batch: int,
    grace: float,
    after: str = "",
    now: datetime | None = None,
) -> SweepPass:
    """One bounded pass: at most `batch` abandoned uploads dropped and `batch` blobs, those
    with `_id` past `after`, looked at."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=grace)
    done = SweepPass()
    abandoned = await (
        db[ATTACHMENTS]
        .find({"messageId": None, "createdAt": {"$lt": cutoff}}, {"_id": 1})
        .limit(batch)
        .to_list()
    )
    if abandoned:
        ids = [doc["_id"] for doc in abandoned]
        # Still unsent: a reply that took one meanwhile has set its messageId.
        dropped = await db[ATTACHMENTS].delete_many({"_id": {"$in": ids}, "messageId": None})
        done.uploads_dropped = dropped.deleted_count
    listed = await store.listed(after, batch)
    done.blobs_looked_at = len(listed)
    done.after = str(listed[-1]["_id"]) if len(listed) == batch else None
    old = [doc for doc in listed if _touched(doc) < cutoff]
    if not old:
        return done
    hashes = [str(doc["_id"]) for doc in old]
    named: set[str] = set()
    cursor = db[ATTACHMENTS].find(
        {"$or": [{"sha256": {"$in": hashes}}, {"thumbnailSha256": {"$in": hashes}}]},
        {"sha256": 1, "thumbnailSha256": 1},
    )
    async for doc in cursor:
        named.update(str(doc.get(key)) for key in ("sha256", "thumbnailSha256") if doc.get(key))
    for doc in old:
        if str(doc["_id"]) not in named and await store.delete_unused(doc):
            done.blobs_deleted += 1
            done.bytes_deleted += int(doc["length"])
    return done


def _touched(doc: Document) -> datetime:
    """When a put last stored or found the blob (blobs from before `touchedAt`: stored)."""
    meta = doc.get("metadata") or {}
    at = meta.get("touchedAt") or doc.get("uploadDate")
    return aware_utc(at) if isinstance(at, datetime) else datetime.min.replace(tzinfo=UTC)
