"""The email poller against a real IMAP server (Dovecot), the real broker and the real store."""

from __future__ import annotations

import asyncio
import imaplib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

from connectors.errors import PollError
from connectors.pollers.base import PollState
from connectors.pollers.email import EmailPoller
from connectors.publisher import Publisher
from hubcore.accounts import Account, AccountStore
from hubcore.kafka import ensure_topics
from hubcore.mongo import Document
from hubcore.settings import Settings
from schemas import RawMessage
from tests import platform_payloads as p
from tests.integration.connectors.harness import eventually, raw_messages
from tests.local_servers import Dovecot, dovecot_server, tarpit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with dovecot_server() as server:
        yield server


async def mail_account(
    db: AsyncDatabase[Document], settings: Settings, server: Dovecot, mailbox: str
) -> Account:
    credentials = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "ssl": False,
        "mailbox": mailbox,
    }
    return await AccountStore(db, settings).create(
        "alice", "email", "alice@example.com", credentials
    )


# The test's own Dovecot listens on loopback without TLS: the operator settings allowing it.
LOCAL_DOVECOT_POLICY = {"outbound_allowed_hosts": ["127.0.0.1"], "outbound_allow_plaintext": True}


def mail_settings(factory: Callable[..., Settings], base: Settings, **more: Any) -> Settings:
    return factory(
        **{"mongo_db": base.mongo_db, "poll_interval": 0.2, "email_fetch_batch": 2}
        | LOCAL_DOVECOT_POLICY
        | more
    )


@asynccontextmanager
async def email_poller(
    account: Account, settings: Settings, db: AsyncDatabase[Document]
) -> AsyncIterator[EmailPoller]:
    """A poller with a producer of its own: a fresh process, no memory of earlier ones."""
    publisher = Publisher(settings)
    await publisher.start()
    polling = EmailPoller(account, settings, publisher, PollState(db))
    try:
        yield polling
    finally:
        await polling.stop()
        await polling.close()
        await publisher.stop()


async def saved(db: AsyncDatabase[Document], account: Account) -> dict[str, Any]:
    return await PollState(db).load(f"email:{account.id}")


def mails(count: int, start: int = 0) -> list[bytes]:
    return [
        p.email_source(f"mail-{i}@example.com", subject=f"Mail {i}", text=f"Body {i}")
        for i in range(start, start + count)
    ]


def flags(server: Dovecot, mailbox: str) -> list[bytes]:
    conn = server.client()
    try:
        conn.select(mailbox, readonly=True)
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK"
        return [d for d in data if isinstance(d, bytes)]
    finally:
        conn.logout()


async def test_restart_mid_mailbox_loses_and_duplicates_nothing(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    s = mail_settings(settings_factory, settings)
    await ensure_topics(s)
    dovecot.append("Restart", *mails(3))
    account = await mail_account(mongo_db, s, dovecot, "Restart")

    # First process: one round (a batch of 2 of the 3 mails), then it is gone.
    async with email_poller(account, s, mongo_db) as polling:
        assert await polling.poll_once() is True  # more is waiting
    position = await saved(mongo_db, account)
    assert position["lastUid"] == 2

    # Mail keeps arriving while no poller runs, one of them HTML-only.
    html = p.email_source("html@example.com", text=None, html="<p>Hello <b>HTML</b></p>")
    dovecot.append("Restart", *mails(2, start=3), html)

    # Second process, no memory of the first but the store: it resumes after UID 2.
    async with email_poller(account, s, mongo_db) as polling:
        polling.start()

        async def caught_up() -> bool:
            return (await saved(mongo_db, account)).get("lastUid") == 6

        await eventually(caught_up, what="second poller read the whole mailbox")

    produced: list[RawMessage] = [r for _, r in await raw_messages(s)]
    assert [r.text for r in produced] == [f"Body {i}" for i in range(5)] + ["Hello HTML"]
    assert len({r.id for r in produced}) == 6
    assert [r.raw["uid"] for r in produced] == [1, 2, 3, 4, 5, 6]
    assert {r.sender.id for r in produced} == {"bob@example.com"}
    assert all(b"\\Seen" not in f for f in flags(dovecot, "Restart"))  # read-only polling


async def test_uidvalidity_change_rereads_with_the_same_ids(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    s = mail_settings(settings_factory, settings, email_fetch_batch=50)
    await ensure_topics(s)
    dovecot.append("Renumbered", *mails(2))
    account = await mail_account(mongo_db, s, dovecot, "Renumbered")
    async with email_poller(account, s, mongo_db) as polling:
        assert await polling.poll_once() is False
        before = await saved(mongo_db, account)
        # Recreate the mailbox with the same mails: the server gives it a new UIDVALIDITY.
        await polling.close()
        conn: imaplib.IMAP4 = dovecot.client()
        assert conn.delete("Renumbered")[0] == "OK"
        conn.logout()
        dovecot.append("Renumbered", *mails(2), *mails(1, start=2))
        await polling.poll_once()
        after = await saved(mongo_db, account)
    assert after["uidValidity"] != before["uidValidity"] and after["lastUid"] == 3
    produced = [r for _, r in await raw_messages(s)]
    # The two known mails came again - as the same messages - and the new one once.
    assert len({r.id for r in produced}) == 3
    assert [r.text for r in produced].count("Body 2") == 1


async def test_imap_errors_are_retried_not_fatal(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    s = mail_settings(settings_factory, settings)
    # A mailbox that does not exist (a wrong password fails alike, but Dovecot slows
    # down repeated login failures by seconds).
    account = await mail_account(mongo_db, s, dovecot, "No such folder")
    publisher = Publisher(s)
    polling = EmailPoller(account, s, publisher, PollState(mongo_db))
    with pytest.raises(PollError, match="cannot open mailbox 'No such folder'"):
        await polling.poll_once()

    def errors() -> float:
        labels = {"platform": "email", "outcome": "error"}
        return REGISTRY.get_sample_value("hub_connectors_polls_total", labels) or 0.0

    before = errors()
    polling.start()
    try:
        await eventually(lambda: errors() >= before + 2, what="two failed rounds")
        assert polling.running  # the loop logs and keeps trying
    finally:
        await polling.stop()
    assert await saved(mongo_db, account) == {}


async def test_big_and_hostile_mail_is_cut_short_and_never_blocks_the_loop(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    """Anyone can mail an account (issue 22): a 2 MB mail is fetched only up to
    HUB_EMAIL_MAX_BYTES, and HTML the stdlib parser is slow on (`<a ` repeated: 27 s of
    one core for 60 KB) is parsed off the event loop, for at most its time limit."""
    s = mail_settings(settings_factory, settings, email_max_bytes=128 * 1024)
    await ensure_topics(s)
    big = p.email_source("big@example.com", text="A" * 2_000_000)
    hostile = p.email_source("slow@example.com", text=None, html="<p>Hi</p>" + "<a " * 30_000)
    dovecot.append("Hostile", big, hostile)
    account = await mail_account(mongo_db, s, dovecot, "Hostile")
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with email_poller(account, s, mongo_db) as polling:
        ticking = asyncio.create_task(ticker())
        try:
            assert await polling.poll_once() is False
        finally:
            ticking.cancel()
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"
    produced = {r.raw["uid"]: r for _, r in await raw_messages(s)}
    assert produced[1].raw["size"] >= 2_000_000 and produced[1].raw["truncated"] is True
    assert 0 < len(produced[1].text) <= 128 * 1024
    assert produced[2].text.startswith("Hi")


async def test_a_password_imap_cannot_send_is_a_poll_error_naming_no_secret(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    """imaplib encodes LOGIN arguments as ASCII: a non-ASCII password raised an
    UnicodeEncodeError out of the poll, traceback and all (issue 22)."""
    s = mail_settings(settings_factory, settings)
    account = await mail_account(mongo_db, s, dovecot, "INBOX")
    secret = "".join(["p\u00e4ss", "-hunter", "2"])
    account = account.model_copy(
        update={"credentials": {**account.credentials, "password": secret}}
    )
    polling = EmailPoller(account, s, Publisher(s), PollState(mongo_db))
    with pytest.raises(PollError, match="not ASCII") as raised:
        await polling.poll_once()
    assert secret not in str(raised.value)
    await polling.close()


async def test_a_users_tarpit_servers_do_not_stall_another_users_polling(
    dovecot: Dovecot,
    settings: Settings,
    settings_factory: Callable[..., Settings],
    mongo_db: AsyncDatabase[Document],
) -> None:
    """Issue 22: eight IMAP accounts of one user pointing at a server that accepts and
    never answers held every thread of the default pool (min(32, CPUs + 4): 6 here) for
    HUB_IMAP_TIMEOUT each, and another user's healthy account waited as long. Now that
    user holds at most two threads of the IMAP pool, and each of their polls is cut at
    HUB_IMAP_POLL_DEADLINE; the healthy account is polled as often as when alone."""
    s = mail_settings(
        settings_factory,
        settings,
        imap_timeout=30.0,
        imap_poll_deadline=1.0,
        imap_threads=4,
        blocking_threads_per_user=2,
    )
    await ensure_topics(s)
    store = AccountStore(mongo_db, s)
    mailbox = f"Healthy-{time.monotonic_ns()}"
    dovecot.append(mailbox, *mails(1))
    healthy = await mail_account(mongo_db, s, dovecot, mailbox)
    with tarpit() as trap:
        credentials = {"host": "127.0.0.1", "port": trap.port, "username": "m", "password": "p"}
        slow = [
            await store.create(
                "mallory", "email", f"m{n}@example.com", {**credentials, "ssl": False}
            )
            for n in range(8)
        ]
        publisher = Publisher(s)
        await publisher.start()
        pollers = [EmailPoller(a, s, publisher, PollState(mongo_db)) for a in slow]
        try:
            for poller in pollers:
                poller.start()
            await eventually(lambda: trap.accepted >= 2, what="the tarpit holds connections")
            async with email_poller(healthy, s, mongo_db) as polling:
                polling.start()
                delays: list[float] = []
                for round_ in range(1, 4):
                    if round_ > 1:
                        dovecot.append(mailbox, *mails(1, start=round_))
                    started = time.perf_counter()

                    async def read(n: int = round_) -> bool:
                        return (await saved(mongo_db, healthy)).get("lastUid") == n

                    # 30 s (the per-call timeout the tarpit exhausts) would be the old wait.
                    await eventually(read, timeout=10, what=f"healthy mail {round_} polled")
                    delays.append(time.perf_counter() - started)
            # The tarpit's connections are cut at the deadline, not left for 30 s.
            await eventually(lambda: trap.cut >= 2, timeout=10, what="tarpit calls cut")
        finally:
            for poller in pollers:
                await poller.stop()
                await poller.close()
            await publisher.stop()
    print(f"healthy account's mail read after {[round(d, 2) for d in delays]} s")
    assert max(delays) < 5, delays
