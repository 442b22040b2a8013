"""Attachments on the demo page in a real headless Chromium: a stored photo shows as a
thumbnail and opens full size, a voice note plays, and the paper-clip uploads files that
the reply then carries onto `hub.commands`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from playwright.async_api import Browser, FilePayload, Page, async_playwright, expect
from pymongo.asynchronous.database import AsyncDatabase

from gateway.attachments import public_view
from hub.demo import media_samples
from hubcore.attachments import ATTACHMENTS, ready_doc
from hubcore.blobs import blob_store
from hubcore.mongo import CONVERSATIONS, MESSAGES, Document
from hubcore.settings import Settings
from schemas import SendMessage, parse_command
from schemas.attachments import AttachmentKind
from schemas.base import utc_now
from tests.integration.connectors.harness import eventually, read_topic
from tests.integration.gateway_kit import RunningGateway, running_gateway, token
from tests.integration.test_inbox_page import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_MS = 60_000
BLOB = re.compile(r"^blob:")
PHOTO = media_samples.png(400, 300, rgb=(30, 120, 200))
VOICE = media_samples.wav(8000)  # one second


async def _attachment(
    db: AsyncDatabase[Document], data: bytes, kind: AttachmentKind, name: str, message_id: str
) -> Document:
    blob = await blob_store(Settings(), db).put(data)  # where the gateway reads
    doc = ready_doc(
        user_id="alice",
        conversation_id="conv_media",
        blob=blob,
        kind=kind,
        name=name,
        message_id=message_id,
    )
    await db[ATTACHMENTS].insert_one(doc)
    return doc


def _public(doc: Document) -> Document:
    return public_view(doc).model_dump(by_alias=True)


@pytest.fixture
async def gw(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[RunningGateway]:
    at = utc_now() - timedelta(minutes=5)
    photo = await _attachment(mongo_db, PHOTO, "image", "beach.png", "msg_media_1")
    voice = await _attachment(mongo_db, VOICE, "voice", "note.wav", "msg_media_1")
    message = {
        "_id": "msg_media_1",
        "userId": "alice",
        "platform": "telegram",
        "accountId": "acc_alice",
        "conversationId": "conv_media",
        "sender": {"id": "42", "name": "Ada"},
        "text": "Look at this",
        "sentAt": at,
        "receivedAt": at,
        "status": "read",
        "origin": "t:0:1",
        "attachments": [_public(photo), _public(voice)],
    }
    await mongo_db[MESSAGES].insert_one(message)
    await mongo_db[CONVERSATIONS].insert_one(
        {
            "_id": "conv_media",
            "userId": "alice",
            "platform": "telegram",
            "accountId": "acc_alice",
            "title": "Ada",
            "unreadCount": 0,
            "updatedAt": at,
        }
    )
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
async def page(gw: RunningGateway) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser: Browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        )
        tab = await browser.new_page()
        await tab.goto(f"{gw.base_url}/#token={token(gw.app.settings, 'alice')}")
        await expect(tab.locator("#status")).to_have_text("live", timeout=WAIT_MS)
        await tab.locator('li[data-conversation-id="conv_media"]').click()
        yield tab
        await browser.close()


async def test_a_photo_shows_and_a_voice_note_plays(page: Page) -> None:
    thumb = page.locator(".msg .attachments img.thumb")
    await expect(thumb).to_have_attribute("src", BLOB, timeout=WAIT_MS)
    await page.wait_for_function(
        "document.querySelector('.attachments img.thumb').naturalWidth > 0", timeout=WAIT_MS
    )
    await thumb.click()
    full = page.locator("#viewer img")
    await expect(full).to_have_attribute("src", BLOB, timeout=WAIT_MS)
    assert await full.evaluate("img => img.decode().then(() => img.naturalWidth)") == 400
    await page.locator("#viewer").click()
    await expect(page.locator("#viewer")).to_have_count(0)

    audio = page.locator(".msg .attachments audio")
    await expect(audio).to_have_attribute("src", BLOB, timeout=WAIT_MS)
    played = await audio.evaluate(
        """el => el.play().then(() => new Promise((resolve) => {
             el.addEventListener("ended", () => resolve(el.currentTime), { once: true });
           }))"""
    )
    assert played > 0.9  # the whole second played


async def test_the_paper_clip_sends_files_with_the_reply(
    page: Page, gw: RunningGateway, mongo_db: AsyncDatabase[Document]
) -> None:
    files: list[FilePayload] = [
        {"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": media_samples.pdf()},
        {"name": "dot.gif", "mimeType": "image/gif", "buffer": media_samples.gif(8, 8)},
    ]
    await page.locator("#reply-file").set_input_files(files)
    await expect(page.locator("#reply-files .chip")).to_have_count(2)
    await page.locator("#reply-text").fill("Both attached")
    await page.locator("#reply-send").click()
    reply = page.locator(".msg.out")
    await expect(reply.locator(".text")).to_have_text("Both attached", timeout=WAIT_MS)
    await expect(reply.locator(".attachments .chip .name")).to_have_text("invoice.pdf")
    await expect(reply.locator(".attachments img.thumb")).to_have_attribute(
        "src", BLOB, timeout=WAIT_MS
    )
    await expect(page.locator("#reply-files .chip")).to_have_count(0)

    topic = gw.app.runtime.topics.commands

    async def sent() -> SendMessage | None:
        for record in await read_topic(gw.app.settings, topic):
            command = parse_command(record.value)
            if isinstance(command, SendMessage):
                return command
        return None

    command: SendMessage = await eventually(sent, 30, "the send command")
    assert command.text == "Both attached"
    assert [(a.name, a.mime_type) for a in command.attachments] == [
        ("invoice.pdf", "application/pdf"),
        ("dot.gif", "image/gif"),
    ]
    assert await mongo_db[ATTACHMENTS].count_documents({"messageId": command.message_id}) == 2
