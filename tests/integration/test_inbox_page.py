"""The demo inbox page in a real headless Chromium: two tabs of one user stay in sync,
replies go out through the platform stand-ins the hub is pointed at, and edits and deletes
arriving by webhook show live."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Page, Request, async_playwright, expect

from connectors.platforms.email import FetchedMail, email_message
from hub.demo import payloads
from hub.demo.changes import slack_delete, telegram_edit
from hub.demo.platform_apis import PlatformApis, StatusReporter, api_bases
from hubcore.kafka import Topics
from schemas import parse_user_event
from tests import platform_payloads as p
from tests.integration.hub_process import RunningHub, hub_up, stand_ins_in_thread
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
# Every expectation may wait that long: on a busy machine the hub's processes lag.
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def apis() -> Iterator[tuple[PlatformApis, str]]:
    fake = PlatformApis(hang_seconds=4.0)
    with stand_ins_in_thread(fake) as url:
        yield fake, url


@pytest.fixture(scope="module")
def hub(
    resources: SessionResources,
    tmp_path_factory: pytest.TempPathFactory,
    apis: tuple[PlatformApis, str],
) -> Iterator[RunningHub]:
    workdir = tmp_path_factory.mktemp("hub-up-page")
    with hub_up(resources, workdir, api_bases(apis[1])) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def _open(browser: Browser, hub: RunningHub, user: str, mark: str = "#") -> Page:
    """A tab given the token as `hub up` prints it (`#token=`) or in the query."""
    page = await browser.new_page()
    await page.goto(f"{hub.gateway}/{mark}token={hub.token(user)}")
    await expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    return page


async def test_two_tabs_see_the_message_and_the_read_state(
    hub: RunningHub, browser: Browser
) -> None:
    user = "page-alice"
    account, secret = await asyncio.to_thread(hub.create_generic_account, user)
    tab1, tab2 = await _open(browser, hub, user), await _open(browser, hub, user, "?")
    assert "token" not in tab1.url and "token" not in tab2.url  # it leaves the address bar

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


def _message(
    chat: str, message_id: str, text: str, sender: str = "777000111"
) -> payloads.FakeMessage:
    return payloads.FakeMessage(
        chat, "Support desk", sender, "Ada Lovelace", message_id, text, datetime.now(UTC)
    )


async def _open_conversation(tab: Page, title: str, text: str) -> None:
    await tab.locator("#conversations li", has_text=title).click(timeout=WAIT_MS)
    await expect(tab.locator("#thread .msg", has_text=text)).to_have_count(1, timeout=WAIT_MS)
    await expect(tab.locator("#reply")).to_be_visible()


async def test_a_reply_shows_its_status_live_in_both_tabs(
    hub: RunningHub, browser: Browser, apis: tuple[PlatformApis, str]
) -> None:
    fake, _ = apis
    user = "page-erin"
    creds = {"botToken": fake.telegram_token, "webhookSecret": "page-erin-webhook-secret"}
    account = await asyncio.to_thread(hub.create_account, user, "telegram", "5550001", creds)
    inbound = _message("-100200300", "41", "Can I change my delivery address?")
    answer = await asyncio.to_thread(
        hub.post_webhook, payloads.telegram(account, creds, inbound, update_id=70001)
    )
    assert answer.status_code == 200, answer.text
    tab1, tab2 = await _open(browser, hub, user), await _open(browser, hub, user)
    for tab in (tab1, tab2):
        await _open_conversation(tab, "Support desk", "Can I change my delivery address?")

    fake.script.append("hang")  # the platform answers after 4 s: time to see `pending`
    await tab1.locator("#reply-text").fill("Yes, send us the new one")
    await tab1.locator("#reply-send").click()

    for tab in (tab1, tab2):
        reply = tab.locator("#thread .msg.out", has_text="Yes, send us the new one")
        await expect(reply).to_have_count(1, timeout=WAIT_MS)
        await expect(reply).to_have_attribute("data-status", "pending", timeout=WAIT_MS)
        await expect(reply.locator(".state")).to_have_text("sending...")
    for tab in (tab1, tab2):
        reply = tab.locator("#thread .msg.out", has_text="Yes, send us the new one")
        await expect(reply).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        await expect(reply.locator(".retry")).to_be_hidden()
    (call,) = fake.of("telegram")
    assert call.path == f"/telegram/bot{fake.telegram_token}/sendMessage"
    assert call.body["chat_id"] == "-100200300"
    assert call.body["text"] == "Yes, send us the new one"


async def test_whatsapp_delivered_and_read_show_on_the_reply(
    hub: RunningHub, browser: Browser, apis: tuple[PlatformApis, str]
) -> None:
    fake, _ = apis
    user = "page-hugo"
    phone = "106540352249999"
    creds = {"appSecret": "page-hugo-app", "verifyToken": "v", "accessToken": fake.access_token}
    account = await asyncio.to_thread(hub.create_account, user, "whatsapp", phone, creds)
    fake.report_statuses(phone, StatusReporter(hub.connectors, account, phone, "page-hugo-app"))
    inbound = _message("491701110000", "71", "Is it in stock?", sender="491701110000")
    answer = await asyncio.to_thread(
        hub.post_webhook, payloads.whatsapp(account, phone, creds, inbound)
    )
    assert answer.status_code == 200, answer.text
    tab = await _open(browser, hub, user)
    await _open_conversation(tab, "Ada Lovelace", "Is it in stock?")
    await tab.locator("#reply-text").fill("Yes, two left")
    await tab.locator("#reply-send").click()
    reply = tab.locator("#thread .msg.out", has_text="Yes, two left")
    await expect(reply).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
    await expect(reply).to_have_attribute("data-status", "read", timeout=WAIT_MS)
    await expect(reply.locator(".state")).to_have_text("read")
    row = tab.locator("#conversations li", has_text="Ada Lovelace")
    await expect(row.locator(".meta")).to_have_text("whatsapp · You: Yes, two left")


async def test_a_failed_reply_is_retried_with_the_same_client_message_id(
    hub: RunningHub, browser: Browser, apis: tuple[PlatformApis, str]
) -> None:
    fake, _ = apis
    user = "page-frank"
    creds = {"signingSecret": "page-frank-signing", "botToken": "xoxb-revoked"}
    account = await asyncio.to_thread(hub.create_account, user, "slack", "TPAGEF", creds)
    inbound = _message("C0PAGE", "51", "Is the API down?", sender="U0CUST")
    answer = await asyncio.to_thread(
        hub.post_webhook, payloads.slack(account, "TPAGEF", creds, inbound)
    )
    assert answer.status_code == 200, answer.text
    tab = await _open(browser, hub, user)
    await _open_conversation(tab, "U0CUST", "Is the API down?")
    posts: list[dict[str, str]] = []

    def keep(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/messages"):
            body = request.post_data_json
            assert isinstance(body, dict)
            posts.append(body)

    tab.on("request", keep)

    await tab.locator("#reply-text").fill("Looking into it")
    await tab.locator("#reply-text").press("Enter")
    reply = tab.locator("#thread .msg.out", has_text="Looking into it")
    await expect(reply).to_have_attribute("data-status", "failed", timeout=WAIT_MS)
    await expect(reply.locator(".state")).to_have_text("failed")
    await expect(reply).to_have_attribute("title", re.compile("invalid_auth"), timeout=WAIT_MS)
    retry = reply.locator(".retry")
    await expect(retry).to_be_visible()
    first_id = await reply.get_attribute("data-message-id")
    assert len(fake.of("slack")) == 1

    valid, fake.slack_token = fake.slack_token, "xoxb-revoked"  # the app is authorised again
    try:
        async with tab.expect_response(lambda r: r.url.endswith("/messages")) as answered:
            await retry.click()
        await expect(reply).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
    finally:
        fake.slack_token = valid
    assert (await answered.value).status == 202
    assert (await (await answered.value).json())["id"] == first_id
    assert len(posts) == 2
    assert posts[0]["clientMessageId"] == posts[1]["clientMessageId"]
    assert posts[0]["text"] == posts[1]["text"] == "Looking into it"
    await expect(tab.locator("#thread .msg.out")).to_have_count(1)
    assert await reply.get_attribute("data-message-id") == first_id
    await expect(retry).to_be_hidden()
    calls = fake.of("slack")
    assert len(calls) == 2  # sent once more, as the same message
    assert [c.body["channel"] for c in calls] == ["C0PAGE", "C0PAGE"]
    assert [c.body["text"] for c in calls] == ["Looking into it"] * 2


async def test_edits_and_deletes_by_webhook_show_live(hub: RunningHub, browser: Browser) -> None:
    user = "page-gina"
    tg = {"botToken": "123:page-gina", "webhookSecret": "page-gina-webhook-secret"}
    sl = {"signingSecret": "page-gina-signing"}
    tg_account = await asyncio.to_thread(hub.create_account, user, "telegram", "5550002", tg)
    sl_account = await asyncio.to_thread(hub.create_account, user, "slack", "TPAGEG", sl)
    first = _message("-100400500", "61", "Meeting at 3pm")
    second = _message("C0GINA", "62", "Wrong channel, sorry", sender="U0GINA")
    for request in (
        payloads.telegram(tg_account, tg, first, update_id=80001),
        payloads.slack(sl_account, "TPAGEG", sl, second),
    ):
        answer = await asyncio.to_thread(hub.post_webhook, request)
        assert answer.status_code == 200, answer.text
    tab = await _open(browser, hub, user)
    await _open_conversation(tab, "Support desk", "Meeting at 3pm")

    edit = telegram_edit(tg_account, tg, first, "Meeting at 4pm", update_id=80002)
    assert (await asyncio.to_thread(hub.post_webhook, edit)).status_code == 200
    edited = tab.locator("#thread .msg[data-message-id]", has_text="Meeting at 4pm")
    await expect(edited).to_have_count(1, timeout=WAIT_MS)
    await expect(edited.locator(".edited")).to_be_visible()
    await expect(tab.locator("#thread .msg", has_text="Meeting at 3pm")).to_have_count(0)

    await _open_conversation(tab, "U0GINA", "Wrong channel, sorry")
    delete = slack_delete(sl_account, "TPAGEG", sl, second)
    assert (await asyncio.to_thread(hub.post_webhook, delete)).status_code == 200
    gone = tab.locator("#thread .msg.deleted")
    await expect(gone).to_have_count(1, timeout=WAIT_MS)
    await expect(gone.locator(".text")).to_have_text("This message was deleted.")
    await expect(tab.locator("#thread")).not_to_contain_text("Wrong channel, sorry")


async def test_an_email_thread_shows_where_a_reply_goes(hub: RunningHub, browser: Browser) -> None:
    """Issue 22: anyone who knows a thread's Message-ID can join it and be its newest
    sender, so the page shows the one address a reply goes to, and follows it live."""
    user = "page-frank"
    account = p.account("email", "frank@corp.example").model_copy(update={"user_id": user})
    now = datetime.now(UTC)

    def mail(
        message_id: str, sender: str, uid: int, references: str | None = None
    ) -> tuple[bytes, bytes]:
        source = p.email_source(
            message_id, sender=sender, subject="Invoice 7", references=references
        )
        record = email_message(
            account,
            FetchedMail(uid, source),
            mailbox="INBOX",
            uid_validity=1,
            received_at=now + timedelta(seconds=uid),
        )
        return user.encode(), record.to_json()

    topic = Topics.from_settings(hub.settings).raw_messages
    await produce(hub.settings, topic, [mail("inv-7@corp", "Alice <alice@corp.example>", 1)])
    tab = await _open(browser, hub, user)
    await _open_conversation(tab, "Invoice 7", "the report is attached")
    reply_to = tab.locator("#reply-to")
    await expect(reply_to).to_have_text("To: alice@corp.example", timeout=WAIT_MS)

    hijack = mail("x@attacker", '"Alice" <x@attacker.example>', 2, references="<inv-7@corp>")
    await produce(hub.settings, topic, [hijack])
    await expect(reply_to).to_have_text("To: x@attacker.example", timeout=WAIT_MS)
    back = mail("inv-8@corp", "Alice <alice@corp.example>", 3, references="<inv-7@corp>")
    await produce(hub.settings, topic, [back])
    await expect(reply_to).to_have_text("To: alice@corp.example", timeout=WAIT_MS)
