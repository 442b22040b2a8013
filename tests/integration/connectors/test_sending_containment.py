"""One account's bad credentials, or a server it names, fail that reply only: the
consumer goes on with the next record (issue 22). Accounts are given their hostile
credentials directly in the store, as one stored before today's rules would hold them."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.controller import Controller

from hubcore.accounts import Account
from hubcore.mongo import SEND_LEDGER
from tests.integration.connectors.sending_rig import Rig, outbound
from tests.local_servers import free_port

pytestmark = pytest.mark.integration


async def _then_a_good_reply_is_sent(rig: Rig, platform: str) -> None:
    """After a failed reply, another is still delivered: the consumer task did not end."""
    account = await rig.account(platform)
    await rig.produce(outbound(account, client_id="after"))
    got = await rig.results(2)
    assert got[1].status == "sent", got[1].detail
    assert got[1].message_id == outbound(account, client_id="after").message_id


@pytest.mark.parametrize(
    ("platform", "key", "value"),
    [
        ("telegram", "botToken", "123:abc\nX-Evil: 1"),
        ("slack", "botToken", "xoxb-\r\nX-Evil: 1"),
        ("whatsapp", "accessToken", "t\u00f6ken"),  # not ASCII: httpx cannot put it in a header
        ("generic", "callbackUrl", "http://127.0.0.1:9/call\x07back"),
    ],
)
async def test_a_credential_that_cannot_make_a_request_fails_that_reply_only(
    rig: Rig, platform: str, key: str, value: str
) -> None:
    account = await rig.account(platform)
    await rig.set_credential(account, key, value)
    await rig.produce(outbound(account, client_id="bad"))
    [result] = await rig.results(1)
    assert result.status == "failed"
    assert result.detail and platform in result.detail.lower()
    assert value not in result.detail  # the reason, never the credential
    assert not rig.fake.of(platform)
    await _then_a_good_reply_is_sent(rig, platform)


async def test_a_callback_to_an_internal_address_is_refused_at_send_time(rig: Rig) -> None:
    account = await rig.account("generic")
    # 127.0.0.2 is loopback but outside the rig's HUB_OUTBOUND_ALLOWED_HOSTS (127.0.0.1).
    internal = account.credentials["callbackUrl"].replace("127.0.0.1", "127.0.0.2")
    await rig.set_credential(account, "callbackUrl", internal)
    await rig.produce(outbound(account, client_id="bad"))
    [result] = await rig.results(1)
    assert result.status == "failed" and not result.ambiguous
    assert result.detail and "refused" in result.detail and "loopback" in result.detail
    assert result.attempts <= 1
    assert not rig.fake.of("generic")
    await _then_a_good_reply_is_sent(rig, "generic")


async def test_an_smtp_host_turned_internal_is_refused_at_send_time(rig: Rig) -> None:
    received: list[bytes] = []

    class Inbox:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            received.append(getattr(envelope, "content", b""))
            return "250 OK"

    port = free_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        imap = {"host": "127.0.0.1", "port": 993, "username": "u", "password": "p"}
        smtp = {"smtpHost": "127.0.0.1", "smtpPort": str(port), "smtpTls": "false"}
        store = rig.harness.store
        turned = await store.create("alice", "email", "a@example.com", {**imap, **smtp}, "poll")
        await rig.set_credential(turned, "smtpHost", "127.0.0.2")
        fields = {"external_conversation_id": "<r@example.com>", "recipient": "x@example.com"}
        await rig.produce(outbound(turned, client_id="bad", **fields))
        [refused] = await rig.results(1)
        good = await store.create("alice", "email", "b@example.com", {**imap, **smtp}, "poll")
        await rig.produce(outbound(good, client_id="good", **fields))
        [_, sent] = await rig.results(2)
    finally:
        controller.stop()
    assert refused.status == "failed"
    assert refused.detail and "refused" in refused.detail and "loopback" in refused.detail
    assert sent.status == "sent", sent.detail
    assert len(received) == 1


class EndlessAnswer:
    """A callback server that takes the request, answers 200, then streams JSON-ish bytes
    (up to `limit`, to keep a failing run's memory in check) until the client hangs up."""

    def __init__(self, limit: int = 100 * 1024 * 1024) -> None:
        self.limit = limit
        self.sent = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        self.requests += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b" " * 65536
        try:
            writer.write(b'%x\r\n{"id": "x"\r\n' % len(b'{"id": "x"'))
            while self.sent < self.limit:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                self.sent += len(chunk)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def test_a_callback_answer_is_read_only_up_to_its_cap(rig: Rig) -> None:
    server = EndlessAnswer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        account = await rig.account("generic", callbackUrl=f"http://127.0.0.1:{port}/hook")
        msg = outbound(account, client_id="endless")
        await rig.produce(msg)
        [result] = await rig.results(1)
    finally:
        listening.close()
    assert server.requests == 1
    assert result.status == "sent", result.detail
    assert result.platform_message_id == msg.message_id  # the answer was not readable JSON
    assert server.sent < 10 * 1024 * 1024, f"{server.sent} bytes of the answer were read"


async def test_a_bug_outside_the_platform_call_fails_that_reply_only(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's last resort: whatever raises while one reply is handled (here the
    account lookup, as a bug would) is that reply's failure, settled in the ledger."""
    account = await rig.account("slack")
    cache = rig.harness.runtime.accounts
    real = cache.get

    async def broken(account_id: str) -> Account | None:
        if account_id == account.id:
            raise RuntimeError("a bug")
        return await real(account_id)

    monkeypatch.setattr(cache, "get", broken)
    await rig.produce(outbound(account, client_id="bug"))
    [result] = await rig.results(1)
    assert result.status == "failed" and not result.ambiguous
    assert result.detail == "slack: the send failed (RuntimeError)"
    ledger = await rig.db[SEND_LEDGER].find_one({"_id": result.message_id})
    assert ledger is not None and ledger["state"] == "failed"
    await _then_a_good_reply_is_sent(rig, "slack")
