"""One fetch job: the file into the blob store, its `attachments` document, the result command.

Order, so that a crash anywhere repeats at most one fetch (docs/media.md):
1. the `attachments` document is upserted and its `starts` counted: a job started more
   than `MAX_STARTS` times (a process killed while fetching, twice) fails with `timeout`
   instead of fetching again, so nothing is retried forever;
2. a document already `ready` or `failed` (a replayed job, a webhook retry, the same
   file in another message) is not fetched again;
3. the bytes are streamed into the blob store (retriable failures retried per
   `HUB_MEDIA_FETCH_ATTEMPTS` with hubcore/retry.py), the document set `ready`/`failed`;
4. once the message is stored (streams may still be behind), an `AttachmentResult` goes
   to hub.commands, which streams applies to the message and announces as
   `message_updated` - unless the stored message shows that status already (a repeat).
The consumer commits the job's offset only after that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import structlog
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from connectors.media.fetch import FetchFailed, download, locate
from connectors.media.imap import ImapPart, fetch_part
from connectors.media.lane import LanedBlobStore
from connectors.runtime import AccountCache
from hubcore.accounts import Account
from hubcore.attachments import ATTACHMENTS, user_usage
from hubcore.blobs import BlobRejected, BlobStore, StoredBlob
from hubcore.mongo import MESSAGES, Document
from hubcore.retry import Backoff, retry
from hubcore.settings import Settings
from hubcore.thumbnails import THUMBNAIL_TYPES
from schemas import AttachmentResult, MediaFetch, event_id
from schemas.attachments import FailedReason
from schemas.base import utc_now

log = structlog.get_logger("connectors.media")

# A job is started at most this often: once, and once more after a crash mid-fetch.
MAX_STARTS = 2
# A platform thumbnail larger than this is not kept (it is meant to be small).
THUMBNAIL_MAX_BYTES = 1024 * 1024
# How long a result waits for streams to store its message (lag under load, not forever):
# looks often at first, then about once a second, some 25 s in all.
MESSAGE_WAIT = Backoff(attempts=40, first=0.05, factor=1.5, max_delay=1.0)

Sleep = Callable[[float], Awaitable[None]]


class _NotStoredYet(Exception):
    retriable = True


@dataclass(frozen=True, slots=True)
class Fetched:
    status: str
    reason: FailedReason | None = None
    blob: StoredBlob | None = None
    thumbnail: StoredBlob | None = None


class MediaFetcher:
    """Handles jobs; shared by the consumer's concurrent tasks."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[Document],
        store: BlobStore,
        http: httpx.AsyncClient,
        accounts: AccountCache,
        sleep: Sleep,
    ) -> None:
        self.settings = settings
        self.db = db
        # The fetcher's store work takes turns (connectors/media/lane.py): GridFS writes go
        # through the same MongoDB as the text path; an S3 bucket's do not.
        self.lane = asyncio.Semaphore(settings.media_store_concurrency)
        self.store = LanedBlobStore(store, self.lane) if settings.blob_store == "gridfs" else store
        self.http = http
        self.accounts = accounts
        self.sleep = sleep

    async def handle(self, job: MediaFetch) -> AttachmentResult | None:
        """The result to announce for `job`, or None when its message was told already."""
        return await self.announce(job, await self.fetch(job))

    async def fetch(self, job: MediaFetch) -> Document:
        """Steps 1-3: the `attachments` document once the file is stored or has failed."""
        att = job.attachment
        async with self.lane:
            doc = await self._start(job)
        if doc.get("status") == "pending":
            if int(doc.get("starts", 1)) > MAX_STARTS:
                fetched = Fetched("failed", "timeout")
                log.warning("fetch interrupted too often", attachment_id=att.id)
            else:
                fetched = await self._fetch(job)
            doc = await self._settle(att.id, fetched)
        return doc

    async def announce(self, job: MediaFetch, doc: Document) -> AttachmentResult | None:
        """Step 4: the result, once streams stored the message (waited for, bounded); None
        when the message shows the status already. The consumer runs this without a
        fetch slot: a file waiting for the text path holds no download back."""
        return await self._result(job, doc)

    async def _start(self, job: MediaFetch) -> Document:
        """The attachment's document, upserted, its `starts` counted."""
        att = job.attachment
        doc = await self.db[ATTACHMENTS].find_one_and_update(
            {"_id": att.id},
            {
                "$setOnInsert": {
                    "userId": job.user_id,
                    "conversationId": job.conversation_id,
                    "messageId": job.message_id,
                    "kind": att.kind,
                    "mimeType": att.mime_type,
                    "size": att.size,
                    "name": att.name,
                    "width": att.width,
                    "height": att.height,
                    "durationMs": att.duration_ms,
                    "status": "pending",
                    "reason": None,
                    "sha256": None,
                    "thumbnailSha256": None,
                    "createdAt": utc_now(),
                },
                "$inc": {"starts": 1},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # upserted
        return doc

    async def give_up(self, job: MediaFetch) -> AttachmentResult | None:
        """The result of a job whose handling crashed: `failed` (`unsupported`), not pending
        for good."""
        doc = await self._settle(job.attachment.id, Fetched("failed", "unsupported"))
        return await self._result(job, doc)

    async def _result(self, job: MediaFetch, doc: Document) -> AttachmentResult | None:
        att = job.attachment
        shown = await self._message_stored(job)
        if shown is not None and shown.get("status") == doc["status"]:
            return None  # a repeated job: the message shows this status already
        return AttachmentResult(
            id=event_id("attachment", job.message_id, att.id, str(doc["status"])),
            user_id=job.user_id,
            conversation_id=job.conversation_id,
            message_id=job.message_id,
            attachment_id=att.id,
            index=job.index,
            status=doc["status"],
            reason=doc.get("reason"),
            mime_type=doc.get("mimeType"),
            size=doc.get("size"),
            width=doc.get("width"),
            height=doc.get("height"),
            occurred_at=utc_now(),
        )

    async def _settle(self, attachment_id: str, fetched: Fetched) -> Document:
        fields: Document = {"status": fetched.status, "reason": fetched.reason}
        if fetched.blob is not None:
            fields |= {
                "sha256": fetched.blob.sha256,
                "size": fetched.blob.size,
                "mimeType": fetched.blob.mime_type,
            }
            if fetched.blob.width and fetched.blob.height:
                fields |= {"width": fetched.blob.width, "height": fetched.blob.height}
        if fetched.thumbnail is not None:
            fields["thumbnailSha256"] = fetched.thumbnail.sha256
        # Only a pending document: of two processes racing on one file, the first result stays.
        async with self.lane:
            doc = await self.db[ATTACHMENTS].find_one_and_update(
                {"_id": attachment_id, "status": "pending"},
                {"$set": fields},
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:  # settled by the other one
                doc = await self.db[ATTACHMENTS].find_one({"_id": attachment_id})
        assert doc is not None
        return doc

    async def _fetch(self, job: MediaFetch) -> Fetched:
        att, cap = job.attachment, self.settings.media_max_bytes
        quota = self.settings.media_user_quota_bytes
        account: Account | None = None
        try:
            if job.too_large or (att.size is not None and att.size > cap):
                raise FetchFailed("too_large", f"{att.size} bytes, over {cap}")
            async with self.lane:
                used = await user_usage(self.db, job.user_id)
            if used >= quota:
                raise FetchFailed("too_large", f"the user's quota of {quota} bytes is used")
            if job.data is not None:
                data = base64.b64decode(job.data, validate=True)
                if len(data) > cap:
                    raise FetchFailed("too_large", f"{len(data)} bytes, over {cap}")
                blob = await self.store.put(data)
            elif job.platform == "email":
                account = await self.accounts.get(job.account_id)
                blob = await self._email_part(job, account)
            else:
                account = await self.accounts.get(job.account_id)
                blob = await self._download(job, account)
            # Counted per attachment, as for uploads (hubcore/attachments.py); against the
            # usage read before the download (one sum per file: the store's time is the
            # text path's too), so files of one user fetched at once may pass it by their
            # own sizes, as two uploads at once may.
            if used + blob.size > quota:
                raise FetchFailed("too_large", f"over the user's quota of {quota} bytes")
        except FetchFailed as exc:
            log.info("fetch failed", attachment_id=att.id, reason=exc.reason, detail=str(exc))
            return Fetched("failed", exc.reason)
        except BlobRejected as exc:
            return Fetched("failed", exc.reason)  # type: ignore[arg-type]
        except (binascii.Error, ValueError):
            return Fetched("failed", "unsupported")
        thumbnail = None
        # An image the hub renders itself gets its thumbnail from the gateway on its first
        # request (gateway/attachments.py), not here beside the text path: no second
        # download, decode or blob write per photo. The platform's rendition is fetched
        # for what the hub cannot render (a video's poster).
        if blob.mime_type not in THUMBNAIL_TYPES and att.thumbnail_source and account:
            thumbnail = await self._thumbnail(account, att.thumbnail_source)
        return Fetched("ready", blob=blob, thumbnail=thumbnail)

    async def _download(self, job: MediaFetch, account: Account | None) -> StoredBlob:
        """The file from the platform, retriable failures tried again (bounded)."""
        if account is None or account.user_id != job.user_id:
            raise FetchFailed("forbidden", "the account is gone")

        async def attempt(_: int) -> StoredBlob:
            target = await locate(self.settings, self.http, account, job.attachment.source)
            return await download(
                self.http,
                self.store,
                target,
                max_bytes=self.settings.media_max_bytes,
                timeout=self.settings.media_fetch_timeout,
            )

        backoff = Backoff(attempts=self.settings.media_fetch_attempts, max_delay=10.0)
        return await retry(attempt, backoff, sleep=self.sleep)

    async def _email_part(self, job: MediaFetch, account: Account | None) -> StoredBlob:
        """A part over the inline bound, from the mailbox (connectors/media/imap.py)."""
        part = ImapPart.parse(job.attachment.source)
        if part is None or not self.settings.media_imap_fetch:
            raise FetchFailed("too_large", "the part was not in the job (HUB_MEDIA_IMAP_FETCH)")
        if account is None or account.user_id != job.user_id:
            raise FetchFailed("forbidden", "the account is gone")

        async def attempt(_: int) -> StoredBlob:
            data = await fetch_part(
                self.settings, account, part, max_bytes=self.settings.media_max_bytes
            )
            return await self.store.put(data)

        backoff = Backoff(attempts=self.settings.media_fetch_attempts, max_delay=10.0)
        return await retry(attempt, backoff, sleep=self.sleep)

    async def _thumbnail(self, account: Account, source: str) -> StoredBlob | None:
        """The platform's small rendition, best effort: the file is there without it."""
        try:
            target = await locate(self.settings, self.http, account, source)
            return await download(
                self.http,
                self.store,
                target,
                max_bytes=THUMBNAIL_MAX_BYTES,
                timeout=self.settings.media_fetch_timeout,
            )
        except (FetchFailed, BlobRejected) as exc:
            log.info("thumbnail not fetched", error=str(exc))
            return None

    async def _message_stored(self, job: MediaFetch) -> Document | None:
        """The attachment as the stored message shows it, once streams stored the message
        (waited for, bounded: a result applied before it would change nothing). Past the
        wait, None: the result goes anyway."""

        async def stored(_: int) -> Document:
            # By `_id` alone, the owner checked here: FerretDB reads every message for a
            # filter with another field (P3m: these polls stalled the worker's inserts).
            # Not a turn of the lane: a read by `_id`, and the text path it waits for may
            # be the one the lane's writers are behind.
            found = await self.db[MESSAGES].find_one(
                {"_id": job.message_id}, {"attachments": 1, "userId": 1}
            )
            if found is None or found.get("userId") != job.user_id:
                raise _NotStoredYet
            shown = found.get("attachments") or []
            index = job.index
            ok = index < len(shown) and shown[index].get("id") == job.attachment.id
            return dict(shown[index]) if ok else {}

        try:
            return await retry(stored, MESSAGE_WAIT, sleep=self.sleep)
        except _NotStoredYet:
            log.warning("message not stored yet, telling anyway", message_id=job.message_id)
            return None
