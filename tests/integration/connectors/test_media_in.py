"""Attachments in, end to end: a platform's webhook (or a mail) with a file, the message
stored and announced at once with the file `pending`, the connectors fetching it from the
platform's stand-in in the platform's way, the bytes in the blob store, and a
`message_updated` from a real `hub streams` worker turning it `ready` or `failed`."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from connectors.platforms.email import FetchedMail, email_message
from hub.demo.fake import FakeTraffic
from hub.demo.media_files import MediaFiles
from hub.demo.platform_apis import PlatformApis, serving
from hub.demo.simulate import MEDIA_KINDS, build_request
from hubcore.accounts import Account
from hubcore.attachments import ATTACHMENTS
from hubcore.blobs import blob_store
from hubcore.kafka import Topics, ensure_topics
from hubcore.mongo import MESSAGES, Document, create_client
from hubcore.settings import Settings
from schemas import RawMessage, parse_user_event
from schemas.base import utc_now
from tests import media_payloads as m
from tests import platform_payloads as p
from tests.integration.connectors.harness import (
    SECRETS,
    Harness,
    eventually,
    raw_messages,
    read_topic,
    running_app,
)
from tests.resources import SessionResources
from tests.streams_helpers import Worker, wait_ready, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAP = 128 * 1024  # the module's HUB_MEDIA_MAX_BYTES: a file over it is `too_large`


@dataclass
class Media:
    settings: Settings
    harness: Harness
    files: MediaFiles
    base: str
    db: AsyncDatabase[Document]

    async def account(self, platform: str, user: str, **override: str) -> Account:
        fake = PlatformApis()
        creds: dict[str, Any] = {
            "telegram": {"botToken": fake.telegram_token},
            "whatsapp": {"accessToken": fake.access_token},
            "slack": {"botToken": fake.slack_token},
        }.get(platform, {})
        return await self.harness.account(platform, user=user, **{**creds, **override})

    async def deliver(self, platform: str, account: Account, payload: dict[str, Any]) -> None:
        raw = p.body(payload)
        headers = p.signed_headers(platform, raw, SECRETS[platform])
        answer = await self.harness.post(platform, account.id, raw, headers)
        assert answer.status_code == 200, answer.text

    async def settled(self, user: str, timeout: float = 60.0) -> Document:
        """The user's one message once none of its attachments is pending."""

        async def done() -> Document | None:
            doc = await self.db[MESSAGES].find_one({"userId": user})
            if doc and all(a["status"] != "pending" for a in doc.get("attachments", [])):
                return doc
            return None

        found: Document = await eventually(done, timeout, f"{user}'s attachments settled")
        return found

    async def stored_bytes(self, attachment_id: str) -> bytes:
        doc = await self.db[ATTACHMENTS].find_one({"_id": attachment_id})
        assert doc is not None and doc["status"] == "ready"
        store = blob_store(self.settings, self.db)
        return b"".join([piece async for piece in store.read(doc["sha256"])])

    async def events(self, user: str) -> list[Any]:
        topic = Topics.from_settings(self.settings).user_events
        found = [parse_user_event(r.value) for r in await read_topic(self.settings, topic)]
        return [e for e in found if e.user_id == user]


@pytest.fixture(scope="module")
def media_settings(resources: SessionResources) -> Iterator[Settings]:
    yield resources.settings(
        media_max_bytes=CAP,
        media_fetch_timeout=2.0,
        media_fetch_attempts=2,
        outbound_allowed_hosts=["127.0.0.1"],
        outbound_allow_plaintext=True,
    )


@pytest.fixture(scope="module")
async def media(
    media_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Media]:
    """The stand-ins, a `hub streams` worker and a connectors app, for the whole module."""
    apis = PlatformApis()
    assert apis.files is not None
    async with serving(apis) as base:
        settings = media_settings.model_copy(
            update={
                "telegram_api_base": f"{base}/telegram",
                "whatsapp_api_base": f"{base}/whatsapp",
                "slack_api_base": f"{base}/slack",
            }
        )
        await ensure_topics(settings)
        tmp: Path = tmp_path_factory.mktemp("media")
        worker = Worker(worker_env(settings, tmp), tmp / "worker.log")
        worker.start()
        client: AsyncMongoClient[Document] = create_client(settings.mongo_url)
        db = client[settings.mongo_db]
        try:
            await wait_ready(worker)
            async with running_app(settings, db) as harness:
                yield Media(settings, harness, apis.files, base, db)
        finally:
            worker.stop()
            await client.drop_database(settings.mongo_db)
            await client.close()


async def test_telegram_photo_via_get_file_its_thumbnail_left_to_the_first_request(
    media: Media,
) -> None:
    account = await media.account("telegram", "tg-photo")
    media.files.add("ph-l-10", m.JPEG, "image/jpeg")
    media.files.add("ph-s-10", m.PNG, "image/png")
    await media.deliver("telegram", account, m.telegram_photo(1, 10, caption="our new logo"))
    doc = await media.settled("tg-photo")
    [att] = doc["attachments"]
    assert (att["status"], att["kind"], att["mimeType"], doc["text"]) == (
        "ready",
        "image",
        "image/jpeg",  # sniffed from the bytes
        "our new logo",
    )
    assert await media.stored_bytes(att["id"]) == m.JPEG
    stored = await media.db[ATTACHMENTS].find_one({"_id": att["id"]})
    assert stored is not None and stored["userId"] == "tg-photo"
    # An image the hub renders: no thumbnail fetched or made beside the text path (the
    # gateway makes it on the first request), the platform's smallest size not downloaded.
    assert stored.get("thumbnailSha256") is None
    assert media.files.downloads["ph-s-10"] == 0 and media.files.downloads["ph-l-10"] == 1
    # The event order clients see: the message first, pending; then the update.
    kinds = [(e.type, e.data.message.attachments[0].status) for e in await media.events("tg-photo")
             if e.type in ("new_message", "message_updated")]  # fmt: skip
    assert kinds == [("new_message", "pending"), ("message_updated", "ready")]


async def test_whatsapp_voice_note_via_the_media_url_and_the_bearer_token(media: Media) -> None:
    account = await media.account("whatsapp", "wa-voice")
    media.files.add("9001", m.OGG, "audio/ogg")
    payload = p.whatsapp_media(
        account.external_id, "wamid.V1", "audio", "9001", mime_type="audio/ogg", voice=True
    )
    await media.deliver("whatsapp", account, payload)
    [att] = (await media.settled("wa-voice"))["attachments"]
    assert (att["status"], att["kind"], att["mimeType"]) == ("ready", "voice", "audio/ogg")
    assert await media.stored_bytes(att["id"]) == m.OGG
    assert media.files.downloads["9001"] == 1


async def test_slack_file_via_url_private_with_the_bot_token(media: Media) -> None:
    account = await media.account("slack", "sl-file")
    media.files.add("files-pri/T0-F0S43PZDF/download/tedair.png", m.PNG, "image/png")
    media.files.add("files-tmb/T0-F0S43PZDF/tedair_360.png", m.PNG, "image/png")
    await media.deliver(
        "slack", account, m.slack_file_share(account.external_id, f"{media.base}/slack-files")
    )
    [att] = (await media.settled("sl-file"))["attachments"]
    assert (att["status"], att["name"], att["mimeType"]) == ("ready", "tedair.png", "image/png")
    assert await media.stored_bytes(att["id"]) == m.PNG


async def test_email_attachment_and_inline_image_from_the_mail_itself(media: Media) -> None:
    # The mail's parts come with it: no account lookup, no IMAP needed for the fetch.
    account = p.account("email").model_copy(update={"user_id": "em-pdf", "id": "acc_em_pdf"})
    parts: dict[str, bytes] = {}
    mail = FetchedMail(uid=1, source=m.email_with_files("q3@example.com"))
    record = email_message(
        account, mail, mailbox="INBOX", uid_validity=1, received_at=utc_now(), parts=parts
    )
    # What the email poller does with a round's records (connectors/pollers/base.py).
    await media.harness.runtime.publisher.publish([record], source="poll", parts=parts)
    doc = await media.settled("em-pdf")
    assert [(a["status"], a["mimeType"]) for a in doc["attachments"]] == [
        ("ready", "image/png"),
        ("ready", "application/pdf"),
    ]
    assert await media.stored_bytes(doc["attachments"][1]["id"]) == m.PDF


async def test_generic_url_under_the_outbound_policy(media: Media) -> None:
    account = await media.account("generic", "gen-url")
    media.files.add("quote.pdf", m.PDF, "application/pdf")
    url = f"{media.base}/files/quote.pdf"
    await media.deliver("generic", account, p.generic_message(attachments=[{"url": url}]))
    [att] = (await media.settled("gen-url"))["attachments"]
    assert (att["status"], att["kind"], att["mimeType"]) == ("ready", "document", "application/pdf")


@pytest.mark.parametrize(
    ("ref", "setup", "reason"),
    [
        ("big.bin", "large", "too_large"),
        ("gone.pdf", "404", "not_found"),
        ("secret.pdf", "403", "forbidden"),
    ],
)
async def test_failures_end_failed_with_their_reason(
    media: Media, ref: str, setup: str, reason: str
) -> None:
    user = f"gen-{setup}"
    account = await media.account("generic", user)
    if setup == "large":
        media.files.add(ref, b"\0" * (CAP + 1), "application/octet-stream")
    else:
        media.files.fail[ref] = setup
    payload = p.generic_message(text="see file", attachments=[{"url": f"{media.base}/files/{ref}"}])
    await media.deliver("generic", account, payload)
    doc = await media.settled(user)
    assert [(a["status"], a["reason"]) for a in doc["attachments"]] == [("failed", reason)]
    assert doc["text"] == "see file"
    assert media.files.downloads[ref] == 1  # final answers are not retried


async def test_platform_404_and_401_for_telegram_and_whatsapp(media: Media) -> None:
    tg = await media.account("telegram", "tg-404")
    await media.deliver("telegram", tg, m.telegram_document(1, 11))  # getFile: invalid file_id
    [att] = (await media.settled("tg-404"))["attachments"]
    assert (att["status"], att["reason"]) == ("failed", "not_found")
    wa = await media.account("whatsapp", "wa-403", accessToken="revoked")
    media.files.add("9403", m.OGG, "audio/ogg")
    payload = p.whatsapp_media(wa.external_id, "wamid.F1", "audio", "9403", voice=True)
    await media.deliver("whatsapp", wa, payload)
    [att] = (await media.settled("wa-403"))["attachments"]
    assert (att["status"], att["reason"]) == ("failed", "forbidden")


async def test_the_text_goes_out_while_a_slow_fetch_hangs_then_times_out(media: Media) -> None:
    account = await media.account("generic", "gen-slow")
    media.files.fail["slow.ogg"] = "hang"
    url = f"{media.base}/files/slow.ogg"
    await media.deliver(
        "generic", account, p.generic_message(text="voice", attachments=[{"url": url}])
    )

    async def announced() -> bool:
        return any(e.type == "new_message" for e in await media.events("gen-slow"))

    # The message is out (stored, announced, its file pending) while the file is waited for:
    # the download starts beside the text path, so it is awaited rather than assumed begun.
    await eventually(announced, 30, "the new_message event")

    async def downloading() -> bool:
        return media.files.downloads["slow.ogg"] >= 1

    await eventually(downloading, 10, "the hanging download started")
    [first] = [e for e in await media.events("gen-slow") if e.type == "new_message"]
    assert first.data.message.attachments[0].status == "pending"
    doc = await media.settled("gen-slow")
    assert [(a["status"], a["reason"]) for a in doc["attachments"]] == [("failed", "timeout")]
    # Bounded: HUB_MEDIA_FETCH_ATTEMPTS downloads, then no more.
    assert media.files.downloads["slow.ogg"] == media.settings.media_fetch_attempts


async def test_the_same_delivery_again_fetches_nothing(media: Media) -> None:
    account = await media.account("generic", "gen-twice")
    media.files.add("twice.png", m.PNG, "image/png")
    payload = p.generic_message(attachments=[{"url": f"{media.base}/files/twice.png"}])
    await media.deliver("generic", account, payload)
    await media.settled("gen-twice")
    # A platform retry after the publisher's memory of it is gone: same ids, no new fetch.
    media.harness.runtime.publisher._recent = type(media.harness.runtime.publisher._recent)(10)
    await media.deliver("generic", account, payload)

    async def both() -> list[RawMessage] | None:
        got = [r for _, r in await raw_messages(media.settings) if r.user_id == "gen-twice"]
        return got if len(got) == 2 else None

    await eventually(both, 20, "the repeated record")
    jobs = await read_topic(media.settings, Topics.from_settings(media.settings).media_fetch)
    assert sum(r.key == b"gen-twice" for r in jobs) == 2

    async def told_once() -> bool:
        doc = await media.db[ATTACHMENTS].find_one({"userId": "gen-twice"})
        return bool(doc) and int(doc["starts"]) == 2  # type: ignore[index]

    await eventually(told_once, 20, "the second job handled")
    assert media.files.downloads["twice.png"] == 1


async def test_the_demo_traffic_photo_voice_and_pdf_arrive_ready(media: Media) -> None:
    """`hub simulate`'s files, through each platform's stand-in (what `hub up --demo` does)."""
    for n, platform in enumerate(("telegram", "whatsapp", "slack", "generic")):
        user = f"demo-{platform}"
        account = await media.account(platform, user)
        for k, kind in enumerate(MEDIA_KINDS):
            msg = FakeTraffic(seed=n * 10 + k).message(account.id)
            msg = dataclasses.replace(msg, media=kind, files_url=media.base)
            req = build_request(account, msg, 100 + k)
            answer = await media.harness.http.post(req.path, content=req.body, headers=req.headers)
            assert answer.status_code == 200, answer.text

        async def ready(user: str = user) -> list[str] | None:
            docs = await media.db[MESSAGES].find({"userId": user}).to_list()
            statuses = [a["status"] for d in docs for a in d.get("attachments", [])]
            return statuses if len(statuses) == 3 and "pending" not in statuses else None

        statuses = await eventually(ready, 60, f"{user}'s three files")
        assert statuses == ["ready"] * 3, (platform, statuses)
