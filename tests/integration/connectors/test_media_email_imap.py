"""Email parts too large for their fetch job, fetched by IMAP `BODY.PEEK[<section>]` from a
real Dovecot into GridFS on the real store (connectors/media/imap.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from connectors.media.fetch import FetchFailed
from connectors.media.fetcher import MediaFetcher
from connectors.media.imap import ImapPart, fetch_part
from connectors.media.jobs import fetch_jobs
from connectors.platforms.email import email_message
from connectors.pollers.imap import ImapMailbox
from connectors.runtime import AccountCache
from hubcore.accounts import Account, AccountStore
from hubcore.attachments import ATTACHMENTS
from hubcore.blobs import GridFSBlobStore
from hubcore.mongo import Document
from hubcore.outbound import OutboundPolicy
from hubcore.settings import Settings
from schemas import MediaFetch
from schemas.base import utc_now
from tests import media_payloads as m
from tests.integration.connectors.test_email_poller import LOCAL_DOVECOT_POLICY, mail_account
from tests.local_servers import Dovecot, dovecot_server

pytestmark = pytest.mark.integration

# A PDF of 1.5 MB: over the inline bound (640 KiB) and, base64-encoded in its mail, past
# the poller's 1 MiB partial fetch: the mail is cut short inside it.
BIG_PDF = m.PDF + b"%" + os.urandom(1_500_000)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with dovecot_server() as server:
        yield server


async def _no_sleep(_: float) -> None:
    return None


async def _jobs(s: Settings, account: Account, box: str) -> list[MediaFetch]:
    """What the email poller produces for the mailbox's first mail: its fetch jobs."""
    mailbox = ImapMailbox.from_credentials(
        account.credentials, 10, OutboundPolicy.from_settings(s), s.email_max_bytes
    )
    try:
        validity = await asyncio.to_thread(mailbox.open)
        [mail] = await asyncio.to_thread(mailbox.fetch, [1])
    finally:
        await asyncio.to_thread(mailbox.close)
    parts: dict[str, bytes] = {}
    record = email_message(
        account, mail, mailbox=box, uid_validity=validity, received_at=utc_now(), parts=parts
    )
    return [MediaFetch.from_json(value) for _, _, value in fetch_jobs("t", [record], parts, s)]


def dovecot_validity(server: Dovecot, box: str) -> int:
    conn = server.client()
    try:
        conn.select(box, readonly=True)
        _, values = conn.response("UIDVALIDITY")
    finally:
        conn.logout()
    return int(values[-1])


def _settings(factory: Callable[..., Settings], base: Settings, **more: Any) -> Settings:
    return factory(
        **{"mongo_db": base.mongo_db, "email_max_bytes": 1024 * 1024} | LOCAL_DOVECOT_POLICY | more
    )


async def _fetched(
    s: Settings, db: AsyncDatabase[Document], store: GridFSBlobStore, jobs: list[MediaFetch]
) -> list[Document]:
    async with httpx.AsyncClient() as http:
        fetcher = MediaFetcher(
            s, db, store, http, AccountCache(AccountStore(db, s), 2.0), _no_sleep
        )
        for job in jobs:
            await fetcher.handle(job)
    return [await db[ATTACHMENTS].find_one({"_id": job.attachment.id}) or {} for job in jobs]


async def test_a_large_part_of_a_mail_cut_short_is_fetched_by_its_section(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    s = _settings(settings_factory, settings)
    dovecot.append("Big", m.email_with_files("big@example.com", pdf=BIG_PDF))
    account = await mail_account(mongo_db, s, dovecot, "Big")
    jobs = await _jobs(s, account, "Big")
    # The inline image (1.2, inside multipart/related) and the PDF (2): the mail was cut
    # short, so neither travels in its job.
    validity = dovecot_validity(dovecot, "Big")
    assert [j.attachment.source for j in jobs] == [
        f"imap:{validity}:1:1.2:base64",
        f"imap:{validity}:1:2:base64",
    ]
    assert [(j.data, j.too_large) for j in jobs] == [(None, False), (None, False)]
    store = GridFSBlobStore(mongo_db, max_image_pixels=50_000_000)
    png, pdf = await _fetched(s, mongo_db, store, jobs)
    assert (png["status"], png["mimeType"]) == ("ready", "image/png")
    assert (pdf["status"], pdf["mimeType"], pdf["size"]) == (
        "ready",
        "application/pdf",
        len(BIG_PDF),
    )
    assert b"".join([c async for c in store.read(pdf["sha256"])]) == BIG_PDF
    assert b"".join([c async for c in store.read(png["sha256"])]) == m.PNG
    # Read-only: fetching the parts marked nothing seen.
    conn = dovecot.client()
    try:
        conn.select("Big", readonly=True)
        _, data = conn.uid("FETCH", "1", "(FLAGS)")
    finally:
        conn.logout()
    assert b"\\Seen" not in b"".join(d for d in data if isinstance(d, bytes))


async def test_a_part_over_the_cap_ends_too_large_without_being_read_whole(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    s = _settings(settings_factory, settings, media_max_bytes=1024 * 1024)
    dovecot.append("Capped", m.email_with_files("capped@example.com", pdf=BIG_PDF))
    account = await mail_account(mongo_db, s, dovecot, "Capped")
    jobs = await _jobs(s, account, "Capped")
    store = GridFSBlobStore(mongo_db, max_image_pixels=50_000_000)
    png, pdf = await _fetched(s, mongo_db, store, jobs)
    assert png["status"] == "ready"
    assert (pdf["status"], pdf["reason"]) == ("failed", "too_large")
    part = ImapPart.parse(jobs[1].attachment.source)
    assert part is not None
    with pytest.raises(FetchFailed) as failed:
        await fetch_part(s, account, part, max_bytes=1024 * 1024)
    assert failed.value.reason == "too_large"


async def test_a_whole_mail_keeps_small_parts_inline_and_a_renumbered_mailbox_is_not_found(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    s = _settings(settings_factory, settings, email_max_bytes=4 * 1024 * 1024)
    dovecot.append("Whole", m.email_with_files("whole@example.com", pdf=BIG_PDF))
    account = await mail_account(mongo_db, s, dovecot, "Whole")
    png_job, pdf_job = await _jobs(s, account, "Whole")
    assert png_job.data is not None  # small: in the job, no IMAP needed
    assert (pdf_job.data, pdf_job.too_large, pdf_job.attachment.size) == (None, False, len(BIG_PDF))
    part = ImapPart.parse(pdf_job.attachment.source)
    assert part is not None
    assert await fetch_part(s, account, part, max_bytes=s.media_max_bytes) == BIG_PDF
    stale = ImapPart(part.uid_validity + 1, part.uid, part.section, part.encoding)
    with pytest.raises(FetchFailed) as failed:
        await fetch_part(s, account, stale, max_bytes=s.media_max_bytes)
    assert failed.value.reason == "not_found"
