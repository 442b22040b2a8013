"""The demo inbox page in a real headless Chromium: two tabs of one user stay in sync."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hubcore.kafka import Topics
from schemas import parse_user_event
from tests.integration.hub_process import RunningHub, hub_up
from tests.resources import SessionResources
from tests.streams_helpers import consume_all, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine's Chromium needs: root, no GPU, and no calls to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def hub(
    resources: SessionResources, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHub]:
    with hub_up(resources, tmp_path_factory.mktemp("hub-up-page")) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def _open(browser: Browser, hub: RunningHub, user: str) -> Page:
    page = await browser.new_page()
    await page.goto(f"{hub.gateway}/?token={hub.token(user)}")
    await expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    return page


async def test_two_tabs_see_the_message_and_the_read_state(
    hub: RunningHub, browser: Browser
) -> None:
    user = "page-alice"
    account, secret = await asyncio.to_thread(hub.create_generic_account, user)
    tab1, tab2 = await _open(browser, hub, user), await _open(browser, hub, user)
    assert "token" not in tab1.url  # the token leaves the address bar

    resp = await asyncio.to_thread(
        hub.send_generic,
        account,
        secret,
        conversationId="c-1",
        conversationTitle="Order 42",
        text="Parcel arrived damaged",
    )
    assert resp.status_code == 200, resp.text

    for tab in (tab1, tab2):
        row = tab.locator("#conversations li", has_text="Order 42")
        await expect(row.locator(".badge")).to_have_text("1", timeout=WAIT_MS)
        await expect(row).to_contain_text("Parcel arrived damaged")
        await expect(tab.get_by_test_id("total")).to_contain_text("1")

    await tab1.locator("#conversations li", has_text="Order 42").click()
    await expect(tab1.locator("#thread .msg")).to_contain_text(
        "Parcel arrived damaged", timeout=WAIT_MS
    )

    # The other tab learns of the read over its own socket.
    badge2 = tab2.locator("#conversations li", has_text="Order 42").locator(".badge")
    await expect(badge2).to_have_attribute("data-count", "0", timeout=WAIT_MS)
    await expect(badge2).to_be_hidden()
    await expect(tab2.get_by_test_id("total")).to_contain_text("0")
    await expect(tab1.locator("#thread .msg.read")).to_have_count(1, timeout=WAIT_MS)


async def test_page_without_token_asks_for_one(hub: RunningHub, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(hub.gateway + "/")
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()


async def test_a_repeated_event_is_shown_once(hub: RunningHub, browser: Browser) -> None:
    user = "page-dora"
    account, secret = await asyncio.to_thread(hub.create_generic_account, user)
    tab = await _open(browser, hub, user)
    first = await asyncio.to_thread(
        hub.send_generic, account, secret, conversationId="c-9", text="First one"
    )
    assert first.status_code == 200, first.text
    await tab.locator("#conversations li", has_text="First one").click(timeout=WAIT_MS)
    await expect(tab.locator("#thread .msg")).to_have_count(1, timeout=WAIT_MS)

    # Redone work repeats an event with its id (at-least-once delivery): deliver it again.
    topic = Topics.from_settings(hub.settings).user_events
    records = await consume_all(hub.settings, topic, want=10_000, timeout=3)
    (repeat,) = [
        r
        for r in records
        if r.key == user.encode() and parse_user_event(r.value).type == "new_message"
    ]
    await produce(hub.settings, topic, [(repeat.key, repeat.value)])
    second = await asyncio.to_thread(
        hub.send_generic, account, secret, conversationId="c-9", text="Second one"
    )
    assert second.status_code == 200, second.text
    await expect(tab.locator("#thread .msg", has_text="Second one")).to_have_count(
        1, timeout=WAIT_MS
    )
    await expect(tab.locator("#thread .msg")).to_have_count(2)
