"""The page's Integrations panel in a real headless Chromium: add an endpoint (secret
shown once), an event reaches the receiver, the panel lists the delivery."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import async_playwright, expect
from pymongo.asynchronous.database import AsyncDatabase

from hubcore.mongo import Document
from hubcore.settings import Settings
from tests.integration.connectors.harness import eventually
from tests.integration.gateway_kit import new_message, produce, running_gateway, token
from tests.integration.test_inbox_page import CHROMIUM, CHROMIUM_ARGS, WAIT_MS
from tests.integration.test_webhook_delivery import fast, hub
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_add_an_endpoint_and_see_its_delivery(
    settings: Settings, mongo_db: AsyncDatabase[Document]
) -> None:
    settings = fast(settings)
    receiver = Receiver()
    async with (
        receiver.serving() as url,
        hub(settings, mongo_db),
        running_gateway(settings) as gw,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{gw.base_url}/#token={token(settings, 'erin')}")
            await expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
            await page.locator("#integrations summary").click()
            await expect(page.locator("#hooks")).to_contain_text("No endpoints yet.")
            await page.fill("#hook-url", f"{url}/page")
            await page.locator("#hook-add").click()
            await expect(page.locator("#hook-secret")).to_have_text(
                re.compile(r"^whsec_"), timeout=WAIT_MS
            )
            await expect(page.locator("#hooks li[data-webhook-id]")).to_have_count(1)
            await produce(settings, [new_message("erin", 1)])
            await eventually(lambda: len(receiver.requests) >= 1, 60, "the delivery")
            assert receiver.requests[0].event["id"] == "evt_erin_1"

            async def listed() -> bool:
                await page.locator("#hooks .refresh").click()
                return (
                    await page.locator('#hooks .deliveries li[data-state="delivered"]').count() == 1
                )

            await eventually(listed, 60, "the delivery listed")
            await expect(page.locator("#hooks .deliveries li")).to_contain_text("new_message")
        finally:
            await browser.close()
