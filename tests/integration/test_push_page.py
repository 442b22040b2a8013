"""The inbox page's Web Push parts in a real headless Chromium against a real gateway:
the service worker registers with the whole page as its scope and shows a push's
notification, the bell appears, the conversation header mutes, and `#conversation=`
(a notification's link) opens the conversation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import BrowserContext, async_playwright, expect
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import CONVERSATIONS, Document
from hubcore.push_store import PushStore
from hubcore.settings import Settings
from hubcore.webpush import new_vapid_key
from schemas.base import utc_now
from tests.integration.gateway_kit import RunningGateway, running_gateway, token
from tests.integration.test_inbox_page import CHROMIUM, CHROMIUM_ARGS, WAIT_MS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(vapid_private_key=new_vapid_key())


@pytest.fixture
async def gw(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[RunningGateway]:
    doc = {
        "_id": "conv_pia",
        "userId": "pia",
        "platform": "slack",
        "accountId": "acc_pia",
        "title": "Team chat",
        "updatedAt": utc_now(),
        "unreadCount": 0,
        "version": 1,
    }
    await mongo_db[CONVERSATIONS].insert_one(doc)
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
async def context(gw: RunningGateway) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        made = await chromium.new_context()
        await made.grant_permissions(["notifications"], origin=gw.base_url)
        yield made
        await chromium.close()


async def test_service_worker_bell_mute_and_notification_link(
    gw: RunningGateway, context: BrowserContext, mongo_db: AsyncDatabase[Document]
) -> None:
    page = await context.new_page()
    await page.goto(f"{gw.base_url}/#token={token(gw.app.settings, 'pia')}")
    bell = page.locator("#bell")
    await expect(bell).to_be_visible(timeout=WAIT_MS)
    await expect(bell).to_have_attribute("data-state", "off")
    scope, script = await page.evaluate(
        "navigator.serviceWorker.ready.then(r => [r.scope, r.active.scriptURL])"
    )
    assert (scope, script) == (f"{gw.base_url}/", f"{gw.base_url}/static/sw.js")

    # Subscribing needs the browser vendor's push service, out of reach here: the bell
    # says why and stays off; nothing was stored.
    await bell.click()
    await expect(bell).to_have_attribute("data-error", re.compile(r"\S"), timeout=WAIT_MS)
    await expect(bell).to_have_attribute("data-state", "off")
    assert await PushStore(mongo_db).count("pia") == 0

    # The worker turns a push payload into a notification tagged by its conversation.
    worker = context.service_workers[0] if context.service_workers else None
    if worker is None:
        worker = await context.wait_for_event("serviceworker")
    await worker.evaluate(
        "self.showPush({title: 'Ann (slack)', body: 'hi', conversationId: 'conv_pia'})"
    )
    shown = await worker.evaluate(
        "self.registration.getNotifications()"
        ".then(ns => ns.map(n => [n.title, n.body, n.tag, n.data.url]))"
    )
    assert shown == [["Ann (slack)", "hi", "conversation:conv_pia", "/#conversation=conv_pia"]]

    # The conversation header mutes and unmutes through the REST API.
    await page.locator("#conversations li[data-conversation-id='conv_pia']").click()
    mute = page.locator("#mute")
    await expect(page.locator("#thread-title")).to_have_text("Team chat")
    await expect(mute).to_have_text("Mute")
    await mute.click()
    await expect(mute).to_have_attribute("data-muted", "true")
    store = PushStore(mongo_db)
    assert await store.is_muted("pia", "conv_pia")
    await mute.click()
    await expect(mute).to_have_text("Mute")
    assert not await store.is_muted("pia", "conv_pia")

    # A notification's link opens its conversation (the tab keeps its token).
    await page.evaluate("location.hash = 'conversation=conv_pia'; location.reload()")
    await expect(page.locator("#thread-title")).to_have_text("Team chat", timeout=WAIT_MS)
    await expect(page.locator("#mute")).to_be_visible()
